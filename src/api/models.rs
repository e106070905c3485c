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
    let Some(key) = key.filter(|k| ctx.runtime.models().iter().any(|m| !k.allows(&m.name))) else {
        return Ok(super::json(StatusCode::OK, all.clone()));
    };
    // This key sees only part of the list: filter the rendered one.
    let mut list: Value = serde_json::from_slice(all)
        .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
    if let Some(data) = list["data"].as_array_mut() {
        data.retain(|m| m["id"].as_str().is_some_and(|id| key.allows(id)));
    }
    Ok(super::json(StatusCode::OK, json!(list).to_string()))
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
    Ok(super::json(StatusCode::OK, body.clone()))
}
