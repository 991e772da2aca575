//! What an MQTT 5 broker's CONNACK says it allows, checked before a request that would break
//! it is sent: a broker answers such a request by closing the connection, which tells the
//! user much less than naming the limit does.

use anyhow::Result;

use super::{BrokerLimits, Qos, SubscribeProperties, Subscription};
use crate::exit::{fail, Exit};

fn refused(msg: String) -> anyhow::Error {
    fail(Exit::Rejected, msg)
}

impl BrokerLimits {
    /// A PUBLISH at `qos`, retained or not, with `alias` (if any).
    pub fn check_publish(&self, qos: Qos, retain: bool, alias: Option<u16>) -> Result<()> {
        if let Some(max) = self.maximum_qos.map(Qos::from_number) {
            if qos > max {
                return Err(refused(format!(
                    "the broker takes messages at QoS {max} at most (Maximum QoS in its CONNACK): publish with -q {max}"
                )));
            }
        }
        if retain && self.retain_available == Some(false) {
            return Err(refused(
                "the broker keeps no retained messages (Retain Available 0 in its CONNACK): drop -r"
                    .to_string(),
            ));
        }
        if let Some(alias) = alias {
            let max = self.topic_alias_maximum.unwrap_or(0);
            if alias > max {
                return Err(refused(format!(
                    "topic alias {alias} is above the broker's Topic Alias Maximum of {max} (in its CONNACK): use 1 to {max}, or no alias"
                )));
            }
        }
        Ok(())
    }

    /// A SUBSCRIBE of `subs`: wildcards, shared subscriptions and subscription identifiers
    /// are each something a broker may say it lacks.
    pub fn check_subscribe(
        &self,
        subs: &[Subscription],
        props: &SubscribeProperties,
    ) -> Result<()> {
        for s in subs {
            let shared = s.filter.starts_with("$share/");
            if shared && self.shared_subscriptions == Some(false) {
                return Err(refused(format!(
                    "the broker has no shared subscriptions (Shared Subscription Available 0 in its CONNACK): '{}' cannot be subscribed",
                    s.filter
                )));
            }
            let wild = s
                .filter
                .split('/')
                .any(|level| level == "+" || level == "#");
            if wild && self.wildcard_subscriptions == Some(false) {
                return Err(refused(format!(
                    "the broker takes no wildcard subscriptions (Wildcard Subscription Available 0 in its CONNACK): subscribe to exact topics instead of '{}'",
                    s.filter
                )));
            }
        }
        if props.identifier.is_some() && self.subscription_identifiers == Some(false) {
            return Err(refused(
                "the broker has no subscription identifiers (Subscription Identifier Available 0 in its CONNACK): drop -D SUBSCRIBE subscription-identifier"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_above_the_limits_are_refused_by_name() {
        let l = BrokerLimits {
            maximum_qos: Some(1),
            retain_available: Some(false),
            topic_alias_maximum: Some(5),
            ..BrokerLimits::default()
        };
        let e = l.check_publish(Qos::ExactlyOnce, false, None).unwrap_err();
        assert_eq!(crate::exit::exit_for(&e), Exit::Rejected);
        assert!(e.to_string().contains("QoS 1 at most"), "{e}");
        assert!(l
            .check_publish(Qos::AtLeastOnce, true, None)
            .unwrap_err()
            .to_string()
            .contains("drop -r"));
        assert!(l.check_publish(Qos::AtLeastOnce, false, Some(6)).is_err());
        assert!(l.check_publish(Qos::AtLeastOnce, false, Some(5)).is_ok());
        // Not said: no limit, but no aliases either (the default Topic Alias Maximum is 0).
        let none = BrokerLimits::default();
        assert!(none.check_publish(Qos::ExactlyOnce, true, None).is_ok());
        assert!(none.check_publish(Qos::AtMostOnce, false, Some(1)).is_err());
    }

    #[test]
    fn subscriptions_the_broker_lacks_are_refused_by_name() {
        let l = BrokerLimits {
            wildcard_subscriptions: Some(false),
            shared_subscriptions: Some(false),
            subscription_identifiers: Some(false),
            ..BrokerLimits::default()
        };
        let sub = |f: &str| [Subscription::new(f, Qos::AtMostOnce)];
        let none = SubscribeProperties::default();
        assert!(l.check_subscribe(&sub("a/b"), &none).is_ok());
        assert!(l
            .check_subscribe(&sub("a/+"), &none)
            .unwrap_err()
            .to_string()
            .contains("Wildcard Subscription Available 0"));
        assert!(l
            .check_subscribe(&sub("$share/g/a"), &none)
            .unwrap_err()
            .to_string()
            .contains("Shared Subscription Available 0"));
        let id = SubscribeProperties {
            identifier: Some(3),
            ..none
        };
        assert!(l
            .check_subscribe(&sub("a"), &id)
            .unwrap_err()
            .to_string()
            .contains("subscription-identifier"));
        // a+ is not a wildcard level.
        assert!(l
            .check_subscribe(&sub("a+/b#"), &SubscribeProperties::default())
            .is_ok());
    }
}
