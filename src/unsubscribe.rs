//! `mqttcli unsub`: remove subscriptions from a persistent session. It resumes the session by
//! its client id without clearing it, sends UNSUBSCRIBE per filter, waits for each UNSUBACK and
//! leaves the session (and whatever it has queued) in place.

use std::time::Duration;

use anyhow::Result;

use crate::cli::{Protocol, UnsubArgs};
use crate::connection::{self, Event, Settings};
use crate::exit::{fail, Exit};
use crate::signals::Interrupt;

pub async fn run(
    args: UnsubArgs,
    mut settings: Settings,
    mut interrupt: Interrupt,
) -> Result<Exit> {
    if args.conn.id.is_none() {
        return Err(fail(
            Exit::Usage,
            "unsub changes a persistent session, which the broker finds by client id: add -i ID (the id the subscriber used with -c)",
        ));
    }
    settings.clean_session = false;
    settings.reconnect.enabled = false;
    // Connecting with expiry 0 would make a v5 broker drop the session at our DISCONNECT.
    if settings.protocol == Protocol::V5 && settings.session_expiry.is_none() {
        settings.session_expiry = Some(u32::MAX);
    }
    // Messages queued for the session may arrive as soon as we connect. Not acknowledging
    // them leaves them queued for the real subscriber.
    settings.manual_acks = true;

    let connection::Connected {
        client,
        mut events,
        session_present,
        ..
    } = tokio::select! {
        c = connection::connect(&settings) => c?,
        _ = interrupt.wait() => return Ok(Exit::Interrupted),
    };
    if !session_present {
        tracing::warn!(
            "the broker had no session for client id '{}': there was nothing to unsubscribe",
            settings.client_id
        );
    }
    for filter in &args.topic {
        client.unsubscribe(filter).await?;
    }

    let mut refused = Vec::new();
    let mut pending = args.topic.iter();
    let mut interrupted = false;
    while pending.len() > 0 {
        let ev = tokio::select! {
            ev = events.next() => ev?,
            _ = interrupt.wait() => { interrupted = true; break }
        };
        // v3.1.1 UNSUBACKs carry no codes; v5 ones carry one per filter of their UNSUBSCRIBE,
        // and we send one filter per packet.
        if let Event::UnsubAck(codes) = ev {
            let filter = pending.next().map(String::as_str).unwrap_or_default();
            match codes.into_iter().next().unwrap_or(Ok(())) {
                Ok(()) => tracing::debug!("UNSUBACK received: unsubscribed from '{filter}'"),
                Err(reason) if reason.starts_with("no subscription existed") => {
                    tracing::warn!("'{filter}': {reason}")
                }
                Err(reason) => refused.push(format!("'{filter}': {reason}")),
            }
        }
    }
    client.disconnect().await?;
    events.drain_after_disconnect(Duration::from_secs(1)).await;
    if interrupted {
        return Ok(Exit::Interrupted);
    }
    if !refused.is_empty() {
        return Err(fail(
            Exit::Rejected,
            format!("the broker refused to unsubscribe {}", refused.join(", ")),
        ));
    }
    Ok(Exit::Success)
}
