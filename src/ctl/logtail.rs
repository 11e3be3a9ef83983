//! `zdctl logtail`: the end of a log file, and with `-f` everything
//! written after, across rotation (the name now points at a new file) and
//! truncation, as `tail -F` does.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// How often a followed file is checked for growth.
const POLL: Duration = Duration::from_millis(200);
/// How much of the file's end is searched for the last lines.
const TAIL_WINDOW: u64 = 64 * 1024;

/// The last `n` lines of `file` (within the last 64 KiB).
fn last_lines(file: &mut File, n: usize) -> std::io::Result<(Vec<u8>, u64)> {
    let size = file.seek(SeekFrom::End(0))?;
    let start = size.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((size - start) as usize);
    Read::by_ref(file)
        .take(size - start)
        .read_to_end(&mut buf)?;
    // Count newlines backwards, ignoring a final one.
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let mut seen = 0;
    let mut cut = if start == 0 { 0 } else { body.len() };
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                cut = i + 1;
                break;
            }
        }
        cut = i;
    }
    Ok((buf[cut..].to_vec(), size))
}

/// Print the tail; with `follow`, keep printing until interrupted or the
/// output goes away.
pub fn run(path: &Path, follow: bool, out: &mut dyn Write) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| crate::pyrepr::io_error(&e, path))?;
    let (tail, mut pos) =
        last_lines(&mut file, 10).map_err(|e| crate::pyrepr::io_error(&e, path))?;
    let io = |e: std::io::Error| e.to_string();
    out.write_all(&tail).map_err(io)?;
    out.flush().map_err(io)?;
    if !follow {
        return Ok(());
    }
    let mut buf = vec![0u8; 65536];
    loop {
        drain(&mut file, &mut pos, &mut buf, out).map_err(io)?;
        // Rotated: the name now leads to another file. Finish the old one
        // (a writer may have added to it since), then start the new one.
        let current = file.metadata().map_err(io)?;
        if let Ok(named) = std::fs::metadata(path)
            && (named.ino() != current.ino() || named.dev() != current.dev())
            && let Ok(newer) = File::open(path)
        {
            drain(&mut file, &mut pos, &mut buf, out).map_err(io)?;
            file = newer;
            pos = 0;
            continue;
        }
        std::thread::sleep(POLL);
    }
}

/// Print what `file` holds beyond `pos`; a file shorter than `pos` was
/// truncated and is printed from its start.
fn drain(
    file: &mut File,
    pos: &mut u64,
    buf: &mut [u8],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let size = file.metadata()?.len();
    if size < *pos {
        writeln!(out, "==> File truncated <==")?;
        *pos = 0;
    }
    if size == *pos {
        return out.flush();
    }
    file.seek(SeekFrom::Start(*pos))?;
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        *pos += n as u64;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(text: &str, n: usize) -> String {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        String::from_utf8(last_lines(&mut f, n).unwrap().0).unwrap()
    }

    #[test]
    fn tails() {
        assert_eq!(tail_of("a\nb\nc\n", 10), "a\nb\nc\n");
        assert_eq!(tail_of("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_of("a\nb\nc", 2), "b\nc");
        assert_eq!(tail_of("", 2), "");
    }
}
