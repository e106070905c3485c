//! The exporter: one task that takes finished spans from the tracer's queue, batches them (up
//! to 512, or what arrived within `tracing.batch_delay` of the first) and POSTs each batch to the collector
//! as OTLP/HTTP protobuf. A batch the collector does not take within 10 s is dropped and counted:
//! spans are worth less than the memory a backlog would hold.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;

use super::otlp::{Resource, encode};
use super::{MAX_BATCH, Span, Tracer};

const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one encoded batch; `Err` says why the collector did not take it.
pub type Post =
    Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Runs until the tracer asks for a flush (shutdown): then sends what is queued and ends.
/// `linger`: how long a batch waits to fill after its first span.
///
/// It wakes twice a batch at most (its first span, and its linger's end or its filling), never
/// once a span: woken per span, it was polled about three times a request and cost more than
/// encoding the spans did.
pub async fn run(resource: Resource, post: Post, tracer: Arc<Tracer>, linger: Duration) {
    let mut batch: Vec<Span> = Vec::with_capacity(MAX_BATCH);
    let mut failing = false;
    loop {
        let mut flushing = false;
        // A span queued between the check and the wait leaves a permit: no wake-up is lost.
        if tracer.queued() == 0 {
            tokio::select! {
                () = tracer.ready.notified() => {}
                () = tracer.flush.notified() => flushing = true,
            }
        }
        // A permit left by a batch that started while the last one was being sent would end
        // this one's linger at once (a post per span at a low rate): it is taken first. A
        // batch filling after this still leaves one, and ends the linger.
        let _ = tracer.ready.notified().now_or_never();
        if !flushing && tracer.queued() < MAX_BATCH {
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = tracer.ready.notified() => {}
                () = tracer.flush.notified() => flushing = true,
            }
        }
        if flushing {
            // Shutdown: everything queued goes now, then the exporter ends.
            loop {
                tracer.take(&mut batch, MAX_BATCH);
                if batch.is_empty() {
                    break;
                }
                send(&resource, &post, &batch, &mut failing).await;
                batch.clear();
            }
            tracer.flushed.notify_one();
            return;
        }
        tracer.take(&mut batch, MAX_BATCH);
        if !batch.is_empty() {
            send(&resource, &post, &batch, &mut failing).await;
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    use super::*;
    use crate::trace::Active;

    /// An exporter whose collector records how many spans each batch held.
    fn exporter(tracer: &Arc<Tracer>, linger: Duration) -> Arc<Mutex<Vec<usize>>> {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = sent.clone();
        let post: Post = Arc::new(move |body: Bytes| {
            let request = ExportTraceServiceRequest::decode(body).expect("valid OTLP");
            let spans = (request.resource_spans.iter())
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            seen.lock().unwrap().push(spans);
            Box::pin(async { Ok(()) })
        });
        let resource = Resource {
            service_name: "test".into(),
            service_version: "0",
        };
        tokio::spawn(run(resource, post, tracer.clone(), linger));
        sent
    }

    fn finish(tracer: &Arc<Tracer>, n: usize) {
        for _ in 0..n {
            Active::root(tracer, "t").expect("sampled").finish(None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_out_its_linger_unless_it_fills() {
        let tracer = Tracer::new(1.0, 4 * MAX_BATCH);
        let sent = exporter(&tracer, Duration::from_secs(1));
        finish(&tracer, 3);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(sent.lock().unwrap().is_empty(), "sent before its linger");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*sent.lock().unwrap(), [3]);
        // A full batch goes at once; what is left over follows.
        finish(&tracer, MAX_BATCH + 5);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(sent.lock().unwrap()[..2], [3, MAX_BATCH]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(*sent.lock().unwrap(), [3, MAX_BATCH, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_spans_and_a_flush_sends_what_is_queued() {
        let tracer = Tracer::new(1.0, 4);
        finish(&tracer, 6);
        assert_eq!(tracer.queued(), 4, "the queue holds max_queue spans");
        let sent = exporter(&tracer, Duration::from_secs(3600));
        tracer.flush(Duration::from_secs(5)).await;
        assert_eq!(*sent.lock().unwrap(), [4]);
        assert_eq!(tracer.queued(), 0);
    }
}
