//! Property tests for the parsers mqttcli owns: whatever the input, they return a value or an
//! error message, never a panic; and what they accept means what it says. The same parsers are
//! fuzzed by the targets in `fuzz/`.

use proptest::prelude::*;
use std::time::Duration;

use crate::cli::parse_header;
use crate::connection::{proxy, url};
use crate::output::template;
use crate::payload::Payload;
use crate::{duration, topic};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(s in "\\PC*") {
        let _ = topic::parse_topic(&s);
        let _ = topic::parse_filter(&s);
        let _ = topic::matches(&s, &s);
        let _ = template::parse(&s);
        let _ = url::parse(&s);
        let _ = duration::parse(&s);
        let _ = Payload::from_message(&s, false).render(7);
        let _ = proxy::parse(&s, "--proxy");
        let _ = parse_header(&s);
        let _ = url::redact(&s);
    }

    #[test]
    fn parsers_never_panic_on_their_own_alphabet(s in "[a-z0-9/+#$:@\\[\\]{}.\\\\%]{0,40}") {
        let _ = topic::parse_filter(&s);
        let _ = topic::matches("a/b/c", &s);
        let _ = template::parse(&s);
        let _ = url::parse(&format!("mqtt://{s}"));
        let _ = duration::parse(&s);
        let _ = Payload::from_message(&s, false).render(u64::MAX);
    }

    #[test]
    fn accepted_topics_are_valid_mqtt(s in "\\PC{0,20}") {
        if topic::parse_topic(&s).is_ok() {
            prop_assert!(!s.is_empty() && !s.contains(['+', '#', '\0']));
            // A topic is always a filter that matches itself (unless it is a $-topic, which
            // only explicit $ filters match, and it does start with one here).
            prop_assert!(topic::parse_filter(&s).is_ok());
            prop_assert!(topic::matches(&s, &s));
            prop_assert!(topic::matches(&s, "#") != s.starts_with('$'));
        }
    }

    #[test]
    fn generated_filters_are_accepted(levels in prop::collection::vec("[a-z]{1,5}|\\+", 1..6), hash in any::<bool>()) {
        let mut f = levels.join("/");
        if hash { f.push_str("/#"); }
        prop_assert_eq!(topic::parse_filter(&f), Ok(f.clone()));
    }

    #[test]
    fn milliseconds_round_trip(n in 0u64..1_000_000_000) {
        prop_assert_eq!(duration::parse(&format!("{n}ms")), Ok(Duration::from_millis(n)));
        prop_assert_eq!(duration::parse(&format!("{n}")), Ok(Duration::from_secs(n)));
    }

    #[test]
    fn plain_text_is_its_own_template(s in "[^{}\\\\]{1,40}") {
        prop_assert_eq!(template::parse(&s), Ok(vec![template::Token::Literal(s.clone())]));
        prop_assert_eq!(Payload::from_message(&s, false).render(3), s.as_bytes());
    }

    #[test]
    fn urls_round_trip(host in "[a-z][a-z0-9.-]{0,20}", port in 1u16.., topic in "[a-z0-9/#+]{1,20}") {
        let u = url::parse(&format!("mqtt://{host}:{port}/{topic}")).unwrap();
        prop_assert_eq!(u.host, host);
        prop_assert_eq!(u.port, Some(port));
        prop_assert_eq!(u.topic, Some(topic));
    }

    /// Whatever the URL or proxy value, its password never shows in an error or a redaction.
    #[test]
    fn passwords_never_show(user in "[a-z]{1,8}", pass in "[A-Z]{6}[a-z/@]{0,6}", rest in "[a-z0-9:./@]{0,20}") {
        for input in [format!("mqtt://{user}:{pass}@{rest}"), format!("{user}:{pass}@{rest}"), format!("http://{user}:{pass}@{rest}")] {
            let secret = &pass[..6];
            prop_assert!(!url::redact(&input).contains(secret), "{}", input);
            if let Err(e) = url::parse(&input) { prop_assert!(!e.contains(secret), "{} → {}", input, e); }
            if let Err(e) = proxy::parse(&input, "--proxy") { prop_assert!(!e.contains(secret), "{} → {}", input, e); }
        }
    }

    #[test]
    fn header_errors_never_show_the_value(name in "[A-Za-z-]{0,10}", value in "SECRET[\\x00-\\x1f a-z]{0,6}") {
        if let Err(e) = parse_header(&format!("{name}:{value}")) { prop_assert!(!e.contains("SECRET"), "{}", e); }
        if let Err(e) = parse_header(&value) { prop_assert!(!e.contains("SECRET"), "{}", e); }
    }
}
