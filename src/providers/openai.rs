//! The OpenAI wire format (PROTOCOLS.md §1–§4). Requests and responses pass through as bytes:
//! only `model` is rewritten, and responses are read just enough to learn usage and errors.
//! Pure functions; no I/O.

use std::ops::Range;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use memchr::memmem;
use serde::Deserialize;

use super::types::{Relayed, Usage};
use crate::error::{ErrorKind, GatewayError};
use crate::routing::transport::{Auth, Endpoint, HttpSpec};
use crate::sse::SseEvent;
use crate::usage::estimate::Transcript;
use crate::usage::record::Unit;

pub const CHAT_PATH: &str = "chat/completions";
pub const COMPLETIONS_PATH: &str = "completions";
pub const EMBEDDINGS_PATH: &str = "embeddings";

pub struct StreamRelay {
    pub usage: Option<Usage>,
    /// The client did not ask for the usage chunk: the gateway did, for the ledger; drop it.
    hide_usage_chunk: bool,
    /// The frames relayed, counted by the ledger if the stream ends without its usage chunk.
    pub seen: Transcript,
    /// Whether to keep them: not when there is no ledger to count them for.
    pub keep_seen: bool,
}

#[derive(Deserialize)]
struct ChoicesPeek {
    #[serde(default)]
    choices: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ErrorPeek {
    error: Option<OpenAiError>,
}

#[derive(Deserialize)]
struct OpenAiError {
    #[serde(default)]
    message: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    param: Option<String>,
}

/// Where an OpenAI-compatible server's endpoints are. Its probe: `GET {base_url}/models`, a
/// list call that spends no tokens.
pub fn http_spec(base_url: String) -> HttpSpec {
    HttpSpec {
        probe_url: format!("{}/models", base_url.trim_end_matches('/')),
        base_url,
        paths: &[
            (Endpoint::Chat, CHAT_PATH),
            (Endpoint::Completions, COMPLETIONS_PATH),
            (Endpoint::Embeddings, EMBEDDINGS_PATH),
            // vLLM, Jina, Infinity (PROTOCOLS.md §13.5.3).
            (Endpoint::Rerank, "rerank"),
            (Endpoint::Moderations, "moderations"),
            (Endpoint::ImageGenerations, "images/generations"),
            (Endpoint::ImageEdits, "images/edits"),
            (Endpoint::Transcriptions, "audio/transcriptions"),
            (Endpoint::Translations, "audio/translations"),
            (Endpoint::Speech, "audio/speech"),
        ],
        stream_headers: &[],
        auth: Auth::Bearer,
        headers: &[],
    }
}

/// The body with the bytes of `span` replaced by `replacement`; the original when they are equal
/// (no copy at all: the common case of a route whose upstream model has the client's name).
pub fn splice(body: &Bytes, span: &Range<usize>, replacement: &[u8]) -> Bytes {
    if &body[span.clone()] == replacement {
        return body.clone();
    }
    let mut out = BytesMut::with_capacity(body.len() - span.len() + replacement.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(replacement);
    out.extend_from_slice(&body[span.end..]);
    out.freeze()
}

/// What a passed-on answer (moderations, image generations) reports: its tokens (GPT image
/// models' `input_tokens`/`output_tokens`) and, for images, how many there are (`data`'s
/// length). Read by a walk: an image answer's base64 runs to megabytes.
pub fn pass_units(endpoint: Endpoint, body: &[u8]) -> (Option<Usage>, Option<(Unit, u64)>) {
    let usage = crate::json::member(body, b"usage")
        .and_then(|u| {
            crate::json::counts(
                u,
                [
                    b"input_tokens",
                    b"output_tokens",
                    b"prompt_tokens",
                    b"completion_tokens",
                ],
            )
        })
        .map(|[input, output, prompt, completion]| {
            Usage::tokens(
                input.or(prompt).unwrap_or(0),
                output.or(completion).unwrap_or(0),
            )
        });
    let units = match endpoint {
        Endpoint::Transcriptions | Endpoint::Translations => {
            audio_seconds(body).map(|seconds| (Unit::Seconds, seconds))
        }
        Endpoint::ImageGenerations | Endpoint::ImageEdits => {
            let data = crate::json::first_top_level(body, b"data");
            let n = data
                .and_then(|d| crate::json::elements_at(body, d.start))
                .map_or(0, |(items, _)| items.len());
            Some((Unit::Images, n as u64))
        }
        _ => None,
    };
    (usage, units)
}

/// The seconds a transcription reports: whisper's `usage.seconds` (already rounded up), else
/// `verbose_json`'s `duration` rounded up the same way (PROTOCOLS.md §13.7).
fn audio_seconds(body: &[u8]) -> Option<u64> {
    let usage = crate::json::member(body, b"usage");
    if let Some([Some(seconds)]) = usage.and_then(|u| crate::json::counts(u, [b"seconds"])) {
        return Some(seconds);
    }
    let duration = crate::json::member(body, b"duration")?;
    let duration: f64 = std::str::from_utf8(duration).ok()?.parse().ok()?;
    (duration.is_finite() && duration >= 0.0).then(|| duration.ceil() as u64)
}

/// `body` with `"model": model` (JSON) as its first member, for a client that named none.
pub fn insert_model(body: &Bytes, model: &[u8]) -> Bytes {
    insert_first(body, &[&b"\"model\":"[..], model].concat())
}

/// `body` (an object) with `member` (`"key":value`) inserted after its opening brace, every
/// other byte as the client sent it.
fn insert_first(body: &Bytes, member: &[u8]) -> Bytes {
    let Some(open) = body.iter().position(|&b| b == b'{') else {
        return body.clone();
    };
    let empty = body[open + 1..].trim_ascii_start().starts_with(b"}");
    let mut out = BytesMut::with_capacity(body.len() + member.len() + 1);
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(member);
    if !empty {
        out.extend_from_slice(b",");
    }
    out.extend_from_slice(&body[open + 1..]);
    out.freeze()
}

/// For a stream whose client did not ask for the usage chunk: the body with
/// `stream_options.include_usage` set, so the ledger gets the upstream's exact counts (the relay
/// then hides that chunk from the client). Without `stream_options` in the body the field is
/// inserted after the opening brace, leaving every other byte as the client sent it; an existing
/// `stream_options` (rare) is merged through a parse.
pub fn ask_for_usage(body: Bytes, has_stream_options: bool) -> Bytes {
    if !has_stream_options {
        return insert_first(&body, br#""stream_options":{"include_usage":true}"#);
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    match value.get_mut("stream_options") {
        Some(serde_json::Value::Object(options)) => {
            options.insert("include_usage".into(), serde_json::Value::Bool(true));
        }
        _ => value["stream_options"] = serde_json::json!({"include_usage": true}),
    }
    serde_json::to_vec(&value).map(Bytes::from).unwrap_or(body)
}

/// A 2xx body is forwarded as-is and its usage read. Parsing a whole answer only to find
/// `usage` costs more than everything else the gateway does (an embeddings answer is thousands
/// of numbers), so the top-level `"usage"` key is found from the end, where OpenAI puts it, and
/// only its object is parsed. A key inside a string cannot match: its quotes are escaped.
pub fn parse_response(body: Bytes) -> Result<(Bytes, Option<Usage>), GatewayError> {
    let trimmed = body.trim_ascii();
    if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
        return Err(GatewayError::new(
            ErrorKind::UpstreamFailed,
            "upstream returned a response that is not a JSON object",
        ));
    }
    let usage = find_usage(&body);
    Ok((body, usage))
}

/// Finders built once: building one per search cost more than the search of a chunk.
static ERROR_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"error\""));

/// The `usage` object of an OpenAI response body or chunk (see `usage::counts::chat_usage`).
pub fn find_usage(body: &[u8]) -> Option<Usage> {
    crate::usage::counts::chat_usage(body)
}

/// Maps a non-2xx upstream answer to the error the client or the retry loop sees (see
/// `ErrorKind` for which are retried). The upstream's words reach the client only for request
/// errors; the dispatcher scrubs every error of the provider's key (`GatewayError::scrubbed`).
pub fn parse_error(
    provider: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> GatewayError {
    let parsed = serde_json::from_slice::<ErrorPeek>(body)
        .ok()
        .and_then(|p| p.error);
    let upstream_message = || match &parsed {
        Some(OpenAiError {
            message: Some(m), ..
        }) => m.clone(),
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    match status.as_u16() {
        401 | 403 => GatewayError::new(
            ErrorKind::UpstreamAuth,
            format!(
                "provider {provider:?} refused the gateway's credentials (HTTP {})",
                status.as_u16()
            ),
        ),
        408 => GatewayError::new(
            ErrorKind::UpstreamTimeout,
            format!("provider {provider:?} timed out (HTTP 408)"),
        ),
        429 => GatewayError::new(
            ErrorKind::UpstreamRateLimited,
            format!(
                "provider {provider:?} is rate limiting: {}",
                upstream_message()
            ),
        )
        .with_retry_after(retry_after),
        400..=499 => {
            let (kind, code, param) = match &parsed {
                Some(e) => (
                    e.kind.clone(),
                    e.code.as_ref().and_then(code_string),
                    e.param.clone(),
                ),
                None => (None, None, None),
            };
            let mut e = GatewayError::upstream_rejected(
                status,
                kind.unwrap_or_else(|| "invalid_request_error".into()),
                upstream_message(),
            );
            if let Some(code) = code {
                e = e.with_code(code);
            }
            if let Some(param) = param {
                e = e.with_param(param);
            }
            e
        }
        _ => GatewayError::new(
            ErrorKind::UpstreamFailed,
            format!(
                "provider {provider:?} failed (HTTP {}): {}",
                status.as_u16(),
                upstream_message()
            ),
        ),
    }
}

/// An error event in a stream. The upstream's verdict on the request itself (an
/// `invalid_request_error`, a content filter) is a 400 with its type and code: not retried, not
/// the route's fault, whether it comes first (before the commit point) or later. Anything else
/// is the upstream failing, and retryable before the commit point.
fn stream_error(e: OpenAiError) -> GatewayError {
    let message = e
        .message
        .unwrap_or_else(|| "the upstream stream reported an error".into());
    let code = e.code.as_ref().and_then(code_string);
    let verdict = matches!(e.kind.as_deref(), Some("invalid_request_error"))
        || [e.kind.as_deref(), code.as_deref()].contains(&Some("content_filter"));
    if !verdict {
        return GatewayError::new(ErrorKind::UpstreamFailed, message);
    }
    let kind = e.kind.unwrap_or_else(|| "invalid_request_error".into());
    let mut error = GatewayError::upstream_rejected(StatusCode::BAD_REQUEST, kind, message);
    if let Some(code) = code {
        error = error.with_code(code);
    }
    if let Some(param) = e.param {
        error = error.with_param(param);
    }
    error
}

/// Error codes are strings in OpenAI's bodies but numbers in some compatible servers'.
fn code_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// === impl StreamRelay ===

impl StreamRelay {
    pub fn new(client_asked_for_usage: bool) -> Self {
        Self {
            usage: None,
            hide_usage_chunk: !client_asked_for_usage,
            seen: Transcript::default(),
            keep_seen: true,
        }
    }

    /// Passes each frame through byte for byte, noting `[DONE]`, the usage chunk and in-stream
    /// errors. JSON is parsed only for frames that can hold usage or an error.
    pub fn on_frame(&mut self, frame: Bytes) -> Result<Relayed, GatewayError> {
        // Nearly every frame is one `data:` line, read without the general parser.
        let Some(event_data) = SseEvent::data(&frame) else {
            return Ok(Relayed::Forward(frame)); // a comment (keep-alive): harmless to forward
        };
        let data = &*event_data;
        if data.trim_ascii() == b"[DONE]" {
            return Ok(Relayed::Done(frame));
        }
        if ERROR_KEY.find(data).is_some()
            && let Ok(ErrorPeek { error: Some(e) }) = serde_json::from_slice::<ErrorPeek>(data)
        {
            return Err(stream_error(e));
        }
        if let Some(usage) = find_usage(data) {
            self.usage = Some(usage);
            self.seen = Transcript::default(); // exact usage: nothing to count
            let usage_only =
                serde_json::from_slice::<ChoicesPeek>(data).is_ok_and(|c| c.choices.is_empty());
            if self.hide_usage_chunk && usage_only {
                return Ok(Relayed::Forward(Bytes::new()));
            }
        } else if self.keep_seen && self.usage.is_none() {
            // Only the JSON is kept: a slice of the frame when it is one `data:` line (no copy).
            let data = match &event_data {
                std::borrow::Cow::Borrowed(d) => frame.slice_ref(d),
                std::borrow::Cow::Owned(d) => Bytes::copy_from_slice(d),
            };
            self.seen.push(data);
        }
        Ok(Relayed::Forward(frame))
    }
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
