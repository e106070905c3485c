//! What every mock upstream shares: a hyper server on 127.0.0.1:0 and response builders.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A request a mock upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// What a test tells a mock and what it asks it back: the behaviour of the next requests (queued)
/// or of all of them (default), the requests seen, the probes answered. Each mock derefs to it.
pub struct Script<B> {
    default: Mutex<B>,
    queue: Mutex<VecDeque<B>>,
    seen: Mutex<Vec<Recorded>>,
    probes: Mutex<usize>,
}

impl<B: Clone> Script<B> {
    pub fn new(default: B) -> Self {
        Self {
            default: Mutex::new(default),
            queue: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
            probes: Mutex::new(0),
        }
    }

    /// Every request from now on gets `behavior`.
    pub fn set(&self, behavior: B) {
        *self.default.lock().unwrap() = behavior;
    }

    /// The next `n` requests get `behavior`; then the default again.
    pub fn next(&self, n: usize, behavior: B) {
        self.queue
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(behavior, n));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn probes(&self) -> usize {
        *self.probes.lock().unwrap()
    }

    /// Records a request and returns the behaviour it gets.
    pub fn take(&self, request: Recorded) -> B {
        self.seen.lock().unwrap().push(request);
        self.queue
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.default.lock().unwrap().clone())
    }

    pub fn probed(&self) {
        *self.probes.lock().unwrap() += 1;
    }
}

/// A mock upstream on a loopback port, served until it is dropped. `state` is what its handler
/// and the test share; a test reaches the mock's [`Script`] through `Deref`.
pub struct Mock<S> {
    pub addr: SocketAddr,
    pub state: Arc<S>,
    task: JoinHandle<()>,
}

/// A mock's state that holds its script.
pub trait Scripted {
    type Behavior;
    fn script(&self) -> &Script<Self::Behavior>;
}

impl<S: Send + Sync + 'static> Mock<S> {
    /// Serves `handler(state, request)` on a fresh loopback port.
    pub async fn serve<F, Fut>(state: S, handler: F) -> Self
    where
        F: Fn(Arc<S>, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
    {
        let state = Arc::new(state);
        let shared = state.clone();
        let (addr, task) = spawn(move |req| handler(shared.clone(), req)).await;
        Self { addr, state, task }
    }
}

impl<S: Scripted> std::ops::Deref for Mock<S> {
    type Target = Script<S::Behavior>;

    fn deref(&self) -> &Script<S::Behavior> {
        self.state.script()
    }
}

impl<S> Drop for Mock<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `handler` on a fresh loopback port until the returned task is aborted.
pub async fn spawn<F, Fut>(handler: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handler))
                    .await;
            });
        }
    });
    (addr, task)
}

pub fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    typed_response(status, "application/json", v.to_string())
}

/// A whole body of `content_type`.
pub fn typed_response(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}

/// An SSE body, paced so each frame is flushed before a failure (`Err`) drops the connection.
pub fn sse_response(
    frames: Vec<Result<Frame<Bytes>, std::io::Error>>,
    content_type: &'static str,
) -> Response<Body> {
    paced(futures_util::stream::iter(frames), content_type)
}

/// Sends the frames, then keeps the stream open forever (an upstream that stalls mid-way).
pub fn sse_response_then_stall(
    frames: Vec<Result<Frame<Bytes>, std::io::Error>>,
    content_type: &'static str,
) -> Response<Body> {
    let stream = futures_util::stream::iter(frames).chain(futures_util::stream::pending());
    paced(stream, content_type)
}

fn paced(
    frames: impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + 'static,
    content_type: &'static str,
) -> Response<Body> {
    let stream = frames.then(|f| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        f
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}
