//! The relay's clocks under paused time: exact, and instant to run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::*;
use crate::call::test_support::{IDLE, chunk, chunks_every, route};
use crate::providers::openai;
use crate::routing::health::Availability;

/// Remembers how the stream ended.
#[derive(Clone, Default)]
struct Ended(Arc<Mutex<Option<StreamEnd>>>);

impl StreamObserver for Ended {
    fn finished(self: Box<Self>, end: StreamEnd, _: Option<Usage>, _: Transcript) {
        *self.0.lock().unwrap() = Some(end);
    }
}

/// Relays `upstream` to a client that reads everything: each frame with the paused clock's time
/// since the start, how the stream ended, and the route it ran on.
async fn relay(
    upstream: ByteStream,
    deadline: Duration,
) -> (Vec<(Duration, String)>, Option<StreamEnd>, Arc<Route>) {
    let t0 = Instant::now();
    let route = route();
    let translate = StreamRelay::OpenAi(openai::StreamRelay::new(true));
    let mut stream = RelayStream::new(upstream, translate, route.clone(), IDLE, t0 + deadline);
    stream.prime().await.unwrap();
    let ended = Ended::default();
    stream.observe(Box::new(ended.clone()));
    let mut frames = Vec::new();
    while let Some(frame) = stream.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        frames.push((t0.elapsed(), String::from_utf8_lossy(&data).into_owned()));
    }
    let end = ended.0.lock().unwrap().take();
    (frames, end, route)
}

fn failed_with(end: &Option<StreamEnd>, kind: ErrorKind) -> bool {
    matches!(end, Some(StreamEnd::Failed(e)) if e.kind() == kind)
}

const FOREVER: Duration = Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn an_upstream_silent_for_the_idle_timeout_ends_the_stream_with_an_error_event() {
    // One chunk, then nothing at all (the connection stays open).
    let upstream: ByteStream = futures_util::stream::iter([Ok(chunk(0))])
        .chain(futures_util::stream::pending())
        .boxed();
    let (frames, end, route) = relay(upstream, FOREVER).await;
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(
        frames[0],
        (
            Duration::ZERO,
            String::from_utf8_lossy(&chunk(0)).into_owned()
        )
    );
    let (at, error) = &frames[1];
    assert_eq!(
        *at, IDLE,
        "the error comes exactly one idle timeout after the last byte"
    );
    assert!(error.starts_with("data: {\"error\""), "{error}");
    assert!(error.contains("sent nothing for 5s"), "{error}");
    assert!(failed_with(&end, ErrorKind::UpstreamTimeout), "{end:?}");
    assert_eq!(
        route.health.availability(Instant::now()),
        Availability::Ejected,
        "a silent upstream counts against its route (unhealthy_after: 1)"
    );
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_ends_a_stream_that_never_goes_idle() {
    // A chunk every second, for ever: never idle, so only the deadline can end it.
    let upstream = chunks_every(Duration::from_secs(1), None);
    let (frames, end, route) = relay(upstream, Duration::from_millis(3_500)).await;
    let times: Vec<u64> = frames.iter().map(|(at, _)| at.as_millis() as u64).collect();
    assert_eq!(times, [0, 1_000, 2_000, 3_000, 3_500], "{frames:?}");
    let (_, error) = frames.last().unwrap();
    assert!(error.contains("server.request_timeout"), "{error}");
    assert!(failed_with(&end, ErrorKind::RequestTimeout), "{end:?}");
    assert_eq!(
        route.health.availability(Instant::now()),
        Availability::Healthy,
        "the client's own deadline is not the route's fault"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_upstream_is_never_cut_by_the_idle_timeout() {
    // A chunk every 4.9 s (just under the idle timeout), then [DONE].
    let upstream = chunks_every(Duration::from_millis(4_900), Some(4));
    let (frames, end, _) = relay(upstream, FOREVER).await;
    assert_eq!(frames.len(), 5, "{frames:?}");
    assert_eq!(
        frames[4],
        (
            Duration::from_millis(4 * 4_900),
            "data: [DONE]\n\n".to_owned()
        )
    );
    assert!(matches!(end, Some(StreamEnd::Completed)), "{end:?}");
}

/// What a finisher is given: the frames sent before `[DONE]`, and the usage.
type Given = (Vec<Bytes>, Option<Usage>);

/// Records what a finisher was given.
#[derive(Clone, Default)]
struct Finished(Arc<Mutex<Option<Given>>>);

impl StreamFinisher for Finished {
    fn finish(self: Box<Self>, sent: Vec<Bytes>, usage: Option<Usage>) -> Finishing {
        *self.0.lock().unwrap() = Some((sent, usage));
        Box::pin(async { Ok(()) })
    }
}

/// A finisher (a session's turn, a cache entry) is attached after the commit point; an
/// upstream whose whole answer came in the first read has ended by then, and its work still
/// runs on every frame, before `[DONE]` reaches the client.
#[tokio::test(start_paused = true)]
async fn a_stream_that_ended_before_its_finisher_was_attached_is_still_finished() {
    for one_read in [true, false] {
        let frames = [
            chunk(0),
            chunk(1),
            bytes::Bytes::from_static(b"data: [DONE]\n\n"),
        ];
        let upstream: ByteStream = match one_read {
            true => futures_util::stream::iter([Ok(frames.concat().into())]).boxed(),
            false => futures_util::stream::iter(frames.map(Ok)).boxed(),
        };
        let translate = StreamRelay::OpenAi(openai::StreamRelay::new(true));
        let mut stream =
            RelayStream::new(upstream, translate, route(), IDLE, Instant::now() + FOREVER);
        stream.prime().await.unwrap();
        let finished = Finished::default();
        stream.finish_with(Box::new(finished.clone()));
        let mut body = Vec::new();
        while let Some(frame) = stream.frame().await {
            body.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        let (sent, _) = finished.0.lock().unwrap().take().expect("the finisher ran");
        let sent: Vec<u8> = sent.concat();
        assert_eq!(sent, [chunk(0), chunk(1)].concat(), "one read: {one_read}");
        assert!(body.ends_with(b"data: [DONE]\n\n"), "one read: {one_read}");
        assert_eq!(&body[..sent.len()], &sent[..]);
    }
}
