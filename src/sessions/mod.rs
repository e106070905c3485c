//! Server-side conversations. A client names a session (`session_id` in the body, stripped
//! before forwarding, or `x-session-id`) and sends only the turn's new messages; the gateway
//! sends upstream `[system] + [summary] + history + new` and, after a successful reply, appends
//! the new messages and the reply. History beyond `compression_threshold` tokens is summarised
//! after the reply is sent ([`compress`]); a turn that would carry more than `max_tokens`
//! compresses first.
//!
//! Token counts are taken once per message, when it is appended, and stored with it: a turn
//! never re-tokenises the history.

pub mod compaction;
pub mod redis;
pub mod session;
pub mod store;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::config::{RedisTarget, SessionStoreKind, SessionsConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::tokens::Encoding;
use session::{Append, Compaction, Session, StoreError, StoredMessage};
use store::{MemoryStore, Store};

/// Longest session id; ids are `[A-Za-z0-9._:-]{1,128}`.
const MAX_ID: usize = 128;

pub struct Sessions {
    store: Store,
    max_tokens: u64,
    threshold: u64,
    keep_recent: usize,
    pub summary_model: Option<String>,
    /// Sessions being compressed by this process (one compression per session at a time).
    compressing: Mutex<HashSet<String>>,
    /// Told whenever a compression ends, for turns waiting to claim their session.
    released: Notify,
}

/// A turn in flight: what to send upstream, and what to append once the reply is in.
pub struct Turn {
    pub id: String,
    /// The body for the upstream: the client's fields, `session_id` removed, messages expanded.
    pub body: Bytes,
    owner: Option<String>,
    /// The request's system prompt, which replaces the stored one.
    system: Option<StoredMessage>,
    new: Vec<StoredMessage>,
    /// History tokens once this turn's messages are appended (the reply not included).
    tokens_after: u64,
    /// How the session's model counts tokens.
    pub encoding: Encoding,
}

/// What `GET /v1/sessions/{id}` shows.
pub struct Snapshot {
    pub session: Session,
    pub tokens: u64,
}

// === impl Sessions ===

impl Sessions {
    /// `redis`: the sessions' Redis (`sessions.redis_url`, else `redis.url`), for `store: redis`.
    pub fn new(config: &SessionsConfig, redis: Option<RedisTarget>) -> Result<Self, String> {
        let ttl = config.ttl.0;
        let store = match (config.store, redis) {
            (SessionStoreKind::Redis, Some(target)) => {
                Store::Redis(redis::RedisStore::connect(&target, ttl, config.timeout.0)?)
            }
            (SessionStoreKind::Redis, None) => {
                return Err("sessions.redis_url: required with store: redis".into());
            }
            (SessionStoreKind::Memory, _) => {
                Store::Memory(MemoryStore::new(config.max_sessions, ttl))
            }
        };
        Ok(Self {
            store,
            max_tokens: u64::from(config.max_tokens),
            threshold: u64::from(config.compression_threshold),
            keep_recent: config.keep_recent as usize,
            summary_model: config.summary_model.clone(),
            compressing: Mutex::new(HashSet::new()),
            released: Notify::new(),
        })
    }

    pub fn budget(&self) -> compaction::Budget {
        compaction::Budget {
            max_tokens: self.max_tokens,
            threshold: self.threshold,
            keep_recent: self.keep_recent,
        }
    }

    /// Starts a turn: loads the session (compressing it first if it is over `max_tokens`) and
    /// builds the upstream body. `compress_now` runs a compression for this session.
    pub async fn begin<C, F>(
        &self,
        id: &str,
        owner: Option<&str>,
        body: &[u8],
        encoding: Encoding,
        compress_now: C,
    ) -> Result<Turn, GatewayError>
    where
        C: FnOnce() -> F,
        F: Future<Output = ()>,
    {
        crate::request::check_tree(body)?;
        let mut fields: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| GatewayError::invalid_request(format!("invalid JSON body: {e}")))?;
        fields.remove("session_id");
        let Some(Value::Array(messages)) = fields.remove("messages") else {
            return Err(
                GatewayError::invalid_request("'messages' must be an array").with_param("messages")
            );
        };
        let (system, new) = split_system(messages, encoding)?;

        let mut session = self.load_owned(id, owner).await?.unwrap_or_default();
        // What the turn carries before its new messages, the request's system prompt (if any)
        // in place of the stored one.
        let tokens_of = |m: Option<&StoredMessage>| m.map_or(0, |m| u64::from(m.tokens));
        let carried = |s: &Session| match &system {
            Some(new) => s.tokens() - tokens_of(s.system.as_ref()) + u64::from(new.tokens),
            None => s.tokens(),
        };
        if carried(&session) > self.max_tokens {
            compress_now().await;
            session = self.load_owned(id, owner).await?.unwrap_or_default();
        }
        // `max_tokens` is a hard ceiling: if the history is still over it (recent messages alone
        // exceed it), the oldest are left out of this turn (they stay stored).
        let carried_tokens = carried(&session);
        let skip = compaction::oldest_over(&session.messages, carried_tokens, self.max_tokens);
        if skip > 0 {
            crate::metrics::session_compressed("truncated");
        }
        let new_tokens: u64 = new.iter().map(|m| u64::from(m.tokens)).sum();
        let tokens_after = carried_tokens + new_tokens;

        let history = system
            .as_ref()
            .or(session.system.as_ref())
            .into_iter()
            .chain(&session.summary)
            .chain(&session.messages[skip..])
            .chain(&new);

        let body = build_body(history, &fields)?;
        Ok(Turn {
            id: id.to_owned(),
            body,
            owner: owner.map(str::to_owned),
            system,
            new,
            tokens_after,
            encoding,
        })
    }

    /// Appends the turn's messages and the reply. Returns whether the session is now over the
    /// compression threshold.
    pub async fn finish(&self, turn: Turn, reply: Box<RawValue>) -> Result<bool, GatewayError> {
        let reply_tokens = message_tokens(turn.encoding, &reply);
        let mut messages = turn.new;
        messages.push(StoredMessage::new(reply_tokens, reply));
        let append = Append {
            owner: turn.owner.as_deref(),
            now: crate::clock::unix_now(),
            system: turn.system,
            messages,
        };
        self.store
            .append(&turn.id, append)
            .await
            .map_err(store_error)?;
        crate::metrics::session_turn();
        Ok(turn.tokens_after + reply_tokens > self.threshold)
    }

    /// The session as its owner (or an admin, `owner: None` with `any_owner`) may see it.
    /// Live sessions, for the dashboard: `(count, complete)`.
    pub async fn count(&self) -> Option<(u64, bool)> {
        self.store.count().await.ok()
    }

    pub async fn get(
        &self,
        id: &str,
        owner: Option<&str>,
        any_owner: bool,
    ) -> Result<Snapshot, GatewayError> {
        let session = match any_owner {
            true => self.store.load(id).await.map_err(store_error)?,
            false => self.load_owned(id, owner).await?,
        };
        let session = session.ok_or_else(|| not_found(id))?;
        Ok(Snapshot {
            tokens: session.tokens(),
            session,
        })
    }

    pub async fn delete(
        &self,
        id: &str,
        owner: Option<&str>,
        any_owner: bool,
    ) -> Result<(), GatewayError> {
        if !any_owner {
            self.load_owned(id, owner)
                .await?
                .ok_or_else(|| not_found(id))?;
        }
        match self.store.delete(id).await.map_err(store_error)? {
            true => Ok(()),
            false => Err(not_found(id)),
        }
    }

    /// Loads a session, refusing one that belongs to another key.
    async fn load_owned(
        &self,
        id: &str,
        owner: Option<&str>,
    ) -> Result<Option<Session>, GatewayError> {
        let session = self.store.load(id).await.map_err(store_error)?;
        match &session {
            Some(s) if s.owner.as_deref() != owner => Err(store_error(StoreError::Forbidden)),
            _ => Ok(session),
        }
    }

    /// Claims the session for one compression in this process; `None` if one is running.
    pub fn claim(&self, id: &str) -> Option<Claim<'_>> {
        let mut running = self.compressing.lock().unwrap_or_else(|p| p.into_inner());
        running.insert(id.to_owned()).then(|| Claim {
            sessions: self,
            id: id.to_owned(),
        })
    }

    /// Claims the session, waiting up to `wait` for a compression running in this process to end.
    pub async fn claim_within(&self, id: &str, wait: Duration) -> Option<Claim<'_>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the claim is tried, so a release in between is not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(claim) = self.claim(id) {
                return Some(claim);
            }
            tokio::time::timeout_at(deadline, released).await.ok()?;
        }
    }

    /// Brings a session's history under the compression threshold: everything but the
    /// `keep_recent` most recent messages (a tool call never parted from its results) is replaced
    /// by a summary from `summarize`, or, if that fails, the oldest messages are dropped until it
    /// fits. A compression that lost a race (another replica compressed first) changes nothing.
    pub async fn compress<S, F>(
        &self,
        id: &str,
        encoding: Encoding,
        summarize: S,
    ) -> Result<(), GatewayError>
    where
        S: FnOnce(Vec<Value>) -> F,
        F: Future<Output = Result<String, GatewayError>>,
    {
        let Some(session) = self.store.load(id).await.map_err(store_error)? else {
            return Ok(());
        };
        if session.tokens() <= self.threshold {
            return Ok(());
        }
        let plan = compaction::plan(
            id,
            session.summary.as_ref(),
            &session.messages,
            session.tokens(),
            self.budget(),
            encoding,
            summarize,
        )
        .await;
        let compaction = Compaction {
            offset: session.offset,
            remove: plan.remove,
            summary: plan.summary,
        };
        if compaction.remove > 0 {
            self.store
                .compact(id, compaction)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }
}

/// Held while this process compresses a session.
pub struct Claim<'a> {
    sessions: &'a Sessions,
    id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut running = self
            .sessions
            .compressing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.remove(&self.id);
        drop(running);
        self.sessions.released.notify_waiters();
    }
}

/// A session id from the body or the header: `[A-Za-z0-9._:-]{1,128}`, else a 400.
pub fn check_id(id: &str) -> Result<&str, GatewayError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    match valid {
        true => Ok(id),
        false => Err(GatewayError::invalid_request(
            "session ids are 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
        )
        .with_param("session_id")
        .with_code("invalid_session_id")),
    }
}

/// Splits the request's messages: a leading system (or developer) message replaces the
/// stored system prompt; the rest are the turn's new messages.
fn split_system(
    messages: Vec<Value>,
    encoding: Encoding,
) -> Result<(Option<StoredMessage>, Vec<StoredMessage>), GatewayError> {
    let mut system = None;
    let mut new = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        if !message.is_object() {
            return Err(
                GatewayError::invalid_request(format!("messages[{i}] must be an object"))
                    .with_param("messages"),
            );
        }
        let tokens = encoding.count_message(&message);
        let json = serde_json::value::to_raw_value(&message)
            .map_err(|e| GatewayError::invalid_request(format!("messages[{i}]: {e}")))?;
        let role = message.get("role").and_then(Value::as_str);
        let stored = StoredMessage::new(tokens, json);
        match role {
            Some("system" | "developer") if i == 0 => system = Some(stored),
            _ => new.push(stored),
        }
    }
    Ok((system, new))
}

/// `{"messages":[…stored JSON…],…the client's other fields…}`: stored messages are copied as
/// the bytes they were stored as, never re-serialised.
fn build_body<'a>(
    messages: impl Iterator<Item = &'a StoredMessage>,
    fields: &Map<String, Value>,
) -> Result<Bytes, GatewayError> {
    let rest = serde_json::to_vec(fields)
        .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("body: {e}")))?;
    let mut out = Vec::with_capacity(rest.len() + 4096);
    out.extend_from_slice(b"{\"messages\":[");
    for (i, m) in messages.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(m.json.get().as_bytes());
    }
    out.push(b']');
    // `rest` is `{…}`: continue the object with its fields, if any.
    if rest.len() > 2 {
        out.push(b',');
        out.extend_from_slice(&rest[1..]);
    } else {
        out.push(b'}');
    }
    Ok(Bytes::from(out))
}

fn message_tokens(encoding: Encoding, json: &RawValue) -> u64 {
    serde_json::from_str::<Value>(json.get())
        .map(|m| encoding.count_message(&m))
        .unwrap_or(0)
}

fn store_error(e: StoreError) -> GatewayError {
    match e {
        StoreError::Forbidden => GatewayError::new(
            ErrorKind::SessionForbidden,
            "this session belongs to another key",
        ),
        StoreError::Unavailable(why) => {
            crate::metrics::session_store_error();
            GatewayError::new(
                ErrorKind::SessionStoreUnavailable,
                format!("the session store is unavailable: {why}"),
            )
            .with_retry_after(Some(Duration::from_secs(1)))
        }
    }
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::new(ErrorKind::NotFound, format!("no session {id:?}"))
        .with_code("session_not_found")
}

#[cfg(test)]
mod tests;
