//! A value that must never be printed: upstream API keys and gateway keys.
//!
//! `Debug` and `Display` print `*****`, so a key cannot reach a log line, an error message or a
//! metric label by accident; the only way to read it is the explicit [`Secret::expose`].

use std::fmt;

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;
use serde::{Deserialize, Deserializer};

#[derive(Clone)]
pub struct Secret {
    value: String,
    /// A searcher for the value, built once: answers are searched for it on every request.
    /// `None` for values too short to scrub (see [`Secret::scrub`]).
    finder: Option<Finder<'static>>,
}

/// Shorter secrets are not scrubbed: replacing a 3-character "key" would mangle ordinary text.
const MIN_SCRUBBED: usize = 8;
const MASK: &[u8] = b"*****";

// === impl Secret ===

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        let finder =
            (value.len() >= MIN_SCRUBBED).then(|| Finder::new(value.as_bytes()).into_owned());
        Self { value, finder }
    }

    /// The secret itself. Call sites are few and greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// `text` with every occurrence of the secret replaced by `*****`. Secrets shorter than 8
    /// characters are left alone: replacing a 3-character "key" would mangle ordinary text.
    pub fn scrub<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match self.value.len() >= MIN_SCRUBBED && text.contains(self.value.as_str()) {
            true => std::borrow::Cow::Owned(text.replace(self.value.as_str(), "*****")),
            false => std::borrow::Cow::Borrowed(text),
        }
    }

    /// [`Secret::scrub`] for an answer's bytes (a whole body, or one whole SSE frame): the same
    /// bytes, not copied, unless the secret is in them.
    pub fn scrub_bytes(&self, bytes: Bytes) -> Bytes {
        let Some(finder) = &self.finder else {
            return bytes;
        };
        let Some(first) = finder.find(&bytes) else {
            return bytes;
        };
        let mut out = BytesMut::with_capacity(bytes.len());
        let mut rest = &bytes[..];
        let mut at = Some(first);
        while let Some(i) = at {
            out.extend_from_slice(&rest[..i]);
            out.extend_from_slice(MASK);
            rest = &rest[i + self.value.len()..];
            at = finder.find(rest);
        }
        out.extend_from_slice(rest);
        out.freeze()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Secret {}

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
        String::deserialize(deserializer).map(Secret::new)
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

    #[test]
    fn answers_are_scrubbed_wherever_the_secret_stands() {
        let s = Secret::new("sk-live-0123456789");
        let clean = Bytes::from_static(b"{\"content\":\"nothing to see\"}");
        let same = s.scrub_bytes(clean.clone());
        assert_eq!(
            same.as_ptr(),
            clean.as_ptr(),
            "a clean answer is not copied"
        );
        for (text, want) in [
            ("sk-live-0123456789", "*****"),
            (
                "a sk-live-0123456789 b sk-live-0123456789",
                "a ***** b *****",
            ),
            ("sk-live-0123456789sk-live-0123456789!", "**********!"),
            ("sk-live-012345678", "sk-live-012345678"),
        ] {
            let out = s.scrub_bytes(Bytes::copy_from_slice(text.as_bytes()));
            assert_eq!(out, want.as_bytes(), "{text}");
        }
        // Too short to scrub without mangling text.
        let short = Secret::new("abc");
        assert_eq!(short.scrub_bytes(Bytes::from_static(b"abc")), &b"abc"[..]);
    }
}
