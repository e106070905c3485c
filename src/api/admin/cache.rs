//! `DELETE /admin/v1/cache[?model=NAME]`: empties the result cache, or one model's entries
//! (after a model's upstream changed, or a bad answer was stored). Works with or without the
//! control plane; admin keys only.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::Body;
use crate::call::context::RequestCtx;
use crate::error::{ErrorKind, GatewayError};

pub async fn handle(
    ctx: &RequestCtx,
    req: &Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    if req.method() != Method::DELETE {
        return Err(GatewayError::method_not_allowed(
            req.method(),
            "/admin/v1/cache",
            "DELETE",
        ));
    }
    let Some(cache) = ctx.app.cache.as_ref() else {
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            "The result cache is not configured (add a cache: section).",
        )
        .with_code("cache_not_configured"));
    };
    let model = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("model="))
            .map(crate::api::percent_decode)
    });
    let deleted = cache.clear(model.as_deref()).await?;
    Ok(crate::api::json(
        StatusCode::OK,
        json!({"object": "cache.deletion", "model": model, "deleted": deleted}).to_string(),
    ))
}
