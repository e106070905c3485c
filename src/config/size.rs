//! Sizes written as a number of bytes or with a unit: `512KiB`, `256MiB`, `1GiB` (and the
//! decimal `KB`, `MB`, `GB`).

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// A size from the config file, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigBytes(pub u64);

// === impl ConfigBytes ===

impl ConfigBytes {
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("size {text:?} must start with a whole number"))?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "size {text:?} has unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
                ));
            }
        };
        value
            .checked_mul(scale)
            .map(Self)
            .ok_or_else(|| format!("size {text:?} is too large"))
    }
}

impl fmt::Display for ConfigBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("0B"),
            b if b % (1 << 30) == 0 => write!(f, "{}GiB", b >> 30),
            b if b % (1 << 20) == 0 => write!(f, "{}MiB", b >> 20),
            b if b % (1 << 10) == 0 => write!(f, "{}KiB", b >> 10),
            b => write!(f, "{b}B"),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ConfigBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 1048576, 512KiB or 256MiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ConfigBytes::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ConfigBytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(ConfigBytes)
                    .map_err(|_| E::custom(format!("size {v} is negative")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::ConfigBytes;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        for (text, bytes) in [
            ("1024", 1024),
            ("512KiB", 512 << 10),
            ("256MiB", 256 << 20),
            ("1GiB", 1 << 30),
            ("2MB", 2_000_000),
            ("7 B", 7),
        ] {
            assert_eq!(ConfigBytes::parse(text), Ok(ConfigBytes(bytes)), "{text}");
        }
        for bad in ["", "MiB", "1.5MiB", "-1MiB", "1TiB", "99999999999GiB"] {
            assert!(ConfigBytes::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(ConfigBytes::mib(256).to_string(), "256MiB");
    }
}
