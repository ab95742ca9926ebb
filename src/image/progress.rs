//! Progress of blob transfers on stderr: one bar per blob, redrawn in
//! place on a terminal; one line when a blob starts and one when it ends
//! otherwise (logs and CI want lines, not escape codes).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    mode: Mode,
    state: Mutex<State>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Lines,
    Bars,
}

struct Bar {
    label: String,
    total: u64,
    done: u64,
    end: Option<String>,
}

struct State {
    bars: Vec<Bar>,
    drawn: usize,
    last: Option<Instant>,
}

/// 12.3MB: sizes the way registry tools print them.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// Counts bytes for a progress bar as they are read.
pub struct Counted<'a, R> {
    pub inner: R,
    pub progress: &'a Progress,
    pub bar: usize,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(self.bar, n as u64);
        Ok(n)
    }
}

impl Progress {
    /// Bars when stderr is a terminal, nothing otherwise: for work whose
    /// lines would only clutter a log (unpacking local layers).
    pub fn bars_only(quiet: bool) -> Progress {
        let mut p = Progress::new(quiet);
        if p.mode == Mode::Lines {
            p.mode = Mode::Quiet;
        }
        p
    }

    /// Bars when stderr is a terminal, lines otherwise, nothing if quiet.
    pub fn new(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            state: Mutex::new(State {
                bars: Vec::new(),
                drawn: 0,
                last: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while drawing must not stop the transfer.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Announces a blob of `total` bytes being fetched; returns its handle.
    pub fn start(&self, what: &str, digest: &str, total: u64) -> usize {
        self.start_doing(what, digest, total, "fetching")
    }

    /// Announces a blob of `total` bytes and what is done with it
    /// ("fetching", "pushing"); returns its handle.
    pub fn start_doing(&self, what: &str, digest: &str, total: u64, doing: &str) -> usize {
        let label = format!("{what} {}", short(digest));
        let mut st = self.lock();
        st.bars.push(Bar {
            label: label.clone(),
            total,
            done: 0,
            end: None,
        });
        let id = st.bars.len() - 1;
        match self.mode {
            Mode::Lines => eprintln!("{label}: {doing} {}", human(total)),
            Mode::Bars => self.draw(&mut st, true),
            Mode::Quiet => {}
        }
        id
    }

    pub fn advance(&self, id: usize, n: u64) {
        if self.mode != Mode::Bars {
            return;
        }
        let mut st = self.lock();
        if let Some(b) = st.bars.get_mut(id) {
            b.done += n;
        }
        self.draw(&mut st, false);
    }

    /// Ends a blob's bar with `note` ("done", "already present", ...).
    pub fn finish(&self, id: usize, note: &str) {
        let mut st = self.lock();
        let label = match st.bars.get_mut(id) {
            Some(b) => {
                b.done = b.total;
                b.end = Some(note.to_string());
                b.label.clone()
            }
            None => return,
        };
        match self.mode {
            Mode::Lines => eprintln!("{label}: {note}"),
            Mode::Bars => self.draw(&mut st, true),
            Mode::Quiet => {}
        }
    }

    /// A line of its own below the bars, which stay as they are: for the
    /// end of a transfer.
    pub fn note(&self, line: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{line}"),
            Mode::Bars => {
                let mut st = self.lock();
                self.draw(&mut st, true);
                st.bars.clear();
                st.drawn = 0;
                eprintln!("{line}");
            }
        }
    }

    fn draw(&self, st: &mut State, force: bool) {
        let now = Instant::now();
        if !force
            && st
                .last
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        st.last = Some(now);
        let mut out = String::new();
        if st.drawn > 0 {
            out.push_str(&format!("\x1b[{}F", st.drawn));
        }
        for b in &st.bars {
            const WIDTH: u64 = 30;
            let filled = (b.done.min(b.total) * WIDTH)
                .checked_div(b.total)
                .unwrap_or(WIDTH);
            let bar: String = (0..WIDTH)
                .map(|i| if i < filled { '=' } else { ' ' })
                .collect();
            let tail = match &b.end {
                Some(note) => note.clone(),
                None => format!("{} / {}", human(b.done), human(b.total)),
            };
            out.push_str(&format!("\x1b[2K{} [{bar}] {tail}\n", b.label));
        }
        st.drawn = st.bars.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_registry_tool() {
        assert_eq!(human(999), "999B");
        assert_eq!(human(1500), "1.5kB");
        assert_eq!(human(95_000_000), "95.0MB");
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
    }
}
