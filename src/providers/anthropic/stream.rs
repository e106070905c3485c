//! A Messages stream, relayed (PROTOCOLS.md §12.3, §12.7.5): translated event by event into
//! chat chunks for chat, completions and Responses clients, or passed through frame by frame to
//! a Messages client with only the model's name changed. Either way its usage is read as it
//! goes (`message_start` has the input, the last `message_delta` the totals).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use super::response::{WireUsage, chat_usage_json, completion_id, finish_reason};
use crate::error::{ErrorKind, GatewayError};
use crate::providers::types::{Relayed, ResponseContext, Usage};
use crate::sse::{DONE_FRAME, SseEvent};

pub struct StreamRelay {
    ctx: ResponseContext,
    usage: Option<WireUsage>,
    /// `data: {"id":…,"model":…,"choices":[{"index":0,"delta":` for this stream's chunks.
    chunk_head: Vec<u8>,
    /// `chatcmpl-…`, from the message id.
    id: String,
    /// Tool blocks started so far: the next tool call's chat `index`.
    tools: usize,
    finished: bool,
    /// `message_start` (or its chat chunk), sent with the next event that says something: an
    /// `error` right after it (Anthropic's overload) then comes before the commit point, and
    /// the request can still go to another route.
    held: Option<Bytes>,
}

/// The fields of any event the relay reads; which are present depends on its `type`.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default)]
    message: Option<Start<'a>>,
    #[serde(borrow, default)]
    content_block: Option<BlockStart<'a>>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(borrow, default)]
    error: Option<WireError<'a>>,
}

/// An event's name, from its data.
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Start<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct BlockStart<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireError<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

// === impl StreamRelay ===

impl StreamRelay {
    pub fn new(ctx: ResponseContext) -> Self {
        Self {
            ctx,
            usage: None,
            chunk_head: Vec::new(),
            id: String::new(),
            tools: 0,
            finished: false,
            held: None,
        }
    }

    /// Whether the events go to the client as they are (a Messages client's request).
    pub fn native(&self) -> bool {
        self.ctx.messages.is_some()
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(WireUsage::canonical)
    }

    pub fn on_frame(&mut self, frame: Bytes) -> Result<Relayed, GatewayError> {
        let parsed;
        let (name, data) = match SseEvent::named(&frame) {
            Some(named) => named,
            None => {
                parsed = SseEvent::parse(&frame);
                let Some(data) = parsed.data.as_deref() else {
                    return Ok(Relayed::Forward(Bytes::new())); // a comment: nothing to say
                };
                (parsed.event.unwrap_or_default(), data)
            }
        };
        // Dispatch on the event's name, as the SDKs do (`type` in the data is the same name;
        // read only from a peer that leaves the `event:` line out).
        let named;
        let name = match name {
            b"" => {
                named = parse::<Named<'_>>(data)?;
                named.kind.as_bytes()
            }
            name => name,
        };
        if self.native() {
            return self.pass(name, data, frame.clone());
        }
        let event: Event<'_> = parse(data)?;
        match name {
            b"message_start" => {
                let start = event.message.as_ref();
                self.usage = Some(start.and_then(|m| m.usage).unwrap_or_default());
                self.id = completion_id(start.and_then(|m| m.id.as_deref()));
                self.chunk_head = chunk_head(&self.id, &self.ctx);
                let role = self.chunk(r#"{"role":"assistant","content":""}"#, None);
                self.held = Some(role);
                Ok(Relayed::Forward(Bytes::new()))
            }
            b"message_delta" => {
                self.merge(event.usage.as_ref());
                let stop = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                match stop {
                    Some(stop) if !self.finished => {
                        self.finished = true;
                        let finish = self.chunk("{}", Some(finish_reason(Some(stop))));
                        Ok(Relayed::Forward(self.release(finish)))
                    }
                    _ => Ok(Relayed::Forward(Bytes::new())),
                }
            }
            b"message_stop" => {
                let end = self.end();
                Ok(Relayed::Done(self.release(end)))
            }
            b"error" => Err(stream_error(event.error)),
            b"content_block_start" => {
                let out = self.block_start(event.content_block);
                Ok(Relayed::Forward(self.release(out)))
            }
            b"content_block_delta" => {
                let out = self.block_delta(event.delta);
                Ok(Relayed::Forward(self.release(out)))
            }
            // `content_block_stop`, `ping`, and event types added later: nothing for chat.
            _ => Ok(Relayed::Forward(Bytes::new())),
        }
    }

    /// `out`, after the held start if it is still held (and when `out` says something).
    fn release(&mut self, out: Bytes) -> Bytes {
        if out.is_empty() {
            return out;
        }
        match self.held.take() {
            None => out,
            Some(start) => [start, out].concat().into(),
        }
    }

    /// A Messages client's stream: every frame as it came, only `message_start`'s model
    /// renamed; the JSON is read only where the usage is (`message_start`, `message_delta`).
    fn pass(&mut self, name: &[u8], data: &[u8], frame: Bytes) -> Result<Relayed, GatewayError> {
        match name {
            b"message_start" => {
                let [model, usage] =
                    crate::json::member_object(data, b"message", [b"model", b"usage"])
                        .ok_or_else(|| malformed("message_start without its message"))?;
                self.usage = Some(
                    usage
                        .and_then(|span| WireUsage::read(&data[span]))
                        .unwrap_or_default(),
                );
                self.held = Some(match (model, self.ctx.messages.as_deref()) {
                    (Some(span), Some(native)) if data[span.start] == b'"' => {
                        renamed(data, span, native.model_json())
                    }
                    _ => frame,
                });
                Ok(Relayed::Forward(Bytes::new()))
            }
            b"message_delta" => {
                if let Some(usage) = WireUsage::member(data) {
                    self.merge(Some(&usage));
                }
                Ok(Relayed::Forward(self.release(frame)))
            }
            b"message_stop" => Ok(Relayed::Done(self.release(frame))),
            b"error" => Err(stream_error(parse::<Event<'_>>(data)?.error)),
            // Held back with the start: a ping alone says nothing.
            b"ping" if self.held.is_some() => Ok(Relayed::Forward(Bytes::new())),
            _ => Ok(Relayed::Forward(self.release(frame))),
        }
    }

    fn merge(&mut self, later: Option<&WireUsage>) {
        if let (Some(usage), Some(later)) = (&mut self.usage, later) {
            usage.merge(later);
        }
    }

    fn block_start(&mut self, block: Option<BlockStart<'_>>) -> Bytes {
        let Some(block) = block else {
            return Bytes::new();
        };
        match &*block.kind {
            "tool_use" => {
                let index = self.tools;
                self.tools += 1;
                let delta = serde_json::json!({"tool_calls": [{
                    "index": index,
                    "id": block.id.as_deref().unwrap_or_default(),
                    "type": "function",
                    "function": {"name": block.name.as_deref().unwrap_or_default(), "arguments": ""},
                }]});
                self.chunk(&delta.to_string(), None)
            }
            "text" => match block.text.as_deref().filter(|t| !t.is_empty()) {
                Some(text) => self.chunk(&field_delta("content", text), None),
                None => Bytes::new(),
            },
            _ => Bytes::new(),
        }
    }

    fn block_delta(&mut self, delta: Option<Delta<'_>>) -> Bytes {
        let Some(delta) = delta else {
            return Bytes::new();
        };
        let json = match (delta.kind.as_deref(), &delta) {
            (Some("text_delta"), Delta { text: Some(t), .. }) if !t.is_empty() => {
                field_delta("content", t)
            }
            (
                Some("thinking_delta"),
                Delta {
                    thinking: Some(t), ..
                },
            ) if !t.is_empty() => field_delta("reasoning_content", t),
            (
                Some("input_json_delta"),
                Delta {
                    partial_json: Some(p),
                    ..
                },
            ) if !p.is_empty() => {
                let index = self.tools.saturating_sub(1);
                serde_json::json!({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                    .to_string()
            }
            // Signatures and citations have no chat field.
            _ => return Bytes::new(),
        };
        self.chunk(&json, None)
    }

    /// One chat chunk frame with `delta` (JSON) and a finish reason.
    fn chunk(&self, delta: &str, finish: Option<&str>) -> Bytes {
        let mut out = Vec::with_capacity(self.chunk_head.len() + delta.len() + 48);
        out.extend_from_slice(&self.chunk_head);
        out.extend_from_slice(delta.as_bytes());
        match finish {
            Some(reason) => {
                out.extend_from_slice(b",\"finish_reason\":\"");
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(b"\"}]}\n\n");
            }
            None => out.extend_from_slice(b",\"finish_reason\":null}]}\n\n"),
        }
        Bytes::from(out)
    }

    /// The end of a translated stream: the usage chunk if the client asked for it, `[DONE]`.
    fn end(&self) -> Bytes {
        let mut out = Vec::new();
        if self.ctx.include_usage {
            let usage = self.usage().unwrap_or_default();
            let chunk = serde_json::json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.ctx.created,
                "model": self.ctx.client_model,
                "choices": [],
                "usage": chat_usage_json(&usage),
            });
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(chunk.to_string().as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        out.extend_from_slice(DONE_FRAME);
        Bytes::from(out)
    }
}

/// An event's JSON, or the upstream's fault.
fn parse<'a, T: Deserialize<'a>>(data: &'a [u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(data).map_err(malformed)
}

fn malformed(why: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamFailed,
        format!("the upstream sent a malformed event: {why}"),
    )
}

/// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[{"index":0,"delta":`
fn chunk_head(id: &str, ctx: &ResponseContext) -> Vec<u8> {
    let mut head = b"data: {\"id\":".to_vec();
    let _ = serde_json::to_writer(&mut head, id);
    head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
    head.extend_from_slice(itoa::Buffer::new().format(ctx.created).as_bytes());
    head.extend_from_slice(b",\"model\":");
    let _ = serde_json::to_writer(&mut head, &ctx.client_model);
    head.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
    head
}

/// `{"<name>":"<text>"}`.
fn field_delta(name: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + name.len() + 8);
    out.push_str("{\"");
    out.push_str(name);
    out.push_str("\":");
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
    out.push('}');
    out
}

/// An `error` event: an overload or server error may be retried on another route before the
/// commit point; the upstream's verdict on the request is the client's.
fn stream_error(error: Option<WireError<'_>>) -> GatewayError {
    let kind = error
        .as_ref()
        .and_then(|e| e.kind.as_deref())
        .unwrap_or("api_error");
    let message = error
        .as_ref()
        .and_then(|e| e.message.as_deref())
        .unwrap_or("the upstream stream reported an error")
        .to_owned();
    match kind {
        "rate_limit_error" => GatewayError::new(ErrorKind::UpstreamRateLimited, message),
        "invalid_request_error" | "permission_error" | "not_found_error" | "request_too_large" => {
            GatewayError::upstream_rejected(http::StatusCode::BAD_REQUEST, kind.to_owned(), message)
        }
        _ => GatewayError::new(ErrorKind::UpstreamFailed, message),
    }
}

/// `message_start` with the model as the client wrote it (a JSON string), spliced where the
/// upstream's was.
fn renamed(data: &[u8], span: std::ops::Range<usize>, client_model: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + client_model.len() + 32);
    out.extend_from_slice(b"event: message_start\ndata: ");
    out.extend_from_slice(&data[..span.start]);
    out.extend_from_slice(client_model);
    out.extend_from_slice(&data[span.end..]);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
