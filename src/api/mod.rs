//! HTTP endpoints, one file each. Handlers return `Result<Response, Rejection>`; the router
//! renders rejections, so no handler formats an error body itself.

pub mod chat;
pub mod embeddings;
pub mod health;
pub mod ledger;
pub mod models;
pub mod sessions;
pub mod usage;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::{Body, full};
use crate::error::{ErrorKind, GatewayError};
use crate::limits::keys::ApiKey;
use crate::limits::rate::Admission;
use crate::routing::Route;
use crate::routing::dispatch::Failure;
use crate::state::{App, Runtime};
use crate::tokens::Encoding;

/// What a handler knows about the request it serves.
pub struct RequestCtx {
    pub app: Arc<App>,
    /// The config generation this request started on; a reload does not change it mid-request.
    pub runtime: Arc<Runtime>,
    pub started: Instant,
    pub deadline: Instant,
    pub request_id: HeaderValue,
}

/// Admits a request under its key's rpm/tpm limits. `tokens` (the reservation: prompt plus
/// `max_tokens`, counted with `encoding`) is only computed for a key with a tpm limit: counting
/// costs CPU, and the encoding's table is made ready first, off the runtime thread.
pub async fn admit(
    ctx: &RequestCtx,
    key: Option<&ApiKey>,
    encoding: Encoding,
    tokens: impl FnOnce(Encoding) -> u64,
) -> Result<Admission, GatewayError> {
    match key {
        Some(k) if k.rpm.is_some() || k.tpm.is_some() => {
            let tokens = match k.tpm {
                Some(_) => {
                    encoding.ready().await;
                    tokens(encoding)
                }
                None => 0,
            };
            ctx.app.limits.admit(k, tokens).await
        }
        _ => Ok(Admission::default()),
    }
}

/// Settles a reservation to the tokens really used (`None`: unknown, the reservation stands),
/// after the response, on the app's background runtime.
pub fn settle(app: &Arc<App>, admission: &Admission, used: Option<u64>) {
    if !admission.is_limited() {
        return;
    }
    let Some(used) = used else { return };
    let (task_app, admission) = (app.clone(), admission.clone());
    app.background
        .spawn(async move { task_app.limits.settle(&admission, used).await });
}

/// OpenAI's `x-ratelimit-*` headers for a limited key.
pub fn rate_headers<B>(response: &mut Response<B>, admission: &Admission) {
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: u64| {
        headers.insert(name, HeaderValue::from(value));
    };
    if let Some((limit, left)) = admission.requests {
        put("x-ratelimit-limit-requests", limit);
        put("x-ratelimit-remaining-requests", left);
    }
    if let Some((limit, left)) = admission.tokens {
        put("x-ratelimit-limit-tokens", limit);
        put("x-ratelimit-remaining-tokens", left);
    }
}

/// A failed request: the error, and the route and attempt count when a route was involved.
pub struct Rejection {
    pub error: GatewayError,
    pub route: Option<Arc<Route>>,
    pub attempts: u32,
}

// === impl Rejection ===

impl From<GatewayError> for Rejection {
    fn from(error: GatewayError) -> Self {
        Self {
            error,
            route: None,
            attempts: 0,
        }
    }
}

impl From<Failure> for Rejection {
    fn from(f: Failure) -> Self {
        Self {
            error: f.error,
            route: f.route,
            attempts: f.attempts,
        }
    }
}

/// Reads a request body of at most `max` bytes; a declared or actual larger body is a 413,
/// refused before it is read when `content-length` says so.
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, GatewayError> {
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
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(GatewayError::invalid_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Names the provider that served a response (never its key or URL).
pub fn served_by(response: &mut Response<Body>, route: &Route) {
    if let Ok(v) = HeaderValue::from_str(&route.provider.id) {
        response.headers_mut().insert("x-switchyard-provider", v);
    }
}

/// Decodes `%XX` escapes leniently (model ids with `/` or `:`, query parameters).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
