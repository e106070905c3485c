//! Sessions at the HTTP edge: a chat turn's expansion and storage (called by `chat`), the
//! compression that follows a turn (summary calls routed like any request, each with its own
//! ledger row, `purpose = 'summary'`), and `GET`/`DELETE /v1/sessions/{id}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::ledger::Draft;
use super::{Rejection, RequestCtx};
use crate::body::Body;
use crate::config::ModelType;
use crate::error::{ErrorKind, GatewayError};
use crate::request::ChatRequest;
use crate::routing::ModelEntry;
use crate::routing::relay::{Finishing, StreamFinisher};
use crate::sessions::{Turn, check_id, reply};
use crate::state::App;
use crate::tokens::Encoding;

pub const SESSION_HEADER: &str = "x-session-id";

/// Longest a turn waits for another compression of its session to finish.
const COMPRESSION_WAIT: Duration = Duration::from_secs(60);

/// The `x-session-id` request header, if any (the body's `session_id` wins over it).
pub fn session_header(headers: &HeaderMap) -> Result<Option<String>, GatewayError> {
    match headers.get(SESSION_HEADER) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_owned())).map_err(|_| {
            GatewayError::invalid_request("x-session-id must be ASCII")
                .with_code("invalid_session_id")
        }),
    }
}

pub fn session_header_out<B>(response: &mut Response<B>, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert(SESSION_HEADER, v);
    }
}

/// Expands a turn: stored history in, the upstream body out. A session over `max_tokens`
/// is compressed first (waiting for a compression already running).
pub async fn begin_turn(
    ctx: &RequestCtx,
    id: &str,
    owner: Option<&str>,
    model: &ModelEntry,
    chat: &ChatRequest,
) -> Result<Turn, GatewayError> {
    let id = check_id(id)?;
    let encoding = model.encoding();
    encoding.ready().await;
    let app = ctx.app.clone();
    // Boxed: the compression's future holds a whole summary request's.
    let compress_now = || Box::pin(compress(app, id.to_owned(), encoding, true));
    ctx.app
        .sessions
        .begin(id, owner, &chat.body, encoding, compress_now)
        .await
}

/// Stores a non-stream turn before the answer goes out (so the client's next turn finds it),
/// then starts a compression if the session grew past its threshold.
pub async fn store_reply(
    ctx: &RequestCtx,
    turn: Turn,
    body: &[u8],
    response: &mut Response<Body>,
) -> Result<(), GatewayError> {
    let message = reply::from_completion(body).ok_or_else(|| {
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            "the answer had no message to store",
        )
    })?;
    let (id, encoding) = (turn.id.clone(), turn.encoding);
    if ctx.app.sessions.finish(turn, message).await? {
        let app = ctx.app.clone();
        ctx.app
            .background
            .spawn(compress(app, id.clone(), encoding, false));
    }
    session_header_out(response, &id);
    Ok(())
}

/// A stream's turn is stored when the upstream finished, before `[DONE]` is released.
pub fn stream_finisher(ctx: &RequestCtx, turn: Turn) -> Box<dyn StreamFinisher> {
    Box::new(StoreStreamedTurn {
        app: ctx.app.clone(),
        turn,
    })
}

struct StoreStreamedTurn {
    app: Arc<App>,
    turn: Turn,
}

impl StreamFinisher for StoreStreamedTurn {
    fn finish(self: Box<Self>, sent: Vec<Bytes>) -> Finishing {
        Box::pin(async move {
            let message = reply::from_chunks(&sent).ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::UpstreamFailed,
                    "the stream had no message to store",
                )
            })?;
            let (id, encoding) = (self.turn.id.clone(), self.turn.encoding);
            if self.app.sessions.finish(self.turn, message).await? {
                let app = self.app.clone();
                self.app
                    .background
                    .spawn(compress(app, id, encoding, false));
            }
            Ok(())
        })
    }
}

/// Compresses one session. In the background (after a reply) it gives way to a compression
/// already running; before a turn (`wait`) it waits for that one, then checks again.
async fn compress(app: Arc<App>, id: String, encoding: Encoding, wait: bool) {
    let started = Instant::now();
    let claim = loop {
        match app.sessions.claim(&id) {
            Some(claim) => break claim,
            None if wait && started.elapsed() < COMPRESSION_WAIT => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None => return,
        }
    };
    let summarize = |messages| summarize(app.clone(), id.clone(), messages);
    if let Err(e) = app.sessions.compress(&id, encoding, summarize).await {
        tracing::warn!(session = %id, error = %e, "session compression failed");
    }
    drop(claim);
}

/// One summary call to `sessions.summary_model`, through the router, with its own ledger row.
async fn summarize(
    app: Arc<App>,
    session: String,
    messages: Vec<Value>,
) -> Result<String, GatewayError> {
    let runtime = app.runtime();
    let name = app.sessions.summary_model.clone().ok_or_else(|| {
        GatewayError::new(ErrorKind::Internal, "no sessions.summary_model configured")
    })?;
    let model = runtime.model(&name, ModelType::Chat)?.clone();
    let body = json!({"model": name, "messages": messages}).to_string();
    let chat = ChatRequest::parse(Bytes::from(body))?;
    let started = Instant::now();
    let ctx = RequestCtx {
        deadline: started + runtime.request_timeout,
        request_id: app.next_request_id(),
        app: app.clone(),
        runtime,
        started,
    };
    let draft = Draft::new(&ctx, None, &model, false, "summary", chat.body.clone())
        .in_session(Some(&session));
    let served = super::chat::complete(&ctx, &model, &chat, draft, None)
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

/// `GET /v1/sessions/{id}` (`?messages=true` adds the stored messages) and `DELETE`.
pub async fn handle(
    ctx: &RequestCtx,
    req: &Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, Rejection> {
    let key = ctx.runtime.keys.authenticate(req.headers())?;
    let id = check_id(id)?;
    let owner = key.as_ref().map(|k| &*k.name);
    let admin = key.as_ref().is_some_and(|k| k.admin);
    let sessions = &ctx.app.sessions;
    if req.method() == http::Method::DELETE {
        sessions.delete(id, owner, admin).await?;
        let body = json!({"id": id, "object": "session.deleted", "deleted": true});
        return Ok(super::json(StatusCode::OK, body.to_string()));
    }
    let snapshot = sessions.get(id, owner, admin).await?;
    let s = &snapshot.session;
    let parse = |raw: &serde_json::value::RawValue| {
        serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null)
    };
    let summary = s
        .summary
        .as_ref()
        .map(|m| parse(&m.json))
        .and_then(|m| m.get("content").cloned());
    let mut body = json!({
        "id": id, "object": "session", "message_count": s.messages.len(),
        "token_count": snapshot.tokens, "summary": summary, "compressions": s.compressions,
        "created_at": s.created_at, "last_activity": s.last_activity,
    });
    let with_messages = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "messages=true"));
    if with_messages {
        let system = s.system.as_ref().map(|m| parse(&m.json));
        let messages: Vec<Value> = s.messages.iter().map(|m| parse(&m.json)).collect();
        body["system"] = system.unwrap_or(Value::Null);
        body["messages"] = Value::Array(messages);
    }
    Ok(super::json(StatusCode::OK, body.to_string()))
}
