//! The exporter: one task that takes finished spans from the tracer's queue, batches them (up
//! to 512, or what arrived within `tracing.batch_delay` of the first) and POSTs each batch to the collector
//! as OTLP/HTTP protobuf. A batch the collector does not take within 10 s is dropped and counted:
//! spans are worth less than the memory a backlog would hold.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::otlp::{Resource, encode};
use super::{Span, Tracer};

const MAX_BATCH: usize = 512;
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one encoded batch; `Err` says why the collector did not take it.
pub type Post =
    Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Runs until the tracer asks for a flush (shutdown): then sends what is queued and ends.
/// `linger`: how long a batch waits to fill after its first span.
pub async fn run(
    mut spans: mpsc::Receiver<Span>,
    resource: Resource,
    post: Post,
    tracer: Arc<Tracer>,
    linger: Duration,
) {
    let mut batch: Vec<Span> = Vec::with_capacity(MAX_BATCH);
    let mut failing = false;
    loop {
        let mut flushing = false;
        tokio::select! {
            first = spans.recv() => match first {
                Some(span) => batch.push(span),
                None => return,
            },
            () = tracer.flush.notified() => flushing = true,
        }
        let linger = tokio::time::sleep(linger);
        tokio::pin!(linger);
        while batch.len() < MAX_BATCH && !flushing {
            // What is queued is taken at once, not a wake-up and a `select!` per span.
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                taken = spans.recv_many(&mut batch, room) => if taken == 0 {
                    break;
                },
                () = &mut linger => break,
                () = tracer.flush.notified() => flushing = true,
            }
        }
        if flushing {
            // Shutdown: everything queued goes now, then the exporter ends.
            while let Ok(span) = spans.try_recv() {
                batch.push(span);
            }
            for chunk in batch.chunks(MAX_BATCH) {
                send(&resource, &post, chunk, &mut failing).await;
            }
            tracer.flushed.notify_one();
            return;
        }
        send(&resource, &post, &batch, &mut failing).await;
        batch.clear();
    }
}

async fn send(resource: &Resource, post: &Post, batch: &[Span], failing: &mut bool) {
    let body = Bytes::from(encode(resource, batch));
    let sent = tokio::time::timeout(POST_TIMEOUT, post(body))
        .await
        .unwrap_or_else(|_| Err("the collector did not answer in time".into()));
    match sent {
        Ok(()) => {
            if *failing {
                tracing::info!("traces: the collector takes spans again");
            }
            *failing = false;
            crate::metrics::spans_exported(batch.len());
        }
        Err(e) => {
            // Said once per outage, not once per batch.
            if !*failing {
                tracing::warn!(error = %e, "traces: the collector refused a batch; dropping spans until it answers");
            }
            *failing = true;
            crate::metrics::spans_failed(batch.len());
        }
    }
}
