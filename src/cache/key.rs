//! The entry key (DESIGN §5 "Result cache"): SHA-256 over the scope, the endpoint, the model asked
//! for and the body in canonical form. Canonical: members sorted by key at every depth, no
//! whitespace, and without the top-level fields that never change an answer (`stream`,
//! `stream_options`, `user`, `metadata`); so every other field (tools, `response_format`, `seed`,
//! `temperature`, …) changes the key, and two bodies differing only in key order or spacing
//! share it. The hash is deterministic across processes and replicas (no per-process seed):
//! a shared store is shared.

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

/// Deepest nesting read, as the request parsers allow.
const MAX_DEPTH: usize = 128;

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
    /// The key of `body` (a JSON object) asked of `model` on `endpoint` within `scope`. The
    /// body is canonicalised from its bytes (no tree: a request's body is read as a tree only
    /// where a translation needs one), nesting bounded as the request parsers bound it.
    pub fn of(
        scope: &str,
        endpoint: Endpoint,
        model: &str,
        body: &[u8],
    ) -> Result<Self, GatewayError> {
        let mut out = Vec::with_capacity(body.len() + scope.len() + model.len() + 16);
        // Each part ends with a byte no UTF-8 text holds, so no two splits read the same.
        for part in [scope, endpoint.name(), model] {
            out.extend_from_slice(part.as_bytes());
            out.push(0xff);
        }
        let start = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0);
        canonical(body, start, 0, &mut out).ok_or_else(|| {
            GatewayError::invalid_request("the request body cannot be read as one JSON object")
        })?;
        Ok(Self {
            // One update: the digest's block work is the same, its per-call cost paid once.
            digest: Sha256::digest(&out).into(),
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

/// The value at `at` without whitespace, every object's members sorted by key (as written):
/// two bodies that differ only in member order or spacing write the same bytes. At depth 0 the
/// value must be an object, and the fields that never change an answer are left out.
fn canonical(body: &[u8], at: usize, depth: usize, out: &mut Vec<u8>) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    match body.get(at)? {
        b'{' => {
            let (mut members, _) = crate::json::members_at(body, at)?;
            if depth == 0 {
                members.retain(|(key, _)| {
                    let name = &body[key.start + 1..key.end - 1];
                    !IGNORED.iter().any(|f| f.as_bytes() == name)
                });
            }
            members.sort_by(|a, b| body[a.0.clone()].cmp(&body[b.0.clone()]));
            out.push(b'{');
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&body[key]);
                out.push(b':');
                canonical(body, value.start, depth + 1, out)?;
            }
            out.push(b'}');
        }
        _ if depth == 0 => return None,
        b'[' => {
            let (items, _) = crate::json::elements_at(body, at)?;
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(body, item.start, depth + 1, out)?;
            }
            out.push(b']');
        }
        // A string, number or literal, as written.
        _ => out.extend_from_slice(&body[crate::json::value_at(body, at)?]),
    }
    Some(())
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
