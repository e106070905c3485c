//! The only code that talks to upstreams: pooled keep-alive HTTP, or an upstream answered in
//! process (the mock provider). Errors come back already classified for the retry loop. Where a
//! provider's endpoints are and which headers its streams need come from its adapter
//! ([`Reach`]); nothing here knows a wire format.
//!
//! Plain-http upstreams go through the gateway's own HTTP/1.1 client ([`super::h1`]); https ones
//! through hyper-util's (TLS, HTTP/2 by ALPN). Either way each thread has its own connection
//! pool. The gateway runs one single-threaded runtime per core (see `main.rs`), so an upstream
//! connection is driven by the same thread as the request that uses it: no cross-thread wakeup
//! on the hot path.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::h1;
use crate::error::{ErrorKind, GatewayError};
use crate::secret::Secret;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, GatewayError>> + Send>>;

/// Which endpoint of the upstream a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    /// Legacy completions (`prompt`).
    Completions,
    Embeddings,
    /// Rerank (Cohere/Jina shape, or a native translation of it).
    Rerank,
    Moderations,
    ImageGenerations,
    /// Multipart uploads (PROTOCOLS.md §13.1, §13.3).
    Transcriptions,
    Translations,
    ImageEdits,
    /// Audio back, streamed (§13.2).
    Speech,
}

/// One `T` per endpoint a provider serves (`None` for the others): its URIs, its heads.
struct PerEndpoint<T>([Option<T>; Endpoint::COUNT]);

// === impl Endpoint ===

impl Endpoint {
    const COUNT: usize = 10;

    /// Its body is the client's multipart form, not JSON.
    pub fn is_upload(self) -> bool {
        matches!(
            self,
            Endpoint::Transcriptions | Endpoint::Translations | Endpoint::ImageEdits
        )
    }
}

// A new endpoint must widen the table.
const _: () = assert!(Endpoint::Speech as usize + 1 == Endpoint::COUNT);

/// Every endpoint, in table order.
const ENDPOINTS: [Endpoint; Endpoint::COUNT] = [
    Endpoint::Chat,
    Endpoint::Completions,
    Endpoint::Embeddings,
    Endpoint::Rerank,
    Endpoint::Moderations,
    Endpoint::ImageGenerations,
    Endpoint::Transcriptions,
    Endpoint::Translations,
    Endpoint::ImageEdits,
    Endpoint::Speech,
];

// === impl PerEndpoint ===

impl<T> PerEndpoint<T> {
    fn get(&self, endpoint: Endpoint) -> Option<&T> {
        self.0[endpoint as usize].as_ref()
    }
}

/// What the dispatcher sends: the endpoint and the finished body.
pub struct UpstreamRequest {
    pub endpoint: Endpoint,
    /// A JSON body (empty for an upload).
    pub body: Bytes,
    pub stream: bool,
    /// This request's own headers (a Messages client's `anthropic-beta`); usually none.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A multipart upload, sent as it arrives instead of `body` (boxed: a JSON request, passed
    /// by value through every layer of a send, should not carry its space).
    pub upload: Option<Box<Outgoing>>,
}

/// A body sent as it is read: its type, its length if known (else it goes chunked), its bytes.
/// An error from the stream (the client's body broke off or broke the form) abandons the
/// upstream request and is what the client is told.
pub struct Outgoing {
    pub content_type: HeaderValue,
    pub length: Option<u64>,
    pub stream: ByteStream,
}

// === impl UpstreamRequest ===

impl UpstreamRequest {
    pub fn new(endpoint: Endpoint, body: Bytes, stream: bool) -> Self {
        Self {
            endpoint,
            body,
            stream,
            headers: Vec::new(),
            upload: None,
        }
    }

    /// An upload to `endpoint`.
    pub fn upload(endpoint: Endpoint, upload: Outgoing) -> Self {
        Self {
            upload: Some(Box::new(upload)),
            ..Self::new(endpoint, Bytes::new(), false)
        }
    }
}

/// How a provider is reached, as its adapter describes it.
pub enum Reach {
    Http(HttpSpec),
    Local(Arc<dyn LocalUpstream>),
}

/// An HTTP upstream: its endpoints under `base_url`, what its streams need, and a probe URL
/// that spends no tokens.
pub struct HttpSpec {
    pub base_url: String,
    /// Each endpoint the kind serves, relative to `base_url` (an endpoint left out is one it
    /// cannot serve: its models are refused at load time).
    pub paths: &'static [(Endpoint, &'static str)],
    /// Sent with stream requests besides `accept: text/event-stream`.
    pub stream_headers: &'static [(&'static str, &'static str)],
    pub probe_url: String,
    /// How the key is sent.
    pub auth: Auth,
    /// Sent with every request, probes included (Anthropic's `anthropic-version`).
    pub headers: &'static [(&'static str, &'static str)],
}

/// Which header carries the provider's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `authorization: Bearer <key>` (OpenAI, DashScope).
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    ApiKey,
}

/// An upstream answered in process: it returns what to send and the pacing; the transport does
/// the waiting.
pub trait LocalUpstream: Send + Sync {
    fn answer(&self, req: &UpstreamRequest, created: u64) -> LocalAnswer;
}

/// A status and body chunks, the first after `latency` and each next one `interval` later.
#[derive(Debug)]
pub struct LocalAnswer {
    pub status: StatusCode,
    /// Its type, where it is not JSON or SSE (audio, text).
    pub content_type: Option<HeaderValue>,
    pub chunks: Vec<Bytes>,
    pub latency: Duration,
    pub interval: Duration,
}

/// Status, the retry hint, the body's type and the body as it arrives.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub content_type: Option<HeaderValue>,
    pub body: ByteStream,
}

pub enum Transport {
    Http(Box<HttpUpstream>),
    Local(Arc<dyn LocalUpstream>),
}

pub struct HttpUpstream {
    provider: String,
    /// The key's header and the provider's fixed ones, sent with every request and probe.
    fixed: Vec<(HeaderName, HeaderValue)>,
    key: Option<Secret>,
    via: Via,
}

/// Which client carries the requests: the gateway's own for an http:// base_url, hyper-util's
/// for https:// (TLS, HTTP/2 by ALPN).
enum Via {
    // Boxed, both: a provider holds one for its whole life, and its endpoints' URIs and heads
    // make either variant a few hundred bytes.
    Plain(Box<Plain>),
    Hyper(Box<Hyper>),
}

/// hyper-util's requests for an upstream: its endpoints and what stream requests add besides
/// `accept`.
struct Hyper {
    uris: PerEndpoint<Uri>,
    stream_headers: Vec<(HeaderName, HeaderValue)>,
}

/// Ready-made request heads for a plain-http upstream: per endpoint, the request line, `host`,
/// `content-type` and the key; what stream requests add.
struct Plain {
    origin: h1::Origin,
    heads: PerEndpoint<Vec<u8>>,
    stream_extra: Vec<u8>,
}

type Client = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, SendBody>;

/// What hyper-util's client sends: a whole body, or an upload as it is read.
type SendBody = http_body_util::combinators::UnsyncBoxBody<Bytes, GatewayError>;

fn full_body(bytes: Bytes) -> SendBody {
    BodyExt::boxed_unsync(Full::new(bytes).map_err(|never| match never {}))
}

// === impl Transport ===

impl Transport {
    /// The transport for `reach`, and the URL to probe it at (none for a local upstream).
    pub fn new(
        provider: &str,
        reach: Reach,
        key: Option<Secret>,
    ) -> Result<(Self, Option<String>), String> {
        match reach {
            Reach::Http(spec) => {
                let probe = spec.probe_url.clone();
                let http = HttpUpstream::new(provider, spec, key)?;
                Ok((Transport::Http(Box::new(http)), Some(probe)))
            }
            Reach::Local(local) => Ok((Transport::Local(local), None)),
        }
    }

    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Transport::Http(h) => h.key.as_ref(),
            Transport::Local(_) => None,
        }
    }

    /// An answer's bytes (a whole body or one whole SSE frame) without this provider's key: an
    /// upstream that quotes it in a 200 (an echo server, a proxy's debug output) must not hand
    /// it to a client. Not copied unless the key is there.
    pub fn scrub(&self, answer: Bytes) -> Bytes {
        match self.secret() {
            Some(key) => key.scrub_bytes(answer),
            None => answer,
        }
    }

    pub async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, GatewayError> {
        match self {
            Transport::Http(h) => h.send(req).await,
            Transport::Local(local) => send_local(local.as_ref(), req).await,
        }
    }

    /// One cheap GET that spends no tokens; true on any 2xx.
    pub async fn probe(&self, url: &str, timeout: Duration) -> bool {
        match self {
            Transport::Http(h) => h.probe(url, timeout).await,
            Transport::Local(_) => true,
        }
    }
}

// === impl HttpUpstream ===

impl HttpUpstream {
    fn new(provider: &str, spec: HttpSpec, key: Option<Secret>) -> Result<Self, String> {
        let base_url = &spec.base_url;
        let base = base_url.trim_end_matches('/');
        let uri = |path: &str| {
            format!("{base}/{path}")
                .parse::<Uri>()
                .map_err(|e| format!("invalid base_url {base_url:?}: {e}"))
        };
        let mut fixed = Vec::with_capacity(spec.headers.len() + 1);
        if let Some(k) = &key {
            let (name, value) = match spec.auth {
                Auth::Bearer => (AUTHORIZATION, format!("Bearer {}", k.expose())),
                Auth::ApiKey => (X_API_KEY, k.expose().to_owned()),
            };
            let mut value = HeaderValue::try_from(value)
                .map_err(|_| "api_key contains characters not allowed in a header".to_owned())?;
            value.set_sensitive(true);
            fixed.push((name, value));
        }
        fixed.extend(static_headers(spec.headers)?);
        let stream_headers = static_headers(spec.stream_headers)?;
        let mut uris = PerEndpoint(std::array::from_fn(|_| None));
        for (endpoint, path) in spec.paths {
            uris.0[*endpoint as usize] = Some(uri(path)?);
        }
        // Every endpoint is under the one base URL: the chat one says how it is reached.
        let plain = uris.get(Endpoint::Chat).and_then(Uri::scheme_str) == Some("http");
        let hyper = Hyper {
            uris,
            stream_headers,
        };
        let via = match plain {
            true => Via::Plain(Box::new(Plain::new(&hyper, &fixed)?)),
            false => Via::Hyper(Box::new(hyper)),
        };
        Ok(Self {
            provider: provider.to_owned(),
            fixed,
            key,
            via,
        })
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, GatewayError> {
        match &self.via {
            Via::Plain(plain) => self.send_plain(plain, req).await,
            Via::Hyper(hyper) => self.send_hyper(hyper, req).await,
        }
    }

    async fn send_hyper(
        &self,
        hyper: &Hyper,
        req: UpstreamRequest,
    ) -> Result<UpstreamResponse, GatewayError> {
        let uri = hyper
            .uris
            .get(req.endpoint)
            .ok_or_else(|| no_such(&self.provider))?;
        let (body, content_type, length) = match req.upload {
            None => (
                full_body(req.body),
                HeaderValue::from_static("application/json"),
                None,
            ),
            Some(upload) => {
                let frames = upload.stream.map_ok(http_body::Frame::data);
                let body = http_body_util::StreamBody::new(frames);
                (
                    BodyExt::boxed_unsync(body),
                    upload.content_type,
                    upload.length,
                )
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, content_type);
        if let Some(length) = length {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        for (name, value) in self.fixed.iter().chain(&req.headers) {
            headers.insert(name.clone(), value.clone());
        }
        if req.stream {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            for (name, value) in &hyper.stream_headers {
                headers.insert(name.clone(), value.clone());
            }
        }
        if let Ok(traceparent) = crate::trace::UPSTREAM_TRACEPARENT.try_with(Clone::clone) {
            headers.insert(crate::trace::TRACEPARENT, traceparent);
        }
        let response = thread_client()
            .request(request)
            .await
            .map_err(|e| classify(&self.provider, &e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let provider = self.provider.clone();
        let body = response
            .into_body()
            .into_data_stream()
            .map_err(move |e| connection_failed(&provider, &e))
            .boxed();
        Ok(UpstreamResponse {
            status,
            retry_after,
            content_type,
            body,
        })
    }

    async fn send_plain(
        &self,
        plain: &Plain,
        req: UpstreamRequest,
    ) -> Result<UpstreamResponse, GatewayError> {
        let head = plain
            .heads
            .get(req.endpoint)
            .ok_or_else(|| no_such(&self.provider))?;
        let mut extra: &[u8] = if req.stream { &plain.stream_extra } else { &[] };
        // A request's own headers and a sampled attempt's `traceparent` (only then is a head
        // line allocated).
        let own = (!req.headers.is_empty()).then(|| {
            let mut lines = extra.to_vec();
            for (name, value) in &req.headers {
                push_line(&mut lines, name.as_str().as_bytes(), value.as_bytes());
            }
            lines
        });
        if let Some(own) = &own {
            extra = own;
        }
        let traced = crate::trace::UPSTREAM_TRACEPARENT
            .try_with(|t| [extra, b"traceparent: ", t.as_bytes(), b"\r\n"].concat());
        if let Ok(traced) = &traced {
            extra = traced;
        }
        let sent = match req.upload {
            None => plain.origin.send(head, extra, Some(&req.body)).await,
            // Boxed: only uploads should carry (and move) the streamed send's state.
            Some(upload) => {
                let Outgoing {
                    content_type,
                    length,
                    stream,
                } = *upload;
                let send = plain.origin.send_streamed(
                    head,
                    extra,
                    content_type.as_bytes(),
                    length,
                    stream,
                );
                Box::pin(send).await
            }
        };
        let response = match sent {
            Ok(response) => response,
            Err(h1::Failure::Connect(_)) => return Err(cannot_connect(&self.provider)),
            Err(h1::Failure::Exchange(e)) => return Err(connection_failed(&self.provider, &e)),
            Err(h1::Failure::Body(e)) => return Err(e),
        };
        let provider = self.provider.clone();
        let body = response
            .body
            .into_stream()
            .map_err(move |e| connection_failed(&provider, &e))
            .boxed();
        Ok(UpstreamResponse {
            status: response.status,
            retry_after: response.retry_after,
            content_type: response.content_type,
            body,
        })
    }

    async fn probe(&self, url: &str, timeout: Duration) -> bool {
        let Ok(uri) = url.parse::<Uri>() else {
            return false;
        };
        if let Ok(origin) = h1::Origin::of(&uri) {
            return tokio::time::timeout(timeout, self.probe_plain(&origin, &uri))
                .await
                .unwrap_or(false);
        }
        let client = thread_client();
        let mut request = Request::new(full_body(Bytes::new()));
        *request.uri_mut() = uri;
        for (name, value) in &self.fixed {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let attempt = async {
            let response = client.request(request).await.ok()?;
            let ok = response.status().is_success();
            // Read the (small) body so the connection goes back to the pool.
            response.into_body().collect().await.ok()?;
            Some(ok)
        };
        matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
    }
}

impl HttpUpstream {
    async fn probe_plain(&self, origin: &h1::Origin, uri: &Uri) -> bool {
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let lines = header_lines(&self.fixed);
        let fields: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let head = origin.head("GET", target, &fields);
        let Ok(response) = origin.send(&head, b"", None).await else {
            return false;
        };
        // Read the (small) body so the connection goes back to the pool; a large one is cut.
        let mut body = response.body;
        let mut read = 0;
        while let Some(Ok(piece)) = body.next().await {
            read += piece.len();
            if read > MAX_PROBE_BODY {
                break;
            }
        }
        response.status.is_success()
    }
}

/// More than a models list should ever be; a probe stops reading there.
const MAX_PROBE_BODY: usize = 1 << 20;

// === impl Plain ===

impl Plain {
    /// The same endpoints and headers as `hyper` would send, as ready-made heads.
    fn new(hyper: &Hyper, fixed: &[(HeaderName, HeaderValue)]) -> Result<Self, String> {
        let chat = hyper
            .uris
            .get(Endpoint::Chat)
            .ok_or("a provider serves chat at least")?;
        let origin = h1::Origin::of(chat)?;
        let lines = header_lines(fixed);
        let mut fields: Vec<&[u8]> = vec![b"content-type: application/json"];
        fields.extend(lines.iter().map(Vec::as_slice));
        let mut heads = PerEndpoint(std::array::from_fn(|_| None));
        for (i, uri) in hyper.uris.0.iter().enumerate() {
            let Some(uri) = uri else { continue };
            let target = uri.path_and_query().map_or("/", |p| p.as_str());
            // An upload's type (its multipart boundary) is the client's, sent per request.
            let upload = ENDPOINTS[i].is_upload();
            heads.0[i] = Some(origin.head("POST", target, &fields[usize::from(upload)..]));
        }
        let mut stream_extra = b"accept: text/event-stream\r\n".to_vec();
        for (name, value) in &hyper.stream_headers {
            push_line(
                &mut stream_extra,
                name.as_str().as_bytes(),
                value.as_bytes(),
            );
        }
        Ok(Self {
            heads,
            stream_extra,
            origin,
        })
    }
}

/// A request for an endpoint the provider's kind does not serve (a control-plane route the
/// config's check could not see).
fn no_such(provider: &str) -> GatewayError {
    GatewayError::invalid_request(format!(
        "provider {provider:?} serves no such endpoint for this model"
    ))
    .with_param("model")
}

/// `name: value` without the line end (the head builder adds it).
fn header_lines(headers: &[(HeaderName, HeaderValue)]) -> Vec<Vec<u8>> {
    headers
        .iter()
        .map(|(name, value)| [name.as_str().as_bytes(), b": ", value.as_bytes()].concat())
        .collect()
}

/// `name: value\r\n` appended to `out`.
fn push_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// An adapter's constant headers, checked once.
fn static_headers(
    headers: &[(&'static str, &'static str)],
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .iter()
        .map(|(name, value)| {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => Ok((name, value)),
                _ => Err(format!("invalid header {name:?}")),
            }
        })
        .collect()
}

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

fn cannot_connect(provider: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamUnreachable,
        format!("cannot connect to provider {provider:?}"),
    )
}

fn connection_failed(provider: &str, detail: &dyn std::fmt::Display) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamFailed,
        format!("provider {provider:?} connection failed: {detail}"),
    )
}

/// POSTs `body` to `uri` with this thread's client (the OTLP exporter's batches); `Ok` for a
/// 2xx, else why not.
pub async fn post(uri: Uri, content_type: &'static str, body: Bytes) -> Result<(), String> {
    let mut request = Request::new(full_body(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let response = thread_client()
        .request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    // Read the (small) answer so the connection goes back to the pool.
    let _ = response.into_body().collect().await;
    match status.is_success() {
        true => Ok(()),
        false => Err(format!("the collector answered {status}")),
    }
}

thread_local! {
    static CLIENT: Client = http_client();
}

/// This thread's upstream client: a cheap handle to this thread's connection pool.
fn thread_client() -> Client {
    CLIENT.with(Client::clone)
}

/// An upstream client: keep-alive pool, HTTP/2 by ALPN on https, Mozilla's roots compiled in (so
/// the image needs no CA bundle), Nagle off.
fn http_client() -> Client {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}

fn classify(provider: &str, e: &hyper_util::client::legacy::Error) -> GatewayError {
    // An upload that broke off: the client's error, not the upstream's.
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(own) = inner.downcast_ref::<GatewayError>() {
            return own.clone();
        }
        source = inner.source();
    }
    if e.is_connect() {
        cannot_connect(provider)
    } else {
        let detail = std::error::Error::source(e)
            .map(ToString::to_string)
            .unwrap_or_else(|| e.to_string());
        connection_failed(provider, &detail)
    }
}

/// The retry hint of a hyper-util response (the same reading as the gateway's own client).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    h1::retry_hint(value("retry-after-ms"), value("retry-after"))
}

async fn send_local(
    local: &dyn LocalUpstream,
    mut req: UpstreamRequest,
) -> Result<UpstreamResponse, GatewayError> {
    // An in-process upstream reads an upload whole (the demo's mock; bounded by the upload's
    // own limit).
    if let Some(upload) = req.upload.take() {
        req.body = Box::pin(collect(upload.stream, usize::MAX)).await?;
        req.headers.push((CONTENT_TYPE, upload.content_type));
    }
    let created = crate::clock::unix_now();
    let answer = local.answer(&req, created);
    if !answer.latency.is_zero() {
        tokio::time::sleep(answer.latency).await;
    }
    let interval = answer.interval;
    let chunks = answer.chunks.into_iter().enumerate();
    let body = futures_util::stream::unfold(chunks, move |mut chunks| async move {
        let (i, chunk) = chunks.next()?;
        if i > 0 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        Some((Ok(chunk), chunks))
    })
    .boxed();
    Ok(UpstreamResponse {
        status: answer.status,
        retry_after: None,
        content_type: answer.content_type,
        body,
    })
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn collect(mut body: ByteStream, limit: usize) -> Result<Bytes, GatewayError> {
    let Some(first) = body.next().await.transpose()? else {
        return Ok(Bytes::new());
    };
    let Some(second) = body.next().await.transpose()? else {
        return Ok(first);
    };
    let mut buf = BytesMut::with_capacity(first.len() + second.len());
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    loop {
        if buf.len() > limit {
            return Err(GatewayError::new(
                ErrorKind::UpstreamFailed,
                format!("upstream response exceeds {limit} bytes"),
            ));
        }
        match body.next().await.transpose()? {
            Some(chunk) => buf.extend_from_slice(&chunk),
            None => return Ok(buf.freeze()),
        }
    }
}
