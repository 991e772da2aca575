//! Noticing that the reader of stdout went away (`mqttcli sub … | head -1`) while no message
//! is being written: otherwise a quiet topic would keep the process alive forever.

/// Resolves when stdout is a pipe or socket whose reading end has closed. Never resolves where
/// that cannot be watched (a file, a terminal on some systems, non-Linux platforms).
pub async fn stdout_closed() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::{AsRawFd, RawFd};
        use tokio::io::unix::AsyncFd;
        use tokio::io::Interest;

        struct Stdout;
        impl AsRawFd for Stdout {
            fn as_raw_fd(&self) -> RawFd {
                1
            }
        }
        // epoll reports EPOLLERR on the write end of a pipe once the read end is closed.
        // SAFETY: fd 1 stays open for the whole process, and so for this AsyncFd's lifetime;
        // nothing in mqttcli closes or replaces it.
        if let Ok(fd) = unsafe { AsyncFd::register_with_interest(Stdout, Interest::ERROR) } {
            if let Ok(mut guard) = fd.ready(Interest::ERROR).await {
                guard.retain_ready();
                return;
            }
        }
    }
    std::future::pending::<()>().await
}
