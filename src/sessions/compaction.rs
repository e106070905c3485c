//! Compaction, shared by sessions and stored-response chains: where to split a history so a
//! tool call is never parted from its results, what to ask the summary model, the summary as a
//! stored system message, and how many of the oldest messages to leave out to fit a budget.

use std::future::Future;

use serde_json::Value;

use super::session::StoredMessage;
use crate::error::{ErrorKind, GatewayError};
use crate::tokens::Encoding;

/// How much history a turn may carry, and when and how it is compressed (the `sessions` config,
/// shared by stored-response chains).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Hard ceiling of the history sent upstream.
    pub max_tokens: u64,
    /// History tokens above which older turns are summarised.
    pub threshold: u64,
    /// Most recent messages kept verbatim.
    pub keep_recent: usize,
}

/// What a compaction does to a history: remove its `remove` oldest messages, and put `summary`
/// (if any) in their place.
pub struct Plan {
    pub remove: usize,
    pub summary: Option<StoredMessage>,
}

/// Plans the compaction of `messages` (`tokens` in all, summary included) under the budget's
/// threshold: everything but the `keep_recent` most recent messages (a tool call never parted
/// from its results) is folded with the earlier `summary` into a new one by `summarize`; if
/// that fails, the oldest messages are dropped until the rest fits. `what` names the history
/// in the log.
pub async fn plan<S, F>(
    what: &str,
    summary: Option<&StoredMessage>,
    messages: &[StoredMessage],
    tokens: u64,
    budget: Budget,
    encoding: Encoding,
    summarize: S,
) -> Plan
where
    S: FnOnce(Vec<Value>) -> F,
    F: Future<Output = Result<String, GatewayError>>,
{
    let keep_from = tool_safe_split(messages, messages.len().saturating_sub(budget.keep_recent));
    let summary = match keep_from {
        0 => Err(GatewayError::new(
            ErrorKind::Internal,
            "nothing old enough to summarise",
        )),
        n => summarize(summary_request(summary, &messages[..n])).await,
    };
    match summary {
        Ok(text) => {
            crate::metrics::session_compressed("summarised");
            Plan {
                remove: keep_from,
                summary: Some(summary_message(&text, encoding)),
            }
        }
        Err(e) => {
            tracing::warn!(history = what, error = %e, "summary failed; dropping the oldest turns");
            crate::metrics::session_compressed("dropped");
            Plan {
                remove: oldest_over(messages, tokens, budget.threshold),
                summary: None,
            }
        }
    }
}

/// Prefix of the system message that carries the summary (stable, so a provider's prompt
/// cache keeps the prefix across turns).
pub const SUMMARY_PREFIX: &str = "Summary of the earlier conversation:\n";

/// What the summary model is asked to do.
const SUMMARY_INSTRUCTIONS: &str = "You compress conversations. Summarise the conversation \
below for an assistant that will continue it without seeing it: keep every fact, name, number, \
decision, preference, tool result and open question; drop pleasantries. If it starts with an \
earlier summary, fold that in. Answer with the summary only, as compact notes in the \
conversation's language.";

/// Moves a split point back so the first kept message is not a tool result: a tool call and
/// its results are summarised (or kept) together.
pub fn tool_safe_split(messages: &[StoredMessage], mut split: usize) -> usize {
    while split > 0 && split < messages.len() && messages[split].role().as_deref() == Some("tool") {
        split -= 1;
    }
    split
}

/// How many of the oldest `messages` to leave out so `tokens` (the history's total) fits under
/// `limit`, never starting the rest on an orphaned tool result.
pub fn oldest_over(messages: &[StoredMessage], mut tokens: u64, limit: u64) -> usize {
    let mut n = 0;
    while tokens > limit && n < messages.len() {
        tokens -= u64::from(messages[n].tokens);
        n += 1;
    }
    while n < messages.len() && messages[n].role().as_deref() == Some("tool") {
        n += 1;
    }
    n
}

/// The summary model's messages: the instructions, then the earlier summary (if any) and the
/// messages to compress as one transcript.
pub fn summary_request(summary: Option<&StoredMessage>, messages: &[StoredMessage]) -> Vec<Value> {
    let mut transcript = String::new();
    if let Some(summary) = summary
        && let Ok(v) = serde_json::from_str::<Value>(summary.json.get())
    {
        let text = v.get("content").and_then(Value::as_str).unwrap_or("");
        transcript.push_str("Earlier summary:\n");
        transcript.push_str(text.strip_prefix(SUMMARY_PREFIX).unwrap_or(text));
        transcript.push_str("\n\nConversation since:\n");
    }
    for m in messages {
        let Ok(v) = serde_json::from_str::<Value>(m.json.get()) else {
            continue;
        };
        let role = v.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = match v.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        transcript.push_str(role);
        transcript.push_str(": ");
        transcript.push_str(&content);
        if let Some(calls) = v.get("tool_calls") {
            transcript.push_str(" [tool calls: ");
            transcript.push_str(&calls.to_string());
            transcript.push(']');
        }
        transcript.push('\n');
    }
    vec![
        serde_json::json!({"role": "system", "content": SUMMARY_INSTRUCTIONS}),
        serde_json::json!({"role": "user", "content": transcript}),
    ]
}

/// The summary as the system message that replaces the turns it folds in.
pub fn summary_message(text: &str, encoding: Encoding) -> StoredMessage {
    let message =
        serde_json::json!({"role": "system", "content": format!("{SUMMARY_PREFIX}{text}")});
    let json = serde_json::value::to_raw_value(&message).unwrap_or_default();
    StoredMessage::new(encoding.count_message(&message), json)
}
