//! Durations on the command line: `100us`, `250ms`, `1s`, `1.5s`, `2m`, `1h`, or a bare number of seconds
//! (mosquitto's `-W 5` habit).

use std::time::Duration;

pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "'{input}' is not a duration: write e.g. 250ms, 1s, 1.5s or 2m"
        ));
    }
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "us" | "µs" => 0.000_001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            let units = "use us, ms, s, m or h, e.g. 250ms or 1s";
            return Err(format!(
                "unknown unit '{other}' in duration '{input}': {units}"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{input}' is not a duration: write e.g. 250ms, 1s, 1.5s or 2m"))?;
    Duration::try_from_secs_f64(value * scale)
        .ok()
        .filter(|d| *d <= Duration::from_secs(100 * 365 * 24 * 3600))
        .ok_or_else(|| format!("duration '{input}' is out of range"))
}

/// A duration as messages show it: `500ms`, `5s`, `1.5s`, as it is typed.
pub fn display(d: Duration) -> String {
    format!("{d:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_bare_seconds() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("250µs"), Ok(Duration::from_micros(250)));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        assert!(parse("1d").unwrap_err().contains("use us, ms, s, m or h"));
        assert!(parse("fast").unwrap_err().contains("is not a duration"));
        assert!(parse("").unwrap_err().contains("is not a duration"));
        assert!(parse("1..2s").is_err());
        assert!(parse("1e999").is_err());
        assert!(parse("99999999999999999999h")
            .unwrap_err()
            .contains("out of range"));
    }
}
