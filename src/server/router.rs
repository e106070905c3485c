//! (method, path) → handler, and what every response gets on the way out: the `x-request-id`
//! header, the request timeout, the error envelope (rendered and logged here, once) and metrics.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::cors;
use crate::api;
use crate::body::Body;
use crate::call::context::{Rejection, RequestCtx};
use crate::error::{Dialect, ErrorKind, GatewayError};
use crate::state::App;
use crate::trace::{Active, Attr, Name, Tracer, Value};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let request_id = client_request_id(&req).unwrap_or_else(|| app.next_request_id());
    let mut ctx = RequestCtx::new(app, request_id.clone(), started);
    // The dashboard's figures and traces are the API's traffic, not probes, scrapes or polling.
    let api = req.uri().path().starts_with("/v1/") || req.uri().path() == "/v2/rerank";
    if req.uri().path().starts_with("/v1/messages")
        || req.uri().path().starts_with("/v1/v1/messages")
    {
        ctx.dialect = Dialect::Anthropic;
    }
    if let Some(tracer) = ctx.app.tracer.as_ref().filter(|_| api) {
        ctx.trace = server_span(tracer, &req);
    }
    // Only a request from an allowed browser origin needs its headers after routing.
    let origin = match ctx.runtime.cors_origins.is_some() {
        true => req.headers().get(http::header::ORIGIN).cloned(),
        false => None,
    };
    crate::metrics::in_flight(1.0);
    let result = match tokio::time::timeout(ctx.runtime.request_timeout, route(&ctx, req)).await {
        Ok(result) => result,
        Err(_) => Err(GatewayError::new(
            ErrorKind::RequestTimeout,
            "the request exceeded server.request_timeout",
        )
        .into()),
    };
    crate::metrics::in_flight(-1.0);
    let mut response = match result {
        Ok(response) => response,
        Err(rejection) => reject(&ctx, rejection),
    };
    if api {
        crate::stats::record(response.status().as_u16(), ctx.started.elapsed());
    }
    if let Some(span) = &ctx.trace {
        let status = response.status();
        span.set_int(Attr::HttpResponseStatusCode, i64::from(status.as_u16()));
        // A stream's span is finished by its outcome recorder when the stream ends.
        let streaming = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if !streaming || status != http::StatusCode::OK {
            let failed = status.is_server_error().then(|| status.as_str().to_owned());
            span.finish(failed.as_deref());
        }
    }
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    if let Some(origin) = origin {
        cors::answer(ctx.runtime.cors_origins.as_deref(), &origin, &mut response);
    }
    response
}

/// The endpoints' futures are boxed: unboxed, every request's future was as large as the largest
/// endpoint's (29 KB with the Postgres and Redis clients' futures inside), moved by value through
/// the timeout and hyper's service, and held for the whole upstream wait. Boxed, a chat request
/// holds about 4 KB and callgrind counts 129k → 73k instructions per proxied request.
async fn route(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::POST, "/v1/chat/completions") => Box::pin(api::chat::handle(ctx, req)).await,
        (&Method::POST, "/v1/completions") => Box::pin(api::completions::handle(ctx, req)).await,
        (&Method::POST, "/v1/embeddings") => Box::pin(api::embeddings::handle(ctx, req)).await,
        // Cohere's SDKs call `/v1/rerank` (v1 client) and `/v2/rerank` (ClientV2) at the base URL.
        (&Method::POST, "/v1/rerank" | "/v2/rerank") => {
            Box::pin(api::rerank::handle(ctx, req)).await
        }
        (&Method::POST, "/v1/moderations") => Box::pin(api::moderations::handle(ctx, req)).await,
        (&Method::POST, "/v1/images/generations") => {
            Box::pin(api::images::generate(ctx, req)).await
        }
        (&Method::POST, "/v1/images/edits") => Box::pin(api::images::edit(ctx, req)).await,
        (&Method::POST, "/v1/audio/transcriptions") => {
            Box::pin(api::audio::transcribe(ctx, req, false)).await
        }
        (&Method::POST, "/v1/audio/translations") => {
            Box::pin(api::audio::transcribe(ctx, req, true)).await
        }
        (&Method::POST, "/v1/audio/speech") => Box::pin(api::audio::speech(ctx, req)).await,
        (&Method::GET, "/v1/models") => api::models::list(ctx, &req),
        (&Method::GET, p) if p.starts_with("/v1/models/") => api::models::get(ctx, &req),
        (&Method::POST, "/v1/responses") => Box::pin(api::responses::create(ctx, req)).await,
        // Anthropic's SDKs add `?beta=true`: the path alone routes (PROTOCOLS.md §12.1). A base
        // URL set with `/v1` (the clients add their own) gives `/v1/v1/…`: served too, since a
        // 404 there is what Claude Code reports as "the model may not exist".
        (&Method::POST, "/v1/messages" | "/v1/v1/messages") => {
            Box::pin(api::messages::create(ctx, req)).await
        }
        (&Method::POST, "/v1/messages/count_tokens" | "/v1/v1/messages/count_tokens") => {
            Box::pin(api::messages::count_tokens(ctx, req)).await
        }
        (&Method::GET | &Method::DELETE, p) if p.starts_with("/v1/responses/") => {
            let rest = &p["/v1/responses/".len()..];
            let (id, input_items) = match rest.strip_suffix("/input_items") {
                Some(id) if req.method() == Method::GET => (id, true),
                Some(_) => return Err(not_allowed(&req, "GET")),
                None => (rest, false),
            };
            let id = api::percent_decode(id);
            Box::pin(api::responses::stored(ctx, &req, &id, input_items)).await
        }
        (&Method::GET, "/v1/usage") => Box::pin(api::usage::handle(ctx, &req)).await,
        (&Method::GET | &Method::DELETE, p) if p.starts_with("/v1/sessions/") => {
            let id = api::percent_decode(&p["/v1/sessions/".len()..]);
            Box::pin(api::sessions::handle(ctx, &req, &id)).await
        }
        // Before the admin API, so a cross-origin admin tool on an allowed origin gets its
        // preflight answered (the request itself still needs an admin key).
        (&Method::OPTIONS, _) => Ok(cors::preflight(
            ctx.runtime.cors_origins.as_deref(),
            req.headers(),
        )?),
        (&Method::GET, "/admin/v1/stats") => Box::pin(api::stats::handle(ctx, &req)).await,
        (_, p) if p.starts_with("/admin/v1/") => Box::pin(api::admin::handle(ctx, req)).await,
        (&Method::GET, p) if p == "/dashboard" || p.starts_with("/dashboard/") => {
            Ok(api::dashboard::asset(p))
        }
        // HEAD too, as every HTTP server must (RFC 9110 §9.1): load balancers and uptime
        // checkers probe with it. hyper sends a HEAD answer's headers without its body.
        (&Method::GET | &Method::HEAD, "/health") => Ok(api::health::live()),
        (&Method::GET | &Method::HEAD, "/ready") => Ok(api::health::ready(ctx)),
        (&Method::GET | &Method::HEAD, "/metrics") => Ok(api::health::metrics(ctx)),
        (
            _,
            "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/responses"
            | "/v1/embeddings"
            | "/v1/rerank"
            | "/v2/rerank"
            | "/v1/moderations"
            | "/v1/images/generations"
            | "/v1/images/edits"
            | "/v1/audio/transcriptions"
            | "/v1/audio/translations"
            | "/v1/audio/speech"
            | "/v1/messages"
            | "/v1/messages/count_tokens",
        ) => Err(not_allowed(&req, "POST")),
        (_, "/v1/models" | "/v1/usage") => Err(not_allowed(&req, "GET")),
        (_, "/health" | "/ready" | "/metrics") => Err(not_allowed(&req, "GET, HEAD")),
        (_, p) if p.starts_with("/v1/models/") => Err(not_allowed(&req, "GET")),
        (_, p) if p.starts_with("/v1/responses/") && p.ends_with("/input_items") => {
            Err(not_allowed(&req, "GET"))
        }
        (_, p) if p.starts_with("/v1/sessions/") || p.starts_with("/v1/responses/") => {
            Err(not_allowed(&req, "GET, DELETE"))
        }
        _ => Err(GatewayError::new(
            ErrorKind::NotFound,
            format!("Unknown request URL: {} {path}", req.method()),
        )
        .into()),
    }
}

/// The request's server span (HTTP semantic conventions), continuing the client's trace.
fn server_span(tracer: &Arc<Tracer>, req: &Request<Incoming>) -> Option<Arc<Active>> {
    let method = req.method();
    let path = req.uri().path();
    let traceparent = req.headers().get(crate::trace::TRACEPARENT);
    // The endpoints nearly every request takes: their names and attributes are static strings.
    let known = match (method, path) {
        (&Method::POST, "/v1/chat/completions") => Some("POST /v1/chat/completions"),
        (&Method::POST, "/v1/responses") => Some("POST /v1/responses"),
        (&Method::POST, "/v1/embeddings") => Some("POST /v1/embeddings"),
        (&Method::POST, "/v1/completions") => Some("POST /v1/completions"),
        (&Method::POST, "/v1/messages") => Some("POST /v1/messages"),
        (&Method::GET, "/v1/models") => Some("GET /v1/models"),
        _ => None,
    };
    // A name is the method, a space and the route: cut where the method ends, not searched.
    let at = method.as_str().len();
    if let Some((name, method, route)) =
        known.and_then(|name| Some((name, name.get(..at)?, name.get(at + 1..)?)))
    {
        let span = Active::server(tracer, traceparent, Name::Static(name))?;
        span.set_all([
            (Attr::HttpRoute, Value::Static(route)),
            (Attr::HttpRequestMethod, Value::Static(method)),
            (Attr::UrlPath, Value::Static(route)),
        ]);
        return Some(span);
    }
    // Named by the route, not the path: ids would make every span name unique.
    let route = [
        "/v1/responses/",
        "/v1/sessions/",
        "/v1/models/",
        "/admin/v1/keys/",
        "/admin/v1/models/",
        "/admin/v1/routes/",
    ]
    .iter()
    .find(|p| path.starts_with(**p) && path.len() > p.len())
    .map_or(path.to_owned(), |p| format!("{p}{{id}}"));
    let method = method.as_str();
    let span = Active::server(tracer, traceparent, format!("{method} {route}").into())?;
    span.set_all([
        (Attr::HttpRoute, Value::Str(route)),
        (Attr::HttpRequestMethod, Value::Str(method.to_owned())),
        (Attr::UrlPath, Value::Str(path.to_owned())),
    ]);
    Some(span)
}

fn not_allowed(req: &Request<Incoming>, allow: &'static str) -> Rejection {
    GatewayError::method_not_allowed(req.method(), req.uri().path(), allow).into()
}

/// Renders and logs a failed request, once, and counts it unless the outcome recorder did.
fn reject(ctx: &RequestCtx, rejection: Rejection) -> Response<Body> {
    let Rejection {
        error,
        route,
        attempts,
        recorded,
    } = rejection;
    let status = error.status();
    let elapsed = ctx.started.elapsed();
    if !recorded {
        crate::metrics::request_without_route(status.as_u16());
    }
    let request_id = ctx.request_id.to_str().unwrap_or("-");
    let provider = route.as_ref().map(|r| &*r.provider.id).unwrap_or("-");
    if status.is_server_error() {
        tracing::warn!(request_id, status = status.as_u16(), kind = error.metric_label(), provider, attempts, elapsed_ms = elapsed_ms(elapsed), error = %error.message(), "request failed");
    } else {
        tracing::debug!(request_id, status = status.as_u16(), kind = error.metric_label(), provider, error = %error.message(), "request refused");
    }
    let mut response = error.to_response_in(ctx.dialect, request_id);
    if attempts > 1 {
        // The gateway already failed over; an SDK retrying on top would multiply the load.
        response
            .headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    response
}

/// A client's own `x-request-id` is kept when it is short and printable, so traces join up.
fn client_request_id(req: &Request<Incoming>) -> Option<HeaderValue> {
    let value = req.headers().get(X_REQUEST_ID)?;
    let ok = (1..=128).contains(&value.len())
        && value
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
    ok.then(|| value.clone())
}

fn elapsed_ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
