//! The entry key (DESIGN §5 "Result cache"): SHA-256 over the scope, the endpoint, the model asked
//! for and the body in canonical form. Canonical: members sorted by key at every depth, no
//! whitespace, and without the top-level fields that never change an answer (`stream`,
//! `stream_options`, `user`, `metadata`); so every other field (tools, `response_format`, `seed`,
//! `temperature`, …) changes the key, and two bodies differing only in key order or spacing
//! share it. The hash is deterministic across processes and replicas (no per-process seed):
//! a shared store is shared.

use std::io::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::GatewayError;

/// What was asked: the same body means different things on different endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
    Embeddings,
    Responses,
}

/// An entry's key: the digest, and the model it belongs to (emptied by model).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub digest: [u8; 32],
    pub model: String,
}

/// The top-level fields left out of the key.
const IGNORED: [&str; 4] = ["stream", "stream_options", "user", "metadata"];

// === impl Endpoint ===

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completion => "completion",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
        }
    }
}

// === impl Key ===

impl Key {
    /// The key of `body` (a JSON object) asked of `model` on `endpoint` within `scope`. The body
    /// is read as a tree: it is held to the same bound as every tree the gateway builds.
    pub fn of(
        scope: &str,
        endpoint: Endpoint,
        model: &str,
        body: &[u8],
    ) -> Result<Self, GatewayError> {
        crate::request::check_tree(body)?;
        let mut body: serde_json::Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| GatewayError::invalid_request(format!("invalid JSON body: {e}")))?;
        for field in IGNORED {
            body.remove(field);
        }
        let mut hasher = Hasher(Sha256::new());
        // Each part ends with a byte no UTF-8 text holds, so no two splits read the same.
        for part in [scope, endpoint.name(), model] {
            hasher.0.update(part.as_bytes());
            hasher.0.update([0xff]);
        }
        canonical(&Value::Object(body), &mut hasher)
            .map_err(|e| GatewayError::invalid_request(e.to_string()))?;
        Ok(Self {
            digest: hasher.0.finalize().into(),
            model: model.to_owned(),
        })
    }

    /// The digest as 64 hex digits (Redis keys, logs).
    pub fn hex(&self) -> String {
        let mut out = String::new();
        crate::hex::push(&mut out, &self.digest);
        out
    }
}

/// `value` without whitespace, every object's members sorted by key: sorted here rather than
/// by relying on serde_json's map order, which a dependency's `preserve_order` feature would
/// turn into insertion order (and split equal requests between keys).
fn canonical(value: &Value, out: &mut impl Write) -> std::io::Result<()> {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.write_all(b"{")?;
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, key)?;
                out.write_all(b":")?;
                canonical(value, out)?;
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                canonical(item, out)?;
            }
            out.write_all(b"]")
        }
        scalar => serde_json::to_writer(&mut *out, scalar).map_err(std::io::Error::other),
    }
}

/// Serialization into the digest, without a buffer.
struct Hasher(Sha256);

impl Write for Hasher {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Endpoint, Key};

    fn key(scope: &str, endpoint: Endpoint, body: &str) -> [u8; 32] {
        Key::of(scope, endpoint, "m", body.as_bytes())
            .unwrap()
            .digest
    }

    #[test]
    fn order_spacing_and_delivery_fields_do_not_change_the_key() {
        let a = key(
            "k",
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"b":1,"a":2}}}}"#,
        );
        let b = key(
            "k",
            Endpoint::Chat,
            r#" { "response_format" : {"json_schema":{"schema":{"a":2,"b":1},"name":"a"},"type":"json_schema"},
                "temperature":0.2, "stream": true, "stream_options": {"include_usage": true},
                "user": "u-1", "metadata": {"x": "y"},
                "messages":[{"content":"hi","role":"user"}], "model":"m" } "#,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn whatever_can_change_the_answer_changes_the_key() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let k = key("k", Endpoint::Chat, base);
        for other in [
            r#"{"model":"m","messages":[{"role":"user","content":"hi!"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":7}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata_extra":1}"#,
        ] {
            assert_ne!(k, key("k", Endpoint::Chat, other), "{other}");
        }
        assert_ne!(k, key("other-key", Endpoint::Chat, base), "scopes apart");
        assert_ne!(k, key("k", Endpoint::Completion, base), "endpoints apart");
        assert_ne!(
            k,
            Key::of("k", Endpoint::Chat, "m2", base.as_bytes())
                .unwrap()
                .digest,
            "models apart"
        );
        // A split between parts cannot be moved to forge another scope's key.
        assert_ne!(
            Key::of("ab", Endpoint::Chat, "c", base.as_bytes()).unwrap(),
            Key::of("a", Endpoint::Chat, "bc", base.as_bytes()).unwrap()
        );
    }

    #[test]
    fn the_key_is_the_same_in_every_process() {
        // Fixed: a replica or a restart computes the same key (no random seed in the hash).
        assert_eq!(
            Key::of(
                "k",
                Endpoint::Embeddings,
                "m",
                br#"{"model":"m","input":"a"}"#
            )
            .unwrap()
            .hex(),
            Key::of(
                "k",
                Endpoint::Embeddings,
                "m",
                br#"{"input":"a","model":"m"}"#
            )
            .unwrap()
            .hex(),
        );
        assert!(Key::of("k", Endpoint::Chat, "m", b"[1]").is_err());
    }
}
