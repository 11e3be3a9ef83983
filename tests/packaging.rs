//! Packaging: completions and man pages from `zdctl generate`, the Debian
//! package from `packaging/build-deb`, and the systemd units in
//! `packaging/systemd/`.
//!
//! The package is built from the binaries `cargo test` has already built
//! (debug, stripped, gzip-compressed), never from a release build. When
//! `dpkg-deb` is missing the staging tree is checked instead; when
//! `systemd-analyze` is missing the units are still parsed and their
//! settings checked. Each test says on stdout which checks ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROGRAMS: [&str; 4] = ["zdctl", "zeoctl", "zopectl", "zdrun"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn zdctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zdctl"))
}

/// The directory holding the zdctl and zdrun that cargo built for the tests.
fn bin_dir() -> PathBuf {
    let zdrun = PathBuf::from(env!("CARGO_BIN_EXE_zdrun"));
    let dir = zdrun.parent().expect("zdrun has a directory").to_path_buf();
    assert_eq!(Some(dir.as_path()), zdctl().parent(), "zdctl beside zdrun");
    dir
}

fn has_tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run `cmd`, which must succeed; returns its output.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("UTF-8 output")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn generate_writes_completions_and_man_pages_for_every_program() {
    let tmp = tempfile::tempdir().unwrap();
    let completions = tmp.path().join("completions");
    let man = tmp.path().join("man");
    run(Command::new(zdctl())
        .args(["generate", "completions"])
        .arg(&completions));
    run(Command::new(zdctl()).args(["generate", "man"]).arg(&man));

    for name in PROGRAMS {
        let bash = read(&completions.join(format!("{name}.bash")));
        let zsh = read(&completions.join(format!("_{name}")));
        let fish = read(&completions.join(format!("{name}.fish")));
        let page = read(&man.join(format!("{name}.1")));

        // Each completion registers itself for the program's own name.
        assert!(
            bash.contains(&format!("complete -F _{name} ")),
            "{name}.bash registers _{name}"
        );
        assert!(zsh.starts_with(&format!("#compdef {name}")), "_{name}");
        assert!(
            fish.contains(&format!("complete -c {name} ")),
            "{name}.fish"
        );
        for option in ["configure", "socket-name", "backoff-limit"] {
            assert!(
                bash.contains(&format!("--{option}")),
                "{name}.bash: --{option}"
            );
            assert!(
                fish.contains(&format!("-l {option}")),
                "{name}.fish: --{option}"
            );
        }

        assert!(page.starts_with(".ie"), "{name}.1 is roff");
        assert!(page.contains(&format!(".TH {name} 1")), "{name}.1 title");
        // Options as clap_mangen writes them: \-C, \-\-configure.
        for option in [
            r"\-C",
            r"\-\-configure",
            r"\-\-socket\-name",
            r"\-\-program",
        ] {
            assert!(page.contains(option), "{name}.1 mentions {option}");
        }
    }

    // The client's completions and page know its actions.
    for name in ["zdctl", "zeoctl", "zopectl"] {
        let bash = read(&completions.join(format!("{name}.bash")));
        let page = read(&man.join(format!("{name}.1")));
        for action in ["start", "stop", "restart", "status", "logtail", "reload"] {
            assert!(
                bash.contains(&format!("{name},{action})")),
                "{name}.bash completes {action}"
            );
            assert!(page.contains(action), "{name}.1 lists {action}");
        }
    }
    println!(
        "checked bash, zsh and fish completions and man pages of {}",
        PROGRAMS.join(", ")
    );
}

/// Every file and link the package installs, without the leading "./".
fn expected_files() -> Vec<String> {
    let mut files: Vec<String> = [
        "usr/bin/zdctl",
        "usr/bin/zdrun",
        "lib/systemd/system/zdaemon-rs.service",
        "lib/systemd/system/zdaemon-rs@.service",
        "usr/share/doc/zdaemon-rs/README.md",
        "usr/share/doc/zdaemon-rs/copyright",
        "etc/zdaemon-rs/site.conf",
    ]
    .map(String::from)
    .to_vec();
    for name in PROGRAMS {
        files.push(format!("usr/share/bash-completion/completions/{name}"));
        files.push(format!("usr/share/zsh/vendor-completions/_{name}"));
        files.push(format!("usr/share/fish/vendor_completions.d/{name}.fish"));
        files.push(format!("usr/share/man/man1/{name}.1.gz"));
    }
    files
}

const LINKS: [(&str, &str); 2] = [("usr/bin/zeoctl", "zdctl"), ("usr/bin/zopectl", "zdctl")];

/// Debian's name for this machine's architecture, as build-deb finds it.
fn deb_arch() -> Option<String> {
    has_tool("dpkg").then(|| {
        stdout(Command::new("dpkg").arg("--print-architecture"))
            .trim()
            .to_string()
    })
}

/// Run packaging/build-deb on the test binaries into `out`.
fn build_deb(out: &Path, extra: &[&str]) -> PathBuf {
    let printed = stdout(
        Command::new(repo().join("packaging/build-deb"))
            .arg("--bin-dir")
            .arg(bin_dir())
            .arg("--out")
            .arg(out)
            .args(extra)
            // Debug binaries are large; xz would take most of the test's time.
            .env("DPKG_DEB_COMPRESSOR_TYPE", "gzip")
            .env("DPKG_DEB_COMPRESSOR_LEVEL", "1")
            .env_remove("ZDRS_DEB_MAINTAINER")
            .env_remove("DEBEMAIL"),
    );
    PathBuf::from(printed.trim())
}

/// The `Key: value` fields of a control file (continuation lines skipped).
fn control_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn check_control(control: &str, conffiles: &str) {
    let fields = control_fields(control);
    let field = |k: &str| {
        fields
            .get(k)
            .unwrap_or_else(|| panic!("control has {k}:\n{control}"))
            .as_str()
    };
    assert_eq!(field("Package"), "zdaemon-rs");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    if let Some(arch) = deb_arch() {
        assert_eq!(field("Architecture"), arch);
    }
    assert!(
        field("Maintainer").contains('<'),
        "Maintainer has an address"
    );
    assert!(
        field("Depends")
            .split(',')
            .any(|d| d.trim().starts_with("libc6 (>= ")),
        "Depends on a versioned libc6: {}",
        field("Depends")
    );
    assert!(field("Installed-Size").parse::<u64>().unwrap() > 0);
    assert!(field("Description").contains("zdaemon"));
    assert!(
        control
            .contains("\n them by zdaemon's rules, zdctl (also installed as zeoctl and zopectl)"),
        "long description"
    );
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/zdaemon-rs/site.conf"]
    );
}

#[test]
fn build_deb_packages_binaries_links_units_completions_and_man_pages() {
    let tmp = tempfile::tempdir().unwrap();
    if !has_tool("dpkg-deb") {
        // No dpkg: check what build-deb would pack.
        let stage = build_deb(tmp.path(), &["--stage-only"]);
        for file in expected_files() {
            assert!(stage.join(&file).is_file(), "staged {file}");
        }
        for (link, target) in LINKS {
            assert_eq!(
                std::fs::read_link(stage.join(link)).unwrap(),
                Path::new(target)
            );
        }
        check_control(
            &read(&stage.join("DEBIAN/control")),
            &read(&stage.join("DEBIAN/conffiles")),
        );
        println!(
            "dpkg-deb not found: checked the staging tree {}",
            stage.display()
        );
        return;
    }

    let deb = build_deb(tmp.path(), &[]);
    let arch = deb_arch().expect("dpkg beside dpkg-deb");
    assert_eq!(
        deb,
        tmp.path().join(format!(
            "zdaemon-rs_{}_{arch}.deb",
            env!("CARGO_PKG_VERSION")
        ))
    );

    // Contents: every file, owned by root, with its mode; the two links.
    let listing = stdout(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let mut entries = BTreeMap::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let path = cols[5].trim_start_matches("./").to_string();
        assert_eq!(cols[1], "root/root", "{line}");
        let rest = cols[6..].join(" ");
        entries.insert(path, (cols[0].to_string(), rest));
    }
    for file in expected_files() {
        let (mode, _) = entries
            .get(&file)
            .unwrap_or_else(|| panic!("package lacks {file}:\n{listing}"));
        let want = if file.starts_with("usr/bin/") {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, want, "mode of {file}");
    }
    for (link, target) in LINKS {
        let (mode, rest) = &entries[link];
        assert!(mode.starts_with('l'), "{link} is a symlink");
        assert_eq!(rest, &format!("-> {target}"), "{link} -> {target}");
    }

    let control = stdout(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg("control"),
    );
    let conffiles = stdout(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg("conffiles"),
    );
    check_control(&control, &conffiles);

    // What is installed works: the packaged zdctl runs under its other names,
    // and the man pages are gzip files.
    let root = tmp.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let version = stdout(Command::new(root.join("usr/bin/zeoctl")).arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let page = std::fs::read(root.join("usr/share/man/man1/zdctl.1.gz")).unwrap();
    assert_eq!(&page[..2], b"\x1f\x8b", "zdctl.1.gz is gzip");
    println!(
        "built {} with packaging/build-deb; checked dpkg-deb --contents \
         ({} entries), --info control and conffiles, and the extracted zeoctl",
        deb.display(),
        entries.len()
    );
}

/// A unit file as sections of `key = [values]`. Panics on lines that are
/// neither comments, section headers nor assignments.
fn parse_unit(path: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, line) in read(path).lines().enumerate() {
        let line = line.trim();
        let at = format!("{}:{}", path.display(), n + 1);
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!line.ends_with('\\'), "{at}: no continuation lines");
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_string());
            sections.entry(name.to_string()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{at}: not key=value: {line}"));
        let section = current
            .clone()
            .unwrap_or_else(|| panic!("{at}: outside a section"));
        sections
            .entry(section)
            .or_default()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    sections
}

/// The settings the units promise, checked on the text itself.
fn check_unit_settings(path: &Path, config: &str) {
    let unit = parse_unit(path);
    let name = path.display();
    let get = |section: &str, key: &str| -> &str {
        let values = unit
            .get(section)
            .and_then(|s| s.get(key))
            .unwrap_or_else(|| panic!("{name}: [{section}] {key}= missing"));
        assert_eq!(values.len(), 1, "{name}: one {key}=");
        &values[0]
    };
    assert_eq!(
        unit.keys().collect::<Vec<_>>(),
        ["Install", "Service", "Unit"],
        "{name}: sections"
    );
    assert!(!get("Unit", "Description").is_empty());
    assert_eq!(get("Service", "Type"), "notify");
    assert_eq!(get("Service", "NotifyAccess"), "main");
    assert_eq!(
        get("Service", "ExecStart"),
        format!("/usr/bin/zdrun -C {config}")
    );
    assert_eq!(get("Service", "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(
        ["mixed", "process"].contains(&get("Service", "KillMode")),
        "{name}: zdrun stops its programs itself"
    );
    assert_eq!(get("Service", "TimeoutStopSec"), "15min");
    assert_eq!(get("Service", "Restart"), "on-failure");
    assert_eq!(get("Install", "WantedBy"), "multi-user.target");
    // Hardening that would get in the way of arbitrary programs stays out.
    for key in [
        "ProtectSystem",
        "PrivateTmp",
        "NoNewPrivileges",
        "MemoryDenyWriteExecute",
        "ProtectClock",
    ] {
        assert!(!unit["Service"].contains_key(key), "{name}: no {key}=");
    }
}

#[test]
fn systemd_units_have_the_promised_settings_and_verify() {
    let units = repo().join("packaging/systemd");
    check_unit_settings(
        &units.join("zdaemon-rs.service"),
        "/etc/zdaemon-rs/site.conf",
    );
    check_unit_settings(
        &units.join("zdaemon-rs@.service"),
        "/etc/zdaemon-rs/%i.conf",
    );

    if !has_tool("systemd-analyze") {
        println!(
            "systemd-analyze not found: parsed both units and checked their \
             settings; `systemd-analyze verify` not run"
        );
        return;
    }

    // Verify in a root that holds what the units refer to: the packaged
    // zdrun and man pages (staged by build-deb), /bin/kill, and the host's
    // systemd units (for multi-user.target and the default dependencies).
    let tmp = tempfile::tempdir().unwrap();
    let root = build_deb(&tmp.path().join("out"), &["--stage-only"]);
    let kill = ["/bin/kill", "/usr/bin/kill"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a kill program");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(kill, root.join("bin/kill")).unwrap();
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|p| Path::new(p).join("multi-user.target").exists())
        .expect("systemd-analyze comes with systemd's units");
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(host_units)
        .arg(root.join("usr/lib/systemd/system")));
    let mut verify = Command::new("systemd-analyze");
    verify
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(["zdaemon-rs.service", "zdaemon-rs@example.service"])
        .env("MANPATH", root.join("usr/share/man"))
        .env("SYSTEMD_LOG_COLOR", "0");
    let out = run(&mut verify);
    // Warnings (unknown keys, bad values) do not change the exit status.
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.trim().is_empty(), "systemd-analyze verify:\n{said}");
    println!(
        "parsed both units, checked their settings, and ran \
         `systemd-analyze verify` on zdaemon-rs.service and \
         zdaemon-rs@example.service against the staged package: clean"
    );
}

#[test]
fn example_site_config_loads() {
    // The shipped /etc/zdaemon-rs/site.conf, with its /run and /var/log
    // directories moved to a scratch directory that exists.
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["run", "log"] {
        std::fs::create_dir(tmp.path().join(dir)).unwrap();
    }
    let text = read(&repo().join("packaging/site.conf"))
        .replace(
            "/run/zdaemon-rs/site",
            &tmp.path().join("run").display().to_string(),
        )
        .replace(
            "/var/log/zdaemon-rs",
            &tmp.path().join("log").display().to_string(),
        );
    let conf = tmp.path().join("site.conf");
    std::fs::write(&conf, text).unwrap();
    let said = stdout(Command::new(zdctl()).arg("-C").arg(&conf).arg("check"));
    assert!(said.contains("OK (site configuration)"), "{said}");
    println!("zdctl check: {}", said.trim());
}

#[test]
fn packaged_site_before_its_first_start_is_not_running() {
    // The shipped site.conf as the package installs it: /run/zdaemon-rs/
    // and /var/log/zdaemon-rs/ are made by the unit when it first starts,
    // so neither exists yet (here: two levels of scratch paths not made).
    let tmp = tempfile::tempdir().unwrap();
    let text = read(&repo().join("packaging/site.conf"))
        .replace(
            "/run/zdaemon-rs/site",
            &tmp.path().join("run/zdaemon-rs/site").display().to_string(),
        )
        .replace(
            "/var/log/zdaemon-rs",
            &tmp.path().join("log/zdaemon-rs").display().to_string(),
        );
    let conf = tmp.path().join("site.conf");
    std::fs::write(&conf, text).unwrap();
    for (action, code) in [("status", 3), ("stop", 0)] {
        let out = Command::new(zdctl())
            .current_dir("/")
            .arg("-C")
            .arg(&conf)
            .arg(action)
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(code), "{action}: {o}{e}");
        assert_eq!(o, "daemon manager not running\n", "{action}: {o}{e}");
        assert_eq!(e, "", "{action}: nothing to warn about");
    }
    assert!(!tmp.path().join("run").exists(), "status made directories");
}

#[test]
fn systemd_unit_timeouts_follow_the_longest_chains() {
    // a (start 10, stop 7) <- b after a (start 20, stop 5); c alone
    // (start 100, stop 1): starting takes up to max(10 + 20, 100) s,
    // stopping (b, then a) up to max(5 + 7, 1) s; each plus 30 s.
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("site.conf");
    std::fs::write(
        &conf,
        "<runner>\n  socket-name zdsock\n</runner>\n\
         <program a>\n  program /bin/sleep 100\n  start-timeout 10\n  stop-timeout 7\n</program>\n\
         <program b>\n  program /bin/sleep 100\n  after a\n  start-timeout 20\n  stop-timeout 5\n</program>\n\
         <program c>\n  program /bin/sleep 100\n  start-timeout 100\n  stop-timeout 1\n</program>\n",
    )
    .unwrap();
    let unit = stdout(
        Command::new(zdctl())
            .current_dir("/")
            .arg("-C")
            .arg(&conf)
            .arg("systemd-unit"),
    );
    assert!(unit.contains("\nTimeoutStartSec=130s\n"), "{unit}");
    assert!(unit.contains("\nTimeoutStopSec=42s\n"), "{unit}");
    // A single program: its own timeouts (default 300 s).
    std::fs::write(&conf, "<runner>\n  program /bin/sleep 100\n</runner>\n").unwrap();
    let unit = stdout(
        Command::new(zdctl())
            .arg("-C")
            .arg(&conf)
            .arg("systemd-unit"),
    );
    assert!(unit.contains("\nTimeoutStartSec=330s\n"), "{unit}");
    assert!(unit.contains("\nTimeoutStopSec=330s\n"), "{unit}");
}

#[test]
fn documented_command_lines_put_options_before_the_action() {
    // `zdctl ACTION -C FILE` fails: clap takes options before the action.
    for doc in ["README.md", "packaging/README.md"] {
        let text = read(&repo().join(doc));
        for line in text.lines() {
            for action in ["systemd-unit", "status", "start", "stop", "generate"] {
                assert!(
                    !line.contains(&format!("{action} -C ")),
                    "{doc}: an option after the action: {line}"
                );
            }
        }
    }
    let out = Command::new(zdctl())
        .args(["systemd-unit", "-C", "x.conf"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "the wrong order is a usage error"
    );
}
