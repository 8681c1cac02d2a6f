//! Go `time.ParseDuration` syntax, used by `spec.interval` and `spec.timeout`.

use std::time::Duration;

/// Why a Go duration string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` (or `0`).
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    /// A unit other than `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit found.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Negative durations cannot be represented.
    #[error("time: negative duration {0:?}")]
    Negative(String),
    /// Larger than Go's `time.Duration` (about 292 years).
    #[error("time: invalid duration {0:?}: overflow")]
    Overflow(String),
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string (`"1m30s"`, `"1.5h"`, `"300ms"`, `"0"`), as Go's
/// `time.ParseDuration` does, into a [`Duration`].
///
/// # Errors
/// [`DurationError`] for malformed input, unknown units, negative values (which `Duration`
/// cannot hold; Go accepts them) and values above Go's maximum (`2562047h47m16.854775807s`).
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(openapi::parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
/// assert!(openapi::parse_go_duration("5").is_err());
/// ```
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(DurationError::Invalid(input.to_owned()));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| DurationError::Overflow(input.to_owned()))?
        };
        let mut nanos = int
            .checked_mul(scale)
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        // Fraction: digits beyond nanosecond precision are truncated, as in Go.
        let mut div: u128 = 1;
        let mut frac: u128 = 0;
        for d in frac_part.bytes().take(30) {
            frac = frac * 10 + u128::from(d - b'0');
            div *= 10;
        }
        nanos += frac * scale / div;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        if total > i64::MAX as u128 {
            return Err(DurationError::Overflow(input.to_owned()));
        }
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        let ok = [
            ("0", 0),
            ("5s", 5_000),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("300ms", 300),
            ("1h2m3s4ms", 3_723_004),
            (".5s", 500),
            ("1.s", 1_000),
            ("+10m", 600_000),
        ];
        for (s, ms) in ok {
            assert_eq!(
                parse_go_duration(s).unwrap(),
                Duration::from_millis(ms),
                "{s}"
            );
        }
        assert_eq!(parse_go_duration("1us").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_go_duration("1µs").unwrap(), Duration::from_micros(1));
        for bad in ["", "5", "s", "1d", "1.5", "-", ".s", "1h-1m", "3000000h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_go_duration("1x"),
            Err(DurationError::UnknownUnit { .. })
        ));
    }
}
