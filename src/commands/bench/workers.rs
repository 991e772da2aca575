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
//! Waiting 200 µs first (the default), once the worker's clients read `BUSY` packets within
//! `WINDOW`, lets a read carry every packet that came meanwhile: `bench sub -q 0` went from
//! 0.53-0.57× the broker's CPU to 0.21-0.25× (BENCHMARKS.md). The price is the wait itself, at
//! most the pause on top of a latency measured during a busy stretch; a lone message, or a paced
//! low rate, never waits.

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

/// A worker is busy from this many packets read per `WINDOW`: as `sub` judges a busy stream
/// (connection/pacing.rs). Counted in packets, not wake-ups: a paced run's timers wake a worker
/// a few times a millisecond with nothing to gather, and a pause there would only add a sleep.
const BUSY: u32 = 16;
const WINDOW: Duration = Duration::from_millis(1);

thread_local! {
    static LINGER: Linger = Linger::default();
}

/// A client on this worker read `n` packets (messages, acknowledgements) from its broker.
pub fn read(n: u32) {
    LINGER.with(|l| l.packets.set(l.packets.get().saturating_add(n)));
}

/// Whether a worker that runs out of work is busy, from how many packets its clients read lately.
#[derive(Default)]
struct Linger {
    window_start: Cell<Option<Instant>>,
    packets: Cell<u32>,
    busy: Cell<bool>,
}

impl Linger {
    /// Before the worker waits for its sockets, at `now`: whether to linger first. A window
    /// that has run its course decides for the next one by its rate; within a window, reaching
    /// `BUSY` decides at once.
    fn busy(&self, now: Instant) -> bool {
        let start = self.window_start.get().unwrap_or_else(|| {
            self.window_start.set(Some(now));
            now
        });
        let elapsed = now.duration_since(start);
        let packets = self.packets.get();
        if elapsed >= WINDOW {
            let per_window = u128::from(packets) * WINDOW.as_nanos() / elapsed.as_nanos();
            self.busy.set(per_window >= u128::from(BUSY));
            self.window_start.set(Some(now));
            self.packets.set(0);
        } else if packets >= BUSY {
            self.busy.set(true);
        }
        self.busy.get()
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
/// lasts about 175 µs here. A microsecond of slack keeps it near what `--read-pause` says
/// (tokio's own timers count in milliseconds, so they hardly notice).
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
    fn a_worker_that_reads_a_few_packets_a_millisecond_never_lingers() {
        let l = Linger::default();
        let start = Instant::now();
        // A paced run: 4 packets a millisecond, the worker woken for each.
        for i in 0..2000 {
            l.packets.set(l.packets.get() + 1);
            assert!(!l.busy(at(start, i * 250)), "wake-up {i}");
        }
    }

    #[test]
    fn a_busy_worker_lingers_until_its_rate_falls() {
        let l = Linger::default();
        let start = Instant::now();
        assert!(!l.busy(at(start, 0)));
        // 20 packets in 300 µs: busy at once.
        l.packets.set(BUSY + 4);
        assert!(l.busy(at(start, 300)));
        // Still reading 40 a millisecond, a few at each wake-up: busy for the next window too.
        for i in 1..=10 {
            l.packets.set(l.packets.get() + 4);
            assert!(l.busy(at(start, 300 + i * 100)), "wake-up {i}");
        }
        // The stream stops; a lone message 50 ms later finds the worker idle again.
        l.packets.set(l.packets.get() + 1);
        assert!(!l.busy(at(start, 50_000)));
        assert!(!l.busy(at(start, 50_100)));
    }
}
