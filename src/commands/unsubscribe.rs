//! `mqttcli unsub`: remove subscriptions from a persistent session. It resumes the session by
//! its client id without clearing it (settled in `cli::settings`), sends UNSUBSCRIBE per
//! filter, waits for each UNSUBACK and leaves the session (and whatever it has queued) in place.

use std::time::Duration;

use anyhow::Result;

use crate::connection::{Reason, Session, Settings, Wait};
use crate::exit::{fail, Exit};
use crate::signals::Interrupt;

pub struct Options {
    pub filters: Vec<String>,
    /// UNSUBSCRIBE's MQTT 5 user properties.
    pub user_properties: Vec<(String, String)>,
    /// How long each UNSUBACK may take (-W): a broker that never answers must not keep a
    /// script waiting.
    pub timeout: Duration,
}

pub async fn run(opts: Options, settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    let mut session = match Session::open(&settings, &mut interrupt, None).await? {
        Wait::Ready(s) => s,
        Wait::Timeout | Wait::Interrupted => return Ok(Exit::Interrupted),
    };
    if !session.session_present {
        tracing::warn!(
            "the broker had no session for client id '{}': there was nothing to unsubscribe",
            settings.client_id
        );
    }

    let mut refused = Vec::new();
    let mut interrupted = false;
    let mut timed_out = None;
    // One UNSUBSCRIBE per filter: rumqttc's v3.1.1 client cannot put several in one packet.
    for filter in &opts.filters {
        let deadline = tokio::time::Instant::now() + opts.timeout;
        match session
            .unsubscribe_and_wait(
                filter,
                &opts.user_properties,
                Some(deadline),
                &mut interrupt,
            )
            .await?
        {
            Wait::Ready(Ok(())) => {
                tracing::debug!("UNSUBACK received: unsubscribed from '{filter}'")
            }
            Wait::Ready(Err(reason)) if reason.code == Reason::NO_SUBSCRIPTION_EXISTED => {
                tracing::warn!("'{filter}': {reason}")
            }
            Wait::Ready(Err(reason)) => refused.push(format!("'{filter}': {reason}")),
            Wait::Timeout => {
                timed_out = Some(filter);
                break;
            }
            Wait::Interrupted => {
                interrupted = true;
                break;
            }
        }
    }
    session.close().await?;
    if interrupted {
        return Ok(Exit::Interrupted);
    }
    if let Some(filter) = timed_out {
        return Err(fail(
            Exit::Timeout,
            format!(
                "no UNSUBACK for '{filter}' within -W {}: the broker may not hold that \
                 subscription for this session; raise -W if it is only slow",
                crate::duration::display(opts.timeout)
            ),
        ));
    }
    if !refused.is_empty() {
        return Err(fail(
            Exit::Rejected,
            format!("the broker refused to unsubscribe {}", refused.join(", ")),
        ));
    }
    Ok(Exit::Success)
}
