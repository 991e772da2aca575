//! The threads bench's clients run on: one single-threaded runtime per CPU, each driven by a
//! thread of its own, with clients dealt out among them in turn. Each client and its session's
//! driver then share a thread, so a message costs no wake-up of another thread, and mqttcli
//! needs no work-stealing runtime: tokio's rt-multi-thread (its scheduler, and the libm it
//! calls) would otherwise be built into `mqttcli` too, which every `pub` and `sub` pages in.

use std::future::Future;
use std::thread::JoinHandle;

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
    /// One per CPU the process may use.
    pub fn start() -> Result<Workers> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Workers {
            handles: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let runtime: Runtime = Builder::new_current_thread().enable_all().build()?;
            workers.handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("bench-{i}"))
                .spawn(move || {
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
