//! The control socket as a hostile or unlucky user meets it: another uid
//! listening at the socket path, a file that is not a socket there, a
//! directory others can write to, a refused non-owner, a flood of idle
//! connections (beyond the connection limit and beyond the descriptor
//! limit), a reader that closes the pipe, and `start` of a program or a
//! zdrun that ends at once.
//!
//! The tests that act as another user need root (they use `setpriv` to
//! become uid 65534) and fail, rather than pass quietly, without it.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::site::*;

const NOBODY: &str = "65534";

fn need_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test acts as uid 65534 through setpriv and must run as root"
    );
}

/// A Python that uid 65534 can run (one under root's home is not).
fn system_python() -> &'static str {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a python3 outside root's home")
}

/// A command run as uid/gid 65534 with no supplementary groups.
fn as_nobody(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        program,
    ]);
    cmd
}

/// A child process, killed and reaped when dropped.
struct Guard(Child);

impl Guard {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Still running `within` from now (it is our child: a death is seen
    /// by `try_wait`, zombie or not).
    fn survives(&mut self, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Make the site's directory like /tmp: writable by all, sticky.
fn like_tmp(site: &Site) {
    fs::set_permissions(site.dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
}

/// A listener run as uid 65534 at the site's socket path that answers
/// every request with a status reply naming `pid` as the program.
fn impostor(site: &Site, pid: i32) -> Guard {
    let script = "import socket,sys\n\
                  s=socket.socket(socket.AF_UNIX)\n\
                  s.bind(sys.argv[1]); s.listen(64)\n\
                  print('listening', flush=True)\n\
                  reply=('status=running\\nnow=1.0\\nshould_be_up=1\\ndelay=0\\nbackoff=0\\n'\n\
                  'lasttime=1.0\\napplication=%s\\ntesting=0\\nmanager=%s\\nbackofflimit=10\\n'\n\
                  'filename=\\'/bin/sleep\\'\\nargs=[\\'sleep\\', \\'100\\']\\n' % (sys.argv[2], sys.argv[2])).encode()\n\
                  while True:\n\
                  \x20   c,_=s.accept()\n\
                  \x20   try:\n\
                  \x20       c.recv(1000); c.sendall(reply)\n\
                  \x20   except OSError:\n\
                  \x20       pass\n\
                  \x20   c.close()\n";
    let mut child = as_nobody(system_python())
        .args(["-c", script])
        .arg(site.sock())
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("setpriv runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = Guard(child);
    let line = read_line_within(stdout, DEADLINE);
    assert_eq!(line.trim(), "listening", "the impostor did not start");
    guard
}

/// The first line `from` prints, waited for at most `limit`.
fn read_line_within(from: impl Read + Send + 'static, limit: Duration) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(from).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(limit).expect("a line in time")
}

/// Pids of the zdrun processes serving `sock` (by command line).
fn managers_for(sock: &Path) -> Vec<i32> {
    let want = sock.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|&b| b == 0);
        // zdrun's guard process has its command line but not its name.
        let guard =
            fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == "zdrun-guard");
        let is_zdrun = !guard && args.next().is_some_and(|a| a.ends_with(b"zdrun"));
        if is_zdrun && args.any(|a| a == want) && alive(pid) {
            found.push(pid);
        }
    }
    found
}

fn zdctl_in(site: &Site) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zdctl"));
    cmd.current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"));
    cmd
}

/// The pid in `start`'s last line.
fn started_pid(out: &str) -> i32 {
    out.trim_end()
        .rsplit_once("pid=")
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"))
}

// ------------------------------------------------------------ socket trust

#[test]
fn a_socket_held_by_another_user_is_not_believed() {
    need_root();
    let site = Site::new();
    like_tmp(&site);
    site.config("sleep 100", "", "");
    let mut victim = Guard(Command::new("sleep").arg("1000").spawn().unwrap());
    let _impostor = impostor(&site, victim.pid());
    let sock = site.sock().display().to_string();
    let by_owner = format!(
        "Error: socket {sock} belongs to nobody (uid 65534), not to root; refusing to use it\n"
    );
    let by_peer = format!(
        "Error: the process answering on socket {sock} runs as nobody (uid 65534), not as \
         root; refusing to use it\n"
    );
    // First the file is the impostor's; then it is root's (as if root had
    // made it) while the impostor still answers: the peer check catches it.
    for expected in [by_owner, by_peer] {
        for action in [
            &["status"][..],
            &["status", "--json"],
            &["start"],
            &["kill"],
            &["kill", "KILL"],
            &["stop"],
            &["restart"],
            &["reload"],
            &["logreopen"],
        ] {
            let o = site.zdctl(action);
            assert_eq!(
                (o.status.code(), stderr(&o).as_str(), stdout(&o).as_str()),
                (Some(1), expected.as_str(), ""),
                "zdctl {action:?}"
            );
        }
        assert!(
            victim.survives(Duration::from_millis(300)),
            "kill reached it"
        );
        assert_eq!(
            managers_for(&site.sock()),
            Vec::<i32>::new(),
            "zdrun started"
        );
        let meta = fs::symlink_metadata(site.sock()).expect("the socket is left alone");
        assert!(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
        std::os::unix::fs::lchown(site.sock(), Some(0), Some(0)).unwrap();
    }
}

#[test]
fn the_socket_of_the_configured_user_is_trusted() {
    need_root();
    let site = Site::new();
    like_tmp(&site);
    // zdrun becomes nobody before it binds: the socket is nobody's, in a
    // directory zdctl creates for nobody (as zdaemon's zdctl does).
    let sock = site.path("run/zdsock");
    site.config("sleep 100", "  user nobody", "");
    let conf = fs::read_to_string(site.path("zd.conf")).unwrap();
    let conf = conf.replace(
        &site.sock().display().to_string(),
        &sock.display().to_string(),
    );
    fs::write(site.path("zd.conf"), conf).unwrap();
    let o = site.zdctl(&["start"]);
    let reply = String::from_utf8_lossy(&request(&sock, b"status\n")).into_owned();
    if let Some(m) = reply.lines().find_map(|l| l.strip_prefix("manager=")) {
        // Not at the site's usual socket: killed by the site on failure.
        site.track(m.parse().unwrap());
    }
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = started_pid(&stdout(&o));
    for p in [&sock, &site.path("run")] {
        let meta = fs::metadata(p).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534, "{p:?}");
    }
    let o = site.zdctl(&["status"]);
    assert_eq!(stdout(&o), format!("program running; pid={pid}\n"));
    let o = site.zdctl(&["stop"]);
    assert_eq!(
        (o.status.code(), undot(&stdout(&o)).as_str()),
        (Some(0), "\ndaemon process stopped\n")
    );
}

#[test]
fn zdrun_will_not_bind_where_another_user_could_replace_the_socket() {
    need_root();
    let site = Site::new();
    site.config("sleep 100", "", "");
    let dir = site.dir.path();
    let sock = site.sock().display().to_string();
    let cases: [(u32, u32, u32, &str); 3] = [
        (0, 0, 0o777, "is writable by everyone and has no sticky bit"),
        (
            0,
            65534,
            0o775,
            "is writable by group nogroup (gid 65534) and has no sticky bit",
        ),
        (65534, 0, 0o755, "belongs to nobody (uid 65534)"),
    ];
    for (uid, gid, mode, why) in cases {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
        let o = site.zdctl(&["start"]);
        let expected = format!(
            "cannot use socket {sock}: its directory {} {why}, so another user could replace \
             the socket",
            dir.display()
        );
        assert_eq!(o.status.code(), Some(1), "{mode:o}: {}", stdout(&o));
        assert!(stderr(&o).contains(&expected), "{mode:o}: {}", stderr(&o));
        assert!(!site.sock().exists());
        assert_eq!(managers_for(&site.sock()), Vec::<i32>::new());
    }
    // Sticky, as /tmp is: others cannot touch what is ours.
    std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o1777)).unwrap();
    start(&site);
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Makes something at a path.
type Maker<'a> = dyn Fn(&Path) + 'a;

#[test]
fn only_a_socket_is_ever_removed_as_stale() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let sock = site.sock();
    let precious = site.path("precious");
    fs::write(&precious, "precious\n").unwrap();
    let kinds: [(&str, &Maker); 5] = [
        ("a regular file", &|p| fs::write(p, "precious\n").unwrap()),
        ("a FIFO", &|p| {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
        }),
        ("a directory", &|p| {
            fs::create_dir(p).unwrap();
            fs::write(p.join("inside"), "precious\n").unwrap();
        }),
        ("a symbolic link", &|p| symlink(&precious, p).unwrap()),
        ("a symbolic link", &|p| symlink("/nonexistent", p).unwrap()),
    ];
    for (kind, make) in kinds {
        make(&sock);
        let snapshot = |p: &Path| {
            let m = fs::symlink_metadata(p).unwrap();
            (m.file_type(), std::os::unix::fs::MetadataExt::ino(&m))
        };
        let before = snapshot(&sock);
        // zdctl refuses the path before starting anything.
        // A directory is already refused by the settings check, with the
        // line of socket-name, as a configuration error.
        let dir_error = |prog: &str| {
            format!(
                "Error: {}:3: socket path '{}' is a directory\nFor help, use {prog} -h\n",
                site.path("zd.conf").display(),
                sock.display()
            )
        };
        for action in ["start", "status", "stop"] {
            let o = site.zdctl(&[action]);
            if kind == "a directory" {
                assert_eq!(stderr(&o), dir_error("zdctl"), "{action}");
                assert_eq!(o.status.code(), Some(2));
                continue;
            }
            assert_eq!(
                stderr(&o),
                format!(
                    "Error: {} is {kind}, not a socket; refusing to use it\n",
                    sock.display()
                ),
                "{action}"
            );
            assert_eq!(o.status.code(), Some(1));
        }
        // zdrun, run by hand, refuses to remove it.
        let mut zdrun = Guard(
            Command::new(env!("CARGO_BIN_EXE_zdrun"))
                .current_dir(site.dir.path())
                .arg("-C")
                .arg(site.path("zd.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let err = read_line_within(zdrun.0.stderr.take().unwrap(), DEADLINE);
        let expected = if kind == "a directory" {
            dir_error("zdrun")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
                + "\n"
        } else {
            format!(
                "cannot create socket {p}: {p} exists and is {kind}, not a socket; not removing \
                 it\n",
                p = sock.display()
            )
        };
        assert_eq!(err, expected);
        wait_for("zdrun to exit", || !matches!(zdrun.0.try_wait(), Ok(None)));
        let code = if kind == "a directory" { 2 } else { 1 };
        assert_eq!(zdrun.0.wait().unwrap().code(), Some(code));
        assert_eq!(snapshot(&sock), before, "{kind} changed");
        assert_eq!(fs::read_to_string(&precious).unwrap(), "precious\n");
        if kind == "a directory" {
            fs::remove_dir_all(&sock).unwrap();
        } else {
            if kind == "a regular file" {
                assert_eq!(fs::read_to_string(&sock).unwrap(), "precious\n");
            }
            fs::remove_file(&sock).unwrap();
        }
    }
    // A real stale socket (nobody listening) is replaced.
    drop(UnixListener::bind(&sock).unwrap());
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("Unlinking stale socket {}", sock.display())));
    site.zdctl(&["stop"]);
}

#[test]
fn another_user_is_told_permission_denied() {
    need_root();
    let site = Site::new();
    like_tmp(&site);
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let as_nobody_zdctl = |args: &[&str]| -> Output {
        as_nobody(env!("CARGO_BIN_EXE_zdctl"))
            .current_dir(site.dir.path())
            .arg("-C")
            .arg(site.path("zd.conf"))
            .args(args)
            .output()
            .unwrap()
    };
    let sock = site.sock().display().to_string();
    // The socket's mode keeps others out...
    for action in ["status", "stop", "kill"] {
        let o = as_nobody_zdctl(&[action]);
        assert_eq!(
            (o.status.code(), stdout(&o).as_str(), stderr(&o).as_str()),
            (
                Some(1),
                "",
                format!(
                    "Error: permission denied on socket {sock}: it belongs to root (uid 0) and \
                     is not open to us\n"
                )
                .as_str()
            ),
            "{action}"
        );
    }
    // ...and zdrun itself refuses them when the mode lets them in.
    fs::set_permissions(site.sock(), fs::Permissions::from_mode(0o666)).unwrap();
    let o = as_nobody_zdctl(&["status"]);
    assert_eq!(
        (o.status.code(), stderr(&o)),
        (
            Some(1),
            format!(
                "Error: permission denied on socket {sock}: uid 65534 may not control this \
                 daemon (owner uid 0)\n"
            )
        )
    );
    assert_eq!(site.program_pid(), pid);
    site.zdctl(&["stop"]);
}

// ------------------------------------------------------------ output, start

/// Run zdctl with its standard output a pipe nobody reads any more.
fn into_closed_pipe(site: &Site, args: &[&str]) -> Output {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    zdctl_in(site)
        .args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_output_pipe_is_a_quiet_exit_0() {
    let site = Site::new();
    let log = site.path("app.log");
    let lines: String = (0..200).map(|i| format!("line {i}\n")).collect();
    fs::write(&log, lines).unwrap();
    // Output well past zdctl's 8 KiB buffer, so that writes fail midway
    // and not only at the final flush.
    let environment: String = (0..400)
        .map(|i| format!("  VAR{i} {}\n", "x".repeat(40)))
        .collect();
    site.config(
        "sleep 100",
        &format!("  logfile {}", log.display()),
        &format!("<environment>\n{environment}</environment>"),
    );
    start(&site);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "-l"],
        &["show"],
        &["show", "--json"],
        &["show", "--format", "toml"],
        &["logtail"],
        &["help"],
        &["check"],
    ] {
        let o = into_closed_pipe(&site, args);
        assert_eq!(
            (o.status.code(), stderr(&o).as_str()),
            (Some(0), ""),
            "{args:?}"
        );
    }
    site.zdctl(&["stop"]);
}

#[test]
fn start_reports_a_program_that_ends_at_once_with_one_of_its_exit_codes() {
    // At once, or after a short while: within the second start waits.
    for (body, code) in [("exit 0", 0), ("exit 2", 2), ("sleep 0.3; exit 0", 0)] {
        let site = Site::new();
        let prog = site.path("quick.sh");
        fs::write(&prog, format!("{body}\n")).unwrap();
        site.config(&format!("sh {}", prog.display()), "", "");
        let t0 = Instant::now();
        let o = site.zdctl(&["start"]);
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert_eq!(
            undot(&stdout(&o)),
            format!("\ndaemon process stopped; exit status {code}\n")
        );
        assert_eq!(o.status.code(), Some(1));
        wait_for("the socket removed", || !site.sock().exists());
    }
}

#[test]
fn start_shows_zdruns_own_error_at_once() {
    let site = Site::new();
    site.config("/nonexistent/program", "", "");
    let t0 = Instant::now();
    let o = site.zdctl(&["start"]);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        stderr(&o).starts_with(&format!(
            "Error: {}:2: can't stat program '/nonexistent/program'\n",
            site.path("zd.conf").display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(undot(&stdout(&o)), "\ndaemon manager not running\n");
    assert_eq!(o.status.code(), Some(1));
}

// ------------------------------------------------------------ flood

/// Processes holding idle connections to a socket; they close them and
/// exit when dropped (or when told to).
struct Flood {
    holders: Vec<(Guard, Option<ChildStdin>)>,
}

/// Connections per holder: under the 20,000 descriptors a process may
/// have here, so 25,000 takes two.
const PER_HOLDER: usize = 12_500;

impl Flood {
    /// Open `total` connections to `sock` and keep them, saying nothing.
    fn open(sock: &Path, total: usize) -> Flood {
        let script = "import socket,sys,resource\n\
                      n=int(sys.argv[2])\n\
                      resource.setrlimit(resource.RLIMIT_NOFILE,(n+64,n+64))\n\
                      held=[]\n\
                      for i in range(n):\n\
                      \x20   s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)\n\
                      print('holding', flush=True)\n\
                      sys.stdin.read()\n";
        let mut holders = Vec::new();
        let mut left = total;
        while left > 0 {
            let n = left.min(PER_HOLDER);
            left -= n;
            let mut child = Command::new(system_python())
                .args(["-c", script])
                .arg(sock)
                .arg(n.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().unwrap();
            holders.push((Guard(child), stdin, stdout));
        }
        let holders = holders
            .into_iter()
            .map(|(guard, stdin, stdout)| {
                let line = read_line_within(stdout, DEADLINE);
                assert_eq!(line.trim(), "holding", "a holder could not connect");
                (guard, stdin)
            })
            .collect();
        Flood { holders }
    }

    /// Close every connection: the holders exit.
    fn close(mut self) {
        for (guard, stdin) in &mut self.holders {
            drop(stdin.take());
            wait_for("a holder to exit", || {
                !matches!(guard.0.try_wait(), Ok(None))
            });
        }
    }
}

fn open_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// 25,000 idle connections against a zdrun started with `nofile` as its
/// descriptor limit (`None`: the usual one): it stays responsive and
/// cheap, never looks "not running", and recovers.
fn flood_of_idle_connections(nofile: Option<u64>) {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let mut cmd = zdctl_in(&site);
    cmd.arg("start");
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe; it runs in the child
        // before exec and touches nothing else.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, n, n)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pid = site.program_pid();
    let manager = site.manager_pid();
    assert!(pid != 0 && manager != 0);
    if let Some(n) = nofile {
        let limits = fs::read_to_string(format!("/proc/{manager}/limits")).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        assert!(
            line.split_whitespace().any(|w| w == n.to_string()),
            "{line}"
        );
    }
    let baseline = open_fds(manager);

    let t0 = Instant::now();
    let flood = Flood::open(&site.sock(), 25_000);
    let opened_in = t0.elapsed();

    // A client over the limit hears so at once, not after 10 s. (The
    // connections zdrun keeps expire 10 s after it took them.)
    assert!(
        opened_in < Duration::from_secs(8),
        "flood took {opened_in:?}"
    );
    let mut idle = UnixStream::connect(site.sock()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let asked = Instant::now();
    let mut reply = Vec::new();
    let _ = idle.read_to_end(&mut reply);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "Too many connections; try again\n"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    // zdctl gets the status, or hears the manager is busy; never that it
    // is not running, and it starts no second zdrun.
    let o = site.zdctl(&["status"]);
    let answer = (stdout(&o), o.status.code());
    assert!(
        answer == (format!("program running; pid={pid}\n"), Some(0))
            || answer.0.starts_with("daemon manager busy: ") && answer.1 == Some(4),
        "{answer:?} {}",
        stderr(&o)
    );
    let o = site.zdctl(&["start"]);
    let answer = (stdout(&o), o.status.code());
    assert!(
        answer
            == (
                format!("daemon process already running; pid={pid}\n"),
                Some(0)
            )
            || answer.0.starts_with("daemon manager busy: ") && answer.1 == Some(1),
        "{answer:?} {}",
        stderr(&o)
    );
    assert_eq!(managers_for(&site.sock()), vec![manager]);

    // Idle connections cost no CPU: no busy accept loop.
    let ticks = cpu_ticks(manager);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = (cpu_ticks(manager) - ticks) as f64 / clock_ticks_per_second() as f64;
    let share = used / window.elapsed().as_secs_f64();
    assert!(share < 0.5, "zdrun used {:.0}% CPU", share * 100.0);

    // Once the connections close, all is as before.
    flood.close();
    wait_for("zdrun to let go of the connections", || {
        open_fds(manager) <= baseline
    });
    let o = site.zdctl(&["status"]);
    assert_eq!(stdout(&o), format!("program running; pid={pid}\n"));
    assert_eq!(site.manager_pid(), manager);
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn a_flood_of_idle_connections_is_turned_away_at_once() {
    flood_of_idle_connections(None);
}

#[test]
fn a_flood_beyond_zdruns_descriptor_limit_does_not_make_it_spin() {
    flood_of_idle_connections(Some(64));
}
