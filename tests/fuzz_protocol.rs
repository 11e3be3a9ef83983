//! Fuzzing the control protocol's request parser with proptest: the pure
//! framing and word splitting on arbitrary bytes, the client's readers of
//! replies, and a live zdrun fed arbitrary requests on its socket.
//!
//! Properties:
//! - `protocol::frame` agrees with a plain model (first line, or too long,
//!   or not yet), and with itself on every prefix of its input, so that
//!   reading a request in any chunks decides as reading it whole;
//! - `protocol::split_request` splits as Python's `bytes.split()`;
//! - Python list literals written by `repr_list` read back the same, and
//!   no reply text makes the status reader panic;
//! - a live zdrun answers every request with a well-formed reply (UTF-8,
//!   newline-terminated, the one the request calls for) and survives.
//!
//! Cases: `ZDRS_FUZZ_CASES` (default 10,000) per pure property, and a
//! tenth of it (at least 2,000, at most 50,000) against the live zdrun.
//! `PROPTEST_RNG_SEED` applies; no failure-persistence files are written.
//!
//! Long run, for the record: `ZDRS_FUZZ_CASES=350000 cargo test --test
//! fuzz_protocol`, 2026-11-30: 3 x 350,000 = 1,050,000 pure parser cases
//! and 35,000 requests to the live zdrun; all passed, no panic (debug
//! build, 2 shared cores, 177 s).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use common::site::*;
use zdaemon_rs::protocol::{self, Framing, MAX_REQUEST};
use zdaemon_rs::pyrepr::repr_list;

fn pure_cases() -> u32 {
    std::env::var("ZDRS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn live_cases() -> u32 {
    (pure_cases() / 10).clamp(2_000, 50_000)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

/// A stream of pseudo-random numbers fixed by `seed` (splitmix64): the
/// n-th number depends on `seed` and n only, so an input made from the
/// first `len` numbers shrinks to its prefixes as proptest shrinks `len`.
/// Much faster in a debug build than a value tree per byte.
fn stream(seed: u64) -> impl Iterator<Item = u64> {
    (1u64..).map(move |i| {
        let mut z = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// Bytes a request is made of: mostly protocol-shaped (words, blanks,
/// newlines), some anything at all, some around the size cap.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    (0u8..10, any::<u64>(), 0usize..300).prop_map(|(kind, seed, len)| match kind {
        0..6 => stream(seed)
            .take(len % 64)
            .map(|r| match r % 11 {
                0..4 => (r >> 8) as u8,
                4 | 5 => b'\n',
                6 | 7 => b" \t\r\x0b\x0c"[(r >> 8) as usize % 5],
                _ => b"statuskilinfo"[(r >> 8) as usize % 13],
            })
            .collect(),
        6..9 => stream(seed).take(len).map(|r| r as u8).collect(),
        _ => {
            let mut v = vec![b'x'; MAX_REQUEST - 8 + len % 16];
            if seed % 3 != 0 {
                let at = (seed >> 2) as usize % (v.len() + 1);
                v.insert(at, b'\n');
            }
            v
        }
    })
}

/// Text of any Unicode, with the characters a Python literal escapes
/// made common.
fn any_text() -> impl Strategy<Value = String> {
    (any::<u64>(), 0usize..40).prop_map(|(seed, len)| {
        stream(seed)
            .take(len)
            .map(|r| match r % 4 {
                0 => ['\'', '"', '\\', '\n', ',', '[', ']', ' ', '='][(r >> 8) as usize % 9],
                1 => char::from((r >> 8) as u8 & 0x7f),
                _ => char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('\u{fffd}'),
            })
            .collect()
    })
}

/// Python's `bytes.split()`: runs of ASCII whitespace separate words.
fn python_split(line: &[u8]) -> Vec<String> {
    line.split(|b| b" \t\n\r\x0b\x0c".contains(b))
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

fn model_frame(buf: &[u8]) -> Framing {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => Framing::Line(buf[..i].to_vec()),
        None if buf.len() > MAX_REQUEST => Framing::TooLong,
        None => Framing::Incomplete,
    }
}

proptest! {
    #![proptest_config(config(pure_cases()))]

    #[test]
    fn framing_decides_as_the_model_on_every_prefix(bytes in request_bytes(), cut in any::<usize>()) {
        let whole = protocol::frame(&bytes);
        prop_assert_eq!(&whole, &model_frame(&bytes));
        if let Framing::Line(line) = &whole {
            prop_assert!(!line.contains(&b'\n'));
        }
        // Read in two pieces: what the first piece decides, the whole
        // agrees with; an undecided whole was undecided at every prefix.
        let prefix = &bytes[..cut % (bytes.len() + 1)];
        match protocol::frame(prefix) {
            Framing::Line(line) => prop_assert_eq!(&whole, &Framing::Line(line)),
            Framing::TooLong => prop_assert_eq!(&whole, &Framing::TooLong),
            Framing::Incomplete => {}
        }
        if whole == Framing::Incomplete {
            prop_assert_eq!(protocol::frame(prefix), Framing::Incomplete);
        }
    }

    #[test]
    fn requests_split_as_python_bytes_split(bytes in request_bytes()) {
        let words = protocol::split_request(&bytes);
        prop_assert_eq!(&words, &python_split(&bytes));
        for w in &words {
            prop_assert!(!w.is_empty());
            prop_assert!(!w.bytes().any(|b| b" \t\n\r\x0b\x0c".contains(&b)));
        }
    }

    #[test]
    fn reply_readers_round_trip_and_never_panic(
        items in vec(any_text(), 0..6),
        text in any_text(),
        raw in request_bytes(),
    ) {
        prop_assert_eq!(protocol::parse_repr_list(&repr_list(&items)), Some(items));
        let _ = protocol::parse_repr_list(&text);
        let _ = protocol::StatusView::parse(&text);
        let _ = protocol::StatusView::parse(&String::from_utf8_lossy(&raw));
    }
}

/// The reply a request calls for, as far as it can be told in advance.
#[derive(Debug)]
enum Expect {
    Exact(String),
    /// A status reply with zdaemon's twelve keys.
    Status,
    /// `info`: a JSON object.
    Json,
    /// Some one-line (or longer) answer: start, stop, kill, reload...
    Answer,
    /// Either reply: where a line runs past the size cap, whether zdrun
    /// sees the newline before the cap depends on how the bytes arrive.
    OneOf(Box<Expect>, Box<Expect>),
}

fn expect_for_line(line: &[u8]) -> Expect {
    let words = protocol::split_request(line);
    let Some(first) = words.first() else {
        return Expect::Exact(protocol::REPLY_EMPTY.into());
    };
    match first.as_str() {
        "status" => Expect::Status,
        "info" => Expect::Json,
        "reopen_transcript" => Expect::Exact(String::new()),
        "start" | "stop" | "restart" | "kill" | "reload" => Expect::Answer,
        other => Expect::Exact(protocol::reply_unknown(other)),
    }
}

fn expect(request: &[u8]) -> Expect {
    match protocol::frame(request) {
        Framing::Line(line) if line.len() > MAX_REQUEST => Expect::OneOf(
            Box::new(expect_for_line(&line)),
            Box::new(Expect::Exact(protocol::REPLY_TOO_LONG.into())),
        ),
        Framing::Line(line) => expect_for_line(&line),
        Framing::TooLong => Expect::Exact(protocol::REPLY_TOO_LONG.into()),
        // The client half-closes: the line never ends.
        Framing::Incomplete => Expect::Exact(protocol::REPLY_NOT_TERMINATED.into()),
    }
}

fn matches(expect: &Expect, reply: &str) -> bool {
    match expect {
        Expect::Exact(text) => reply == text,
        Expect::Status => {
            let keys: Vec<&str> = reply
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k))
                .collect();
            keys == STATUS_KEYS && reply.ends_with('\n')
        }
        Expect::Json => {
            reply.ends_with('\n')
                && serde_json::from_str::<serde_json::Value>(reply).is_ok_and(|v| v.is_object())
        }
        Expect::Answer => reply.len() > 1 && reply.ends_with('\n'),
        Expect::OneOf(a, b) => matches(a, reply) || matches(b, reply),
    }
}

/// One request on a fresh connection; the reply as text.
fn exchange(site: &Site, request: &[u8]) -> Result<String, TestCaseError> {
    let mut s = UnixStream::connect(site.sock())
        .map_err(|e| TestCaseError::fail(format!("connect: {e}")))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // zdrun may answer (and close) before all is written: a too-long line.
    let _ = s.write_all(request);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    match s.read_to_end(&mut reply) {
        Ok(_) => {}
        // zdrun closed with bytes after the line unread (it reads only
        // the first line): the kernel resets the connection after the
        // reply, which stands.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !reply.is_empty() => {}
        Err(e) => return Err(TestCaseError::fail(format!("read: {e}"))),
    }
    String::from_utf8(reply).map_err(|e| TestCaseError::fail(format!("not UTF-8: {e}")))
}

#[test]
fn a_live_zdrun_answers_any_request_well_and_survives() {
    let site = Site::new();
    // hang-around: a fuzzed `stop` must not end zdrun with its program.
    site.config("sleep 100", "  hang-around on\n  backoff-limit 1", "");
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let manager = site.manager_pid();
    assert!(manager != 0);
    let mut runner = TestRunner::new(config(live_cases()));
    let result = runner.run(&request_bytes(), |request| {
        let expected = expect(&request);
        let reply = exchange(&site, &request)?;
        prop_assert!(
            matches(&expected, &reply),
            "request {:?}: expected {:?}, got {:?}",
            String::from_utf8_lossy(&request),
            expected,
            reply
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(site.manager_pid(), manager, "zdrun changed or died");
    assert!(alive(manager));
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0));
}
