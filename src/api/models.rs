//! `GET /v1/models` and `GET /v1/models/{id}` from the config (rendered once per config
//! generation), filtered by the caller's allow-list.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::error::{ErrorKind, GatewayError};

pub fn list(ctx: &RequestCtx, req: &Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let all = ctx.runtime.models_json();
    let partial = key.filter(|k| ctx.runtime.models().iter().any(|m| !k.allows(&m.name)));
    let anthropic = is_anthropic(req);
    if partial.is_none() && !anthropic {
        return Ok(super::json(StatusCode::OK, all.clone()));
    }
    let mut list: Value = serde_json::from_slice(all)
        .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
    if let (Some(key), Some(data)) = (partial, list["data"].as_array_mut()) {
        // This key sees only part of the list.
        data.retain(|m| m["id"].as_str().is_some_and(|id| key.allows(id)));
    }
    if anthropic {
        union_shape(&mut list);
    }
    Ok(super::json(StatusCode::OK, list.to_string()))
}

/// An Anthropic client (its SDKs send `anthropic-version`, Claude Code may send only
/// `x-api-key`) gets the union of both lists' shapes (PROTOCOLS.md §12.6): each kind of client
/// ignores the other's fields.
fn is_anthropic(req: &Request<Incoming>) -> bool {
    let headers = req.headers();
    headers.contains_key("anthropic-version") || headers.contains_key("x-api-key")
}

/// Adds Anthropic's `ModelInfo` fields to every model and its paging fields to the list.
fn union_shape(list: &mut Value) {
    let Some(data) = list["data"].as_array_mut() else {
        return;
    };
    for model in data.iter_mut() {
        add_model_info(model);
    }
    let first = data.first().map(|m| m["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|m| m["id"].clone()).unwrap_or(Value::Null);
    list["has_more"] = Value::Bool(false);
    list["first_id"] = first;
    list["last_id"] = last;
}

fn add_model_info(model: &mut Value) {
    let created = model["created"].as_u64().unwrap_or(0);
    model["type"] = json!("model");
    model["display_name"] = model["id"].clone();
    model["created_at"] = Value::String(crate::clock::rfc3339(created));
}

pub fn get(ctx: &RequestCtx, req: &Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let raw = req.uri().path().trim_start_matches("/v1/models/");
    let id = super::percent_decode(raw);
    let not_found = || {
        GatewayError::new(
            ErrorKind::ModelNotFound,
            format!("The model `{id}` does not exist or you do not have access to it."),
        )
    };
    if key.is_some_and(|k| !k.allows(&id)) {
        return Err(not_found().into());
    }
    let body = ctx.runtime.model_json(&id).ok_or_else(not_found)?;
    if !is_anthropic(req) {
        return Ok(super::json(StatusCode::OK, body.clone()));
    }
    let mut model: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
    add_model_info(&mut model);
    Ok(super::json(StatusCode::OK, model.to_string()))
}
