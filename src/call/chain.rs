//! A stored-response chain on its way through: expanded before dispatch (the previous
//! response's context and this request's items, references resolved, as chat messages) and
//! stored after the answer (this response, with the context the next one starts from). A chain
//! past the sessions' `compression_threshold` is compressed like a session, off the request
//! path, so an agent loop never outgrows the model's window.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::compress::summarize;
use crate::error::{ErrorKind, GatewayError};
use crate::responses::request::{ResponsesRequest, item_type, to_messages};
use crate::responses::store::{StoreError, StoredResponse};
use crate::sessions::compaction;
use crate::sessions::session::StoredMessage;
use crate::state::App;
use crate::tokens::{Encoding, PER_MESSAGE};
use crate::trace::{Active, Attr, Kind};

/// Longest a request waits for a compression of its chain already running.
const COMPRESSION_WAIT: Duration = Duration::from_secs(60);

/// What a response's storing needs from its request.
pub struct Chain {
    app: Arc<App>,
    owner: Option<String>,
    store: bool,
    encoding: Encoding,
    /// This request's input items, references resolved.
    input: Vec<Value>,
    /// The previous response's context, and its summary.
    context: Vec<StoredMessage>,
    summary: Option<StoredMessage>,
    compressions: u32,
    /// The chat messages of this request's input.
    new_messages: Vec<Value>,
    /// The request's span, for the chain's compression.
    trace: Option<Arc<Active>>,
}

/// The chat messages to send and the chain to store the answer in.
pub struct Expanded {
    pub messages: Vec<Value>,
    pub chain: Chain,
}

// === impl Chain ===

impl Chain {
    /// Expands a request: instructions, the previous response's context (compressed first if
    /// it is over `max_tokens`), then this request's items with their references resolved.
    pub async fn expand(
        app: &Arc<App>,
        req: &ResponsesRequest,
        owner: Option<&str>,
        encoding: Encoding,
        trace: Option<Arc<Active>>,
    ) -> Result<Expanded, GatewayError> {
        let (context, summary, compressions) = match &req.previous_response_id {
            None => (Vec::new(), None, 0),
            Some(id) => {
                let span = trace
                    .as_ref()
                    .map(|t| Arc::new(t.child("responses.chain.expand", Kind::Internal)));
                let previous = previous(app, id, owner, encoding, span.clone()).await;
                if let Some(span) = &span {
                    span.set_str(Attr::PreviousResponseId, id);
                    span.finish(previous.as_ref().err().map(|e| e.message()));
                }
                let previous = previous?;
                (previous.context, previous.summary, previous.compressions)
            }
        };
        let mut input = Vec::with_capacity(req.input.len());
        for item in &req.input {
            match item_type(item) {
                "item_reference" => input.push(resolve(app, item, owner).await?),
                _ => input.push(item.clone()),
            }
        }
        let mut messages = Vec::with_capacity(context.len() + input.len() + 2);
        if let Some(text) = &req.instructions {
            messages.push(json!({"role": "system", "content": text}));
        }
        for stored in summary.iter().chain(&context) {
            messages.push(serde_json::from_str(stored.json.get()).unwrap_or(Value::Null));
        }
        let before = messages.len();
        let messages = to_messages(messages, &input)?;
        let new_messages = messages[before..].to_vec();
        Ok(Expanded {
            messages,
            chain: Chain {
                app: app.clone(),
                owner: owner.map(str::to_owned),
                store: req.store,
                encoding,
                input,
                context,
                summary,
                compressions,
                new_messages,
                trace,
            },
        })
    }

    /// Stores the finished response (unless `store: false`) before the client sees it end, so
    /// its id works at once; then compresses its context in the background if it is long.
    pub async fn store(self, response: &Value) -> Result<(), GatewayError> {
        if !self.store {
            return Ok(());
        }
        let output = response["output"].as_array().cloned().unwrap_or_default();
        // The answer as the chat messages a continuation replays (text and calls).
        let answer = to_messages(Vec::new(), &output).unwrap_or_default();
        let encoding = self.encoding;
        let mut context = self.context;
        for message in self.new_messages.iter().chain(&answer) {
            let json = serde_json::value::to_raw_value(message)
                .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
            // An upper bound, not a count (see `StoredResponse::exact`): no tiktoken here.
            let bound = json.get().len() as u64 + PER_MESSAGE;
            context.push(StoredMessage::new(bound, json));
        }
        let id = response["id"].as_str().unwrap_or_default().to_owned();
        let stored = StoredResponse {
            id: id.clone(),
            owner: self.owner,
            response: response.clone(),
            input: self.input,
            context,
            summary: self.summary,
            compressions: self.compressions,
            exact: false,
        };
        let long = stored.context_tokens() > self.app.sessions.budget().threshold;
        self.app.responses.put(stored).await.map_err(store_error)?;
        if long {
            let app = self.app.clone();
            let trace = self.trace;
            self.app
                .background
                .spawn(async move { compress(app, id, encoding, false, trace).await });
        }
        Ok(())
    }
}

/// A stored response as `owner` may see it: another key's response is "not found".
pub async fn stored(
    app: &App,
    id: &str,
    owner: Option<&str>,
) -> Result<Option<StoredResponse>, GatewayError> {
    let response = app.responses.get(id).await.map_err(store_error)?;
    Ok(response.filter(|r| r.owner.as_deref() == owner))
}

/// Deletes `owner`'s response; false if there was none.
pub async fn delete(app: &App, id: &str, owner: Option<&str>) -> Result<bool, GatewayError> {
    if stored(app, id, owner).await?.is_none() {
        return Ok(false);
    }
    app.responses.delete(id).await.map_err(store_error)
}

/// The previous response of a chain, its context within `max_tokens`.
async fn previous(
    app: &Arc<App>,
    id: &str,
    owner: Option<&str>,
    encoding: Encoding,
    trace: Option<Arc<Active>>,
) -> Result<StoredResponse, GatewayError> {
    let not_found = || {
        GatewayError::invalid_request(format!("Previous response with id '{id}' not found."))
            .with_param("previous_response_id")
            .with_code("previous_response_not_found")
    };
    let mut previous = stored(app, id, owner).await?.ok_or_else(not_found)?;
    let budget = app.sessions.budget();
    if previous.context_tokens() > budget.max_tokens {
        Box::pin(compress(app.clone(), id.to_owned(), encoding, true, trace)).await;
        previous = stored(app, id, owner).await?.ok_or_else(not_found)?;
    }
    // Still over (the recent turns alone exceed it): the oldest are left out of this request.
    let tokens = previous.context_tokens();
    let skip = compaction::oldest_over(&previous.context, tokens, budget.max_tokens);
    previous.context.drain(..skip);
    Ok(previous)
}

/// The stored item an `item_reference` names (404 when unknown, unstored or another key's).
async fn resolve(app: &App, item: &Value, owner: Option<&str>) -> Result<Value, GatewayError> {
    let id = item["id"].as_str().unwrap_or_default();
    let response = app.responses.by_item(id).await.map_err(store_error)?;
    let found = response
        .filter(|r| r.owner.as_deref() == owner)
        .and_then(|r| r.item(id).cloned());
    found.ok_or_else(|| {
        GatewayError::new(
            ErrorKind::NotFound,
            format!(
                "Item with id '{id}' not found. Items are not persisted when `store` is set to false. \
                 Try again with `store` set to true, or remove this item from your input."
            ),
        )
        .with_param("input")
    })
}

/// Compresses a stored response's context under the threshold: everything but the
/// `keep_recent` most recent messages (a tool call never parted from its output) folded into a
/// summary, or, if that fails, the oldest dropped. One compression per chain at a time in this
/// process; `wait` waits for one already running.
/// `parent`: the span of the request that led to it, when its trace is recorded.
async fn compress(
    app: Arc<App>,
    id: String,
    encoding: Encoding,
    wait: bool,
    parent: Option<Arc<Active>>,
) {
    let claim_id = format!("response:{id}");
    let claim = match wait {
        true => app.sessions.claim_within(&claim_id, COMPRESSION_WAIT).await,
        false => app.sessions.claim(&claim_id),
    };
    let Some(claim) = claim else { return };
    let span = parent.map(|p| Arc::new(p.child("responses.chain.compress", Kind::Internal)));
    if let Some(span) = &span {
        span.set_str(Attr::ResponseId, &id);
    }
    let result = compact(&app, &id, encoding, span.clone()).await;
    if let Err(e) = &result {
        tracing::warn!(response = %id, error = %e, "response chain compression failed");
    }
    if let Some(span) = &span {
        span.finish(result.as_ref().err().map(|e| e.message()));
    }
    drop(claim);
}

async fn compact(
    app: &Arc<App>,
    id: &str,
    encoding: Encoding,
    trace: Option<Arc<Active>>,
) -> Result<(), GatewayError> {
    let Some(mut stored) = app.responses.get(id).await.map_err(store_error)? else {
        return Ok(());
    };
    let budget = app.sessions.budget();
    if !stored.exact {
        // The bounds passed the threshold: count exactly (tiktoken, on the blocking pool).
        encoding.ready().await;
        let context = std::mem::take(&mut stored.context);
        stored.context = tokio::task::spawn_blocking(move || recount(context, encoding))
            .await
            .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
        stored.exact = true;
        if stored.context_tokens() <= budget.threshold {
            return app.responses.put(stored).await.map_err(store_error);
        }
    }
    if stored.context_tokens() <= budget.threshold {
        return Ok(());
    }
    // The summary call's attempts nest under the compression's span.
    let summarize = |request| summarize(app.clone(), id.to_owned(), request, trace.clone());
    let plan = compaction::plan(
        id,
        stored.summary.as_ref(),
        &stored.context,
        stored.context_tokens(),
        budget,
        encoding,
        summarize,
    )
    .await;
    stored
        .context
        .drain(..plan.remove.min(stored.context.len()));
    if plan.summary.is_some() {
        stored.summary = plan.summary;
    }
    stored.compressions += 1;
    app.responses.put(stored).await.map_err(store_error)
}

/// The messages with their exact token counts.
fn recount(context: Vec<StoredMessage>, encoding: Encoding) -> Vec<StoredMessage> {
    context
        .into_iter()
        .map(|m| {
            let tokens = serde_json::from_str::<Value>(m.json.get())
                .map_or(0, |message| encoding.count_message(&message));
            StoredMessage {
                tokens: tokens.min(u64::from(u32::MAX)) as u32,
                json: m.json,
            }
        })
        .collect()
}

fn store_error(e: StoreError) -> GatewayError {
    let StoreError::Unavailable(why) = e;
    GatewayError::new(
        ErrorKind::SessionStoreUnavailable,
        format!("the responses store is unavailable: {why}"),
    )
    .with_code("response_store_unavailable")
    .with_retry_after(Some(Duration::from_secs(1)))
}
