//! Counting tokens locally with tiktoken-rs (PROTOCOLS.md §7): for ledger rows whose upstream
//! reported no usage, and for session budgets.
//!
//! Chat messages are counted the way OpenAI's cookbook does: 3 tokens per message, the tokens of
//! its strings, 1 more for a `name`, and 3 once for the reply's priming. Pure functions; the BPE
//! tables are compiled into the binary and parsed once, on first use.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tiktoken_rs::CoreBPE;

use crate::config::Tokenizer;

/// Tokens every chat message costs beyond its text (`<|start|>role…<|end|>`).
pub const PER_MESSAGE: u64 = 3;
/// A message with a `name` costs one more.
pub const PER_NAME: u64 = 1;
/// Every reply is primed with `<|start|>assistant<|message|>`.
pub const REPLY_PRIMING: u64 = 3;

/// The BPE encodings OpenAI's models use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
    O200kHarmony,
}

/// Model-name prefixes and their encodings, most specific first (`gpt-4o` before `gpt-4`).
const BY_PREFIX: &[(&str, Encoding)] = &[
    ("gpt-4o", Encoding::O200kBase),
    ("chatgpt-4o-", Encoding::O200kBase),
    ("gpt-4.1", Encoding::O200kBase),
    ("gpt-4.5-", Encoding::O200kBase),
    ("gpt-5", Encoding::O200kBase),
    ("o1", Encoding::O200kBase),
    ("o3", Encoding::O200kBase),
    ("o4-mini", Encoding::O200kBase),
    ("gpt-oss-", Encoding::O200kHarmony),
    ("gpt-4", Encoding::Cl100kBase),
    ("gpt-3.5-turbo", Encoding::Cl100kBase),
    ("gpt-35-turbo", Encoding::Cl100kBase),
    ("text-embedding-ada-002", Encoding::Cl100kBase),
    ("text-embedding-3-", Encoding::Cl100kBase),
];

// === impl Encoding ===

impl From<Tokenizer> for Encoding {
    fn from(t: Tokenizer) -> Self {
        match t {
            Tokenizer::O200kBase => Self::O200kBase,
            Tokenizer::Cl100kBase => Self::Cl100kBase,
            Tokenizer::O200kHarmony => Self::O200kHarmony,
        }
    }
}

impl Encoding {
    /// The encoding of a known OpenAI model; `None` for others (Qwen, local models), which
    /// callers count with their configured default.
    pub fn for_model(model: &str) -> Option<Self> {
        BY_PREFIX
            .iter()
            .find(|(prefix, _)| model.starts_with(prefix))
            .map(|&(_, encoding)| encoding)
    }

    /// How a route counts: the configured tokenizer, else by the upstream model's name, else by
    /// the client-facing name, else `o200k_base` (the encoding of current OpenAI models).
    pub fn for_route(configured: Option<Tokenizer>, upstream_model: &str, model: &str) -> Self {
        configured
            .map(Self::from)
            .or_else(|| Self::for_model(upstream_model))
            .or_else(|| Self::for_model(model))
            .unwrap_or(Self::O200kBase)
    }

    fn bpe(self) -> &'static CoreBPE {
        match self {
            Self::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Self::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
            Self::O200kHarmony => tiktoken_rs::o200k_harmony_singleton(),
        }
    }

    /// Parses the encoding's table now, so the first count does not pay for it.
    pub fn warm(self) {
        self.bpe();
        self.ready_flag().store(true, Ordering::Release);
    }

    /// Makes sure the table is parsed, on the blocking pool: the first parse takes ~0.1 s and
    /// ~20–50 MB, so it happens on first use (not at start-up, for a gateway that may never count)
    /// and never on a runtime thread, which would stall every connection it serves.
    pub async fn ready(self) {
        if self.ready_flag().load(Ordering::Acquire) {
            return;
        }
        if tokio::task::spawn_blocking(move || self.warm())
            .await
            .is_err()
        {
            self.warm(); // the blocking pool is gone (shutting down): parse here
        }
    }

    fn ready_flag(self) -> &'static AtomicBool {
        static READY: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];
        &READY[self as usize]
    }

    /// Tokens of plain text (special-token text counts as ordinary text, as a user typed it).
    ///
    /// A run of more than [`MAX_RUN`] bytes without whitespace is estimated at a token per two
    /// bytes instead of encoded: BPE merges one piece in time quadratic in its length
    /// (tiktoken's `_byte_pair_merge`), so a single 8 MB word held a core for minutes. Text has
    /// no such runs; the estimate over-counts (reserves more, never less) what does.
    pub fn count(self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        let bpe = self.bpe();
        let mut tokens = 0;
        let mut rest = text;
        while let Some((start, end)) = long_run(rest) {
            tokens += bpe.count_ordinary(&rest[..start]) as u64 + (end - start).div_ceil(2) as u64;
            rest = &rest[end..];
        }
        tokens + bpe.count_ordinary(rest) as u64
    }

    /// One chat message with its per-message overhead (the reply priming is not included).
    pub fn count_message(self, message: &Value) -> u64 {
        let Some(fields) = message.as_object() else {
            return PER_MESSAGE;
        };
        let mut text = String::new();
        let mut tokens = PER_MESSAGE;
        for (key, value) in fields {
            match (key.as_str(), value) {
                (_, Value::String(s)) => {
                    tokens += self.count(s);
                    if key == "name" {
                        tokens += PER_NAME;
                    }
                }
                ("content" | "tool_calls" | "function_call", _) => {
                    text.clear();
                    collect_text(value, &mut text);
                    tokens += self.count(&text);
                }
                _ => {}
            }
        }
        tokens
    }

    /// The prompt of a chat request body: every message, the tool definitions (their JSON, a
    /// slight over-count) and the reply priming. `None` if the body is not a chat request.
    /// A body too costly to read as a tree (`request::tree_fits`) is estimated at a token per
    /// four bytes instead: it is not a prompt anyone wrote.
    pub fn count_chat_prompt(self, body: &[u8]) -> Option<u64> {
        if !crate::request::tree_fits(body) {
            return Some(body.len() as u64 / 4);
        }
        #[derive(Deserialize)]
        struct Prompt {
            #[serde(default)]
            messages: Option<Vec<Value>>,
            /// A legacy completion's prompt instead of messages.
            #[serde(default)]
            prompt: Option<Value>,
            #[serde(default)]
            tools: Option<Value>,
        }
        let prompt: Prompt = serde_json::from_slice(body).ok()?;
        let messages: u64 = match (&prompt.messages, &prompt.prompt) {
            (Some(messages), _) => messages.iter().map(|m| self.count_message(m)).sum(),
            (None, Some(text)) => {
                let mut all = String::new();
                collect_text(text, &mut all);
                return Some(self.count(&all));
            }
            (None, None) => return None,
        };
        let tools = match &prompt.tools {
            Some(tools @ Value::Array(list)) if !list.is_empty() => self.count(&tools.to_string()),
            _ => 0,
        };
        Some(messages + tools + REPLY_PRIMING)
    }

    /// The generated text of a non-stream `chat.completion` body (every choice).
    pub fn count_chat_completion(self, body: &[u8]) -> u64 {
        let mut text = String::new();
        if let Ok(Choices { choices }) = serde_json::from_slice::<Choices>(body) {
            for choice in &choices {
                // A chat message, or a legacy completion's text.
                match (choice.get("message"), choice.get("text")) {
                    (Some(message), _) => collect_generated(message, &mut text),
                    (None, Some(Value::String(t))) => text.push_str(t),
                    _ => {}
                }
            }
        }
        self.count(&text)
    }

    /// The generated text of the `chat.completion.chunk` events (their `data` JSON) a stream
    /// relayed so far.
    pub fn count_chat_chunks<'a>(self, chunks: impl IntoIterator<Item = &'a [u8]>) -> u64 {
        let mut text = String::new();
        for data in chunks {
            if let Ok(Choices { choices }) = serde_json::from_slice::<Choices>(data) {
                for choice in &choices {
                    match (choice.get("delta"), choice.get("text")) {
                        (Some(delta), _) => collect_generated(delta, &mut text),
                        (None, Some(Value::String(t))) => text.push_str(t),
                        _ => {}
                    }
                }
            }
        }
        self.count(&text)
    }

    /// The `input` of an embeddings request body: strings are encoded, token arrays counted as
    /// sent; read as it is counted, never held.
    pub fn count_embedding_input(self, body: &[u8]) -> u64 {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(borrow)]
            input: &'a RawValue,
        }
        let Ok(Input { input }) = serde_json::from_slice::<Input<'_>>(body) else {
            return 0;
        };
        let mut de = serde_json::Deserializer::from_str(input.get());
        serde::de::DeserializeSeed::deserialize(InputTokens(self), &mut de).unwrap_or(0)
    }
}

/// Counts an embeddings input: a string's tokens, a token id as one, an array's items.
#[derive(Clone, Copy)]
struct InputTokens(Encoding);

impl<'de> serde::de::DeserializeSeed<'de> for InputTokens {
    type Value = u64;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<u64, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for InputTokens {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an embeddings input")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<u64, E> {
        Ok(self.0.count(text))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<u64, E> {
        Ok(1)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut total = 0;
        while let Some(n) = seq.next_element_seed(self)? {
            total += n;
        }
        Ok(total)
    }
}

/// Longest run of non-whitespace bytes encoded with BPE (see [`Encoding::count`]).
const MAX_RUN: usize = 256;

/// The byte range of the first run of more than [`MAX_RUN`] bytes without ASCII whitespace, at
/// char boundaries.
fn long_run(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_whitespace() {
            if i - start > MAX_RUN {
                return Some((start, i));
            }
            start = i + 1;
        }
    }
    // Whitespace is ASCII, so both ends are char boundaries.
    (bytes.len() - start > MAX_RUN).then_some((start, bytes.len()))
}

#[derive(Deserialize)]
struct Choices {
    #[serde(default)]
    choices: Vec<Value>,
}

/// What a model generated in a message or delta: content, reasoning, tool calls.
fn collect_generated(message: &Value, out: &mut String) {
    for key in [
        "content",
        "reasoning_content",
        "refusal",
        "tool_calls",
        "function_call",
    ] {
        if let Some(value) = message.get(key) {
            collect_text(value, out);
        }
    }
}

/// The text a model reads or writes in a content or tool-call value: strings, `text` parts,
/// function names and arguments; not part types, ids or image URLs.
fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|item| collect_text(item, out)),
        Value::Object(fields) => {
            for key in ["text", "function", "name", "arguments"] {
                if let Some(v) = fields.get(key) {
                    collect_text(v, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
