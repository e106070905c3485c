//! The one error type of the request path. It knows its HTTP status, whether another route may be
//! tried, its metric label, and renders itself two ways: the OpenAI JSON envelope (before the
//! commit point) and an in-stream SSE error event (after it). It is logged once, where it is
//! rendered (`server::router`), never where it is created.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::{Body, full};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed JSON, a missing or mistyped field, a bad session id: 400.
    InvalidRequest,
    /// Missing or wrong gateway key: 401.
    Unauthorized,
    /// The key may not use this model: 403.
    ModelNotAllowed,
    /// The session belongs to another key: 403.
    SessionForbidden,
    /// A browser origin (or a header it asks to send) that `server.cors` does not allow: 403.
    CorsForbidden,
    /// The admin API with a key that is not an admin key: 403.
    AdminOnly,
    /// A control-plane name already taken: 409.
    Conflict,
    /// The control plane's database did not answer: 503 (admin calls only; requests are served
    /// from the last table read).
    ControlUnavailable,
    /// The key's budget for this period is spent: 429 `insufficient_quota`.
    BudgetExhausted,
    /// The session store (Redis) did not answer in time: 503, for session requests only.
    SessionStoreUnavailable,
    /// The model is not configured: 404 `model_not_found`.
    ModelNotFound,
    /// No such endpoint: 404.
    NotFound,
    /// Known endpoint, wrong method: 405.
    MethodNotAllowed,
    /// Body over `server.max_body_bytes`: 413.
    PayloadTooLarge,
    /// The request body stalled for `server.body_read_timeout`: 408.
    BodyTimeout,
    /// A gateway-side limit (per-key or a provider's `max_rps`): 429.
    RateLimited,
    /// The upstream answered 429. Retryable on another route.
    UpstreamRateLimited,
    /// The upstream refused the request itself (4xx other than auth/429); passed to the client
    /// with the upstream's status, since another route would refuse it too.
    UpstreamRejected,
    /// The upstream refused the gateway's own credentials: an operator problem, never shown to
    /// the client in the upstream's words (they can quote part of the key). Retryable: another
    /// route has other credentials, and a route with a bad key should be ejected.
    UpstreamAuth,
    /// 5xx, a malformed answer, or a stream that broke. Retryable.
    UpstreamFailed,
    /// Connection refused or reset before an answer. Retryable.
    UpstreamUnreachable,
    /// The provider's timeout elapsed. Retryable.
    UpstreamTimeout,
    /// Every route of the model is ejected or down: 503.
    NoHealthyRoute,
    /// The whole request exceeded `server.request_timeout`: 504.
    RequestTimeout,
    /// The gateway is draining: 503.
    ShuttingDown,
    /// A bug: 500.
    Internal,
}

/// Longest message an upstream's words may make (after scrubbing).
const MAX_UPSTREAM_TEXT: usize = 2_000;

/// Anthropic's "overloaded" status, which its SDKs and Claude Code retry.
const OVERLOADED: StatusCode = match StatusCode::from_u16(529) {
    Ok(status) => status,
    Err(_) => StatusCode::SERVICE_UNAVAILABLE,
};

/// Which API's error envelope a client reads: OpenAI's everywhere but the Anthropic Messages
/// paths (`/v1/messages*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    OpenAi,
    Anthropic,
}

/// Boxed so that `Result<T, GatewayError>` stays one pointer wide on the happy path.
#[derive(Debug, Clone)]
pub struct GatewayError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    code: Option<Cow<'static, str>>,
    param: Option<Cow<'static, str>>,
    /// Only for `UpstreamRejected`: the upstream's status and error type, kept for the client.
    upstream: Option<(StatusCode, String)>,
    retry_after: Option<Duration>,
    /// Only for `MethodNotAllowed`: the methods the path takes (the `Allow` header).
    allow: &'static str,
    /// Not retried on another route whatever its kind (an upload that cannot be sent twice).
    last: bool,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: EnvelopeBody<'a>,
}

#[derive(Serialize)]
struct EnvelopeBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

// === impl ErrorKind ===

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::ModelNotAllowed
            | ErrorKind::SessionForbidden
            | ErrorKind::CorsForbidden
            | ErrorKind::AdminOnly => StatusCode::FORBIDDEN,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::BudgetExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::SessionStoreUnavailable | ErrorKind::ControlUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::ModelNotFound | ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::RateLimited | ErrorKind::UpstreamRateLimited => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorKind::UpstreamRejected => StatusCode::BAD_REQUEST,
            ErrorKind::UpstreamAuth
            | ErrorKind::UpstreamFailed
            | ErrorKind::UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamTimeout | ErrorKind::RequestTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::NoHealthyRoute | ErrorKind::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI `error.type` an SDK expects for this status.
    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::Unauthorized
            | ErrorKind::ModelNotFound
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::PayloadTooLarge
            | ErrorKind::BodyTimeout
            | ErrorKind::Conflict
            | ErrorKind::UpstreamRejected => "invalid_request_error",
            ErrorKind::ModelNotAllowed
            | ErrorKind::SessionForbidden
            | ErrorKind::CorsForbidden
            | ErrorKind::AdminOnly => "permission_error",
            ErrorKind::BudgetExhausted => "insufficient_quota",
            ErrorKind::RateLimited | ErrorKind::UpstreamRateLimited => "rate_limit_error",
            ErrorKind::UpstreamTimeout | ErrorKind::RequestTimeout => "timeout_error",
            ErrorKind::UpstreamAuth
            | ErrorKind::UpstreamFailed
            | ErrorKind::UpstreamUnreachable
            | ErrorKind::NoHealthyRoute
            | ErrorKind::SessionStoreUnavailable
            | ErrorKind::ControlUnavailable
            | ErrorKind::ShuttingDown
            | ErrorKind::Internal => "server_error",
        }
    }

    fn default_code(self) -> Option<&'static str> {
        Some(match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthorized => "invalid_api_key",
            ErrorKind::ModelNotAllowed => "model_not_allowed",
            ErrorKind::SessionForbidden => "session_forbidden",
            ErrorKind::CorsForbidden => "cors_forbidden",
            ErrorKind::AdminOnly => "admin_key_required",
            ErrorKind::Conflict => "conflict",
            ErrorKind::ControlUnavailable => "control_plane_unavailable",
            ErrorKind::BudgetExhausted => "insufficient_quota",
            ErrorKind::SessionStoreUnavailable => "session_store_unavailable",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::BodyTimeout => "request_body_timeout",
            ErrorKind::RateLimited | ErrorKind::UpstreamRateLimited => "rate_limit_exceeded",
            ErrorKind::UpstreamRejected => return None,
            ErrorKind::UpstreamAuth => "upstream_auth_failed",
            ErrorKind::UpstreamFailed => "upstream_error",
            ErrorKind::UpstreamUnreachable => "upstream_unreachable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::NoHealthyRoute => "no_healthy_upstream",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::Internal => "internal_error",
        })
    }

    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::ModelNotAllowed => "model_not_allowed",
            ErrorKind::SessionForbidden => "session_forbidden",
            ErrorKind::CorsForbidden => "cors_forbidden",
            ErrorKind::AdminOnly => "admin_only",
            ErrorKind::Conflict => "conflict",
            ErrorKind::ControlUnavailable => "control_unavailable",
            ErrorKind::BudgetExhausted => "budget_exhausted",
            ErrorKind::SessionStoreUnavailable => "session_store_unavailable",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::UpstreamRateLimited => "upstream_rate_limited",
            ErrorKind::UpstreamRejected => "upstream_rejected",
            ErrorKind::UpstreamAuth => "upstream_auth",
            ErrorKind::UpstreamFailed => "upstream_failed",
            ErrorKind::UpstreamUnreachable => "upstream_unreachable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::NoHealthyRoute => "no_healthy_route",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::Internal => "internal",
        }
    }
}

// === impl GatewayError ===

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            code: None,
            param: None,
            upstream: None,
            retry_after: None,
            allow: "",
            last: false,
        }))
    }

    /// The same error, never retried on another route (its request cannot be sent again).
    pub fn not_retried(mut self) -> Self {
        self.0.last = true;
        self
    }

    /// 405 for `method` on `path`, which takes only `allow` (RFC 9110 §15.5.6: the answer names
    /// them in `Allow`).
    pub fn method_not_allowed(method: &http::Method, path: &str, allow: &'static str) -> Self {
        let mut e = Self::new(
            ErrorKind::MethodNotAllowed,
            format!("{method} is not allowed on {path}"),
        );
        e.0.allow = allow;
        e
    }

    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// An upstream 4xx the client must see as it was (status, type, code, param).
    pub fn upstream_rejected(status: StatusCode, error_type: String, message: String) -> Self {
        let mut e = Self::new(ErrorKind::UpstreamRejected, message);
        e.0.upstream = Some((status, error_type));
        e
    }

    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.0.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.0.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.0.retry_after = after;
        self
    }

    /// The one place upstream text is made safe: every string of an error an upstream caused
    /// (message, type, param, code) loses the provider's key, whole, and only then is the
    /// message cut to a bounded length. Applied to every attempt's error and every in-stream
    /// failure before they can be rendered, logged or stored.
    pub fn scrubbed(mut self, key: Option<&Secret>) -> Self {
        let inner = &mut *self.0;
        if let Some(key) = key {
            let clean = |text: &mut Cow<'static, str>| {
                if let Cow::Owned(scrubbed) = key.scrub(text) {
                    *text = Cow::Owned(scrubbed);
                }
            };
            clean(&mut inner.message);
            inner.code.as_mut().map(clean);
            inner.param.as_mut().map(clean);
            if let Some((_, kind)) = &mut inner.upstream
                && let Cow::Owned(scrubbed) = key.scrub(kind)
            {
                *kind = scrubbed;
            }
        }
        if inner.message.len() > MAX_UPSTREAM_TEXT {
            let mut cut = MAX_UPSTREAM_TEXT;
            while !inner.message.is_char_boundary(cut) {
                cut -= 1;
            }
            inner.message.to_mut().truncate(cut);
        }
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    pub fn status(&self) -> StatusCode {
        match &self.0.upstream {
            Some((status, _)) => *status,
            None => self.0.kind.status(),
        }
    }

    /// Whether the dispatcher may try another route (and count a failure against this one).
    pub fn is_retryable(&self) -> bool {
        !self.0.last
            && matches!(
                self.0.kind,
                ErrorKind::UpstreamRateLimited
                    | ErrorKind::UpstreamAuth
                    | ErrorKind::UpstreamFailed
                    | ErrorKind::UpstreamUnreachable
                    | ErrorKind::UpstreamTimeout
            )
    }

    pub fn metric_label(&self) -> &'static str {
        self.0.kind.metric_label()
    }

    fn envelope_json(&self) -> Vec<u8> {
        let kind = match &self.0.upstream {
            Some((_, t)) => t.as_str(),
            None => self.0.kind.openai_type(),
        };
        let envelope = Envelope {
            error: EnvelopeBody {
                message: &self.0.message,
                kind,
                param: self.0.param.as_deref(),
                code: self.0.code.as_deref().or(self.0.kind.default_code()),
            },
        };
        // Serialising plain strings cannot fail; the fallback keeps the path panic-free anyway.
        serde_json::to_vec(&envelope).unwrap_or_else(|_| br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#.to_vec())
    }

    /// The error in the client's dialect: the OpenAI envelope, or Anthropic's on its paths.
    pub fn to_response_in(&self, dialect: Dialect, request_id: &str) -> Response<Body> {
        match dialect {
            Dialect::OpenAi => self.to_response(),
            Dialect::Anthropic => {
                let (status, kind) = self.anthropic_status();
                let mut response =
                    self.response_of(self.anthropic_json(kind, Some(request_id)), status);
                if let Ok(id) = HeaderValue::from_str(request_id) {
                    response.headers_mut().insert("request-id", id);
                }
                response
            }
        }
    }

    /// Anthropic's status and `error.type` (PROTOCOLS.md §12.4): no healthy route is 529
    /// `overloaded_error` (retried by the SDKs and Claude Code), an upstream failure 500
    /// `api_error`; an upstream's own verdict keeps its status.
    fn anthropic_status(&self) -> (StatusCode, &'static str) {
        let status = self.status();
        let kind = match self.0.kind {
            ErrorKind::NoHealthyRoute | ErrorKind::ShuttingDown => {
                return (OVERLOADED, "overloaded_error");
            }
            ErrorKind::UpstreamAuth
            | ErrorKind::UpstreamFailed
            | ErrorKind::UpstreamUnreachable
            | ErrorKind::SessionStoreUnavailable
            | ErrorKind::ControlUnavailable
            | ErrorKind::Internal => return (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::ModelNotAllowed
            | ErrorKind::SessionForbidden
            | ErrorKind::CorsForbidden
            | ErrorKind::AdminOnly => "permission_error",
            ErrorKind::ModelNotFound | ErrorKind::NotFound => "not_found_error",
            ErrorKind::Conflict => "conflict_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::RateLimited
            | ErrorKind::UpstreamRateLimited
            | ErrorKind::BudgetExhausted => "rate_limit_error",
            ErrorKind::UpstreamTimeout | ErrorKind::RequestTimeout => "timeout_error",
            ErrorKind::UpstreamRejected if status.as_u16() == 429 => "rate_limit_error",
            ErrorKind::UpstreamRejected if status.as_u16() == 401 => "authentication_error",
            ErrorKind::UpstreamRejected if status.as_u16() == 403 => "permission_error",
            ErrorKind::UpstreamRejected if status.as_u16() == 404 => "not_found_error",
            ErrorKind::InvalidRequest
            | ErrorKind::MethodNotAllowed
            | ErrorKind::BodyTimeout
            | ErrorKind::UpstreamRejected => "invalid_request_error",
        };
        (status, kind)
    }

    /// `{"type":"error","error":{"type","message"},"request_id"}`. The field a 400 is about is
    /// named in the message, Anthropic's envelope having no `param`.
    fn anthropic_json(&self, kind: &str, request_id: Option<&str>) -> Vec<u8> {
        let message = match self.0.param.as_deref() {
            Some(param) if !self.0.message.contains(param) => {
                Cow::Owned(format!("{param}: {}", self.0.message))
            }
            _ => Cow::Borrowed(&*self.0.message),
        };
        let mut body = serde_json::json!({
            "type": "error",
            "error": {"type": kind, "message": message},
        });
        if let Some(id) = request_id {
            body["request_id"] = serde_json::Value::String(id.to_owned());
        }
        body.to_string().into_bytes()
    }

    /// `event: error` for an Anthropic stream already committed (PROTOCOLS.md §12.3 rule 7).
    pub fn to_anthropic_event(&self) -> Bytes {
        let (_, kind) = self.anthropic_status();
        let json = self.anthropic_json(kind, None);
        let mut out = Vec::with_capacity(json.len() + 24);
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    /// The OpenAI envelope with the right status (and `retry-after` on 429/503).
    pub fn to_response(&self) -> Response<Body> {
        self.response_of(self.envelope_json(), self.status())
    }

    /// An error response with `body` (either envelope) and the headers every dialect shares.
    fn response_of(&self, body: Vec<u8>, status: StatusCode) -> Response<Body> {
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = self.0.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if self.0.kind == ErrorKind::BudgetExhausted {
            // Retrying cannot help before the period turns; openai-python honours this.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if self.0.kind == ErrorKind::MethodNotAllowed {
            headers.insert(header::ALLOW, HeaderValue::from_static(self.0.allow));
        }
        response
    }

    /// `data: {"error":{…}}` for a stream already committed: openai-python raises `APIError`
    /// on it; the stream then ends without `[DONE]`.
    pub fn to_sse_event(&self) -> Bytes {
        let json = self.envelope_json();
        let mut out = Vec::with_capacity(json.len() + 8);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status().as_u16(),
            self.0.kind.metric_label(),
            self.0.message
        )
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_the_status_an_sdk_expects() {
        let table = [
            (ErrorKind::InvalidRequest, 400, false),
            (ErrorKind::Unauthorized, 401, false),
            (ErrorKind::ModelNotAllowed, 403, false),
            (ErrorKind::SessionForbidden, 403, false),
            (ErrorKind::SessionStoreUnavailable, 503, false),
            (ErrorKind::ModelNotFound, 404, false),
            (ErrorKind::NotFound, 404, false),
            (ErrorKind::MethodNotAllowed, 405, false),
            (ErrorKind::PayloadTooLarge, 413, false),
            (ErrorKind::RateLimited, 429, false),
            (ErrorKind::UpstreamRateLimited, 429, true),
            (ErrorKind::UpstreamAuth, 502, true),
            (ErrorKind::UpstreamFailed, 502, true),
            (ErrorKind::UpstreamUnreachable, 502, true),
            (ErrorKind::UpstreamTimeout, 504, true),
            (ErrorKind::NoHealthyRoute, 503, false),
            (ErrorKind::RequestTimeout, 504, false),
            (ErrorKind::ShuttingDown, 503, false),
            (ErrorKind::Internal, 500, false),
        ];
        for (kind, status, retryable) in table {
            let e = GatewayError::new(kind, "x");
            assert_eq!(e.status().as_u16(), status, "{kind:?}");
            assert_eq!(e.is_retryable(), retryable, "{kind:?}");
        }
    }

    #[test]
    fn envelope_has_all_four_fields() {
        let e = GatewayError::new(ErrorKind::ModelNotFound, "The model `x` does not exist");
        let v: serde_json::Value = serde_json::from_slice(&e.envelope_json()).unwrap();
        assert_eq!(v["error"]["message"], "The model `x` does not exist");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert!(v["error"].as_object().unwrap().contains_key("param"));
    }

    #[test]
    fn upstream_rejection_keeps_upstream_status_and_type() {
        let e = GatewayError::upstream_rejected(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error".into(),
            "bad tools".into(),
        )
        .with_code("invalid_value")
        .with_param("tools");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v: serde_json::Value = serde_json::from_slice(&e.envelope_json()).unwrap();
        assert_eq!(v["error"]["param"], "tools");
        assert_eq!(v["error"]["code"], "invalid_value");
    }

    #[test]
    fn sse_event_is_one_data_line_and_a_blank_line() {
        let e = GatewayError::new(ErrorKind::UpstreamFailed, "cut \"mid\"\nstream");
        let event = e.to_sse_event();
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("data: {\"error\":"));
        assert!(text.ends_with("\n\n"));
        assert_eq!(
            text.matches('\n').count(),
            2,
            "the message's newline must stay escaped"
        );
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let r = GatewayError::new(ErrorKind::RateLimited, "slow down")
            .with_retry_after(Some(Duration::from_millis(1500)))
            .to_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
