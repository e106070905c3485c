//! An HTTP/2 connection with no open stream is closed after `header_read_timeout`, as an idle
//! HTTP/1.1 connection is by hyper's header timer. Without it, h2c sockets that send the preface,
//! answer PINGs and never open a stream held `max_connections` slots for ever (four of them made
//! `/health` time out for everyone on a cap of four).
//!
//! hyper does not say how many streams an HTTP/2 connection has open, so the service counts
//! them: one is open from its request until hyper drops its response body, which it does when
//! the stream ends or is reset. (Which protocol a connection speaks is told before it is served:
//! `super::preface`.)

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use crate::body::Body;

/// One HTTP/2 connection's open streams, shared by its service and its task.
#[derive(Debug)]
pub struct Activity {
    open: AtomicUsize,
    /// When the last stream ended (or the connection began): milliseconds since `start`.
    idle_since_ms: AtomicU64,
    start: Instant,
}

/// A response body that marks its stream closed when hyper drops it.
struct Tracked {
    inner: Body,
    activity: Arc<Activity>,
}

// === impl Activity ===

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            start: Instant::now(),
        })
    }

    /// Wraps an HTTP/2 response so its stream counts as open until its body is dropped.
    pub fn track(self: &Arc<Self>, response: http::Response<Body>) -> http::Response<Body> {
        self.open.fetch_add(1, Ordering::AcqRel);
        let activity = self.clone();
        response.map(|inner| http_body_util::BodyExt::boxed_unsync(Tracked { inner, activity }))
    }

    /// Resolves once the connection has had no open stream for `within`.
    pub async fn idle(&self, within: Duration) {
        loop {
            let wait = match self.open.load(Ordering::Acquire) {
                0 => {
                    let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
                    let idle = self.start.elapsed().saturating_sub(since);
                    match within.checked_sub(idle) {
                        Some(left) if !left.is_zero() => left,
                        _ => return,
                    }
                }
                _ => within,
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn closed(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(now, Ordering::Release);
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

// === impl Tracked ===

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = crate::body::Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.activity.closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_h2_connection_is_idle_only_while_no_stream_is_open() {
        let a = Activity::new();
        let within = Duration::from_secs(10);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let response = a.track(http::Response::new(crate::body::empty()));
        // A stream open longer than the bound keeps the connection.
        let idle = a.idle(within);
        tokio::pin!(idle);
        assert!(
            tokio::time::timeout(Duration::from_secs(60), &mut idle)
                .await
                .is_err()
        );
        let closed_at = Instant::now();
        drop(response);
        idle.await;
        assert_eq!(
            closed_at.elapsed(),
            within,
            "the bound counts from the last stream's end"
        );
    }
}
