//! The two exchanges both the check and the probe make, subscribe and unsubscribe, each
//! awaiting its acknowledgement within a wait; a refusal or a timeout becomes an error with
//! its exit code, and a signal stays apart from both.

use std::time::Duration;

use tokio::time::Instant;

use crate::connection::{Qos, Session, Subscription, Wait};
use crate::exit::{fail, Exit};
use crate::signals::Interrupt;

/// Why an exchange with the broker gave no answer. Kept apart from the error so that a
/// signal never reads as a broker problem, in a step or in a probe finding.
pub(super) enum Halt {
    Interrupted,
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Halt {
    fn from(error: anyhow::Error) -> Self {
        Halt::Error(error)
    }
}

/// Subscribes to one filter and waits for its SUBACK: the granted QoS.
pub(super) async fn subscribe(
    link: &mut Session,
    filter: &str,
    qos: Qos,
    wait: Duration,
    interrupt: &mut Interrupt,
) -> Result<Qos, Halt> {
    let deadline = Instant::now() + wait;
    let filters = [Subscription::new(filter, qos)];
    let early = |ev| tracing::trace!(?ev, "event before the SUBACK");
    match link
        .subscribe_and_wait(&filters, Some(deadline), interrupt, early)
        .await?
    {
        Wait::Ready(codes) => match codes.into_iter().next() {
            Some(Ok(granted)) => Ok(granted),
            Some(Err(reason)) => Err(Halt::Error(fail(
                Exit::Rejected,
                format!("the broker refused the subscription to '{filter}': {reason}"),
            ))),
            None => Err(Halt::Error(fail(
                Exit::Other,
                "the SUBACK carried no reason code",
            ))),
        },
        Wait::Timeout => Err(unacknowledged("SUBACK", filter, wait)),
        Wait::Interrupted => Err(Halt::Interrupted),
    }
}

pub(super) async fn unsubscribe(
    link: &mut Session,
    filter: &str,
    wait: Duration,
    interrupt: &mut Interrupt,
) -> Result<(), Halt> {
    let deadline = Instant::now() + wait;
    match link
        .unsubscribe_and_wait(filter, &[], Some(deadline), interrupt)
        .await?
    {
        Wait::Ready(Ok(())) => Ok(()),
        Wait::Ready(Err(reason)) => Err(Halt::Error(fail(
            Exit::Rejected,
            format!("the broker refused to unsubscribe from '{filter}': {reason}"),
        ))),
        Wait::Timeout => Err(unacknowledged("UNSUBACK", filter, wait)),
        Wait::Interrupted => Err(Halt::Interrupted),
    }
}

/// The wait ran out before the broker acknowledged `packet`'s request for `filter`.
fn unacknowledged(packet: &str, filter: &str, wait: Duration) -> Halt {
    Halt::Error(fail(
        Exit::Timeout,
        format!(
            "no {packet} for '{filter}' within {}",
            crate::duration::display(wait)
        ),
    ))
}
