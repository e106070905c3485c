//! Rows whose upstream reported no usage (a stream cut or abandoned before its usage chunk, a
//! server that ignores `include_usage`, an answer without `usage`) carry what the writer needs to
//! count their tokens itself, so the counting happens off the request path.

use bytes::Bytes;

use super::counts::Usage;
use super::price::Price;
use crate::tokens::Encoding;

/// Most bytes of a stream's frames kept for counting (every OpenAI-kind stream keeps them until
/// its usage chunk arrives): about 250 one-token chunks. Beyond it the count is scaled up by the
/// bytes seen, so a thousand concurrent long streams hold at most 64 MB for this.
const MAX_KEPT: usize = 64 * 1024;

/// Counting instructions for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub encoding: Encoding,
    pub price: Price,
    /// The body sent upstream: the prompt is counted from it.
    pub request: Bytes,
    pub reply: Reply,
}

/// What the upstream sent back, as far as it got.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An embeddings answer: only the input counts.
    Embeddings,
    /// A whole `chat.completion` body.
    Completion(Bytes),
    /// The `chat.completion.chunk` frames of a stream.
    Chunks(Transcript),
}

/// The `data` of a stream's chunk events, kept (zero-copy) in case they have to be counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    chunks: Vec<Bytes>,
    kept: usize,
    seen: usize,
}

// === impl Estimate ===

impl Estimate {
    /// Counts the tokens and prices them: CPU work (tiktoken), done by the writer.
    pub fn count(&self) -> Counted {
        let encoding = self.encoding;
        let prompt = || encoding.count_chat_prompt(&self.request).unwrap_or(0);
        let (input, output) = match &self.reply {
            Reply::Embeddings => (encoding.count_embedding_input(&self.request), 0),
            Reply::Completion(body) => (prompt(), encoding.count_chat_completion(body)),
            Reply::Chunks(transcript) => (prompt(), transcript.count(encoding)),
        };
        Counted {
            input,
            output,
            cost: self.price.cost(&Usage::tokens(input, output)),
        }
    }
}

/// The outcome of an [`Estimate`] (applied to its row by `UsageRecord::apply`).
#[derive(Debug)]
pub struct Counted {
    pub input: u64,
    pub output: u64,
    pub cost: String,
}

// === impl Transcript ===

impl Transcript {
    /// One chunk event's `data` (the JSON of a `chat.completion.chunk`).
    pub fn push(&mut self, data: Bytes) {
        self.seen += data.len();
        if self.kept + data.len() <= MAX_KEPT {
            self.kept += data.len();
            self.chunks.push(data);
        }
    }

    /// Completion tokens of the chunks, scaled up if some were not kept.
    pub fn count(&self, encoding: Encoding) -> u64 {
        let counted = encoding.count_chat_chunks(self.chunks.iter().map(|c| &c[..]));
        if self.seen <= self.kept || self.kept == 0 {
            return counted;
        }
        (u128::from(counted) * self.seen as u128 / self.kept as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::{UsageRecord, UsageSource};

    fn chunk(text: &str) -> Bytes {
        let json = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]});
        Bytes::from(json.to_string())
    }

    fn record() -> UsageRecord {
        serde_json::from_value(serde_json::json!({
            "request_id": "r", "created_at_us": 0, "key_name": null, "session_id": null,
            "model_name": "m", "provider_id": null, "upstream_model": null, "stream": true,
            "input_tokens": 0, "output_tokens": 0, "usage_source": "upstream", "cost": "",
            "latency_ms": 0, "ttft_ms": null, "attempts": 1, "status": "cancelled",
            "http_status": 499, "error_message": null, "purpose": "chat"
        }))
        .unwrap()
    }

    #[test]
    fn a_cut_stream_is_counted_from_its_prompt_and_relayed_chunks() {
        let mut transcript = Transcript::default();
        transcript.push(chunk("hello"));
        transcript.push(chunk(" world"));
        let estimate = Estimate {
            encoding: Encoding::O200kBase,
            price: Price::from_config(Some(&crate::config::PriceConfig {
                cached_input_per_1m: None,
                cache_write_per_1m: None,
                input_per_1m: 1.0,
                output_per_1m: 2.0,
                ..Default::default()
            })),
            request: Bytes::from_static(br#"{"messages":[{"role":"user","content":"Hello"}]}"#),
            reply: Reply::Chunks(transcript),
        };
        let mut row = record();
        row.apply(estimate.count());
        assert_eq!((row.input_tokens, row.output_tokens), (8, 2));
        assert_eq!(row.usage_source, UsageSource::Estimated);
        assert_eq!(row.cost, "0.0000120000");
    }

    #[test]
    fn frames_beyond_the_cap_are_scaled_not_kept() {
        let frame = chunk(&"hello world ".repeat(1000));
        let mut transcript = Transcript::default();
        let n = MAX_KEPT / frame.len() + 10;
        for _ in 0..n {
            transcript.push(frame.clone());
        }
        assert!(transcript.kept <= MAX_KEPT);
        let one = Encoding::O200kBase.count_chat_chunks([&frame[..]]);
        let total = transcript.count(Encoding::O200kBase);
        let want = one * n as u64;
        assert!(total.abs_diff(want) <= one, "{total} vs {want}");
    }
}
