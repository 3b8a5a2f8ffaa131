//! Durations as an operator writes them (`prmsync log --since 2h`, the console's log
//! filter).

use chrono::Duration;

/// Reads `90s`, `15m`, `2h`, `7d` or `2w`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        format!("`{s}` is not a duration: write a number and a unit, like 30m, 2h or 7d")
    })?;
    let d = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" | "" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`: use s, m, h, d or w"
            ))
        }
    };
    d.ok_or_else(|| format!("`{s}` is too long a duration: give at most a few years, like 52w"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse("2h").unwrap(), chrono::Duration::hours(2));
        assert_eq!(super::parse("7d").unwrap(), chrono::Duration::days(7));
        assert!(super::parse("soon").unwrap_err().contains("30m"));
        assert!(super::parse("3y").unwrap_err().contains("unit"));
        assert!(super::parse("9223372036854775807w")
            .unwrap_err()
            .contains("too long"));
    }
}
