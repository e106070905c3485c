//! A session turn on its way through: expanded before dispatch (stored history in, the upstream
//! body out) and appended after the reply (the new messages and the assistant's answer), before
//! the client can see the answer end, so its next turn always finds this one.

use std::sync::Arc;

use bytes::Bytes;

use super::compress::compress;
use super::context::RequestCtx;
use super::relay::{Finishing, StreamFinisher};
use super::reply;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::Usage;
use crate::request::ChatRequest;
use crate::routing::ModelEntry;
use crate::sessions::{Turn, check_id};
use crate::state::App;
use crate::trace::{Active, Attr, Kind};

/// Expands a turn. A session over `max_tokens` is compressed first (waiting for a compression
/// already running).
pub async fn begin(
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
    let span = ctx.span("session.expand", Kind::Internal).map(Arc::new);
    let parent = span.clone();
    // Boxed: the compression's future holds a whole summary request's.
    let compress_now = || Box::pin(compress(app, id.to_owned(), encoding, true, parent));
    let turn = ctx
        .app
        .sessions
        .begin(id, owner, &chat.body, encoding, compress_now)
        .await;
    if let Some(span) = span {
        span.set_str(Attr::SessionId, id);
        span.finish(turn.as_ref().err().map(|e| e.message()));
    }
    turn
}

/// Stores a non-stream turn before the answer goes out, then starts a compression if the
/// session grew past its threshold.
pub async fn store_reply(ctx: &RequestCtx, turn: Turn, body: &[u8]) -> Result<(), GatewayError> {
    let message = reply::from_completion(body).ok_or_else(|| {
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            "the answer had no message to store",
        )
    })?;
    append(&ctx.app, turn, message, ctx.trace.clone()).await
}

/// A stream's turn is stored when the upstream finished, before `[DONE]` is released.
pub fn stream_finisher(ctx: &RequestCtx, turn: Turn) -> Box<dyn StreamFinisher> {
    Box::new(StoreStreamedTurn {
        app: ctx.app.clone(),
        turn,
        trace: ctx.trace.clone(),
    })
}

struct StoreStreamedTurn {
    app: Arc<App>,
    turn: Turn,
    trace: Option<Arc<Active>>,
}

impl StreamFinisher for StoreStreamedTurn {
    fn finish(self: Box<Self>, sent: Vec<Bytes>, _usage: Option<Usage>) -> Finishing {
        Box::pin(async move {
            let message = reply::from_chunks(&sent).ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::UpstreamFailed,
                    "the stream had no message to store",
                )
            })?;
            append(&self.app, self.turn, message, self.trace).await
        })
    }
}

async fn append(
    app: &Arc<App>,
    turn: Turn,
    message: Box<serde_json::value::RawValue>,
    trace: Option<Arc<Active>>,
) -> Result<(), GatewayError> {
    let (id, encoding) = (turn.id.clone(), turn.encoding);
    if app.sessions.finish(turn, message).await? {
        app.background
            .spawn(compress(app.clone(), id, encoding, false, trace));
    }
    Ok(())
}
