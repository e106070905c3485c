//! A value that must never be printed: upstream API keys and gateway keys.
//!
//! `Debug` and `Display` print `*****`, so a key cannot reach a log line, an error message or a
//! metric label by accident; the only way to read it is the explicit [`Secret::expose`].

use std::fmt;

use serde::{Deserialize, Deserializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

// === impl Secret ===

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call sites are few and greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of the secret replaced by `*****`. Secrets shorter than 8
    /// characters are left alone: replacing a 3-character "key" would mangle ordinary text.
    pub fn scrub<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match self.0.len() >= 8 && text.contains(self.0.as_str()) {
            true => std::borrow::Cow::Owned(text.replace(self.0.as_str(), "*****")),
            false => std::borrow::Cow::Borrowed(text),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s}"), "*****");
        assert_eq!(format!("{s:?}"), "*****");
        assert_eq!(format!("{:?}", Some(&s)), "Some(*****)");
        assert_eq!(s.expose(), "sk-live-123");
    }
}
