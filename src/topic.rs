//! Topic names and filters, checked before anything reaches rumqttc: it lets empty, NUL and
//! over-long topics through and silently truncates a topic longer than 65535 bytes.

const MAX_LEN: usize = 65535;

/// A topic to publish to: no wildcards, not empty, at most 65535 bytes, no NUL.
pub fn parse_topic(topic: &str) -> Result<String, String> {
    common_checks(topic, "topic")?;
    if topic.contains(['+', '#']) {
        return Err(format!(
            "topic '{topic}' contains a wildcard (+ or #): publish to a concrete topic such as sensors/1/temp"
        ));
    }
    Ok(topic.to_string())
}

/// A topic filter to subscribe or unsubscribe: `+` fills one whole level, `#` only the last,
/// `$share/GROUP/filter` for shared subscriptions.
pub fn parse_filter(filter: &str) -> Result<String, String> {
    common_checks(filter, "topic filter")?;
    let inner = match filter.strip_prefix("$share/") {
        Some(rest) => {
            let (group, f) = rest.split_once('/').unwrap_or((rest, ""));
            if group.is_empty() || group.contains(['+', '#']) || f.is_empty() {
                return Err(format!(
                    "shared subscription '{filter}' is malformed: write $share/GROUP/FILTER, e.g. $share/workers/jobs/#"
                ));
            }
            f
        }
        None => filter,
    };
    let levels: Vec<&str> = inner.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err(format!(
                "topic filter '{filter}' is malformed: '#' must be a whole level and the last one, e.g. a/b/#"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "topic filter '{filter}' is malformed: '+' must fill a whole level, e.g. a/+/c"
            ));
        }
    }
    Ok(filter.to_string())
}

fn common_checks(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!(
            "the {what} is empty: give one with -t, e.g. -t sensors/temp"
        ));
    }
    if s.len() > MAX_LEN {
        return Err(format!(
            "the {what} is {} bytes long: MQTT allows at most 65535",
            s.len()
        ));
    }
    if s.contains('\0') {
        return Err(format!(
            "the {what} contains a NUL character, which MQTT forbids"
        ));
    }
    Ok(())
}

/// Does `topic` match `filter` (used for `-T`, which hides matching messages)? `$`-topics are
/// only matched by filters that start with the same `$` level, as brokers do.
pub fn matches(topic: &str, filter: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or("", |(_, f)| f),
        None => filter,
    };
    if topic.starts_with('$') && !filter.starts_with('$') {
        return false;
    }
    let mut t = topic.split('/');
    let mut f = filter.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert!(parse_topic("a/b").is_ok());
        assert!(parse_topic("/").is_ok());
        assert!(parse_topic("a/+/b").unwrap_err().contains("wildcard"));
        assert!(parse_topic("a/#").unwrap_err().contains("wildcard"));
        assert!(parse_topic("").unwrap_err().contains("empty"));
        assert!(parse_topic("a\0b").unwrap_err().contains("NUL"));
        assert!(parse_topic(&"x".repeat(65536))
            .unwrap_err()
            .contains("65536 bytes"));
        assert!(parse_topic(&"x".repeat(65535)).is_ok());
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "a/+/c",
            "+/+",
            "$SYS/#",
            "$share/g/a/#",
            "a//b",
        ] {
            assert_eq!(parse_filter(ok), Ok(ok.to_string()), "{ok}");
        }
        for bad in ["a/#/b", "a#", "a/b+", "#/a", "$share/g", "$share//a", ""] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        assert!(matches("a/b/c", "a/#"));
        assert!(matches("a", "a/#"));
        assert!(matches("a/b/c", "a/+/c"));
        assert!(!matches("a/b/c", "a/+"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("$SYS/x", "#"));
        assert!(matches("$SYS/x", "$SYS/#"));
        assert!(matches("a/b", "$share/g/a/+"));
    }
}
