//! A session's compression: after a reply (in the background) or before a turn that would be
//! over `max_tokens`. The older turns are summarised by `sessions.summary_model`, a call routed
//! like any request with its own ledger row (`purpose = 'summary'`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::context::RequestCtx;
use super::dispatch;
use super::outcome::Recorder;
use super::reply;
use crate::config::ModelType;
use crate::error::{ErrorKind, GatewayError};
use crate::limits::rate::Admission;
use crate::request::ChatRequest;
use crate::state::App;
use crate::tokens::Encoding;
use crate::trace::{Active, Attr, Kind};
use crate::usage::record::Purpose;

/// Longest a turn waits for another compression of its session to finish.
const COMPRESSION_WAIT: Duration = Duration::from_secs(60);

/// Compresses one session. In the background (after a reply) it gives way to a compression
/// already running; before a turn (`wait`) it waits for that one to end, then checks again.
/// `parent`: the span of the request that led to it, when its trace is recorded.
pub async fn compress(
    app: Arc<App>,
    id: String,
    encoding: Encoding,
    wait: bool,
    parent: Option<Arc<Active>>,
) {
    let claim = match wait {
        true => app.sessions.claim_within(&id, COMPRESSION_WAIT).await,
        false => app.sessions.claim(&id),
    };
    let Some(claim) = claim else { return };
    let span = parent.map(|p| Arc::new(p.child("session.compress", Kind::Internal)));
    if let Some(span) = &span {
        span.set_str(Attr::SessionId, &id);
    }
    let summarize = |messages| summarize(app.clone(), id.clone(), messages, span.clone());
    let result = app.sessions.compress(&id, encoding, summarize).await;
    if let Err(e) = &result {
        tracing::warn!(session = %id, error = %e, "session compression failed");
    }
    if let Some(span) = &span {
        span.finish(result.as_ref().err().map(|e| e.message()));
    }
    drop(claim);
}

/// One summary call to `sessions.summary_model`, through the routes, with its own ledger row
/// (its `session_id`: the session's id, or the response's for a chain).
pub async fn summarize(
    app: Arc<App>,
    session: String,
    messages: Vec<Value>,
    trace: Option<Arc<Active>>,
) -> Result<String, GatewayError> {
    let name = app.sessions.summary_model.clone().ok_or_else(|| {
        GatewayError::new(ErrorKind::Internal, "no sessions.summary_model configured")
    })?;
    let mut ctx = RequestCtx::internal(app);
    // The summary call's attempts nest under the compression's span.
    ctx.trace = trace;
    let model = ctx.runtime.model(&name, ModelType::Chat)?;
    let body = json!({"model": name, "messages": messages}).to_string();
    let chat = ChatRequest::parse(Bytes::from(body))?;
    let recorder = Recorder::new(
        &ctx,
        None,
        model,
        Purpose::Summary,
        false,
        chat.body.clone(),
        Admission::default(),
    )
    .in_session(Some(&session));
    let served = dispatch::complete(&ctx, model, &chat, recorder, None)
        .await
        .map_err(|r| r.error)?;
    let message = reply::from_completion(&served.value.0).ok_or_else(|| {
        GatewayError::new(ErrorKind::UpstreamFailed, "the summary had no message")
    })?;
    let message: Value = serde_json::from_str(message.get()).unwrap_or(Value::Null);
    match message.get("content").and_then(Value::as_str) {
        Some(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        _ => Err(GatewayError::new(
            ErrorKind::UpstreamFailed,
            "the summary was empty",
        )),
    }
}
