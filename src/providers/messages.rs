//! A chat-speaking route's stream for a Messages client (`/v1/messages` on an OpenAI, DashScope
//! or mock route): the adapter's own relay reads the upstream (usage, errors, what the ledger
//! counts) and each chat chunk it passes on becomes Anthropic's events right here, as it
//! arrives. The relay's output is the client's: nothing is decoded a second time.

use bytes::Bytes;

use super::StreamRelay;
use super::types::{Relayed, Usage};
use crate::anthropic::stream::EventStream;
use crate::error::GatewayError;
use crate::sse::{self, SseEvent};

pub struct MessagesRelay {
    pub(super) chat: StreamRelay,
    events: EventStream,
    started: bool,
}

// === impl MessagesRelay ===

impl MessagesRelay {
    pub fn new(chat: StreamRelay, events: EventStream) -> Self {
        Self {
            chat,
            events,
            started: false,
        }
    }

    /// The chat relay's frames for this upstream frame, as events: `message_start` (and a
    /// first `ping`) with the first of them, `message_delta` and `message_stop` at the end.
    pub fn on_frame(&mut self, frame: Bytes) -> Result<Relayed, GatewayError> {
        let (chat, done) = match self.chat.on_frame(frame)? {
            Relayed::Forward(chat) => (chat, false),
            Relayed::Done(chat) => (chat, true),
        };
        if chat.is_empty() && !done {
            return Ok(Relayed::Forward(chat));
        }
        let mut out = Vec::with_capacity(chat.len() + 256);
        if !std::mem::replace(&mut self.started, true) {
            self.events.start(&mut out);
        }
        for frame in sse::frames(&chat) {
            let parsed;
            let data = match SseEvent::data_only(frame) {
                Some(data) => data,
                None => {
                    parsed = SseEvent::parse(frame);
                    match parsed.data.as_deref() {
                        Some(data) => data,
                        None => continue,
                    }
                }
            };
            if data.trim_ascii() != b"[DONE]" {
                self.events.on_chunk(data, &mut out);
            }
        }
        if done {
            self.events.finish(self.chat.usage(), &mut out);
            return Ok(Relayed::Done(Bytes::from(out)));
        }
        Ok(Relayed::Forward(Bytes::from(out)))
    }

    pub fn usage(&self) -> Option<Usage> {
        self.chat.usage()
    }
}
