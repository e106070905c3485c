//! Durations written as `500ms`, `10s`, `5m`, `1h` (the only units the config accepts).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration from the config file. A bare number is refused: `30` could mean seconds or
/// milliseconds, and guessing wrong on a timeout is an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

// === impl ConfigDuration ===

impl ConfigDuration {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration {text:?} has no unit (use ms, s, m or h)"))?;
        let (number, unit) = text.split_at(split);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("duration {text:?} must start with a whole number"))?;
        let millis_per_unit = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(format!(
                    "duration {text:?} has unknown unit {unit:?} (use ms, s, m or h)"
                ));
            }
        };
        value
            .checked_mul(millis_per_unit)
            .map(|ms| Self(Duration::from_millis(ms)))
            .ok_or_else(|| format!("duration {text:?} is too large"))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => f.write_str("0s"),
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1_000 == 0 => write!(f, "{}s", ms / 1_000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 500ms, 10s, 5m or 1h")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ConfigDuration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit (use ms, s, m or h)"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit (use ms, s, m or h)"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(
            ConfigDuration::parse("250ms").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            ConfigDuration::parse("10s").unwrap().0,
            Duration::from_secs(10)
        );
        assert_eq!(
            ConfigDuration::parse("5m").unwrap().0,
            Duration::from_secs(300)
        );
        assert_eq!(
            ConfigDuration::parse("1h").unwrap().0,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn refuses_ambiguous_or_malformed() {
        for bad in ["10", "s", "1.5s", "10 sec", "-1s", "99999999999999999999h"] {
            assert!(
                ConfigDuration::parse(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(ConfigDuration::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(ConfigDuration::parse("120s").unwrap().to_string(), "2m");
        assert_eq!(
            ConfigDuration::parse("1500ms").unwrap().to_string(),
            "1500ms"
        );
    }
}
