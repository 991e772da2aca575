//! The one process runner: a child watched while it runs. Its stdout and stderr are collected
//! by threads as they arrive (so neither pipe can fill up and block it), a test can wait for
//! "N lines printed" or "this warning seen" (each wait with a deadline), and at the end it gets
//! the usual `Out`. `run` and `run_with_timeout` (tests/common/mod.rs) are this, waited for.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Out;

#[derive(Default)]
pub struct Seen {
    pub stdout: Vec<u8>,
    /// Newlines in `stdout`.
    pub stdout_lines: usize,
    pub stderr: String,
    stdout_closed: bool,
    stderr_closed: bool,
}

impl Seen {
    /// Lines of stderr that contain `needle`.
    pub fn stderr_count(&self, needle: &str) -> usize {
        self.stderr.lines().filter(|l| l.contains(needle)).count()
    }

    /// Complete stdout lines (without their newline).
    pub fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.stdout);
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        lines.pop(); // the unfinished part after the last newline
        lines
    }

    fn tail(&self) -> String {
        let out = String::from_utf8_lossy(&self.stdout);
        let out_tail: String = {
            let chars: Vec<char> = out.chars().collect();
            chars[chars.len().saturating_sub(1500)..].iter().collect()
        };
        let err_tail: String = {
            let chars: Vec<char> = self.stderr.chars().collect();
            chars[chars.len().saturating_sub(6000)..].iter().collect()
        };
        format!(
            "--- stdout ({} lines; the end) ---\n{out_tail}\n--- stderr (the end) ---\n{err_tail}",
            self.stdout_lines
        )
    }
}

type Shared = Arc<(Mutex<Seen>, Condvar)>;

/// What the child reads on stdin.
pub enum Input {
    /// Nothing: end of input at once.
    Null,
    /// A pipe the test writes to (`Live::stdin`); dropping it is end of input.
    Pipe,
    /// These bytes, written by a thread; then end of input.
    Bytes(Vec<u8>),
}

pub struct Live {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Shared,
    started: Instant,
}

impl Live {
    /// Spawn `cmd` with piped stdout and stderr; stdin is a pipe (see `stdin`) if `with_stdin`,
    /// else empty.
    pub fn spawn(cmd: &mut Command, with_stdin: bool) -> Live {
        let input = if with_stdin { Input::Pipe } else { Input::Null };
        Live::spawn_with(cmd, input, Stdio::piped())
    }

    /// Spawn `cmd` reading `input`, its stdout going to `stdout` (collected if `piped()`, else
    /// e.g. another process's stdin), its stderr collected.
    pub fn spawn_with(cmd: &mut Command, input: Input, stdout: Stdio) -> Live {
        let mut what: String = format!("{cmd:?}").chars().take(400).collect();
        if what.chars().count() == 400 {
            what += "…";
        }
        let mut child = cmd
            .stdin(match input {
                Input::Null => Stdio::null(),
                Input::Pipe | Input::Bytes(_) => Stdio::piped(),
            })
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        if let Input::Bytes(data) = input {
            let mut pipe = child.stdin.take().expect("piped stdin");
            // Errors are ignored: the child may legitimately exit without reading it all.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            });
        }
        let seen: Shared = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
        match child.stdout.take() {
            Some(out) => collect_stdout(out, seen.clone()),
            // Not ours to read: nothing will come.
            None => seen.0.lock().unwrap().stdout_closed = true,
        }
        let mut err = child.stderr.take().expect("piped stderr");
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            let mut pending = Vec::new();
            loop {
                let n = err.read(&mut buf).unwrap_or(0);
                pending.extend_from_slice(&buf[..n]);
                // Hand over whole lines only, so that a wait never sees half a line.
                let upto = if n == 0 {
                    pending.len()
                } else {
                    pending
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1)
                };
                let (lock, cvar) = &*s;
                let mut seen = lock.lock().unwrap();
                let text: Vec<u8> = pending.drain(..upto).collect();
                seen.stderr += &String::from_utf8_lossy(&text);
                if n == 0 {
                    seen.stderr_closed = true;
                }
                cvar.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Live {
            what,
            child,
            stdin,
            seen,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The write end of its stdin (once; `None` unless spawned `with_stdin`). Dropping it is
    /// end of input.
    pub fn stdin(&mut self) -> ChildStdin {
        self.stdin
            .take()
            .expect("stdin was piped and not taken yet")
    }

    /// Look at what it printed so far.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.0.lock().unwrap())
    }

    /// Wait until `cond` holds for its output. Fails (and kills it) after `deadline`, or as
    /// soon as its output is closed without `cond` holding.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, deadline: Duration, cond: impl Fn(&Seen) -> bool) {
        let end = Instant::now() + deadline;
        let (lock, cvar) = &*self.seen;
        let mut seen = lock.lock().unwrap();
        loop {
            if cond(&seen) {
                return;
            }
            let closed = seen.stdout_closed && seen.stderr_closed;
            let now = Instant::now();
            if closed || now >= end {
                let why = if closed {
                    "it ended first"
                } else {
                    "timed out"
                };
                let tail = seen.tail();
                drop(seen);
                let _ = self.child.kill();
                panic!(
                    "waiting for {what} from {} ({why} after {:?}; deadline {deadline:?})\n{tail}",
                    self.what,
                    self.started.elapsed()
                );
            }
            seen = cvar.wait_timeout(seen, end - now).unwrap().0;
        }
    }

    /// Wait for a stderr line containing `needle`, `count` of them in all.
    #[track_caller]
    pub fn wait_stderr(&mut self, needle: &str, count: usize, deadline: Duration) {
        self.wait_for(
            &format!("{count} stderr line(s) with '{needle}'"),
            deadline,
            |s| s.stderr_count(needle) >= count,
        );
    }

    /// Wait until at least `n` lines are on stdout.
    #[track_caller]
    pub fn wait_lines(&mut self, n: usize, deadline: Duration) {
        self.wait_for(&format!("{n} stdout lines"), deadline, |s| {
            s.stdout_lines >= n
        });
    }

    /// Wait until a stdout line is exactly `line`.
    #[track_caller]
    pub fn wait_line(&mut self, line: &str, deadline: Duration) {
        self.wait_for(&format!("the stdout line '{line}'"), deadline, |s| {
            s.lines().iter().any(|l| l == line)
        });
    }

    /// Wait for it to end (it must be bounded by -C, -W, its input or a signal) and return what
    /// it printed; a failure after `DEADLINE`.
    #[track_caller]
    pub fn finish(self) -> Out {
        self.wait(super::DEADLINE).0
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Wait for it to exit (killing it and failing after `deadline`) and for its pipes to
    /// close; returns what it printed and when it exited.
    #[track_caller]
    pub fn wait(mut self, deadline: Duration) -> (Out, Instant) {
        let end = Instant::now() + deadline;
        let (status, exited) = loop {
            if let Some(status) = self.try_wait() {
                break (status, Instant::now());
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let tail = self.seen(Seen::tail);
                panic!(
                    "{} still running after {deadline:?}, killed\n{tail}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        drop(self.stdin.take());
        self.wait_for("its output to close", super::DEADLINE, |s| {
            s.stdout_closed && s.stderr_closed
        });
        let (lock, _) = &*self.seen;
        let mut seen = lock.lock().unwrap();
        let out = Out {
            what: std::mem::take(&mut self.what),
            code: status.code(),
            stdout: std::mem::take(&mut seen.stdout),
            stderr: std::mem::take(&mut seen.stderr),
        };
        (out, exited)
    }
}

/// Collect `out` into `seen` on a thread of its own.
fn collect_stdout(mut out: ChildStdout, seen: Shared) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = out.read(&mut buf).unwrap_or(0);
            let (lock, cvar) = &*seen;
            let mut seen = lock.lock().unwrap();
            if n == 0 {
                seen.stdout_closed = true;
                cvar.notify_all();
                return;
            }
            seen.stdout_lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
            seen.stdout.extend_from_slice(&buf[..n]);
            cvar.notify_all();
        }
    });
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
