//! Which stages a build needs and in what order: the target and what it
//! reads (FROM, COPY --from, RUN --mount from=), in waves of stages that
//! do not read each other. A wave of more than one stage is built
//! concurrently, as BuildKit does: each stage in a forked process of its
//! own (brig clones RUN containers from the builder's process, which must
//! not have other threads), its output read back here and printed line by
//! line as `[stage] line`, so that it stays readable.

use super::{Builder, Image};
use crate::build::parse::{Kind, Stage};
use crate::error::{Error, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

/// What a stage's process hands back.
#[derive(Serialize, Deserialize)]
enum Outcome {
    Built { image: Image, keys: Vec<String> },
    Failed(String),
}

/// The stage names a stage reads: its FROM, COPY --from and RUN --mount
/// from=, raw (unsubstituted).
fn names_read(s: &Stage) -> Vec<String> {
    let mut out = Vec::new();
    if let Kind::From { image, .. } = &s.from.kind {
        out.push(image.clone());
    }
    for ins in &s.instructions {
        match &ins.kind {
            Kind::Copy { from: Some(f), .. } => out.push(f.clone()),
            Kind::Run { flags, .. } => {
                for (_, v) in flags.iter().filter(|(k, _)| k == "mount") {
                    out.extend(
                        v.split(',')
                            .filter_map(|f| f.strip_prefix("from="))
                            .map(String::from),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

impl Builder<'_> {
    /// The stages `stage` reads. A name with a variable in it may be any
    /// earlier stage: all of them, to be safe.
    fn deps(&self, stage: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        // FROM substitutes the global ARGs only: its name is known now.
        let globals = self.global_args().unwrap_or_default();
        let look = |n: &str| globals.get(n).cloned();
        for n in names_read(&self.file.stages[stage]) {
            let n = match &self.file.stages[stage].from.kind {
                Kind::From { image, .. } if *image == n => {
                    crate::build::vars::expand(&n, &look, self.file.escape).unwrap_or(n)
                }
                _ => n,
            };
            if n.contains('$') {
                out.extend(0..stage);
            } else if !self.o.build_contexts.contains_key(&n.to_lowercase()) {
                out.extend(self.stage_before(&n, stage));
            }
        }
        out
    }

    /// The waves of the stages `last` needs: each wave's stages read only
    /// stages of earlier waves. Also fixes each stage's first step number,
    /// in Dockerfile order, whatever runs when.
    pub(super) fn plan(&mut self, last: usize) -> Vec<Vec<usize>> {
        let mut needed = BTreeSet::from([last]);
        let mut todo = vec![last];
        while let Some(i) = todo.pop() {
            for d in self.deps(i) {
                if needed.insert(d) {
                    todo.push(d);
                }
            }
        }
        let mut level = vec![0usize; last + 1];
        let mut step = 0;
        for &i in &needed {
            level[i] = self
                .deps(i)
                .iter()
                .map(|d| level[*d] + 1)
                .max()
                .unwrap_or(0);
            self.first_step[i] = step;
            step += self.file.stages[i].instructions.len() + 1;
        }
        self.steps = step;
        let waves = needed.iter().map(|i| level[*i]).max().unwrap_or(0) + 1;
        (0..waves)
            .map(|w| needed.iter().copied().filter(|i| level[*i] == w).collect())
            .collect()
    }

    fn stage_label(&self, i: usize) -> String {
        match &self.file.stages[i].name {
            Some(n) => n.clone(),
            None => format!("stage-{i}"),
        }
    }

    /// Builds one wave: a lone stage here, several each in a process of
    /// its own, at most `jobs` at a time. The first failure stops the
    /// others (SIGTERM, which a build takes as Ctrl-C) and is the error.
    pub(super) fn wave(&mut self, wave: &[usize]) -> Result<()> {
        if let [i] = wave {
            let img = self.stage(*i)?;
            self.done[*i] = Some(img);
            return Ok(());
        }
        let jobs = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        let mut queue: Vec<usize> = wave.iter().rev().copied().collect();
        let mut running: Vec<Worker> = Vec::new();
        let mut failure: Option<String> = None;
        while !queue.is_empty() || !running.is_empty() {
            while running.len() < jobs && failure.is_none() {
                let Some(i) = queue.pop() else { break };
                running.push(self.spawn(i)?);
            }
            if failure.is_some() {
                queue.clear();
            }
            relay(&mut running);
            let mut k = 0;
            while k < running.len() {
                if running[k].out.is_some() {
                    k += 1;
                    continue;
                }
                let w = running.remove(k);
                let stage = w.stage;
                match w.finish() {
                    Ok(Outcome::Built { image, keys }) => {
                        self.done[stage] = Some(image);
                        self.keys.borrow_mut().extend(keys);
                    }
                    Ok(Outcome::Failed(e)) | Err(Error::Other(e)) => {
                        if failure.is_none() {
                            for o in &running {
                                let _ = kill(o.pid, Signal::SIGTERM);
                            }
                            failure = Some(e);
                        }
                    }
                    Err(e) => failure = failure.or(Some(e.to_string())),
                }
            }
        }
        match failure {
            Some(e) => Err(Error::Other(e)),
            None => Ok(()),
        }
    }

    /// Forks a process that builds stage `i`, its stdout and stderr a pipe
    /// back to us, its outcome a file.
    fn spawn(&mut self, i: usize) -> Result<Worker> {
        let result = self.store.tmp_path("stage");
        let (rd, wr) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", e))?;
        std::io::stdout().flush().ok();
        std::io::stderr().flush().ok();
        // SAFETY: the builder has no other thread here (its worker threads
        // are scoped and joined), so the child may allocate and print.
        match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork", e))? {
            ForkResult::Child => {
                drop(rd);
                let _ = nix::unistd::dup2_stdout(&wr);
                let _ = nix::unistd::dup2_stderr(&wr);
                drop(wr);
                // A registry connection of --cache-from's is not to be
                // shared with a sibling: this process opens its own.
                if let Err(e) = self.reopen_imports() {
                    eprintln!("hoist: warning: {e}");
                }
                let outcome = match self.stage(i) {
                    Ok(image) => Outcome::Built {
                        image,
                        keys: self.keys(),
                    },
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                let ok = matches!(outcome, Outcome::Built { .. });
                let written = serde_json::to_vec(&outcome)
                    .ok()
                    .is_some_and(|b| fs::write(&result, b).is_ok());
                std::io::stdout().flush().ok();
                // SAFETY: _exit leaves the parent's state (the builder's
                // scratch, its lock) to the parent.
                unsafe { libc::_exit(if ok && written { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                drop(wr);
                Ok(Worker {
                    stage: i,
                    label: self.stage_label(i),
                    pid: child,
                    out: Some(fs::File::from(rd)),
                    partial: Vec::new(),
                    result,
                })
            }
        }
    }
}

/// A stage being built in a process of its own.
struct Worker {
    stage: usize,
    label: String,
    pid: Pid,
    /// Its output, until it ends.
    out: Option<fs::File>,
    partial: Vec<u8>,
    result: PathBuf,
}

impl Worker {
    /// Prints each whole line of `data` with the stage's label.
    fn lines(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        let mut stdout = std::io::stdout().lock();
        while let Some(n) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=n).collect();
            let _ = write!(stdout, "[{}] ", self.label);
            let _ = stdout.write_all(&line);
        }
    }

    /// Waits for the process and reads its outcome.
    fn finish(mut self) -> Result<Outcome> {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.lines(&rest);
            self.lines(b"\n");
        }
        let status = loop {
            match waitpid(self.pid, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.map_err(|e| Error::sys("waitpid", e))?,
            }
        };
        let outcome = fs::read(&self.result)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let _ = fs::remove_file(&self.result);
        match outcome {
            Some(o) => Ok(o),
            None => Err(Error::Other(format!(
                "stage {} ended without a result ({})",
                self.label,
                match status {
                    WaitStatus::Exited(_, c) => format!("exit code {c}"),
                    WaitStatus::Signaled(_, s, _) => format!("killed by {s}"),
                    other => format!("{other:?}"),
                }
            ))),
        }
    }
}

/// Waits until a worker's output has something (or ends), and relays it.
fn relay(running: &mut [Worker]) {
    let open: Vec<usize> = (0..running.len())
        .filter(|&i| running[i].out.is_some())
        .collect();
    if open.is_empty() {
        return;
    }
    let ready: Vec<bool> = {
        let mut fds: Vec<PollFd> = open
            .iter()
            .filter_map(|&i| running[i].out.as_ref())
            .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
            .collect();
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect(),
            // A signal (Ctrl-C): the workers see it too; look again.
            Err(_) => return,
        }
    };
    let mut buf = [0u8; 8192];
    for (&i, ready) in open.iter().zip(ready) {
        if !ready {
            continue;
        }
        let w = &mut running[i];
        let n = match w.out.as_mut().map(|f| f.read(&mut buf)) {
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => 0,
        };
        if n == 0 {
            w.out = None;
        } else {
            w.lines(&buf[..n]);
        }
    }
}
