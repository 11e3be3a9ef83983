//! zdrun under abuse: killed outright, a program that crashes in a loop,
//! many clients at once, malformed requests, a transcript that cannot be
//! written. Supervision must carry on (or, when zdrun dies, the program
//! must not outlive it).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::site::*;

/// The supervision is intact: same manager and program, and the manager
/// still obeys commands.
fn still_supervising(site: &Site, manager: i32, pid: i32) {
    assert_eq!(site.manager_pid(), manager, "manager changed or died");
    assert_eq!(site.program_pid(), pid, "program changed");
    assert!(alive(pid));
    assert_eq!(site.request(b"kill 0\n"), b"Signal 0 sent\n");
}

#[test]
fn sigkill_to_zdrun_takes_the_program_down() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    assert!(kill(manager, 9));
    let t0 = Instant::now();
    while alive(pid) {
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "program {pid} outlived its SIGKILLed manager"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_crash_loop_costs_zdrun_almost_no_cpu() {
    let site = Site::new();
    let spawns = site.path("spawns").display().to_string();
    let program = script(&site, "crash.sh", &format!("echo x >> {spawns}\nexit 1"));
    site.config(&program, "  backoff-limit 1\n  forever on", "");
    // `start` would wait for a program that is never up: run it only until
    // the manager exists.
    let mut starting = common::zdctl()
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .arg("start")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the manager", || site.manager_pid() != 0);
    let manager = site.manager_pid();
    site.track(manager);
    let _ = starting.kill();
    let _ = starting.wait();
    wait_for("the crash loop", || {
        fs::read_to_string(site.path("spawns")).is_ok_and(|s| s.lines().count() >= 2)
    });
    let before = cpu_ticks(manager);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let used = (cpu_ticks(manager) - before) as f64 / clock_ticks_per_second() as f64;
    let share = used / t0.elapsed().as_secs_f64();
    assert!(share < 0.01, "zdrun used {:.1}% CPU", share * 100.0);
    let runs = fs::read_to_string(site.path("spawns"))
        .unwrap()
        .lines()
        .count();
    assert!(runs >= 4, "only {runs} runs: the loop stalled");
}

#[test]
fn a_hundred_clients_and_a_silent_one() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    // Connects and never says anything.
    let silent = UnixStream::connect(site.sock()).unwrap();
    let t0 = Instant::now();
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let sock = site.sock();
            std::thread::spawn(move || {
                let started = Instant::now();
                let reply = request(&sock, b"status\n");
                (
                    String::from_utf8_lossy(&reply).into_owned(),
                    started.elapsed(),
                )
            })
        })
        .collect();
    for c in clients {
        let (reply, took) = c.join().unwrap();
        assert!(
            reply.contains(&format!("\napplication={pid}\n")),
            "bad reply: {reply:?}"
        );
        assert!(took < Duration::from_secs(5), "a reply took {took:?}");
    }
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    drop(silent);
    still_supervising(&site, manager, pid);
}

/// One raw request and its reply.
fn exchange(site: &Site, bytes: &[u8]) -> String {
    String::from_utf8_lossy(&site.request(bytes)).into_owned()
}

#[test]
fn garbage_bytes_get_an_error_reply() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    for garbage in [
        &b"\xff\xfe\x80bogus\n"[..],
        b"\0\0\0\n",
        b"st\0tus\n",
        b"\xc3\n",
    ] {
        let reply = exchange(&site, garbage);
        assert!(
            reply.starts_with("Unknown command ") && reply.ends_with("; 'help' for a list\n"),
            "{garbage:?} -> {reply:?}"
        );
        still_supervising(&site, manager, pid);
    }
}

#[test]
fn an_empty_connection_is_not_a_command() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    assert_eq!(exchange(&site, b""), "Command not terminated by newline\n");
    assert_eq!(
        exchange(&site, b"status"),
        "Command not terminated by newline\n"
    );
    assert_eq!(exchange(&site, b"\n"), "Empty command\n");
    assert_eq!(exchange(&site, b"  \t \n"), "Empty command\n");
    // A client that connects and goes away at once.
    drop(UnixStream::connect(site.sock()).unwrap());
    still_supervising(&site, manager, pid);
}

#[test]
fn an_oversize_request_is_refused() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    assert_eq!(exchange(&site, &[b'x'; 10_001]), "Command exceeds 10 KB\n");
    // The reply comes without waiting for the client to finish sending.
    let mut s = UnixStream::connect(site.sock()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(&[b'y'; 20_000]).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert_eq!(reply, b"Command exceeds 10 KB\n");
    still_supervising(&site, manager, pid);
}

#[test]
fn only_the_first_line_of_a_request_runs() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    let reply = exchange(&site, b"status\nstop\n");
    assert!(reply.starts_with("status=running\n"), "{reply}");
    assert!(reply.contains(&format!("\napplication={pid}\n")), "{reply}");
    assert!(reply.contains("\nshould_be_up=1\n"), "{reply}");
    still_supervising(&site, manager, pid);
    assert_eq!(site.status()["should_be_up"], "1");
}

#[test]
fn an_unwritable_transcript_does_not_stop_the_program() {
    let site = Site::new();
    // Every write to /dev/full fails with ENOSPC, for root as well.
    let count = site.path("count");
    let program = script(
        &site,
        "chatty.sh",
        &format!(
            "i=0\nwhile :; do seq 1 1000; i=$((i+1)); echo $i > {}; sleep 0.01; done",
            count.display()
        ),
    );
    let events = site.path("events.log");
    site.config(
        &program,
        "  transcript /dev/full",
        &format!(
            "<eventlog>\n  level info\n  <logfile>\n    path {}\n  </logfile>\n</eventlog>",
            events.display()
        ),
    );
    let pid = start(&site);
    let manager = site.manager_pid();
    wait_for("the write error logged", || {
        fs::read_to_string(&events)
            .is_ok_and(|t| t.contains("ERROR root cannot write transcript /dev/full"))
    });
    // The program goes on writing, far beyond what a pipe holds (each
    // round is about 4 KB): its output is being drained and dropped.
    wait_for("50 rounds of output", || {
        fs::read_to_string(&count).is_ok_and(|c| c.trim().parse::<u32>().is_ok_and(|n| n >= 50))
    });
    still_supervising(&site, manager, pid);
    let log = fs::read_to_string(&events).unwrap();
    assert_eq!(
        log.matches("cannot write transcript").count(),
        1,
        "one message per failure, not per write:\n{log}"
    );
}

#[test]
fn bad_commands_get_zdaemons_error_replies() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    for (request, reply) in [
        (
            &b"help\n"[..],
            "Unknown command 'help'; 'help' for a list\n",
        ),
        (b"exit now\n", "Unknown command 'exit'; 'help' for a list\n"),
        (b"kill x\n", "Bad signal 'x'\n"),
        (
            b"kill 99999\n",
            "Kill 99999 failed: [Errno 22] Invalid argument\n",
        ),
        (b"status\r\n", "status=running\n"),
    ] {
        let got = exchange(&site, request);
        assert!(got.starts_with(reply), "{request:?} -> {got:?}");
        still_supervising(&site, manager, pid);
    }
}

#[test]
fn a_reply_does_not_wait_for_the_client_to_half_close() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let mut s = UnixStream::connect(site.sock()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"status\n").unwrap();
    // No shutdown: the server answers the line and closes.
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains(&format!("\napplication={pid}\n")), "{reply}");
}

#[test]
fn a_client_stalled_mid_line_does_not_block_others() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    let mut stalled = UnixStream::connect(site.sock()).unwrap();
    stalled.write_all(b"sta").unwrap();
    let t0 = Instant::now();
    still_supervising(&site, manager, pid);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The stalled client can still finish its line.
    stalled.write_all(b"tus\n").unwrap();
    stalled.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reply = Vec::new();
    stalled.read_to_end(&mut reply).unwrap();
    assert!(String::from_utf8_lossy(&reply).starts_with("status=running\n"));
}

#[test]
fn a_sigkilled_managers_socket_does_not_block_a_new_start() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    assert!(kill(manager, 9));
    wait_for("manager and program gone", || {
        !alive(manager) && !alive(pid)
    });
    assert!(
        site.sock().exists(),
        "a SIGKILLed zdrun cannot remove its socket"
    );
    let again = start(&site);
    assert!(again != pid && alive(again));
}
