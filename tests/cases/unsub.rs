//! `unsub` removes subscriptions from a persistent session, and only those.
//!
//! These need Mosquitto: rumqttd 0.20 sends no UNSUBACK for a subscription restored from a
//! persistent session (router/routing.rs looks the filter up under the new connection id).

use crate::common::{publish, run, unique_id, unique_topic, Broker, Proto};
use Proto::{V311, V5};

/// `sub -c -i ID -q 1 -t …`: the persistent session's subscriber command.
fn session_sub(broker: &Broker, proto: Proto, id: &str, filters: &[&str]) -> std::process::Command {
    let mut cmd = broker.cmd("sub", proto);
    cmd.args(["-c", "-i", id, "-q", "1"]);
    for f in filters {
        cmd.args(["-t", f]);
    }
    cmd
}

fn unsub_removes_the_subscription(proto: Proto) {
    let broker = Broker::anonymous_mosquitto();
    let t = unique_topic();
    let (gone, kept) = (format!("{t}gone"), format!("{t}kept"));
    let id = unique_id();
    run(session_sub(&broker, proto, &id, &[&gone, &kept]).args(["-E", "-W", "30"])).assert_ok(b"");
    run(broker.cmd("unsub", proto).args(["-i", &id, "-t", &gone])).assert_ok(b"");
    // Both are queued for the offline session only if it is still subscribed to them. Had
    // the unsubscribe failed, "unsubscribed" would arrive before "kept".
    publish(&broker, proto, &gone, &["-q", "1", "-m", "unsubscribed"]);
    publish(&broker, proto, &kept, &["-q", "1", "-m", "kept"]);
    run(session_sub(&broker, proto, &id, &[&kept]).args(["-v", "-C", "1", "-W", "30"]))
        .assert_ok(format!("{kept} kept\n").as_bytes());
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn unsub_removes_a_persistent_subscription_v311() {
    unsub_removes_the_subscription(V311);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn unsub_removes_a_persistent_subscription_v5() {
    unsub_removes_the_subscription(V5);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn unsub_leaves_queued_messages_for_the_session() {
    let broker = Broker::anonymous_mosquitto();
    let t = unique_topic();
    let (queued, other) = (format!("{t}queued"), format!("{t}other"));
    let id = unique_id();
    run(session_sub(&broker, V311, &id, &[&queued, &other]).args(["-E", "-W", "30"]))
        .assert_ok(b"");
    publish(&broker, V311, &queued, &["-q", "1", "-m", "waiting"]);
    // unsub joins the session, which has a message waiting: it must not take (and ack) it.
    run(broker.cmd("unsub", V311).args(["-i", &id, "-t", &other])).assert_ok(b"");
    run(session_sub(&broker, V311, &id, &[&queued]).args(["-C", "1", "-W", "30"]))
        .assert_ok(b"waiting\n");
}

/// `unsub -V 5` of a filter its session never subscribed to: Mosquitto answers UNSUBACK 0x11,
/// which is a warning naming the filter, not a failure (exit 0). A client id the broker has
/// no session for gets a warning about that too.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn unsub_v5_of_a_filter_never_subscribed_warns_no_subscription_existed() {
    let broker = Broker::anonymous_mosquitto();
    let t = unique_topic();
    let (subscribed, never) = (format!("{t}subscribed"), format!("{t}never/#"));

    // A session that exists, subscribed to something else.
    let id = unique_id();
    run(session_sub(&broker, V5, &id, &[&subscribed]).args(["-E", "-W", "30"])).assert_ok(b"");
    let out = run(broker.cmd("unsub", V5).args(["-i", &id, "-t", &never]));
    out.assert_ok(b"");
    assert_eq!(
        out.stderr,
        format!("mqttcli: warning: '{never}': no subscription existed (0x11)\n"),
        "stderr of unsub"
    );
    // The session's own subscription is untouched.
    publish(&broker, V5, &subscribed, &["-q", "1", "-m", "still there"]);
    run(session_sub(&broker, V5, &id, &[&subscribed]).args(["-C", "1", "-W", "30"]))
        .assert_ok(b"still there\n");

    // No session at all for this id.
    let fresh = unique_id();
    let out = run(broker.cmd("unsub", V5).args(["-i", &fresh, "-t", &never]));
    out.assert_ok(b"");
    assert_eq!(
        out.stderr,
        format!(
            "mqttcli: warning: the broker had no session for client id '{fresh}': there was nothing to unsubscribe\n\
             mqttcli: warning: '{never}': no subscription existed (0x11)\n"
        ),
        "stderr of unsub with a new client id"
    );
}

/// A broker that never answers the UNSUBSCRIBE (rumqttd 0.20 for a restored subscription):
/// `-W` bounds the wait, exit 6 with one line, and the DISCONNECT still goes out.
#[test]
fn unsub_gives_up_after_w_without_an_unsuback() {
    use crate::common::at;
    use crate::common::fake::FakeBroker;
    let played = FakeBroker::bind().serve_one(|conn| {
        conn.expect_connect(V311)?;
        conn.connack(V311, true)?;
        let unsubscribe = conn.read()?;
        if unsubscribe.kind() != 0xa0 {
            return Err(format!("expected UNSUBSCRIBE, got {:02x?}", unsubscribe.0));
        }
        conn.until_disconnect()
    });
    let out = run(at("unsub", played.port, V311).args(["-i", "unsub-w", "-t", "a/b", "-W", "1s"]));
    let disconnected = played.result(&out);
    out.assert_exact_error(
        6,
        "mqttcli: error: no UNSUBACK for 'a/b' within -W 1s: the broker may not hold that \
         subscription for this session; raise -W if it is only slow",
    );
    assert!(disconnected, "unsub left without DISCONNECT");
}
