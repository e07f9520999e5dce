//! A supervised process's log: every line of its stdout and stderr with the moment it arrived,
//! kept in a bounded ring (for failure messages and for measuring from log events) and, when
//! asked, appended to a file that survives restarts. Owned by one [`super::Supervised`] across
//! its incarnations; reading lines out of pipes happens on plain threads, so it works with or
//! without an async runtime.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Lines kept in memory (the oldest are dropped beyond this).
pub const MAX_LOG_LINES: usize = 50_000;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error (where tracing logs go).
    Stderr,
}

/// One line and when it arrived.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Arrival time.
    pub at: Instant,
    /// The pipe.
    pub stream: Stream,
    /// The text, without the newline.
    pub text: String,
}

#[derive(Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    file: Option<File>,
    echo_stderr: bool,
    /// Pipes still being read.
    open_pipes: usize,
}

/// The shared log of one supervised process.
#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<Mutex<Inner>>,
}

impl Log {
    /// A log that also appends to `file` and, with `echo_stderr`, repeats stderr lines on
    /// this program's stderr.
    pub fn new(file: Option<File>, echo_stderr: bool) -> Log {
        Log {
            inner: Arc::new(Mutex::new(Inner {
                lines: VecDeque::new(),
                file,
                echo_stderr,
                open_pipes: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A reader thread that panicked mid-push leaves consistent data; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, stream: Stream, text: String) {
        let mut inner = self.lock();
        if let Some(file) = inner.file.as_mut() {
            // The log file is a convenience for people; the ring is what checks read.
            let _ = writeln!(file, "{text}");
        }
        if inner.echo_stderr && stream == Stream::Stderr {
            eprintln!("{text}");
        }
        if inner.lines.len() >= MAX_LOG_LINES {
            inner.lines.pop_front();
        }
        inner.lines.push_back(LogLine {
            at: Instant::now(),
            stream,
            text,
        });
    }

    /// Starts a thread that moves `pipe`'s lines into the log until it closes.
    pub fn follow(&self, stream: Stream, pipe: impl Read + Send + 'static) {
        let log = self.clone();
        log.lock().open_pipes += 1;
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                log.push(stream, text);
                line.clear();
            }
            log.lock().open_pipes -= 1;
        });
    }

    /// Whether every pipe has been read to its end (after an exit: nothing more will come).
    pub fn drained(&self) -> bool {
        self.lock().open_pipes == 0
    }

    /// Whether any line kept contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.lock().lines.iter().any(|l| l.text.contains(needle))
    }

    /// Every line kept, in order.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lock().lines.iter().cloned().collect()
    }

    /// Lines that arrived after `since` and contain every one of `words`.
    pub fn lines_since(&self, since: Instant, words: &[&str]) -> Vec<(Instant, String)> {
        self.lock()
            .lines
            .iter()
            .filter(|l| l.at >= since && words.iter().all(|w| l.text.contains(w)))
            .map(|l| (l.at, l.text.clone()))
            .collect()
    }

    /// The last `n` lines, joined by newlines.
    pub fn tail(&self, n: usize) -> String {
        let inner = self.lock();
        let start = inner.lines.len().saturating_sub(n);
        let tail: Vec<&str> = inner
            .lines
            .iter()
            .skip(start)
            .map(|l| l.text.as_str())
            .collect();
        tail.join("\n")
    }

    /// The text of one stream, lines joined by newlines.
    pub fn text(&self, stream: Stream) -> String {
        let inner = self.lock();
        let lines: Vec<&str> = inner
            .lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.as_str())
            .collect();
        lines.join("\n")
    }
}
