//! Shared helpers for the integration tests: paths, the binaries, and the
//! Python reference implementations in a venv cached under `target/`.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "oracle_packages.rs"]
mod oracle_packages;
pub use oracle_packages::ORACLE_PACKAGES;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn zdctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zdctl"))
}

/// Run `zdctl` with `args`.
pub fn run_zdctl(args: &[&str]) -> Output {
    zdctl().args(args).output().expect("zdctl runs")
}

/// The venv's Python, creating the venv on first use. Setup failures fail
/// the test: the oracle is never skipped.
pub fn oracle_python() -> PathBuf {
    if let Some(p) = std::env::var_os("ZDRS_ORACLE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join("target").join("oracle-venv");
    std::fs::create_dir_all(repo().join("target")).expect("target/ is writable");
    // Test binaries run in parallel: one builds the venv, others wait.
    let lock = File::create(repo().join("target").join("oracle-venv.lock")).expect("lock file");
    lock.lock().expect("lock the venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join("zdrs-ready");
    let wanted = ORACLE_PACKAGES.join(" ");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is installed");
        assert!(status.success(), "python3 -m venv failed");
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(ORACLE_PACKAGES)
            .output()
            .expect("pip runs");
        assert!(
            out.status.success(),
            "pip install of the reference packages failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&stamp, &wanted).expect("write venv stamp");
    }
    python
}

/// Every `.conf` file under `dir`, recursively, sorted.
pub fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable corpus dir") {
            let p = entry.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "conf") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub mod site;
