//! The streaming response body: upstream SSE in, client SSE out, pulled by the client's
//! connection (no task, no channel: backpressure is the socket's).
//!
//! Before the commit point [`RelayStream::prime`] reads until the first data frame is ready, so
//! a failure there is an ordinary error the dispatcher can retry on another route. After it,
//! an upstream failure becomes one `data: {"error":…}` event and the stream ends without
//! `[DONE]`; a client that leaves drops the body, which reports `Cancelled`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::{ErrorKind, GatewayError};
use crate::providers::{Relayed, StreamRelay, Usage};
use crate::routing::Route;
use crate::routing::transport::ByteStream;
use crate::sse::{SseDecoder, SseEvent};
use crate::usage::estimate::Transcript;

/// Upper bound on one SSE frame from an upstream.
const MAX_FRAME: usize = 4 * 1024 * 1024;

/// How a stream ended, for whoever records it.
#[derive(Debug)]
pub enum StreamEnd {
    Completed,
    Failed(GatewayError),
    Cancelled,
}

/// Told once when the stream ends, however it ends.
pub trait StreamObserver: Send {
    /// `usage` is the upstream's, if it reported any; `seen` the frames relayed otherwise.
    fn finished(self: Box<Self>, end: StreamEnd, usage: Option<Usage>, seen: Transcript);
}

/// Work at the upstream's clean end, before the client sees `[DONE]`: a session stores the turn
/// first, so the client's next turn always finds it; the result cache stores the answer (in the
/// background). Given every byte relayed so far (frames, not `[DONE]`) and the upstream's usage.
pub trait StreamFinisher: Send {
    fn finish(self: Box<Self>, sent: Vec<Bytes>, usage: Option<Usage>) -> Finishing;
}

pub type Finishing = Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send>>;

pub struct RelayStream {
    upstream: ByteStream,
    decoder: SseDecoder,
    relay: StreamRelay,
    pending: VecDeque<Bytes>,
    /// `pending` holds something worth sending now (a data frame, or anything once committed).
    sendable: bool,
    phase: Phase,
    watch: Watch,
    route: Arc<Route>,
    observer: Option<Box<dyn StreamObserver>>,
    finisher: Option<Box<dyn StreamFinisher>>,
    /// With a finisher: what was sent, and the finisher's work with the `[DONE]` it holds back.
    sent: Vec<Bytes>,
    finishing: Option<(Finishing, Bytes)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the commit point: errors go back to the dispatcher.
    Priming,
    Streaming,
    /// `[DONE]` seen and held back until the finisher is done.
    Finishing,
    /// `[DONE]` seen; reading the upstream's end so its connection can be reused.
    Draining,
    Ended,
}

// === impl RelayStream ===

impl RelayStream {
    pub fn new(
        upstream: ByteStream,
        relay: StreamRelay,
        route: Arc<Route>,
        idle_timeout: Duration,
        deadline: Instant,
    ) -> Self {
        Self {
            upstream,
            decoder: SseDecoder::new(MAX_FRAME)
                .with_data_line_ends_frame(relay.data_line_ends_event()),
            relay,
            pending: VecDeque::new(),
            sendable: false,
            phase: Phase::Priming,
            watch: Watch::new(idle_timeout, deadline),
            route,
            observer: None,
            finisher: None,
            sent: Vec::new(),
            finishing: None,
        }
    }

    /// Reads until the first data frame is ready to send. An error here has sent nothing to the
    /// client, so the caller may try another route.
    pub async fn prime(&mut self) -> Result<(), GatewayError> {
        poll_fn(|cx| self.poll_upstream(cx)).await?;
        self.phase = match self.phase {
            Phase::Priming => Phase::Streaming,
            other => other,
        };
        Ok(())
    }

    /// Ends the stream with an error event when `token` is cancelled (the shutdown grace ran out).
    pub fn close_on(&mut self, token: &CancellationToken) {
        self.watch.close_on(token);
    }

    pub fn observe(&mut self, observer: Box<dyn StreamObserver>) {
        self.observer = Some(observer);
    }

    /// Work to do at the upstream's clean end, before `[DONE]` is released. Attached after the
    /// commit point, so an upstream that sent its whole answer in the first read has ended
    /// already (its `[DONE]` queued last): the work starts now, on everything queued before it.
    pub fn finish_with(&mut self, finisher: Box<dyn StreamFinisher>) {
        if self.phase != Phase::Draining {
            self.finisher = Some(finisher);
            return;
        }
        let Some(done) = self.pending.pop_back() else {
            return;
        };
        let sent: Vec<Bytes> = self.pending.iter().cloned().collect();
        self.finishing = Some((finisher.finish(sent, self.relay.usage()), done));
        self.phase = Phase::Finishing;
    }

    /// Advances until there is output to send or the stream ended. While priming, an upstream
    /// failure is returned; after the commit point it is turned into the error event.
    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        loop {
            match self.decoder.next_frame() {
                // Scrubbed before translation, so every adapter's output is clean.
                Ok(Some(frame)) => match self
                    .relay
                    .on_frame(self.route.provider.transport.scrub(frame))
                {
                    Ok(Relayed::Forward(bytes)) => {
                        // Comment-only frames (keep-alives) do not make the commit point.
                        if self.phase != Phase::Priming || SseEvent::has_data(&bytes) {
                            self.sendable = true;
                        }
                        if !bytes.is_empty() {
                            self.pending.push_back(bytes);
                        }
                        continue;
                    }
                    Ok(Relayed::Done(bytes)) => {
                        self.done(bytes);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) => return Poll::Ready(self.fail(e)),
                },
                // Every complete frame of what has arrived is queued: send them as one chunk.
                Ok(None) if std::mem::take(&mut self.sendable) && !self.pending.is_empty() => {
                    return Poll::Ready(Ok(()));
                }
                Ok(None) => {}
                Err(too_large) => {
                    let e = GatewayError::new(
                        ErrorKind::UpstreamFailed,
                        format!("upstream sent an SSE frame over {} bytes", too_large.0),
                    );
                    return Poll::Ready(self.fail(e));
                }
            }
            if let Some(e) = self.watch.poll_expired(cx) {
                return Poll::Ready(self.fail(e));
            }
            match ready!(self.upstream.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    self.decoder.push(&chunk);
                    self.watch.heard();
                }
                Some(Err(e)) => return Poll::Ready(self.fail(e)),
                None => return Poll::Ready(self.upstream_ended()),
            }
        }
    }

    /// The upstream closed. A last frame without its blank line still counts if it is `[DONE]`;
    /// anything else means the stream was cut.
    fn upstream_ended(&mut self) -> Result<(), GatewayError> {
        if let Some(rest) = self.decoder.finish()
            && let Ok(Relayed::Done(done)) = self.relay.on_frame(rest)
        {
            let last = self.relay.last_frame(done);
            self.done(last);
            return Ok(());
        }
        self.fail(GatewayError::new(
            ErrorKind::UpstreamFailed,
            "the upstream closed the stream before it finished",
        ))
    }

    /// The upstream finished: release `[DONE]` now, or once the finisher is done.
    fn done(&mut self, done: Bytes) {
        match self.finisher.take() {
            None => {
                self.pending.push_back(done);
                self.phase = Phase::Draining;
            }
            Some(finisher) => {
                let mut sent = std::mem::take(&mut self.sent);
                sent.extend(self.pending.iter().cloned());
                self.finishing = Some((finisher.finish(sent, self.relay.usage()), done));
                self.phase = Phase::Finishing;
            }
        }
    }

    fn poll_finishing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some((work, _)) = self.finishing.as_mut() else {
            self.phase = Phase::Draining;
            return Poll::Ready(());
        };
        let result = ready!(work.as_mut().poll(cx));
        let done = self.finishing.take().map(|(_, done)| done);
        match result {
            Ok(()) => {
                self.pending.extend(done);
                self.phase = Phase::Draining;
            }
            Err(e) => {
                self.pending.push_back(self.relay.error_frame(&e));
                self.end(StreamEnd::Failed(e));
            }
        }
        Poll::Ready(())
    }

    fn fail(&mut self, e: GatewayError) -> Result<(), GatewayError> {
        let e = e.scrubbed(self.route.provider.transport.secret());
        if self.phase == Phase::Priming {
            return Err(e);
        }
        // The client's deadline and the gateway's shutdown are not the route's fault.
        if !matches!(
            e.kind(),
            ErrorKind::RequestTimeout | ErrorKind::ShuttingDown
        ) {
            self.route.health.record_failure(Instant::now());
        }
        self.pending.push_back(self.relay.error_frame(&e));
        self.end(StreamEnd::Failed(e));
        Ok(())
    }

    fn end(&mut self, end: StreamEnd) {
        self.phase = Phase::Ended;
        if let Some(observer) = self.observer.take() {
            observer.finished(end, self.relay.usage(), self.relay.take_seen());
        }
    }

    /// Everything queued, as one buffer: one HTTP chunk and one write for all the frames of an
    /// upstream read, instead of one per frame.
    fn take_pending(&mut self) -> Option<Bytes> {
        let out = match self.pending.len() {
            0 => None,
            1 => self.pending.pop_front(),
            _ => {
                let mut out = BytesMut::with_capacity(self.pending.iter().map(Bytes::len).sum());
                for bytes in self.pending.drain(..) {
                    out.extend_from_slice(&bytes);
                }
                Some(out.freeze())
            }
        };
        if let (Some(bytes), Some(_)) = (&out, &self.finisher) {
            self.sent.push(bytes.clone());
        }
        out
    }

    /// After `[DONE]`: take the upstream's end if it is already here (so the pooled connection
    /// is reused), but never wait for it.
    fn drain(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(Ok(_))) = self.upstream.as_mut().poll_next(cx) {}
        self.end(StreamEnd::Completed);
    }
}

/// What ends a relayed answer besides its upstream: the gateway's shutdown grace running out,
/// the request's deadline, and an upstream silent for its idle timeout.
pub(super) struct Watch {
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
    /// Resolves when the gateway's shutdown grace runs out.
    closing: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

// === impl Watch ===

impl Watch {
    pub(super) fn new(idle_timeout: Duration, deadline: Instant) -> Self {
        Self {
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            closing: None,
        }
    }

    pub(super) fn close_on(&mut self, token: &CancellationToken) {
        self.closing = Some(Box::pin(token.clone().cancelled_owned()));
    }

    /// The upstream sent something: it is not idle.
    pub(super) fn heard(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// Why the answer must end now, if it must (registering for the wake-ups otherwise).
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<GatewayError> {
        if self
            .closing
            .as_mut()
            .is_some_and(|closing| closing.as_mut().poll(cx).is_ready())
        {
            return Some(GatewayError::new(
                ErrorKind::ShuttingDown,
                "the gateway is shutting down; the stream was cut short",
            ));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Some(GatewayError::new(
                ErrorKind::RequestTimeout,
                "the request exceeded server.request_timeout",
            ));
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            let secs = self.idle_timeout.as_secs_f64();
            return Some(GatewayError::new(
                ErrorKind::UpstreamTimeout,
                format!("the upstream sent nothing for {secs}s"),
            ));
        }
        None
    }
}

impl Body for RelayStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            // The end is queued (`[DONE]`, after the finisher): the stream is complete the moment
            // it is handed on. A reader may stop at those bytes and never poll again (the
            // Responses translation stops at `[DONE]`; SDKs close once they see their last
            // event), and a stream dropped then must not be recorded as cancelled.
            if this.phase == Phase::Draining && !this.pending.is_empty() {
                this.drain(cx);
            }
            if let Some(bytes) = this.take_pending() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            match this.phase {
                Phase::Ended => return Poll::Ready(None),
                Phase::Finishing => ready!(this.poll_finishing(cx)),
                Phase::Draining => this.drain(cx),
                Phase::Priming | Phase::Streaming => {
                    this.phase = Phase::Streaming;
                    // Errors were already turned into the error event by `fail`.
                    let _ = ready!(this.poll_upstream(cx));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::Ended && self.pending.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        if self.phase != Phase::Ended && self.phase != Phase::Priming {
            self.end(StreamEnd::Cancelled);
        }
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
