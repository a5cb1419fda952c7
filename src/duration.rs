//! Durations as people write them in rule and config files: `250ms`, `90s`, `10m`, `1h`, `7d`.

use jiff::SignedDuration;

/// Parses a positive whole number followed by one unit (`ms`, `s`, `m`, `h`, `d`).
pub fn parse(text: &str) -> Result<SignedDuration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || {
        format!(
            "bad duration `{text}`: expected a whole number and a unit ms, s, m, h or d (e.g. `10m`)"
        )
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let ms_per_unit = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    // Anything past a year is a typo, and bounding it keeps window arithmetic far from overflow.
    let ms = n
        .checked_mul(ms_per_unit)
        .filter(|ms| (1..=366 * 86_400_000).contains(ms))
        .ok_or_else(|| format!("duration `{text}` out of range: must be between 1ms and 366d"))?;
    Ok(SignedDuration::from_millis(ms))
}

/// The inverse of [`parse`]: the largest unit that divides the duration evenly.
pub fn format(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() % 1_000_000 == 0 && d.subsec_nanos() != 0 && secs == 0 {
        return format!("{}ms", d.subsec_millis());
    }
    if d.subsec_nanos() != 0 || secs <= 0 {
        return format!("{d:?}");
    }
    [(86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| secs % unit == 0)
        .map(|(unit, name)| format!("{}{name}", secs / unit))
        .unwrap_or_else(|| format!("{secs}s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("250ms"), Ok(SignedDuration::from_millis(250)));
        assert_eq!(parse("90s"), Ok(SignedDuration::from_secs(90)));
        assert_eq!(parse("10m"), Ok(SignedDuration::from_secs(600)));
        assert_eq!(parse("1h"), Ok(SignedDuration::from_secs(3600)));
        assert_eq!(parse("7d"), Ok(SignedDuration::from_secs(7 * 86_400)));
    }

    #[test]
    fn formats_back() {
        for text in ["250ms", "90s", "10m", "1h", "36h", "7d"] {
            assert_eq!(format(parse(text).expect("valid")), text);
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "m",
            "10",
            "10 m",
            "1.5h",
            "-5m",
            "10w",
            "0s",
            "0ms",
            "5us",
            "400d",
            "99999999999999999999s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
