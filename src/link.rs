//! A connection for the commands that ask and wait for an answer (`check`, `rr`): the event
//! loop runs on a task of its own and hands its events over a channel, so a wait can be given
//! up at a deadline or a signal without cancelling rumqttc half-way through a poll.

use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connection::{Client, Connected, Event, Events};
use crate::exit::{fail, Exit};
use crate::signals::Interrupt;

/// How long to wait for the broker to close the socket after our DISCONNECT.
const DRAIN: Duration = Duration::from_secs(1);

pub struct Link {
    pub client: Client,
    rx: mpsc::UnboundedReceiver<Result<Event>>,
    driver: JoinHandle<()>,
}

/// What a wait ended with. Lives only until matched, so the size of `Event` does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Wait {
    Event(Event),
    Timeout,
    Interrupted,
}

impl Link {
    pub fn start(connected: Connected) -> Link {
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(connected.events, tx));
        Link {
            client: connected.client,
            rx,
            driver,
        }
    }

    /// The next event, unless `deadline` (if any) passes or a signal comes first. An error
    /// means the connection is gone.
    pub async fn next(
        &mut self,
        deadline: impl Into<Option<Instant>>,
        interrupt: &mut Interrupt,
    ) -> Result<Wait> {
        let deadline = deadline.into();
        tokio::select! {
            biased;
            ev = self.rx.recv() => match ev {
                Some(Ok(ev)) => Ok(Wait::Event(ev)),
                Some(Err(e)) => Err(e),
                None => Err(fail(Exit::Unreachable, "the connection closed")),
            },
            _ = interrupt.wait() => Ok(Wait::Interrupted),
            _ = sleep_until(deadline) => Ok(Wait::Timeout),
        }
    }

    /// Sends DISCONNECT and waits (bounded) until the broker has closed the connection, so it
    /// has processed the DISCONNECT and does not publish the will.
    pub async fn disconnect(self) -> Result<()> {
        self.client.disconnect().await?;
        let _ = tokio::time::timeout(DRAIN * 2, self.driver).await;
        Ok(())
    }
}

async fn drive(mut events: Events, tx: mpsc::UnboundedSender<Result<Event>>) {
    loop {
        let ev = events.next().await;
        let disconnected = matches!(ev, Ok(Event::DisconnectSent));
        let failed = ev.is_err();
        if tx.send(ev).is_err() || failed {
            return;
        }
        if disconnected {
            events.drain_after_disconnect(DRAIN).await;
            return;
        }
    }
}

/// Sleeps until `deadline`, or for ever without one.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
