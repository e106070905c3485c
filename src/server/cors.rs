//! CORS for browser apps (`server.cors.allowed_origins`): a preflight from an allowed origin
//! gets 204 with what the OpenAI SDKs send, anything else 403; answers to an allowed origin
//! name it and expose the headers a client reads (request id, rate limits, session, provider).

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN,
    VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::Body;
use crate::error::{ErrorKind, GatewayError};

const METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
/// What the OpenAI SDKs and the AI SDK send, besides any `x-stainless-*` header.
const HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "x-session-id",
    "x-request-id",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "idempotency-key",
];
const EXPOSED: &str = "x-request-id, x-session-id, x-switchyard-provider, retry-after, \
x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-limit-tokens, \
x-ratelimit-remaining-tokens, x-should-retry";
/// How long a browser may reuse a preflight (Chromium caps it at 2 hours).
const MAX_AGE: &str = "7200";

/// A preflight (`OPTIONS`): 204 for an allowed origin asking for allowed headers, else 403.
pub fn preflight(
    origins: Option<&[String]>,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    let Some(origin) = allowed(origins, headers.get(ORIGIN)) else {
        return Err(refused(
            "this origin may not call the gateway from a browser".into(),
        ));
    };
    let requested = headers
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut names: Vec<String> = HEADERS.iter().map(|h| (*h).to_owned()).collect();
    for name in requested.split(',').map(|h| h.trim().to_ascii_lowercase()) {
        match name.as_str() {
            "" => {}
            n if HEADERS.contains(&n) => {}
            n if n.starts_with("x-stainless-") => names.push(name),
            n => return Err(refused(format!("the header {n:?} is not allowed"))),
        }
    }
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let out = response.headers_mut();
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    out.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
        out.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    out.insert(VARY, HeaderValue::from_static("origin"));
    Ok(response)
}

/// Marks an answer to a request from `origin` readable by the page, if the origin is allowed.
pub fn answer(origins: Option<&[String]>, origin: &HeaderValue, response: &mut Response<Body>) {
    let Some(origin) = allowed(origins, Some(origin)) else {
        return;
    };
    let out = response.headers_mut();
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    out.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    out.insert(VARY, HeaderValue::from_static("origin"));
}

/// The request's `Origin`, if CORS is on and it is allowed.
fn allowed(origins: Option<&[String]>, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    let origins = origins?;
    let origin = origin?;
    let text = origin.to_str().ok()?;
    origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(text))
        .then(|| origin.clone())
}

fn refused(why: String) -> GatewayError {
    GatewayError::new(ErrorKind::CorsForbidden, format!("CORS: {why}"))
}
