//! Container logs in the CRI format (`2026-11-22T07:00:00.123456789Z stdout F line`, `P` for a
//! partial line): the pump that turns a container's stdout/stderr FIFOs into a size-capped,
//! rotated log file, and the reader behind `kubectl logs` (tail, since, timestamps, byte limit,
//! follow).
//!
//! A log file `N.log` is rotated to `N.log.1` when it would grow past [`MAX_LOG_SIZE`]; readers
//! read `N.log.1` then `N.log`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

/// The size at which a log file is rotated.
pub const MAX_LOG_SIZE: u64 = 10 * 1024 * 1024;
/// Content longer than this without a newline is written as partial (`P`) entries.
pub const MAX_LINE: usize = 16 * 1024;
/// How often a following reader looks for new data.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The stream a log entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed line of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: Timestamp,
    pub stream: Stream,
    /// `P`: the content continues in the next entry (no newline after it).
    pub partial: bool,
    /// The content, without the newline.
    pub content: Vec<u8>,
}

/// RFC 3339 with nine fractional digits in UTC, as the kubelet prints timestamps.
pub fn format_time(time: Timestamp) -> String {
    format!("{}.{:09}Z", time.strftime("%Y-%m-%dT%H:%M:%S"), time.subsec_nanosecond())
}

/// One CRI log line, newline-terminated.
pub fn format_entry(time: Timestamp, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    let head = format!("{} {} {} ", format_time(time), stream.as_str(), if partial { 'P' } else { 'F' });
    let mut line = Vec::with_capacity(head.len() + content.len() + 1);
    line.extend_from_slice(head.as_bytes());
    line.extend_from_slice(content);
    line.push(b'\n');
    line
}

/// Parses one CRI log line (with or without its newline); `None` if malformed.
pub fn parse_entry(line: &[u8]) -> Option<Entry> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time: Timestamp = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Entry { time, stream, partial, content: parts.next().unwrap_or_default().to_vec() })
}

/// The rotated predecessor of a log file.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".1");
    PathBuf::from(name)
}

/// Appends CRI entries to a log file, rotating it at a size cap. Shared by a container's
/// stdout and stderr pumps.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
}

impl LogWriter {
    /// Opens (appending) or creates `path` with the default cap [`MAX_LOG_SIZE`].
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::with_max_size(path, MAX_LOG_SIZE)
    }

    /// Like [`LogWriter::open`] with an explicit size cap.
    pub fn with_max_size(path: &Path, max_size: u64) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter { path: path.to_path_buf(), file, size, max_size })
    }

    /// Writes one entry stamped now.
    pub fn write(&mut self, stream: Stream, partial: bool, content: &[u8]) -> io::Result<()> {
        self.write_at(Timestamp::now(), stream, partial, content)
    }

    /// Writes one entry with an explicit time.
    pub fn write_at(&mut self, time: Timestamp, stream: Stream, partial: bool, content: &[u8]) -> io::Result<()> {
        let line = format_entry(time, stream, partial, content);
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, rotated_path(&self.path))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Splits a byte stream into CRI entries: complete lines as `F`, over-long content in
/// [`MAX_LINE`] chunks as `P`, and at the end a trailing partial line as `P`.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(partial, content)` for each entry they complete.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(bool, &[u8]) -> io::Result<()>) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(n) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let line = &self.pending[start..start + n];
            if line.is_empty() {
                emit(false, b"")?;
            }
            let mut chunks = line.chunks(MAX_LINE).peekable();
            while let Some(chunk) = chunks.next() {
                emit(chunks.peek().is_some(), chunk)?;
            }
            start += n + 1;
        }
        self.pending.drain(..start);
        while self.pending.len() > MAX_LINE {
            let chunk: Vec<u8> = self.pending.drain(..MAX_LINE).collect();
            emit(true, &chunk)?;
        }
        Ok(())
    }

    /// The stream ended: a remaining partial line is emitted as `P`.
    pub fn finish(&mut self, mut emit: impl FnMut(bool, &[u8]) -> io::Result<()>) -> io::Result<()> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            emit(true, &rest)?;
        }
        Ok(())
    }
}

/// Copies `source` (a container's stdout or stderr) into `writer` until end of file. Blocking:
/// run it on its own thread.
pub fn pump(mut source: impl Read, stream: Stream, writer: &Mutex<LogWriter>) -> io::Result<()> {
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 32 * 1024];
    let emit = |partial: bool, content: &[u8]| -> io::Result<()> {
        writer.lock().unwrap_or_else(PoisonError::into_inner).write(stream, partial, content)
    };
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        splitter.feed(&buf[..n], emit)?;
    }
    splitter.finish(emit)
}

/// Starts one thread per stream copying `stdout` into `stdout_log` and `stderr` into
/// `stderr_log` (one shared writer when they are the same file; created if missing). `done` is
/// dropped, which is the caller's signal, when both streams reached end of file.
pub fn spawn_pumps<D: Send + Sync + 'static>(
    stdout: File,
    stderr: File,
    stdout_log: &Path,
    stderr_log: &Path,
    done: D,
) -> io::Result<()> {
    let out_writer = Arc::new(Mutex::new(LogWriter::open(stdout_log)?));
    let err_writer =
        if stderr_log == stdout_log { out_writer.clone() } else { Arc::new(Mutex::new(LogWriter::open(stderr_log)?)) };
    let done = Arc::new(done);
    for (file, stream, writer) in [(stdout, Stream::Stdout, out_writer), (stderr, Stream::Stderr, err_writer)] {
        let (done, log) = (done.clone(), stdout_log.to_path_buf());
        std::thread::Builder::new().name(format!("log-{}", stream.as_str())).spawn(move || {
            if let Err(e) = pump(file, stream, &writer) {
                tracing::warn!(log = %log.display(), error = %e, "container log pump failed");
            }
            drop(done);
        })?;
    }
    Ok(())
}

/// What `kubectl logs` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N lines (negative: all).
    pub tail_lines: Option<i64>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

/// Renders entries as `kubectl logs` shows them.
#[derive(Debug)]
struct Renderer {
    timestamps: bool,
    at_line_start: bool,
    remaining: Option<u64>,
}

impl Renderer {
    fn new(options: &LogOptions) -> Self {
        Renderer { timestamps: options.timestamps, at_line_start: true, remaining: options.limit_bytes }
    }

    /// The bytes of one entry (cut at the byte limit); `None` once the limit is reached.
    fn render(&mut self, entry: &Entry) -> Option<Vec<u8>> {
        if self.remaining == Some(0) {
            return None;
        }
        let mut out = Vec::with_capacity(entry.content.len() + 40);
        if self.timestamps && self.at_line_start {
            out.extend_from_slice(format_time(entry.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&entry.content);
        if !entry.partial {
            out.push(b'\n');
        }
        self.at_line_start = !entry.partial;
        if let Some(rem) = self.remaining.as_mut() {
            let take = out.len().min(usize::try_from(*rem).unwrap_or(usize::MAX));
            out.truncate(take);
            *rem -= take as u64;
        }
        Some(out)
    }

    fn done(&self) -> bool {
        self.remaining == Some(0)
    }
}

/// The entries of the complete lines of `path`, and how many bytes those lines take.
fn read_entries(path: &Path) -> io::Result<(Vec<Entry>, u64)> {
    let Some(file) = open_existing(path)? else { return Ok((Vec::new(), 0)) };
    let mut reader = BufReader::new(file);
    let (mut entries, mut consumed, mut line) = (Vec::new(), 0u64, Vec::new());
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        consumed += n as u64;
        if let Some(entry) = parse_entry(&line) {
            entries.push(entry);
        }
    }
    Ok((entries, consumed))
}

/// The entries of `log` (and its rotated predecessor) that `options` selects, oldest first:
/// `since` filters by time, then `tail_lines` keeps the last N lines (a line being its partial
/// entries and the final one).
pub fn select(log: &Path, options: &LogOptions) -> io::Result<Vec<Entry>> {
    select_counted(log, options).map(|(entries, _)| entries)
}

/// [`select`], and how many bytes of the current file it read.
fn select_counted(log: &Path, options: &LogOptions) -> io::Result<(Vec<Entry>, u64)> {
    let (mut entries, _) = read_entries(&rotated_path(log))?;
    let (current, consumed) = read_entries(log)?;
    entries.extend(current);
    if let Some(since) = options.since {
        entries.retain(|e| e.time >= since);
    }
    if let Some(tail) = options.tail_lines.filter(|t| *t >= 0) {
        let mut lines = 0i64;
        let mut start = entries.len();
        for (i, e) in entries.iter().enumerate().rev() {
            if !e.partial || i + 1 == entries.len() {
                if lines == tail {
                    break;
                }
                lines += 1;
            }
            start = i;
        }
        // `start` now points at the first entry of the oldest kept line (or the end).
        if tail == 0 {
            start = entries.len();
        }
        entries.drain(..start);
    }
    Ok((entries, consumed))
}

/// Writes the selected log of a container to `out`; with `follow`, keeps writing new entries
/// until `finished()` is true and everything written before it was sent. Blocking: run it on a
/// blocking thread. Returns when done, at the byte limit, or when `out` fails (client gone).
pub fn stream(
    log: &Path,
    options: &LogOptions,
    finished: impl Fn() -> bool,
    mut out: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let mut renderer = Renderer::new(options);
    let (selected, mut offset) = select_counted(log, options)?;
    let mut file = open_existing(log)?;
    for entry in &selected {
        match renderer.render(entry) {
            Some(bytes) => out(bytes)?,
            None => return Ok(()),
        }
    }
    if !options.follow || renderer.done() {
        return Ok(());
    }
    let mut pending = Vec::new();
    loop {
        // Checked before reading, so a final read after the end sees everything written.
        let finished_now = finished();
        if file.is_none() {
            file = open_existing(log)?;
            offset = 0;
        }
        if let Some(f) = file.as_mut() {
            f.seek(SeekFrom::Start(offset))?;
            let n = f.read_to_end(&mut pending)?;
            offset += n as u64;
            emit_complete_lines(&mut pending, &mut renderer, &mut out)?;
            if renderer.done() {
                return Ok(());
            }
            // Rotated: the path names a new file; the old one (ours) was read to its end.
            let rotated = std::fs::metadata(log).map(|m| m.ino() != f.metadata().map(|m| m.ino()).unwrap_or(0));
            if matches!(rotated, Ok(true)) {
                file = open_existing(log)?;
                offset = 0;
                continue;
            }
        }
        if finished_now {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

fn emit_complete_lines(
    pending: &mut Vec<u8>,
    renderer: &mut Renderer,
    out: &mut impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let mut start = 0;
    while let Some(n) = pending[start..].iter().position(|b| *b == b'\n') {
        if let Some(entry) = parse_entry(&pending[start..start + n]) {
            match renderer.render(&entry) {
                Some(bytes) => out(bytes)?,
                None => break,
            }
        }
        start += n + 1;
    }
    pending.drain(..start);
    Ok(())
}

fn open_existing(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `kubectl logs` shows of a log file (and its rotated predecessor): the content of every
/// entry, a newline after each complete line. For tests and tools that used to read raw output.
pub fn read_content(log: &Path) -> io::Result<String> {
    let mut out = Vec::new();
    stream(
        log,
        &LogOptions::default(),
        || true,
        |bytes| {
            out.extend(bytes);
            Ok(())
        },
    )?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The attempts that have a log in `dir` (`N.log`), ascending.
pub fn attempts(dir: &Path) -> Vec<i32> {
    let mut found: Vec<i32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn entries_are_formatted_with_nanoseconds_and_parse_back() {
        let t = ts("2026-11-22T07:00:00.1234Z");
        let line = format_entry(t, Stream::Stdout, false, b"hello world");
        assert_eq!(line, b"2026-11-22T07:00:00.123400000Z stdout F hello world\n");
        let e = parse_entry(&line).unwrap();
        assert_eq!(e, Entry { time: t, stream: Stream::Stdout, partial: false, content: b"hello world".to_vec() });
        let p = parse_entry(b"2026-11-22T07:00:00Z stderr P part").unwrap();
        assert!(p.partial);
        assert_eq!(p.stream, Stream::Stderr);
        assert_eq!(parse_entry(b"2026-11-22T07:00:00Z stderr F ").unwrap().content, b"");
        assert_eq!(parse_entry(b"garbage"), None);
        assert_eq!(parse_entry(b"2026-11-22T07:00:00Z stdin F x"), None);
    }

    fn split(chunks: &[&[u8]]) -> Vec<(bool, Vec<u8>)> {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        for c in chunks {
            s.feed(c, |p, c| {
                out.push((p, c.to_vec()));
                Ok(())
            })
            .unwrap();
        }
        s.finish(|p, c| {
            out.push((p, c.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn lines_split_across_reads_are_joined_and_long_lines_become_partial() {
        assert_eq!(
            split(&[b"a\nb", b"c\n\nd"]),
            vec![(false, b"a".to_vec()), (false, b"bc".to_vec()), (false, b"".to_vec()), (true, b"d".to_vec())]
        );
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let mut data = long.clone();
        data.push(b'\n');
        let out = split(&[&data]);
        assert_eq!(out.len(), 3);
        assert!(out[0].0 && out[1].0 && !out[2].0);
        assert_eq!(out.iter().map(|(_, c)| c.len()).sum::<usize>(), long.len());
        // Without a newline, the buffered content is cut at MAX_LINE.
        let out = split(&[&long[..MAX_LINE + 1]]);
        assert_eq!(out, vec![(true, vec![b'x'; MAX_LINE]), (true, vec![b'x'])]);
    }

    #[test]
    fn the_writer_rotates_at_its_size_cap_keeping_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let mut w = LogWriter::with_max_size(&log, 200).unwrap();
        for i in 0..10 {
            w.write(Stream::Stdout, false, format!("line {i}").as_bytes()).unwrap();
        }
        let size = std::fs::metadata(&log).unwrap().len();
        assert!(size <= 200, "{size}");
        let all = select(&log, &LogOptions::default()).unwrap();
        let texts: Vec<String> = all.iter().map(|e| String::from_utf8_lossy(&e.content).into_owned()).collect();
        // Two files of at most 200 bytes hold the newest lines, in order.
        assert_eq!(texts.last().unwrap(), "line 9");
        assert!(texts.len() < 10 && texts.len() >= 4, "{texts:?}");
        let first: usize = texts[0].trim_start_matches("line ").parse().unwrap();
        assert_eq!(texts, (first..10).map(|i| format!("line {i}")).collect::<Vec<_>>());
    }

    fn write_log(dir: &Path) -> PathBuf {
        let log = dir.join("0.log");
        let mut w = LogWriter::open(&log).unwrap();
        w.write_at(ts("2026-11-22T07:00:00Z"), Stream::Stdout, false, b"one").unwrap();
        w.write_at(ts("2026-11-22T07:00:10Z"), Stream::Stderr, false, b"two").unwrap();
        w.write_at(ts("2026-11-22T07:00:20Z"), Stream::Stdout, true, b"thr").unwrap();
        w.write_at(ts("2026-11-22T07:00:20Z"), Stream::Stdout, false, b"ee").unwrap();
        log
    }

    #[test]
    fn read_content_is_the_plain_output() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_content(&write_log(dir.path())).unwrap(), "one\ntwo\nthree\n");
    }

    fn render_all(log: &Path, options: &LogOptions) -> String {
        let mut out = Vec::new();
        stream(
            log,
            options,
            || true,
            |b| {
                out.extend(b);
                Ok(())
            },
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tail_since_timestamps_and_limit_select_what_kubectl_asks_for() {
        let dir = tempfile::tempdir().unwrap();
        let log = write_log(dir.path());
        assert_eq!(render_all(&log, &LogOptions::default()), "one\ntwo\nthree\n");
        let tail = |n| LogOptions { tail_lines: Some(n), ..Default::default() };
        assert_eq!(render_all(&log, &tail(1)), "three\n");
        assert_eq!(render_all(&log, &tail(2)), "two\nthree\n");
        assert_eq!(render_all(&log, &tail(0)), "");
        assert_eq!(render_all(&log, &tail(-1)), "one\ntwo\nthree\n");
        let since = LogOptions { since: Some(ts("2026-11-22T07:00:05Z")), ..Default::default() };
        assert_eq!(render_all(&log, &since), "two\nthree\n");
        let stamped = LogOptions { timestamps: true, tail_lines: Some(1), ..Default::default() };
        assert_eq!(render_all(&log, &stamped), "2026-11-22T07:00:20.000000000Z three\n");
        let limited = LogOptions { limit_bytes: Some(6), ..Default::default() };
        assert_eq!(render_all(&log, &limited), "one\ntw");
    }

    #[test]
    fn follow_streams_new_lines_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let log = write_log(dir.path());
        let writer = Arc::new(Mutex::new(LogWriter::with_max_size(&log, 400).unwrap()));
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let (log2, fin2) = (log.clone(), finished.clone());
        let reader = std::thread::spawn(move || {
            let options = LogOptions { follow: true, tail_lines: Some(1), ..Default::default() };
            stream(
                &log2,
                &options,
                || fin2.load(std::sync::atomic::Ordering::SeqCst),
                |b| tx.send(b).map_err(|_| io::Error::other("closed")),
            )
        });
        // One line, which may arrive as several entries.
        let recv = || {
            let mut line = Vec::new();
            while line.last() != Some(&b'\n') {
                line.extend(rx.recv_timeout(Duration::from_secs(10)).unwrap());
            }
            String::from_utf8(line).unwrap()
        };
        assert_eq!(recv(), "three\n");
        // Enough lines to rotate the 400-byte file at least once while following.
        for i in 0..20 {
            writer.lock().unwrap().write(Stream::Stdout, false, format!("new {i}").as_bytes()).unwrap();
            assert_eq!(recv(), format!("new {i}\n"));
        }
        assert!(rotated_path(&log).exists());
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.join().unwrap().unwrap();
    }

    #[test]
    fn pump_writes_both_streams_into_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let writer = Mutex::new(LogWriter::open(&log).unwrap());
        pump(&b"out 1\nout 2\npartial"[..], Stream::Stdout, &writer).unwrap();
        pump(&b"err\n"[..], Stream::Stderr, &writer).unwrap();
        let entries = select(&log, &LogOptions::default()).unwrap();
        let got: Vec<(Stream, bool, &[u8])> =
            entries.iter().map(|e| (e.stream, e.partial, e.content.as_slice())).collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, false, &b"out 1"[..]),
                (Stream::Stdout, false, &b"out 2"[..]),
                (Stream::Stdout, true, &b"partial"[..]),
                (Stream::Stderr, false, &b"err"[..]),
            ]
        );
    }

    #[test]
    fn attempts_are_listed_in_numeric_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["10.log", "2.log", "0.log", "2.log.1", "x.log"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        assert_eq!(attempts(dir.path()), vec![0, 2, 10]);
    }
}
