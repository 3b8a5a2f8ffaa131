//! Durations given on the command line (`--since 2h`).

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
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" | "" => Duration::hours(n),
        "d" => Duration::days(n),
        "w" => Duration::weeks(n),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`: use s, m, h, d or w"
            ))
        }
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse("2h").unwrap(), chrono::Duration::hours(2));
        assert_eq!(super::parse("7d").unwrap(), chrono::Duration::days(7));
        assert!(super::parse("soon").unwrap_err().contains("30m"));
        assert!(super::parse("3y").unwrap_err().contains("unit"));
    }
}
