//! The exporter: one task that takes finished spans from the tracer's queue, batches them (up
//! to 512, or what arrived within a second of the first) and POSTs each batch to the collector
//! as OTLP/HTTP protobuf. A batch the collector does not take within 10 s is dropped and counted:
//! spans are worth less than the memory a backlog would hold.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Span;
use super::otlp::{Resource, encode};

const MAX_BATCH: usize = 512;
const LINGER: Duration = Duration::from_secs(1);
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one encoded batch; `Err` says why the collector did not take it.
pub type Post =
    Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Runs until every sender (the tracer) is gone, sending what is left first.
pub async fn run(mut spans: mpsc::Receiver<Span>, resource: Resource, post: Post) {
    let mut batch: Vec<Span> = Vec::with_capacity(MAX_BATCH);
    let mut failing = false;
    while let Some(first) = spans.recv().await {
        batch.push(first);
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                next = spans.recv() => match next {
                    Some(span) => batch.push(span),
                    None => break,
                },
                () = &mut linger => break,
            }
        }
        let body = Bytes::from(encode(&resource, &batch));
        let sent = tokio::time::timeout(POST_TIMEOUT, post(body))
            .await
            .unwrap_or_else(|_| Err("the collector did not answer in time".into()));
        match sent {
            Ok(()) => {
                if failing {
                    tracing::info!("traces: the collector takes spans again");
                }
                failing = false;
                crate::metrics::spans_exported(batch.len());
            }
            Err(e) => {
                // Said once per outage, not once per batch.
                if !failing {
                    tracing::warn!(error = %e, "traces: the collector refused a batch; dropping spans until it answers");
                }
                failing = true;
                crate::metrics::spans_failed(batch.len());
            }
        }
        batch.clear();
    }
}
