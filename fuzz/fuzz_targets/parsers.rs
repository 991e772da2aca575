//! Every parser mqttcli owns, on arbitrary input: none may panic. `cargo fuzz run parsers`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqttcli::cli::parse_header;
use mqttcli::connection::{proxy, url};
use mqttcli::output::template;
use mqttcli::payload::Payload;
use mqttcli::{duration, topic};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = topic::parse_topic(s);
    let _ = topic::parse_filter(s);
    if let Some((t, f)) = s.split_once('\n') {
        let _ = topic::matches(t, f);
    }
    let _ = template::parse(s);
    let _ = url::parse(s);
    let _ = duration::parse(s);
    let _ = Payload::from_message(s, false).render(u64::MAX);
    let _ = proxy::parse(s, "--proxy");
    let _ = parse_header(s);
    let _ = url::redact(s);
});
