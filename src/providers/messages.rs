//! A chat-speaking route's stream for a Messages client (`/v1/messages` on an OpenAI, DashScope
//! or mock route): the adapter's own relay reads the upstream (usage, errors, what the ledger
//! counts) and each chat chunk it passes on becomes Anthropic's events right here, as it
//! arrives. The relay's output is the client's: nothing is decoded a second time.

use bytes::Bytes;

use super::types::{Relayed, Usage};
use crate::anthropic::stream::EventStream;
use crate::sse::{self, SseEvent};

/// The events of one message, written from the chat relay's output.
pub struct ChatToMessages {
    events: EventStream,
    started: bool,
}

// === impl ChatToMessages ===

impl ChatToMessages {
    pub fn new(events: EventStream) -> Self {
        Self {
            events,
            started: false,
        }
    }

    /// What the chat relay made of one upstream frame, as events: `message_start` (and a first
    /// `ping`) with the first of them, `message_delta` (with `usage`, the relay's count) and
    /// `message_stop` at the end.
    pub fn on_chat(&mut self, relayed: Relayed, usage: impl FnOnce() -> Option<Usage>) -> Relayed {
        let (chat, done) = match relayed {
            Relayed::Forward(chat) => (chat, false),
            Relayed::Done(chat) => (chat, true),
        };
        if chat.is_empty() && !done {
            return Relayed::Forward(chat);
        }
        let mut out = Vec::with_capacity(chat.len() + 256);
        if !std::mem::replace(&mut self.started, true) {
            self.events.start(&mut out);
        }
        self.translate_frames(&chat, &mut out);
        if done {
            self.events.finish(usage(), &mut out);
            return Relayed::Done(Bytes::from(out));
        }
        Relayed::Forward(Bytes::from(out))
    }

    /// The chat frames' chunks, as events. Usually one frame: then its data is read at once,
    /// without looking for frame ends in it.
    fn translate_frames(&mut self, chat: &[u8], out: &mut Vec<u8>) {
        if let Some(data) = SseEvent::data_only(chat) {
            self.translate(data, out);
            return;
        }
        for frame in sse::frames(chat) {
            if let Some(data) = SseEvent::data(frame) {
                self.translate(&data, out);
            }
        }
    }

    fn translate(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.trim_ascii() != b"[DONE]" {
            self.events.on_chunk(data, out);
        }
    }
}
