//! `GET /v1/sessions/{id}` and `DELETE /v1/sessions/{id}`.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::sessions::check_id;

/// `GET /v1/sessions/{id}` (`?messages=true` adds the stored messages) and `DELETE`.
pub async fn handle(
    ctx: &RequestCtx,
    req: &Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
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
