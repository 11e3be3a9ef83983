//! `zdctl logtail`: the end of a log file, and with `-f` everything
//! written after, across rotation (the name now leads to a new file) and
//! truncation, as `tail -F` does.
//!
//! How `-f` follows: inotify watches the file's directory (names created,
//! renamed, removed) and each file being read (written to, truncated);
//! where the name is a symbolic link, the directory of the file it leads
//! to. Between events the follower sleeps in `poll` on the inotify
//! descriptor, SIGINT and standard output; once a second it also looks at
//! the name itself, for what inotify cannot tell (the directory replaced,
//! or not there yet; the link pointed elsewhere). The directory's events
//! are replayed to know each file that appeared at the name, in order, and
//! where it is now: one renamed away before we looked is read where it went.
//!
//! What is promised:
//! - Only whole lines are printed. The unfinished last line of a file is
//!   held back until its newline arrives, so a line written in pieces
//!   comes out as one, and two files' lines never share one.
//! - Rotation by rename, at any speed: each file that appears at the name
//!   is read from its start to its end, in the order they appeared, each
//!   before the next. A file we opened stays readable whatever happens to
//!   its name; one we had not opened yet is looked for where the events
//!   say it went (`log` -> `log.1` -> `log.2` ...). Beyond anyone's reach:
//!   a file created, renamed away and then removed or renamed over (the
//!   next `log.1` replacing it) before the follower got to run at all.
//! - A writer may go on writing to the old file for a while after the
//!   rename (one that reopens its log when signalled): a rotated file is
//!   read once more when the next one is taken, then kept open and read
//!   as it grows until it has been quiet for 5 s (at most 64 such files).
//!   Such late lines come out when written, after the new file's so far.
//! - Truncation (copytruncate, `> file`): a file shorter than what we read
//!   of it, or whose bytes before our offset changed (truncated and grown
//!   back before we looked), is read again from its start, after zdaemon's
//!   `==> File truncated <==` line. What was written to it after our last
//!   read and before the truncation is only in the copy. A piece of a line
//!   held when the file is truncated is joined with what then starts the
//!   file: the line's rest when the truncation cut it in two. (Had we read
//!   the piece while the writer was writing the line, and the line's end
//!   went to the copy, the two do not belong together; nothing tells these
//!   apart, and `tail` prints the same.)
//! - A new file at the name is read from its start whatever its size; a
//!   file renamed back to the name is read on from where we were; a name
//!   that leads nowhere (not created yet, or removed) is waited for while
//!   the file we had is still read.
//! - The unfinished last line of a file we stop reading (rotated away and
//!   quiet, or one too many) is printed with a newline: it was its end.
//! - Following ends with status 0 on SIGINT (after a newline, as zdaemon's
//!   does) and, quietly, when standard output is closed.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// How much of the file's end is searched for the last lines.
const TAIL_WINDOW: u64 = 64 * 1024;
/// How many lines are printed first.
const TAIL_LINES: usize = 10;
/// The longest sleep without an event: catches what inotify misses.
const RECHECK_MS: u16 = 1000;
/// How long a rotated-away file is still read after it last grew.
const RETIRED_QUIET: Duration = Duration::from_secs(5);
/// How many rotated-away files are read at most.
const MAX_RETIRED: usize = 64;
/// How much is read at a time, and at most from one file in one look.
const READ_CHUNK: usize = 64 * 1024;
const READ_LIMIT: u64 = 16 * 1024 * 1024;
/// A line longer than this is printed in pieces rather than held.
const MAX_HELD: usize = 64 * 1024;
/// How many bytes before our offset are compared to spot a file that was
/// truncated and grew again between two looks.
const RECENT: usize = 32;
/// zdaemon's notice that the file was truncated.
const TRUNCATED: &[u8] = b"==> File truncated <==\n";

/// The last `n` lines of `file` (within the last 64 KiB).
fn last_lines(file: &mut File, n: usize) -> io::Result<(Vec<u8>, u64)> {
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
    let result = if follow {
        self::follow(path, out)
    } else {
        print_tail(path, out)
    };
    match result {
        Ok(()) => Ok(()),
        // Whoever read our output has gone: nothing is left to do or say.
        Err(Fault::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(Fault::Output(e)) => Err(e.to_string()),
        Err(Fault::Input(e)) => Err(crate::pyrepr::io_error(&e, path)),
    }
}

/// What stopped us: the output failed, or the file could not be read.
enum Fault {
    Output(io::Error),
    Input(io::Error),
}

fn put(out: &mut dyn Write, bytes: &[u8]) -> Result<(), Fault> {
    out.write_all(bytes).map_err(Fault::Output)
}

fn flush(out: &mut dyn Write) -> Result<(), Fault> {
    out.flush().map_err(Fault::Output)
}

fn print_tail(path: &Path, out: &mut dyn Write) -> Result<(), Fault> {
    let mut file = File::open(path).map_err(Fault::Input)?;
    let (tail, _) = last_lines(&mut file, TAIL_LINES).map_err(Fault::Input)?;
    put(out, &tail)?;
    flush(out)
}

/// A file's identity while we hold it open: its number cannot be reused.
type Id = (u64, u64);

fn id_of(meta: &std::fs::Metadata) -> Id {
    (meta.dev(), meta.ino())
}

/// One file being read.
struct Reader {
    file: File,
    id: Id,
    /// Bytes read so far, the held ones included.
    pos: u64,
    /// The unfinished last line, not printed yet.
    held: Vec<u8>,
    /// The last bytes before `pos`, as read.
    recent: Vec<u8>,
    watch: Option<WatchDescriptor>,
    last_growth: Instant,
}

impl Reader {
    /// Open `path` to read it from its start.
    fn open(path: &Path) -> io::Result<Reader> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(Errno::EISDIR as i32));
        }
        Ok(Reader {
            file,
            id: id_of(&meta),
            pos: 0,
            held: Vec::new(),
            recent: Vec::new(),
            watch: None,
            last_growth: Instant::now(),
        })
    }

    /// Print the last lines, holding back an unfinished one; go on from
    /// the end.
    fn print_tail(&mut self, out: &mut dyn Write) -> Result<(), Fault> {
        let (tail, size) = last_lines(&mut self.file, TAIL_LINES).map_err(Fault::Input)?;
        self.pos = size;
        self.remember(&tail);
        self.emit(&tail, out)
    }

    /// Print what was added since the last call, up to [`READ_LIMIT`];
    /// `true` if there is more (a writer faster than our output).
    /// A file of the same size may have been truncated and grown back.
    fn drain(&mut self, buf: &mut [u8], out: &mut dyn Write) -> Result<bool, Fault> {
        let size = self.file.metadata().map_err(Fault::Input)?.len();
        let rewritten = size >= self.pos && !self.recent_intact()?;
        if size < self.pos || rewritten {
            // Truncated: the file starts over. A held piece of a line is
            // kept, to be joined with its rest.
            put(out, TRUNCATED)?;
            self.pos = 0;
            self.recent.clear();
        }
        // Up to the size seen: what is written after that has its own
        // event still to come.
        let end = size.min(self.pos + READ_LIMIT);
        while self.pos < end {
            let want = buf.len().min((end - self.pos) as usize);
            let n = match self.file.read_at(&mut buf[..want], self.pos) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fault::Input(e)),
            };
            self.pos += n as u64;
            self.last_growth = Instant::now();
            self.remember(&buf[..n]);
            self.emit(&buf[..n], out)?;
        }
        Ok(self.pos < size)
    }

    /// Whether the bytes before our offset are still those we read.
    fn recent_intact(&self) -> Result<bool, Fault> {
        let mut now = [0u8; RECENT];
        let now = &mut now[..self.recent.len()];
        match self.file.read_exact_at(now, self.pos - now.len() as u64) {
            Ok(()) => Ok(now == self.recent.as_slice()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Fault::Input(e)),
        }
    }

    fn remember(&mut self, bytes: &[u8]) {
        let keep = bytes.len().min(RECENT);
        self.recent.extend_from_slice(&bytes[bytes.len() - keep..]);
        let excess = self.recent.len().saturating_sub(RECENT);
        self.recent.drain(..excess);
    }

    /// Print the complete lines of what was held plus `bytes`; hold the rest.
    fn emit(&mut self, bytes: &[u8], out: &mut dyn Write) -> Result<(), Fault> {
        match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => {
                put(out, &self.held)?;
                self.held.clear();
                put(out, &bytes[..=end])?;
                self.held.extend_from_slice(&bytes[end + 1..]);
            }
            None => self.held.extend_from_slice(bytes),
        }
        if self.held.len() > MAX_HELD {
            put(out, &self.held)?;
            self.held.clear();
        }
        Ok(())
    }

    /// We stop reading this file: its unfinished line is its last.
    fn finish(mut self, inotify: &Inotify, out: &mut dyn Write) -> Result<(), Fault> {
        // Before the file is closed, while the watch is surely still ours.
        if let Some(wd) = self.watch.take() {
            let _ = inotify.rm_watch(wd);
        }
        if !self.held.is_empty() {
            self.held.push(b'\n');
            put(out, &self.held)?;
        }
        Ok(())
    }
}

/// What woke the follower.
enum Wake {
    /// Something happened (or may have): look.
    Event,
    /// The periodic re-check is due.
    Recheck,
    Interrupted,
    OutputGone,
}

/// Where a file that appeared at the followed name is now.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    At(OsString),
    /// Renamed: the other half of the rename, with this cookie, says where.
    Moving(u32),
    Gone,
}

/// A file that appeared at the name.
struct Entry {
    place: Place,
    /// Opened where it is, and nothing about that name happened since.
    looked_up: bool,
}

/// The directory's events replayed: every file that appeared at the name
/// (created there, or renamed onto it), oldest first, and where it is now.
/// A file renamed away before we looked is found where it went.
struct Names {
    base: OsString,
    entries: Vec<Entry>,
    /// Events were lost: the name must be looked at directly.
    lost: bool,
}

impl Names {
    /// Replay one event of the directory; whether it was about names.
    fn replay(&mut self, mask: AddWatchFlags, cookie: u32, name: Option<&OsStr>) -> bool {
        let Some(name) = name else {
            return false;
        };
        if mask.contains(AddWatchFlags::IN_MOVED_FROM) {
            self.replace(&Place::At(name.to_owned()), Place::Moving(cookie));
        } else if mask.contains(AddWatchFlags::IN_MOVED_TO) {
            self.vacate(name);
            let moved = self.replace(&Place::Moving(cookie), Place::At(name.to_owned()));
            if !moved && name == self.base {
                self.appeared();
            }
        } else if mask.contains(AddWatchFlags::IN_CREATE) {
            self.vacate(name);
            if name == self.base {
                self.appeared();
            }
        } else if mask.contains(AddWatchFlags::IN_DELETE) {
            self.vacate(name);
        } else {
            return false;
        }
        true
    }

    fn appeared(&mut self) {
        self.entries.push(Entry {
            place: Place::At(self.base.clone()),
            looked_up: false,
        });
    }

    /// Whatever was at `name` is gone (replaced or removed).
    fn vacate(&mut self, name: &OsStr) {
        self.replace(&Place::At(name.to_owned()), Place::Gone);
    }

    /// Every entry at `from` is now at `to`; whether there was one.
    fn replace(&mut self, from: &Place, to: Place) -> bool {
        let mut any = false;
        for e in self.entries.iter_mut().filter(|e| e.place == *from) {
            e.place = to.clone();
            e.looked_up = false;
            any = true;
        }
        any
    }
}

/// A file found where one of [`Names::entries`] says.
enum Found {
    /// One we had not read yet.
    New(Reader),
    /// One we read already (the current one, or a rotated one).
    Held(Id),
}

/// The state of `logtail -f`.
struct Follower<'a> {
    path: &'a Path,
    dir: PathBuf,
    inotify: Inotify,
    dir_watch: Option<(WatchDescriptor, Id)>,
    /// Files cannot be watched one by one (no /proc): the directory watch
    /// reports writes too.
    dir_reports_writes: bool,
    names: Names,
    /// The newest file that was at the name: the one followed.
    current: Option<Reader>,
    /// Files rotated away, still read for a while, oldest first.
    retired: VecDeque<Reader>,
    /// The file at the name could not be opened (reported once).
    unreadable: Option<Id>,
    /// A file had more to read than one look takes: look again at once.
    behind: bool,
    /// The watches of files written or truncated since the last look.
    touched: Vec<WatchDescriptor>,
    /// Events were lost: every file needs a look.
    overflowed: bool,
    buf: Vec<u8>,
    out: &'a mut dyn Write,
}

const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_DELETE_SELF);
const FILE_EVENTS: AddWatchFlags = AddWatchFlags::IN_MODIFY.union(AddWatchFlags::IN_MOVE_SELF);
/// How many new files are opened, ordered and printed in one go.
const BATCH: usize = MAX_RETIRED / 2;
/// How many times the names are looked up again while they keep changing.
const MAX_ROUNDS: usize = 16;

fn follow(path: &Path, out: &mut dyn Write) -> Result<(), Fault> {
    let interrupts = Interrupts::catch();
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| Fault::Input(e.into()))?;
    let (dir, base) = locate(path);
    let mut f = Follower {
        path,
        dir,
        inotify,
        dir_watch: None,
        dir_reports_writes: false,
        names: Names {
            base,
            entries: Vec::new(),
            lost: false,
        },
        current: None,
        retired: VecDeque::new(),
        unreadable: None,
        behind: false,
        touched: Vec::new(),
        overflowed: false,
        buf: vec![0; READ_CHUNK],
        out,
    };
    // Watch first: whatever happens after is then seen.
    f.watch_dir();
    match Reader::open(path) {
        Ok(mut r) => {
            f.watch(&mut r);
            r.print_tail(f.out)?;
            f.current = Some(r);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = writeln!(
                io::stderr(),
                "{}; waiting for it to appear",
                crate::pyrepr::io_error(&e, path)
            );
        }
        Err(e) => return Err(Fault::Input(e)),
    }
    // The first look is a full one: writes before the watches were set.
    let mut recheck = true;
    loop {
        f.sync(recheck)?;
        recheck = match f.wait(interrupts.as_ref()) {
            Wake::Event => false,
            Wake::Recheck => true,
            Wake::OutputGone => return Ok(()),
            Wake::Interrupted => {
                put(f.out, b"\n")?;
                return flush(f.out);
            }
        };
    }
}

/// The directory to watch and the name in it: those of the file `path`
/// leads to through symbolic links (rotation renames that one), or of
/// `path` itself while nothing is there.
fn locate(path: &Path) -> (PathBuf, OsString) {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match real.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (dir, real.file_name().unwrap_or_default().to_owned())
}

impl Follower<'_> {
    /// Print everything new in every file we read, and follow the name.
    fn sync(&mut self, recheck: bool) -> Result<(), Fault> {
        self.behind = false;
        if recheck {
            // A symbolic link re-pointed: its file is elsewhere.
            let (dir, base) = locate(self.path);
            if dir != self.dir || base != self.names.base {
                self.dir = dir;
                self.names.base = base;
                self.names.entries.clear();
                self.names.lost = true;
            }
        }
        let rewatched =
            (recheck || self.names.lost || self.dir_watch.is_none()) && self.watch_dir();
        self.read_events();
        // Only files written to (or not watched) need a look: dozens of
        // rotated ones may be open.
        let touched = std::mem::take(&mut self.touched);
        let all = recheck || std::mem::take(&mut self.overflowed);
        for r in self.retired.iter_mut().chain(self.current.as_mut()) {
            if all || r.watch.is_none_or(|wd| touched.contains(&wd)) {
                self.behind |= r.drain(&mut self.buf, self.out)?;
            }
        }
        for _ in 0..MAX_ROUNDS {
            if self.names.entries.is_empty() {
                break;
            }
            self.take_new_files()?;
        }
        // Writes seen while names were looked up are read at once, with
        // names left for the next look.
        self.behind |=
            !self.names.entries.is_empty() || !self.touched.is_empty() || self.overflowed;
        // The events cannot tell (none, or some lost), or inotify may have
        // missed something: look at the name itself.
        if recheck || rewatched || self.names.lost || self.dir_watch.is_none() {
            if std::mem::take(&mut self.names.lost) {
                self.watch_dir();
            }
            self.follow_name()?;
        }
        while let Some(old) = self.retired.front()
            && old.last_growth.elapsed() >= RETIRED_QUIET
        {
            if let Some(old) = self.retired.pop_front() {
                old.finish(&self.inotify, self.out)?;
            }
        }
        flush(self.out)
    }

    /// Read every queued event; whether any was about names.
    fn read_events(&mut self) -> bool {
        let mut about_names = false;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                let dir = self.dir_watch.is_some_and(|(wd, _)| wd == e.wd);
                if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    self.overflowed = true;
                    self.names.lost = true;
                    self.names.entries.clear();
                    about_names = true;
                } else if dir
                    && e.mask.intersects(
                        AddWatchFlags::IN_IGNORED
                            | AddWatchFlags::IN_DELETE_SELF
                            | AddWatchFlags::IN_MOVE_SELF,
                    )
                {
                    // The directory went away, or elsewhere.
                    self.names.lost = true;
                    if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                        self.dir_watch = None;
                    }
                    about_names = true;
                } else if dir {
                    about_names |= self.names.replay(e.mask, e.cookie, e.name.as_deref());
                } else if e.mask.contains(AddWatchFlags::IN_MODIFY) && !self.touched.contains(&e.wd)
                {
                    self.touched.push(e.wd);
                }
            }
        }
        about_names
    }

    /// Open the oldest files that appeared at the name where they are now;
    /// print them in the order they appeared, each becoming the current one
    /// in turn. A name that changes while it is looked up is looked up
    /// again (a file opened as `log` is a newer one than the event said if
    /// the older one was renamed away meanwhile); only files whose names
    /// held still since are printed, the others wait for the next look.
    fn take_new_files(&mut self) -> Result<(), Fault> {
        let mut found: Vec<(usize, Found)> = Vec::new();
        let batch = self.names.entries.len().min(BATCH);
        let mut quiet = false;
        for _ in 0..MAX_ROUNDS {
            for (i, entry) in self.names.entries[..batch].iter_mut().enumerate() {
                let Place::At(name) = &entry.place else {
                    continue;
                };
                if entry.looked_up {
                    continue;
                }
                entry.looked_up = true;
                // What this entry led to before is not known to be its.
                found.retain(|(j, _)| *j != i);
                let Ok(r) = Reader::open(&self.dir.join(name)) else {
                    continue;
                };
                let held = |id| {
                    self.current.as_ref().is_some_and(|c: &Reader| c.id == id)
                        || self.retired.iter().any(|r| r.id == id)
                };
                if let Some(seen) = found.iter_mut().find(|(_, f)| f.id() == r.id) {
                    seen.0 = i;
                } else if held(r.id) {
                    found.push((i, Found::Held(r.id)));
                } else {
                    found.push((i, Found::New(r)));
                }
            }
            quiet = !self.read_events();
            if quiet {
                break;
            }
        }
        let entries = &mut self.names.entries[..batch];
        for e in entries.iter_mut() {
            // Nothing more came: a rename's other half is not coming (the
            // file went to another directory).
            if quiet && matches!(e.place, Place::Moving(_)) {
                e.place = Place::Gone;
            }
        }
        let done = entries
            .iter()
            .position(|e| !e.looked_up && e.place != Place::Gone)
            .unwrap_or(batch);
        for e in entries[done..].iter_mut() {
            e.looked_up = false;
        }
        let base = Place::At(self.names.base.clone());
        let at_base: Vec<bool> = entries[..done].iter().map(|e| e.place == base).collect();
        self.names.entries.drain(..done);
        found.retain(|(i, _)| *i < done);
        found.sort_by_key(|(i, _)| *i);
        let last = found.len().saturating_sub(1);
        for (n, (i, f)) in found.into_iter().enumerate() {
            match f {
                Found::New(mut r) => {
                    self.watch(&mut r);
                    self.make_current(r)?;
                }
                // Back at the name, and the newest there: followed again.
                Found::Held(id)
                    if n == last
                        && at_base[i]
                        && self.current.as_ref().is_none_or(|c| c.id != id) =>
                {
                    if let Some(i) = self.retired.iter().position(|r| r.id == id)
                        && let Some(r) = self.retired.remove(i)
                    {
                        self.make_current(r)?;
                    }
                }
                Found::Held(_) => {}
            }
        }
        Ok(())
    }

    /// Follow `next`: the current file was rotated away. A writer that
    /// closes, renames, then creates has finished it by now: read it to
    /// its end before the new one.
    fn make_current(&mut self, mut next: Reader) -> Result<(), Fault> {
        if let Some(mut old) = self.current.take() {
            self.behind |= old.drain(&mut self.buf, self.out)?;
            // Quiet from now on, however long it was before.
            old.last_growth = Instant::now();
            self.retired.push_back(old);
            if self.retired.len() > MAX_RETIRED
                && let Some(oldest) = self.retired.pop_front()
            {
                oldest.finish(&self.inotify, self.out)?;
            }
        }
        self.behind |= next.drain(&mut self.buf, self.out)?;
        self.current = Some(next);
        Ok(())
    }

    /// Switch to the file the name leads to now, if it is another one.
    fn follow_name(&mut self) -> Result<(), Fault> {
        // Nothing at the name: keep reading what we have, and wait.
        let Ok(meta) = std::fs::metadata(self.path) else {
            return Ok(());
        };
        let id = id_of(&meta);
        if meta.is_dir() || self.current.as_ref().is_some_and(|r| r.id == id) {
            return Ok(());
        }
        let retired = self.retired.iter().position(|r| r.id == id);
        let next = match retired.and_then(|i| self.retired.remove(i)) {
            // A file renamed back: read on where we were.
            Some(r) => r,
            None => match Reader::open(self.path) {
                Ok(mut r) => {
                    self.watch(&mut r);
                    r
                }
                Err(e) => {
                    if e.kind() != io::ErrorKind::NotFound && self.unreadable != Some(id) {
                        self.unreadable = Some(id);
                        let _ =
                            writeln!(io::stderr(), "{}", crate::pyrepr::io_error(&e, self.path));
                    }
                    return Ok(());
                }
            },
        };
        self.make_current(next)
    }

    /// Watch the file's directory, again if it was replaced; whether a new
    /// watch was set (the name must then be looked at directly).
    fn watch_dir(&mut self) -> bool {
        let id = std::fs::metadata(&self.dir)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| id_of(&m));
        if id.is_some()
            && self
                .dir_watch
                .is_some_and(|(_, watched)| Some(watched) == id)
        {
            return false;
        }
        if let Some((wd, _)) = self.dir_watch.take() {
            let _ = self.inotify.rm_watch(wd);
        }
        let Some(id) = id else {
            return false;
        };
        let mut mask = DIR_EVENTS;
        if self.dir_reports_writes {
            mask |= AddWatchFlags::IN_MODIFY;
        }
        match self.inotify.add_watch(&self.dir, mask) {
            Ok(wd) => {
                self.dir_watch = Some((wd, id));
                self.names.entries.clear();
                true
            }
            Err(_) => false,
        }
    }

    /// Watch the open file itself (by its descriptor, so it is this file
    /// whatever its name is now).
    fn watch(&mut self, r: &mut Reader) {
        let fd = format!("/proc/self/fd/{}", r.file.as_raw_fd());
        match self.inotify.add_watch(fd.as_str(), FILE_EVENTS) {
            Ok(wd) => r.watch = Some(wd),
            Err(_) if !self.dir_reports_writes => {
                self.dir_reports_writes = true;
                self.dir_watch = None;
                self.watch_dir();
            }
            Err(_) => {}
        }
    }

    /// Sleep until something happens, or the re-check is due.
    fn wait(&self, interrupts: Option<&Interrupts>) -> Wake {
        let stdout = io::stdout();
        let mut fds = vec![
            PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
            // No events asked: a closed pipe still reports POLLERR.
            PollFd::new(stdout.as_fd(), PollFlags::empty()),
        ];
        if let Some(i) = interrupts {
            fds.push(PollFd::new(i.fd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if self.behind { 0u16 } else { RECHECK_MS };
        match poll(&mut fds, timeout) {
            Ok(0) if !self.behind => return Wake::Recheck,
            Ok(_) => {}
            Err(_) => return Wake::Event,
        }
        let ready = |fd: &PollFd, flags| fd.revents().is_some_and(|r| r.intersects(flags));
        let gone = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
        if ready(&fds[1], gone) {
            return Wake::OutputGone;
        }
        if let (Some(i), Some(fd)) = (interrupts, fds.get(2))
            && ready(fd, PollFlags::POLLIN)
            && matches!(i.fd.read_signal(), Ok(Some(_)))
        {
            return Wake::Interrupted;
        }
        Wake::Event
    }
}

impl Found {
    fn id(&self) -> Id {
        match self {
            Found::New(r) => r.id,
            Found::Held(id) => *id,
        }
    }
}

/// SIGINT delivered as something to read while following, so that the
/// follower can end as zdaemon's does on Ctrl-C; the signal mask is given
/// back when following ends.
struct Interrupts {
    fd: SignalFd,
    before: SigSet,
}

impl Interrupts {
    /// `None` where SIGINT is already blocked (someone else's business):
    /// it then keeps doing whatever it did.
    fn catch() -> Option<Interrupts> {
        let before = SigSet::thread_get_mask().ok()?;
        if before.contains(Signal::SIGINT) {
            return None;
        }
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.thread_block().ok()?;
        match SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Some(Interrupts { fd, before }),
            Err(_) => {
                let _ = before.thread_set_mask();
                None
            }
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        let _ = self.before.thread_set_mask();
    }
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

    /// The places of the files that appeared at `log` after `events`
    /// (`+name` created, `-name` removed, `a>b` renamed).
    fn places(events: &[&str]) -> Vec<Place> {
        use AddWatchFlags as F;
        let mut names = Names {
            base: "log".into(),
            entries: Vec::new(),
            lost: false,
        };
        for (cookie, e) in (1..).zip(events) {
            if let Some(name) = e.strip_prefix('+') {
                names.replay(F::IN_CREATE, 0, Some(name.as_ref()));
            } else if let Some(name) = e.strip_prefix('-') {
                names.replay(F::IN_DELETE, 0, Some(name.as_ref()));
            } else if let Some((from, to)) = e.split_once('>') {
                if !from.is_empty() {
                    names.replay(F::IN_MOVED_FROM, cookie, Some(from.as_ref()));
                }
                if !to.is_empty() {
                    names.replay(F::IN_MOVED_TO, cookie, Some(to.as_ref()));
                }
            }
        }
        names.entries.into_iter().map(|e| e.place).collect()
    }

    fn at(name: &str) -> Place {
        Place::At(name.into())
    }

    #[test]
    fn files_that_appeared_at_the_name_are_found_where_they_went() {
        // Renamed to log.1, each replacing the one before.
        assert_eq!(
            places(&["+log", "log>log.1", "+log", "log>log.1", "+log"]),
            [Place::Gone, at("log.1"), at("log")]
        );
        // Shifted along as RotatingFileHandler does.
        assert_eq!(
            places(&["+log", "log>log.1", "+log", "log.1>log.2", "log>log.1"]),
            [at("log.2"), at("log.1")]
        );
        // Removed; moved out of the directory (half a rename, for now).
        assert_eq!(
            places(&["+log", "-log", "+log", "log>"]),
            [Place::Gone, Place::Moving(4)]
        );
        // Moved in from elsewhere, and other names left alone.
        assert_eq!(
            places(&[">log", "+other", "other>log.1", "log>old"]),
            [at("old")]
        );
        // Renamed away and back.
        assert_eq!(places(&["+log", "log>tmp", "tmp>log"]), [at("log")]);
    }
}
