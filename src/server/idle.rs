//! An HTTP/2 connection with no open stream is closed after `header_read_timeout`, as an idle
//! HTTP/1.1 connection is by hyper's header timer. Without it, h2c sockets that send the preface,
//! answer PINGs and never open a stream held `max_connections` slots for ever (four of them made
//! `/health` time out for everyone on a cap of four).
//!
//! hyper does not say which protocol a connection speaks or how many streams it has open, so the
//! connection's first bytes tell the protocol (the h2 preface, as hyper-util's own detection
//! reads it), and the service counts the streams: one is open from its request until hyper drops
//! its response body, which it does when the stream ends or is reset.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use crate::body::Body;

/// What every HTTP/2 connection sends first (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const UNKNOWN: u8 = 0;
const HTTP1: u8 = 1;
const HTTP2: u8 = 2;

/// One connection's protocol and open streams, shared by its reader, its service and its task.
#[derive(Debug)]
pub struct Activity {
    /// Preface bytes matched so far while the protocol is unknown.
    matched: AtomicUsize,
    protocol: AtomicU8,
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
            matched: AtomicUsize::new(0),
            protocol: AtomicU8::new(UNKNOWN),
            open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            start: Instant::now(),
        })
    }

    /// Bytes the connection read (called until the protocol is known): they either continue the
    /// h2 preface or show an HTTP/1 request.
    pub fn sniff(&self, bytes: &[u8]) {
        if self.protocol.load(Ordering::Relaxed) != UNKNOWN || bytes.is_empty() {
            return;
        }
        let matched = self.matched.load(Ordering::Relaxed);
        let want = &PREFACE[matched..];
        let n = want.len().min(bytes.len());
        if bytes[..n] != want[..n] {
            self.protocol.store(HTTP1, Ordering::Relaxed);
        } else if matched + n == PREFACE.len() {
            self.protocol.store(HTTP2, Ordering::Relaxed);
        } else {
            self.matched.store(matched + n, Ordering::Relaxed);
        }
    }

    /// Whether the protocol is still to be told by the next bytes read.
    pub fn sniffing(&self) -> bool {
        self.protocol.load(Ordering::Relaxed) == UNKNOWN
    }

    /// Wraps an HTTP/2 response so its stream counts as open until its body is dropped.
    pub fn track(self: &Arc<Self>, response: http::Response<Body>) -> http::Response<Body> {
        self.open.fetch_add(1, Ordering::AcqRel);
        let activity = self.clone();
        response.map(|inner| http_body_util::BodyExt::boxed_unsync(Tracked { inner, activity }))
    }

    /// Resolves once the connection is HTTP/2 and has had no open stream for `within`; never for
    /// an HTTP/1 connection (hyper's header timer closes those).
    pub async fn idle_h2(&self, within: Duration) {
        loop {
            let wait = match self.protocol.load(Ordering::Relaxed) {
                HTTP1 => return std::future::pending().await,
                HTTP2 if self.open.load(Ordering::Acquire) == 0 => {
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

    #[test]
    fn the_preface_tells_h2_at_any_split_and_anything_else_is_h1() {
        for cut in 0..=PREFACE.len() {
            let a = Activity::new();
            a.sniff(&PREFACE[..cut]);
            a.sniff(&PREFACE[cut..]);
            assert_eq!(a.protocol.load(Ordering::Relaxed), HTTP2, "cut at {cut}");
        }
        for first in [
            &b"POST /v1/chat/completions HTTP/1.1\r\n"[..],
            b"PRI * HTTP/1.1",
            b"P",
        ] {
            let a = Activity::new();
            a.sniff(first);
            a.sniff(b"GET / HTTP/1.1\r\n");
            assert_eq!(a.protocol.load(Ordering::Relaxed), HTTP1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_h2_connection_is_idle_only_while_no_stream_is_open() {
        let a = Activity::new();
        a.sniff(PREFACE);
        let within = Duration::from_secs(10);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let response = a.track(http::Response::new(crate::body::empty()));
        // A stream open longer than the bound keeps the connection.
        let idle = a.idle_h2(within);
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

        let h1 = Activity::new();
        h1.sniff(b"GET / HTTP/1.1\r\n");
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), h1.idle_h2(within))
                .await
                .is_err()
        );
    }
}
