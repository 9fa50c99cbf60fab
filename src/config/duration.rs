//! Human durations in config ("2s", "8h30m", "7d", "500ms"): the one parser every feature uses.

use std::time::Duration;

const HINT: &str =
    "expected a duration such as \"2s\", \"8h30m\", \"7d\" or \"500ms\" (units: ms, s, m, h, d, w)";

/// Parses a sequence of `<integer><unit>` parts, largest unit first, e.g. `"1d12h"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err(format!("{HINT}; found an empty string"));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(format!("{HINT}, without spaces; found {s:?}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    // Each unit at most once and in falling order: "30m8h" is more likely a typo than intent.
    let mut last_unit_ms: Option<u64> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{HINT}; found {s:?}"));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        if after.starts_with('.') {
            return Err(format!(
                "{HINT}; use whole numbers (\"1h30m\", not \"1.5h\") in {s:?}"
            ));
        }
        if unit_len == 0 {
            return Err(format!("{HINT}; {s:?} needs a unit, e.g. \"{number}s\""));
        }
        let (unit, after) = after.split_at(unit_len);
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(format!("{HINT}; unknown unit {unit:?} in {s:?}")),
        };
        if last_unit_ms.is_some_and(|last| unit_ms >= last) {
            return Err(format!(
                "{HINT}; give units largest first, once each, in {s:?}"
            ));
        }
        last_unit_ms = Some(unit_ms);
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
            .map(Duration::from_millis)
            .and_then(|d| total.checked_add(d));
        total = part.ok_or_else(|| format!("{HINT}; {s:?} is too long"))?;
        rest = after;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(
            parse_duration("8h30m"),
            Ok(Duration::from_secs(8 * 3600 + 30 * 60))
        );
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_it_cannot_read_and_says_why() {
        for (input, needle) in [
            ("", "empty"),
            ("5", "needs a unit, e.g. \"5s\""),
            ("5 minutes", "without spaces"),
            ("5min", "unknown unit"),
            ("h", "found \"h\""),
            ("-5s", "found \"-5s\""),
            ("1.5h", "whole numbers"),
            ("30m8h", "largest first"),
            ("1s1s", "largest first"),
            ("99999999999999999999d", "too long"),
            ("18446744073709551615w", "too long"),
        ] {
            let err = parse_duration(input).expect_err(input);
            assert!(err.contains(needle), "{input:?}: {err}");
            assert!(err.contains("units: ms, s, m, h, d, w"), "{err}");
        }
    }
}
