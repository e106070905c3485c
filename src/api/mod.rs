//! HTTP endpoints, one file each: parse the request, hand it to `call/`, render the answer.
//! Handlers return `Result<Response, Rejection>`; the router renders rejections, so no handler
//! formats an error body itself.

pub mod admin;
pub mod audio;
pub mod chat;
pub mod completions;
pub mod dashboard;
pub mod embeddings;
pub mod health;
pub mod images;
pub mod messages;
pub mod models;
pub mod moderations;
pub mod rerank;
pub mod responses;
pub mod sessions;
pub mod stats;
pub mod usage;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{Body, full};
use crate::call::context::RequestCtx;
use crate::call::pipeline::{Answer, Answered};
use crate::error::{ErrorKind, GatewayError};

/// A served answer as its response: JSON, or an SSE stream that no proxy in front may buffer.
pub fn render(answered: Answered) -> Response<Body> {
    match answered {
        Answered::Whole(mut answer) => {
            let mut response = json(StatusCode::OK, std::mem::take(&mut answer.body));
            answered_headers(&mut response, &answer);
            response
        }
        Answered::Typed(mut answer, content_type) => {
            let body = std::mem::replace(&mut answer.body, crate::body::empty());
            let mut response = Response::new(body);
            answered_headers(&mut response, &answer);
            let headers = response.headers_mut();
            // Streamed audio and events must not wait in a proxy's buffer.
            headers.insert(ACCEL_BUFFERING, NO);
            headers.insert(CONTENT_TYPE, content_type);
            response
        }
        Answered::Stream(mut answer) => {
            let body = std::mem::replace(&mut answer.body, crate::body::empty());
            let mut response = Response::new(body);
            answered_headers(&mut response, &answer);
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, EVENT_STREAM);
            headers.insert(CACHE_CONTROL, NO_CACHE);
            headers.insert(ACCEL_BUFFERING, NO);
            response
        }
    }
}

const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-switchyard-provider");
const ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
// Constants: `from_static` checks its bytes where it runs, and a const runs at compile time
// (every answer pays for a header value built at run time).
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const NO: HeaderValue = HeaderValue::from_static("no");
const CACHE_HEADER: HeaderName = HeaderName::from_static(crate::cache::VERDICT_HEADER);

/// What a cacheable request's headers ask of the result cache (`None` without a cache).
pub fn cache_directives(
    ctx: &RequestCtx,
    headers: &HeaderMap,
) -> Result<Option<crate::cache::Directives>, GatewayError> {
    match ctx.app.cache {
        Some(_) => crate::cache::Directives::from_headers(headers).map(Some),
        None => Ok(None),
    }
}

/// What every served answer carries: the provider that served it (never its key or URL; none
/// for a cache hit), the key's `x-ratelimit-*` headers, the session it belongs to, and what the
/// result cache did (`x-switchyard-cache`, with `age` on a hit).
pub fn answered_headers<B, T>(response: &mut Response<B>, answer: &Answer<T>) {
    let headers = response.headers_mut();
    if let Some(v) = answer
        .route
        .as_ref()
        .and_then(|r| r.provider.id_header.as_ref())
    {
        headers.insert(PROVIDER_HEADER, v.clone());
    }
    let mut put = |name: &'static str, value: u64| {
        headers.insert(name, HeaderValue::from(value));
    };
    if let Some((limit, left)) = answer.admission.requests {
        put("x-ratelimit-limit-requests", limit);
        put("x-ratelimit-remaining-requests", left);
    }
    if let Some((limit, left)) = answer.admission.tokens {
        put("x-ratelimit-limit-tokens", limit);
        put("x-ratelimit-remaining-tokens", left);
    }
    if let Some(verdict) = answer.cache {
        headers.insert(CACHE_HEADER, HeaderValue::from_static(verdict.label()));
        if let crate::cache::Verdict::Hit { age } = verdict {
            headers.insert(http::header::AGE, HeaderValue::from(age));
        }
    }
    if let Some(id) = &answer.session {
        session_header_out(response, id);
    }
}

/// A session named in a header instead of the body's `session_id`.
pub const SESSION_HEADER: &str = "x-session-id";

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

/// Reads a JSON request body of at most `server.max_body_bytes`, refusing one that is not UTF-8:
/// a declared or actual larger body is a 413 (refused before it is read when `content-length` says so), and a body that sends
/// nothing for `server.body_read_timeout` is a 408, so a stalled upload never holds its slot.
pub async fn read_body(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Bytes, GatewayError> {
    let max = ctx.runtime.max_body_bytes;
    let too_large = || {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!("The request body is larger than the limit of {max} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        // The 413 goes out now; the body still arriving is read and thrown away for a bounded
        // time (nginx's lingering close), so a client that writes all of it before reading
        // gets the answer instead of a reset.
        ctx.app
            .background
            .spawn(crate::body::discard(req.into_body()));
        return Err(too_large());
    }
    let capacity = declared.map_or(0, |len| len as usize);
    let mut body = req.into_body();
    let mut read = 0usize;
    let mut out = BytesMut::with_capacity(capacity);
    let mut first: Option<Bytes> = None;
    loop {
        let frame = match tokio::time::timeout(ctx.runtime.body_read_timeout, body.frame()).await {
            Err(_) => {
                return Err(GatewayError::new(
                    ErrorKind::BodyTimeout,
                    "the request body stalled (server.body_read_timeout)",
                ));
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                return Err(GatewayError::invalid_request(format!(
                    "could not read the request body: {e}"
                )));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        read += data.len();
        if read > max {
            // As for a declared length: the rest is read and dropped while the 413 goes out, so
            // a client still writing (a chunked body has no length to refuse early) reads it
            // instead of a reset.
            ctx.app.background.spawn(crate::body::discard(body));
            return Err(too_large());
        }
        // One frame (the common case) is kept as it came: no copy.
        match first.take() {
            None if out.is_empty() => first = Some(data),
            None => out.extend_from_slice(&data),
            Some(previous) => {
                out.extend_from_slice(&previous);
                out.extend_from_slice(&data);
            }
        }
    }
    let body = match first {
        Some(only) => Bytes::copy_from_slice(&only),
        None => out.freeze(),
    };
    // JSON is UTF-8 (RFC 8259 §8.1). The parsers skip the fields they do not read without
    // looking inside their strings, so check the whole body once (a few GB/s) before any of it
    // can be forwarded.
    if std::str::from_utf8(&body).is_err() {
        return Err(
            GatewayError::invalid_request("the request body is not valid UTF-8")
                .with_code("invalid_json"),
        );
    }
    Ok(body)
}

/// Reads a multipart upload far enough to route it (`crate::upload`), within
/// `server.max_upload_bytes`.
pub async fn read_upload(
    ctx: &RequestCtx,
    req: Request<Incoming>,
    form: &crate::upload::Form,
) -> Result<crate::upload::Upload, GatewayError> {
    let limits = crate::upload::Limits {
        max_bytes: ctx.runtime.max_upload_bytes as u64,
        read_timeout: ctx.runtime.body_read_timeout,
    };
    let app = ctx.app.clone();
    let discard: crate::upload::Discard =
        Box::new(move |body| app.background.spawn(crate::body::discard(body)));
    crate::upload::Upload::read(req, form, &limits, discard).await
}

pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, APPLICATION_JSON);
    response
}

pub use crate::hex::percent_decode;
