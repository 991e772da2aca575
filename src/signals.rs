//! SIGINT and SIGTERM. The first asks the run to finish cleanly (stop producing, wait for acks,
//! DISCONNECT); a second exits at once.

use tokio::sync::watch;

use crate::exit::Exit;

#[derive(Clone)]
pub struct Interrupt(watch::Receiver<bool>);

impl Interrupt {
    /// Starts listening. Must be called inside the runtime.
    pub fn install() -> std::io::Result<Interrupt> {
        let (tx, rx) = watch::channel(false);
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                #[cfg(unix)]
                tokio::select! {
                    r = tokio::signal::ctrl_c() => if r.is_err() { return },
                    _ = term.recv() => {}
                }
                #[cfg(not(unix))]
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                seen += 1;
                if seen > 1 {
                    std::process::exit(Exit::Interrupted.code().into());
                }
                let _ = tx.send(true);
            }
        });
        Ok(Interrupt(rx))
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a signal has arrived (at once if one already has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|set| *set).await;
    }
}
