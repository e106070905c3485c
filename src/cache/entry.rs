//! A stored answer and its encoding. An entry is the whole non-stream answer as the client got
//! it (a `chat.completion`, `text_completion`, embeddings list or `response`; a streamed answer
//! is stored as the non-stream one it adds up to), the usage it reported (a hit's saved cost is
//! priced from it) and when it was stored. The encoding is a fixed header then the body, so an
//! entry read back from Redis is checked by its length, not parsed.

use bytes::{BufMut, Bytes, BytesMut};

use crate::usage::counts::Usage;

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The answer's JSON, as a non-stream client gets it.
    pub body: Bytes,
    /// What the upstream reported for it (`None`: nothing; the hit saved an unknown cost).
    pub usage: Option<Usage>,
    /// When it was stored (Unix milliseconds): a hit's `age`, and `max-age`'s test.
    pub stored_at_ms: u64,
}

/// `version, has_usage, 5 × u64 usage, u64 stored_at`, little-endian.
const HEADER: usize = 2 + 5 * 8 + 8;
const VERSION: u8 = 1;

// === impl Entry ===

impl Entry {
    /// The encoded entry (what a shared store holds).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER + self.body.len());
        out.put_u8(VERSION);
        out.put_u8(u8::from(self.usage.is_some()));
        let u = self.usage.unwrap_or_default();
        for n in [
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
        ] {
            out.put_u64_le(n);
        }
        out.put_u64_le(self.stored_at_ms);
        out.put_slice(&self.body);
        out.freeze()
    }

    /// An entry as [`Entry::encode`] wrote it; `None` for anything else (another version, a
    /// cut value), which is then a miss.
    pub fn decode(bytes: Bytes) -> Option<Self> {
        if bytes.len() < HEADER || bytes[0] != VERSION || bytes[1] > 1 {
            return None;
        }
        let word = |i: usize| {
            let at = 2 + 8 * i;
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let usage = (bytes[1] == 1).then(|| Usage {
            input_tokens: word(0),
            output_tokens: word(1),
            cached_input_tokens: word(2),
            cache_write_tokens: word(3),
            reasoning_tokens: word(4),
        });
        Some(Self {
            usage,
            stored_at_ms: word(5),
            body: bytes.slice(HEADER..),
        })
    }

    /// The bytes it takes in a store: its body and header.
    pub fn size(&self) -> usize {
        HEADER + self.body.len()
    }

    /// Its age at `now_ms`, in whole seconds (the `age` header).
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at_ms) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::Entry;
    use crate::usage::counts::Usage;
    use bytes::Bytes;

    #[test]
    fn an_entry_reads_back_as_it_was_written_and_nothing_else_reads() {
        for usage in [
            None,
            Some(Usage {
                input_tokens: 2006,
                output_tokens: 300,
                cached_input_tokens: 1920,
                cache_write_tokens: 3,
                reasoning_tokens: 128,
            }),
        ] {
            let entry = Entry {
                body: Bytes::from_static(br#"{"object":"chat.completion"}"#),
                usage,
                stored_at_ms: 1_765_000_000_123,
            };
            let encoded = entry.encode();
            assert_eq!(encoded.len(), entry.size());
            assert_eq!(Entry::decode(encoded.clone()), Some(entry));
            assert_eq!(Entry::decode(encoded.slice(..10)), None, "cut");
            let mut other = encoded.to_vec();
            other[0] = 9;
            assert_eq!(Entry::decode(Bytes::from(other)), None, "another version");
        }
        let entry = Entry {
            body: Bytes::new(),
            usage: None,
            stored_at_ms: 10_000,
        };
        assert_eq!(entry.age_secs(12_999), 2);
        assert_eq!(entry.age_secs(5), 0);
    }
}
