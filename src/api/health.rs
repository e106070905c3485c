//! `GET /health` (the process answers), `GET /ready` (config loaded, the usage database tried
//! and migrated, the control tables read once, not draining, a route available for every model) and `GET /metrics` (Prometheus text).

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use crate::body::{Body, full};
use crate::call::context::RequestCtx;
use crate::routing::health::Availability;

pub fn live() -> Response<Body> {
    super::json(StatusCode::OK, &br#"{"status":"ok"}"#[..])
}

pub fn ready(ctx: &RequestCtx) -> Response<Body> {
    if ctx.app.is_draining() {
        return super::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "draining"}).to_string(),
        );
    }
    if ctx
        .app
        .usage
        .as_ref()
        .is_some_and(|sink| !sink.is_started())
    {
        return super::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "starting", "waiting_for": "usage database"}).to_string(),
        );
    }
    if ctx.app.control.as_ref().is_some_and(|c| !c.is_loaded()) {
        return super::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "starting", "waiting_for": "control plane"}).to_string(),
        );
    }
    let now = Instant::now();
    let unserved: Vec<&str> = ctx
        .runtime
        .models()
        .iter()
        // A model without routes (just added through the control plane) has nothing to wait for.
        .filter(|m| m.routes().next().is_some() && !m.has_available_route(now))
        .map(|m| &*m.name)
        .collect();
    match unserved.is_empty() {
        true => super::json(
            StatusCode::OK,
            json!({"status": "ready", "models": ctx.runtime.models().len()}).to_string(),
        ),
        false => super::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unready", "models_without_route": unserved}).to_string(),
        ),
    }
}

pub fn metrics(ctx: &RequestCtx) -> Response<Body> {
    // Health gauges are computed at scrape time rather than tracked on every transition.
    let now = Instant::now();
    for (provider, routes) in ctx.runtime.provider_routes() {
        let healthy = provider.is_up()
            && (routes.is_empty()
                || routes
                    .iter()
                    .any(|r| r.availability(now) != Availability::Ejected));
        crate::metrics::set_upstream_healthy(&provider.id, healthy);
    }
    ctx.app.metrics.run_upkeep();
    let mut response = Response::new(full(ctx.app.metrics.render()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
