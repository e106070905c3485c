//! What a session holds, as both stores read and write it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One message as stored: its JSON exactly as it goes upstream, and its token count (with the
/// per-message overhead), counted once when it was appended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    #[serde(rename = "t")]
    pub tokens: u32,
    #[serde(rename = "m")]
    pub json: Arc<RawValue>,
}

/// A session as read from the store.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The key name that created it (`None` on an open gateway).
    pub owner: Option<String>,
    pub created_at: u64,
    pub last_activity: u64,
    pub system: Option<StoredMessage>,
    /// The summary of the turns compressed away, as a system message.
    pub summary: Option<StoredMessage>,
    pub messages: Vec<StoredMessage>,
    pub compressions: u32,
    /// Messages removed from the front so far: a compression applies only if it is unchanged.
    pub offset: u64,
}

/// One turn's additions.
pub struct Append<'a> {
    pub owner: Option<&'a str>,
    pub now: u64,
    /// Replaces the stored system prompt when the turn brought one.
    pub system: Option<StoredMessage>,
    pub messages: Vec<StoredMessage>,
}

/// Replace the first `remove` messages (read at `offset`) with `summary` (or just drop them).
pub struct Compaction {
    pub offset: u64,
    pub remove: usize,
    pub summary: Option<StoredMessage>,
}

#[derive(Debug)]
pub enum StoreError {
    /// The session belongs to another key.
    Forbidden,
    /// Redis did not answer in time, or failed.
    Unavailable(String),
}

// === impl StoredMessage ===

impl StoredMessage {
    pub fn new(tokens: u64, json: Box<RawValue>) -> Self {
        Self {
            tokens: tokens.min(u64::from(u32::MAX)) as u32,
            json: Arc::from(json),
        }
    }

    pub fn role(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Role {
            role: Option<String>,
        }
        serde_json::from_str::<Role>(self.json.get())
            .ok()
            .and_then(|r| r.role)
    }
}

// === impl Session ===

impl Session {
    /// Tokens the next turn carries before its new messages: system prompt, summary, history.
    pub fn tokens(&self) -> u64 {
        let fixed = [&self.system, &self.summary]
            .into_iter()
            .flatten()
            .map(|m| u64::from(m.tokens));
        fixed
            .chain(self.messages.iter().map(|m| u64::from(m.tokens)))
            .sum()
    }
}
