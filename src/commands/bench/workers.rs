//! The threads bench's clients run on: one single-threaded runtime per CPU, each driven by a
//! thread of its own, with clients dealt out among them in turn. Each client and its session's
//! driver then share a thread, so a message costs no wake-up of another thread, and mqttcli
//! needs no work-stealing runtime: tokio's rt-multi-thread (its scheduler, and the libm it
//! calls) would otherwise be built into `mqttcli` too, which every `pub` and `sub` pages in.
//!
//! A busy worker lingers before it sleeps on its sockets (`--read-pause`, `Linger`). A generator
//! that keeps up with its broker is idle between packets, and one that reads each packet the
//! moment it arrives wakes for nearly every one: Mosquitto writes each message and each PUBACK on
//! its own. On the 2-core VM of BENCHMARKS.md a wake-up cost the generator about 19 µs, more than
//! the broker spent on the message, and on loopback the broker pays to wake the reader too.
//! Waiting 100 µs first, once the worker has woken `BUSY` times within `WINDOW`, lets a read
//! carry every packet that came meanwhile: `bench sub -q 0` went from 0.8× the broker's CPU to
//! 0.2×. The price is the wait itself, at most the pause on top of a latency measured during a
//! busy stretch; a lone message, or a paced low rate, never waits.

use std::cell::Cell;
use std::future::Future;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinSet};

pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// One per CPU the process may use; `read_pause`: how long a busy worker lingers (`Linger`).
    pub fn start(read_pause: Duration) -> Result<Workers> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Workers {
            handles: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let mut builder = Builder::new_current_thread();
            builder.enable_all();
            if !read_pause.is_zero() {
                builder.on_thread_park(move || LINGER.with(|l| l.before_sleep(read_pause)));
            }
            let runtime: Runtime = builder.build()?;
            workers.handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("bench-{i}"))
                .spawn(move || {
                    if !read_pause.is_zero() {
                        precise_sleeps();
                    }
                    // A current-thread runtime runs the tasks spawned onto it only while a
                    // thread is in its block_on.
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    runtime.shutdown_background();
                })?;
            workers.stops.push(stop);
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Spawns the task of client `index` into `set`, on its worker.
    pub fn spawn<T: Send + 'static>(
        &self,
        set: &mut JoinSet<T>,
        index: u64,
        task: impl Future<Output = T> + Send + 'static,
    ) -> AbortHandle {
        let worker = &self.handles[(index % self.handles.len() as u64) as usize];
        set.spawn_on(task, worker)
    }

    /// Once every client has ended: the threads end, and are waited for.
    pub fn stop(mut self) {
        self.release();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    fn release(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// A run that ends early (an error) lets the threads go; the process exits soon after.
impl Drop for Workers {
    fn drop(&mut self) {
        self.release();
    }
}

/// A worker has been busy once it woke this many times within `WINDOW`.
const BUSY: u32 = 4;
const WINDOW: Duration = Duration::from_millis(1);

thread_local! {
    static LINGER: Linger = Linger::default();
}

/// When a worker runs out of work: whether it is busy, from how often it has woken lately.
#[derive(Default)]
struct Linger {
    window_start: Cell<Option<Instant>>,
    wakes: Cell<u32>,
}

impl Linger {
    /// Before the worker waits for its sockets: whether to linger first, at `now`.
    fn busy(&self, now: Instant) -> bool {
        let wakes = match self.window_start.get() {
            Some(start) if now.duration_since(start) <= WINDOW => self.wakes.get() + 1,
            _ => {
                self.window_start.set(Some(now));
                1
            }
        };
        self.wakes.set(wakes);
        wakes >= BUSY
    }

    fn before_sleep(&self, pause: Duration) {
        if self.busy(Instant::now()) {
            // The whole thread waits, not one client: every client on it then reads what came
            // for it in the meantime, each with one system call.
            std::thread::sleep(pause);
        }
    }
}

/// Linux rounds a thread's sleeps up by its timer slack, 50 µs by default: a 100 µs pause then
/// lasts about 175 µs here. A microsecond of slack keeps it near what `--read-pause` says.
fn precise_sleeps() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, micros: u64) -> Instant {
        start + Duration::from_micros(micros)
    }

    #[test]
    fn a_worker_woken_now_and_then_never_lingers() {
        let l = Linger::default();
        let start = Instant::now();
        // 2 000 wake-ups a second: a paced run, or a stream of a few messages per millisecond.
        for i in 0..1000 {
            assert!(!l.busy(at(start, i * 500)), "wake-up {i}");
        }
    }

    #[test]
    fn a_worker_woken_often_lingers_from_the_busy_th_wake_up_on() {
        let l = Linger::default();
        let start = Instant::now();
        for i in 0..u64::from(BUSY) - 1 {
            assert!(!l.busy(at(start, i * 50)));
        }
        assert!(l.busy(at(start, 200)));
        assert!(l.busy(at(start, 400)), "still busy within the window");
        // Long after, a lone wake-up starts over.
        assert!(!l.busy(at(start, 50_000)));
    }
}
