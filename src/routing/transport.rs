//! The only code that talks to upstreams: pooled keep-alive HTTP through one shared reqwest
//! client, or the in-process mock. Errors come back already classified for the retry loop.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::error::{ErrorKind, GatewayError};
use crate::providers::mock::MockUpstream;
use crate::providers::{Endpoint, UpstreamRequest};
use crate::secret::Secret;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, GatewayError>> + Send>>;

/// Status, the retry hint, and the body as it arrives.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: ByteStream,
}

pub enum Transport {
    Http(Box<HttpUpstream>),
    Mock(MockUpstream),
}

pub struct HttpUpstream {
    client: reqwest::Client,
    provider: String,
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    authorization: Option<HeaderValue>,
    key: Option<Secret>,
}

// === impl Transport ===

impl Transport {
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Transport::Http(h) => h.key.as_ref(),
            Transport::Mock(_) => None,
        }
    }

    pub async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, GatewayError> {
        match self {
            Transport::Http(h) => h.send(req).await,
            Transport::Mock(m) => Ok(send_mock(m, &req).await),
        }
    }

    /// One cheap GET that spends no tokens; true on any 2xx.
    pub async fn probe(&self, url: &str, timeout: Duration) -> bool {
        match self {
            Transport::Http(h) => h.probe(url, timeout).await,
            Transport::Mock(_) => true,
        }
    }
}

// === impl HttpUpstream ===

impl HttpUpstream {
    pub fn new(
        client: reqwest::Client,
        provider: &str,
        base_url: &str,
        key: Option<Secret>,
    ) -> Result<Self, String> {
        let base = base_url.trim_end_matches('/');
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base}/{path}"))
                .map_err(|e| format!("invalid base_url {base_url:?}: {e}"))
        };
        let authorization = match &key {
            Some(k) => {
                let mut v =
                    HeaderValue::try_from(format!("Bearer {}", k.expose())).map_err(|_| {
                        "api_key contains characters not allowed in a header".to_owned()
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            client,
            provider: provider.to_owned(),
            chat_url: url("chat/completions")?,
            embeddings_url: url("embeddings")?,
            authorization,
            key,
        })
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, GatewayError> {
        let url = match req.endpoint {
            Endpoint::Chat => &self.chat_url,
            Endpoint::Embeddings => &self.embeddings_url,
        };
        let mut builder = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(req.body);
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        if req.stream {
            builder = builder.header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        }
        let response = builder
            .send()
            .await
            .map_err(|e| classify(&self.provider, e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let provider = self.provider.clone();
        let body = response
            .bytes_stream()
            .map_err(move |e| classify(&provider, e))
            .boxed();
        Ok(UpstreamResponse {
            status,
            retry_after,
            body,
        })
    }

    async fn probe(&self, url: &str, timeout: Duration) -> bool {
        let mut builder = self.client.get(url).timeout(timeout);
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        match builder.send().await {
            // Read the (small) body so the connection goes back to the pool.
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        }
    }
}

/// The shared upstream client: keep-alive pool, no proxy from the environment, Nagle off.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))
}

fn classify(provider: &str, e: reqwest::Error) -> GatewayError {
    let e = e.without_url();
    if e.is_timeout() {
        GatewayError::new(
            ErrorKind::UpstreamTimeout,
            format!("provider {provider:?} timed out"),
        )
    } else if e.is_connect() {
        GatewayError::new(
            ErrorKind::UpstreamUnreachable,
            format!("cannot connect to provider {provider:?}"),
        )
    } else {
        let detail = std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_else(|| e.to_string());
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            format!("provider {provider:?} connection failed: {detail}"),
        )
    }
}

/// `retry-after-ms` (what openai-python reads first), else `retry-after` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    read("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| read("retry-after").map(Duration::from_secs_f64))
}

async fn send_mock(mock: &MockUpstream, req: &UpstreamRequest) -> UpstreamResponse {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let answer = mock.answer(req, created);
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
    UpstreamResponse {
        status: answer.status,
        retry_after: None,
        body,
    }
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
