//! Wall-clock time, where a timestamp must be absolute (`created` fields, partition months,
//! usage report windows), and the UTC calendar arithmetic they need.
//! Durations and deadlines use `tokio::time::Instant` instead, so tests can pause time.

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_millis() -> u64 {
    u64::try_from(unix_micros() / 1000).unwrap_or(0)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01; the inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch as RFC 3339 in UTC (`2026-12-06T04:50:00Z`), as Anthropic's
/// model list writes `created_at`.
pub fn rfc3339(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// `YYYY-MM-DD` of a Unix timestamp in microseconds, in UTC.
pub fn utc_date(micros: i64) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(86_400_000_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses a point in time for an API parameter, to microseconds since the epoch: Unix seconds,
/// a UTC date (`2026-11-01`), or RFC 3339 (`2026-11-01T12:00:00Z`, `…T12:00:00.5+02:00`).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<i64>() {
        return secs.checked_mul(1_000_000);
    }
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(digits).ok()?.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut micros = days_from_civil(year, month as u32, day as u32) * 86_400_000_000;
    if b.len() == 10 {
        return Some(micros);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    micros += (h * 3_600 + mi * 60 + sec) * 1_000_000;
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let mut us = 0i64;
        for (i, d) in frac[..digits].iter().enumerate().take(6) {
            us += i64::from(d - b'0') * 10i64.pow(5 - i as u32);
        }
        micros += us;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let v = |a: u8, b: u8| i64::from(a - b'0') * 10 + i64::from(b - b'0');
            let secs = v(*h1, *h2) * 3_600 + v(*m1, *m2) * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    Some(micros - offset_secs * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_days_round_trip() {
        for days in [-800_000, -1, 0, 19_782, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let nov1 = 1_793_491_200_000_000; // 2026-11-01T00:00:00Z
        assert_eq!(parse_timestamp("2026-11-01"), Some(nov1));
        assert_eq!(parse_timestamp("1793491200"), Some(nov1));
        assert_eq!(parse_timestamp("2026-11-01T00:00:00Z"), Some(nov1));
        assert_eq!(
            parse_timestamp("2026-11-01T02:00:00.25+02:00"),
            Some(nov1 + 250_000)
        );
        assert_eq!(parse_timestamp("2026-10-31 23:00:00-01:00"), Some(nov1));
        assert_eq!(utc_date(nov1 - 1), "2026-10-31");
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-01T25:00:00Z",
            "2026-11-01T00:00:00",
            "2026-11-01T00:00:00+2",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
