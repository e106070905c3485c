//! The chat relay's stream read back as events, for the Responses API's answers translated
//! from it: each chunk's `data`, the end (`[DONE]`), or the failure the relay's error event or a
//! cut stands for. The stream is the relay's, or a stored answer replayed (a cache hit). (Messages clients' streams are translated inside the relay instead:
//! `providers::messages`.)

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Body as HttpBody;
use serde_json::Value;

use crate::body::Body;
use crate::error::{ErrorKind, GatewayError};
use crate::sse::{SseDecoder, SseEvent};

/// Upper bound on one chat event read back from the relay.
const MAX_FRAME: usize = 4 * 1024 * 1024;

/// What the relay gave next.
pub enum ChatEvent {
    /// A chunk's `data` (JSON).
    Chunk(Bytes),
    /// `[DONE]`: the upstream finished.
    Done,
    /// The relay's error event, or the stream cut without one.
    Failed(GatewayError),
}

pub struct ChatEvents {
    relay: Body,
    decoder: SseDecoder,
}

// === impl ChatEvents ===

impl ChatEvents {
    pub fn new(relay: Body) -> Self {
        Self {
            relay,
            decoder: SseDecoder::new(MAX_FRAME),
        }
    }

    /// The next event, reading from the relay only when none is buffered.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<ChatEvent> {
        loop {
            while let Ok(Some(frame)) = self.decoder.next_frame() {
                let Some(data) = SseEvent::parse(&frame).data else {
                    continue;
                };
                if data.trim_ascii() == b"[DONE]" {
                    return Poll::Ready(ChatEvent::Done);
                }
                if data.starts_with(b"{\"error\"") {
                    return Poll::Ready(ChatEvent::Failed(relay_error(&data)));
                }
                return Poll::Ready(ChatEvent::Chunk(data.into_owned().into()));
            }
            match ready!(Pin::new(&mut self.relay).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                }
                // Chat relays end with an error event, never a cut.
                Some(Err(crate::body::Cut)) => {
                    return Poll::Ready(ChatEvent::Failed(GatewayError::new(
                        ErrorKind::UpstreamFailed,
                        "the stream was cut short",
                    )));
                }
                // The relay always ends with `[DONE]` or an error event; anything else is a cut,
                // never a silent end.
                None => {
                    return Poll::Ready(ChatEvent::Failed(GatewayError::new(
                        ErrorKind::UpstreamFailed,
                        "the upstream stream ended before it finished",
                    )));
                }
            }
        }
    }
}

/// The relay's error event (`{"error":{…}}`) as the error it stands for.
fn relay_error(data: &[u8]) -> GatewayError {
    let parsed: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
    let message = parsed["error"]["message"]
        .as_str()
        .unwrap_or("the upstream failed mid-stream")
        .to_owned();
    let kind = match parsed["error"]["code"].as_str() {
        Some("rate_limit_exceeded") => ErrorKind::UpstreamRateLimited,
        Some("request_timeout") => ErrorKind::RequestTimeout,
        _ => ErrorKind::UpstreamFailed,
    };
    GatewayError::new(kind, message)
}
