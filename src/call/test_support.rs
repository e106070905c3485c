//! Helpers for the call layer's stream tests: a route on an in-process upstream, and upstream
//! byte streams paced by the (paused) clock.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::config::{MockConfig, ProviderKind};
use crate::metrics::RouteMetrics;
use crate::providers::mock::MockUpstream;
use crate::routing::Route;
use crate::routing::health::{HealthPolicy, RouteHealth};
use crate::routing::provider::Provider;
use crate::routing::transport::{ByteStream, Transport};
use crate::tokens::Encoding;

/// The provider's idle timeout in these tests.
pub const IDLE: Duration = Duration::from_secs(5);

pub fn route() -> Arc<Route> {
    let provider = Provider::new(
        "up".into(),
        ProviderKind::Openai,
        Transport::Local(Arc::new(MockUpstream::new(&MockConfig::default()))),
        IDLE,
        None,
        None,
    );
    Arc::new(Route {
        id: 0,
        provider: Arc::new(provider),
        upstream_model: "m".into(),
        upstream_model_json: Bytes::from_static(b"\"m\""),
        weight: 1,
        priority: 1,
        health: RouteHealth::new(HealthPolicy {
            unhealthy_after: 1,
            ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
        }),
        metrics: RouteMetrics::new("up", "m", (0, 0)),
        encoding: Encoding::O200kBase,
        label: "up/m".into(),
        max_output_tokens: None,
        max_rps: None,
        ceiling: crate::routing::ceiling::Ceiling::new(None),
    })
}

/// A chat chunk whose text is `t<n>`.
pub fn chunk(n: usize) -> Bytes {
    Bytes::from(format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{n}\"}}}}]}}\n\n"
    ))
}

/// A chunk at once, then one every `interval`; `[DONE]` after `chunks` of them (never: `None`).
pub fn chunks_every(interval: Duration, chunks: Option<usize>) -> ByteStream {
    futures_util::stream::unfold(0usize, move |n| async move {
        if n > 0 {
            tokio::time::sleep(interval).await;
        }
        match chunks {
            Some(last) if n > last => None,
            Some(last) if n == last => Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), n + 1)),
            _ => Some((Ok(chunk(n)), n + 1)),
        }
    })
    .boxed()
}
