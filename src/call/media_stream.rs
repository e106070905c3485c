//! A streamed media answer (speech audio, a transcription's or speech's SSE events) relayed as it
//! arrives: pulled by the client's connection, nothing buffered beyond the read in hand.
//!
//! The first read is taken before the commit point (in `dispatch::media`), so a route that fails
//! before sending anything is retried. After it, an upstream failure ends an SSE answer with one
//! `data: {"error":…}` event, and a binary one without its end ([`Cut`]): a client never mistakes
//! truncated audio for a whole file. The answer's usage, where its events carry one (the
//! transcription's `transcript.text.done`, speech's `speech.audio.done`), is read as it passes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::relay::{StreamEnd, StreamObserver, Watch};
use crate::body::Cut;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::Usage;
use crate::routing::Route;
use crate::routing::transport::ByteStream;
use crate::sse::{SseDecoder, SseEvent};
use crate::usage::estimate::Transcript;

/// Upper bound on one SSE frame (a speech delta carries base64 audio).
const MAX_FRAME: usize = 4 * 1024 * 1024;

pub struct MediaStream {
    upstream: ByteStream,
    /// The read taken at the commit point, sent first.
    first: Option<Bytes>,
    /// SSE answers: frames are relayed whole (each scrubbed as one), their usage read.
    events: Option<SseDecoder>,
    usage: Option<Usage>,
    watch: Watch,
    route: Arc<Route>,
    observer: Option<Box<dyn StreamObserver>>,
    /// An SSE answer's error event, or a binary one's cut, to give before the end.
    ending: Option<Result<Bytes, Cut>>,
    ended: bool,
}

// === impl MediaStream ===

impl MediaStream {
    pub fn new(
        first: Bytes,
        upstream: ByteStream,
        sse: bool,
        route: Arc<Route>,
        deadline: Instant,
    ) -> Self {
        let mut stream = Self {
            upstream,
            first: None,
            events: sse.then(|| SseDecoder::new(MAX_FRAME)),
            usage: None,
            watch: Watch::new(route.provider.timeout, deadline),
            route,
            observer: None,
            ending: None,
            ended: false,
        };
        stream.first = stream.pass(first);
        stream
    }

    pub fn observe(&mut self, observer: Box<dyn StreamObserver>) {
        self.observer = Some(observer);
    }

    /// Ends the stream (an error event, or a cut) when the shutdown grace runs out.
    pub fn close_on(&mut self, token: &CancellationToken) {
        self.watch.close_on(token);
    }

    /// What of `chunk` goes to the client now: a binary read scrubbed as it is, an SSE read's
    /// complete frames (the rest waits for its end).
    fn pass(&mut self, chunk: Bytes) -> Option<Bytes> {
        let transport = &self.route.provider.transport;
        let Some(decoder) = &mut self.events else {
            return Some(transport.scrub(chunk));
        };
        decoder.push(&chunk);
        let mut out = Vec::new();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Some(usage) = frame_usage(&frame) {
                        self.usage = Some(usage);
                    }
                    out.extend_from_slice(&transport.scrub(frame));
                }
                Ok(None) => break,
                Err(too_large) => {
                    self.fail(GatewayError::new(
                        ErrorKind::UpstreamFailed,
                        format!("upstream sent an SSE frame over {} bytes", too_large.0),
                    ));
                    break;
                }
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if let Some(e) = self.watch.poll_expired(cx) {
                self.fail(e);
                return Poll::Ready(None);
            }
            match ready!(self.upstream.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    self.watch.heard();
                    if let Some(out) = self.pass(chunk) {
                        return Poll::Ready(Some(out));
                    }
                    if self.ending.is_some() {
                        return Poll::Ready(None);
                    }
                }
                Some(Err(e)) => {
                    self.fail(e);
                    return Poll::Ready(None);
                }
                None => {
                    self.upstream_ended();
                    return Poll::Ready(None);
                }
            }
        }
    }

    /// The upstream's clean end; an SSE answer's unterminated last frame is passed on.
    fn upstream_ended(&mut self) {
        let rest = self.events.as_mut().and_then(SseDecoder::finish);
        if let Some(rest) = rest {
            if let Some(usage) = frame_usage(&rest) {
                self.usage = Some(usage);
            }
            self.ending = Some(Ok(self.route.provider.transport.scrub(rest)));
        }
        self.end(StreamEnd::Completed);
    }

    fn fail(&mut self, e: GatewayError) {
        let e = e.scrubbed(self.route.provider.transport.secret());
        if !matches!(
            e.kind(),
            ErrorKind::RequestTimeout | ErrorKind::ShuttingDown
        ) {
            self.route.health.record_failure(Instant::now());
        }
        tracing::warn!(provider = %self.route.provider.id, error = %e, "media stream failed after the commit point");
        self.ending = Some(match self.events {
            Some(_) => Ok(e.to_sse_event()),
            None => Err(Cut),
        });
        self.end(StreamEnd::Failed(e));
    }

    fn end(&mut self, end: StreamEnd) {
        self.ended = true;
        if let Some(observer) = self.observer.take() {
            observer.finished(end, self.usage, Transcript::default());
        }
    }
}

/// The usage an SSE event reports (`"usage": {input_tokens, output_tokens}`), if any.
fn frame_usage(frame: &[u8]) -> Option<Usage> {
    memchr::memmem::find(frame, b"\"usage\"")?;
    let data = SseEvent::data(frame)?;
    let usage = crate::json::member(&data, b"usage")?;
    let [input, output] = crate::json::counts(usage, [b"input_tokens", b"output_tokens"])?;
    Some(Usage::tokens(input.unwrap_or(0), output.unwrap_or(0)))
}

impl Body for MediaStream {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if !this.ended
            && let Some(bytes) = ready!(this.poll_upstream(cx))
        {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        match this.ending.take() {
            Some(Ok(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Some(Err(cut)) => Poll::Ready(Some(Err(cut))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.first.is_none() && self.ending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for MediaStream {
    fn drop(&mut self) {
        if !self.ended {
            self.end(StreamEnd::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_the_events_that_carry_it() {
        let done = b"data: {\"type\":\"transcript.text.done\",\"text\":\"hi\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":14,\"input_token_details\":{\"text_tokens\":0,\"audio_tokens\":14},\"output_tokens\":45,\"total_tokens\":59}}\n\n";
        assert_eq!(frame_usage(done), Some(Usage::tokens(14, 45)));
        assert_eq!(
            frame_usage(b"data: {\"type\":\"transcript.text.delta\",\"delta\":\"usage\"}\n\n"),
            None
        );
        assert_eq!(frame_usage(b": comment \"usage\"\n\n"), None);
    }
}
