//! A mock OpenAI-kind audio and image-edit upstream on 127.0.0.1 (PROTOCOLS.md §13.1–§13.3). It
//! reads uploads as they arrive, recording each one's raw bytes and how many had come in at any
//! moment (so a test can tell an upload streamed from one buffered whole), and answers in the
//! format asked for; speech is sent a piece at a time, each piece released by the test.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::mock_server::{Body, Mock, json_response, typed_response};

/// What the mock does with an upload or a speech request.
#[derive(Debug, Clone)]
pub enum Behavior {
    Normal,
    /// Read the whole request, then answer this status with an OpenAI error body.
    Status(u16),
    /// Speech: send this many pieces, then drop the connection.
    CutAfter(usize),
}

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Upload {
    pub path: String,
    pub content_type: String,
    pub content_length: Option<usize>,
    pub body: Vec<u8>,
}

pub struct State {
    behavior: Mutex<Vec<Behavior>>,
    seen: Mutex<Vec<Upload>>,
    /// Bytes of the upload in progress received so far.
    pub receiving: AtomicUsize,
    /// Speech pieces the test lets the mock send.
    pub pieces: Semaphore,
}

pub type MockMedia = Mock<State>;

/// The audio the speech mock sends, in pieces of this many bytes.
pub const PIECE: usize = 4096;
pub const SPEECH_PIECES: usize = 3;

impl Mock<State> {
    pub async fn start() -> Self {
        let state = State {
            behavior: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            receiving: AtomicUsize::new(0),
            pieces: Semaphore::new(0),
        };
        Mock::serve(state, handle).await
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The next requests' behaviours, in order; then `Normal`.
    pub fn next(&self, behaviors: &[Behavior]) {
        self.state
            .behavior
            .lock()
            .unwrap()
            .extend(behaviors.iter().cloned());
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Lets the speech mock send `n` more pieces.
    pub fn release(&self, n: usize) {
        self.state.pieces.add_permits(n);
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == http::Method::GET {
        return Ok(json_response(StatusCode::OK, &json!({"data": []})));
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let content_length = header("content-length").and_then(|v| v.parse().ok());
    state.receiving.store(0, Ordering::SeqCst);
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The gateway abandoned the upload.
            return Ok(json_response(StatusCode::BAD_REQUEST, &json!({})));
        };
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
            state.receiving.store(bytes.len(), Ordering::SeqCst);
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    state.seen.lock().unwrap().push(Upload {
        path: path.clone(),
        content_type,
        content_length,
        body: bytes,
    });
    let behavior = {
        let mut queue = state.behavior.lock().unwrap();
        match queue.is_empty() {
            true => Behavior::Normal,
            false => queue.remove(0),
        }
    };
    if let Behavior::Status(code) = behavior {
        let err = json!({"error": {"message": format!("mock says {code}"), "type": "server_error", "param": null, "code": null}});
        return Ok(json_response(StatusCode::from_u16(code).unwrap(), &err));
    }
    if path.ends_with("/audio/speech") {
        return Ok(speech(state, &text, behavior));
    }
    if path.ends_with("/images/edits") {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"created": 1, "data": [{"b64_json": "iVBORw0KGgo="}, {"b64_json": "iVBORw0KGgo="}]}),
        ));
    }
    // A transcription: the format named in the form (the mock looks for the field's text).
    let field = |name: &str| {
        let marker = format!("name=\"{name}\"\r\n\r\n");
        let at = text.find(&marker)? + marker.len();
        Some(text[at..].split("\r\n").next()?.to_owned())
    };
    let said = "the quick brown fox";
    if field("stream").as_deref() == Some("true") {
        let frames = [
            json!({"type": "transcript.text.delta", "delta": "the quick "}),
            json!({"type": "transcript.text.delta", "delta": "brown fox"}),
            json!({"type": "transcript.text.done", "text": said, "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 45, "total_tokens": 59}}),
        ];
        let body: Vec<Result<Frame<Bytes>, std::io::Error>> = frames
            .iter()
            .map(|f| Ok(Frame::data(Bytes::from(format!("data: {f}\n\n")))))
            .collect();
        let mut r = Response::new(StreamBody::new(futures_util::stream::iter(body)).boxed_unsync());
        r.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(r);
    }
    match field("response_format").as_deref() {
        Some("srt") => Ok(text_response(&format!(
            "1\n00:00:00,000 --> 00:00:02,000\n{said}\n\n"
        ))),
        Some("text") => Ok(text_response(&format!("{said}\n"))),
        Some("verbose_json") => Ok(json_response(
            StatusCode::OK,
            &json!({"task": "transcribe", "language": "english", "duration": 8.47, "text": said, "segments": []}),
        )),
        _ => Ok(json_response(
            StatusCode::OK,
            &json!({"text": said, "usage": {"type": "duration", "seconds": 9}}),
        )),
    }
}

fn text_response(text: &str) -> Response<Body> {
    typed_response(StatusCode::OK, "text/plain; charset=utf-8", text.to_owned())
}

/// FLAC-typed audio in `SPEECH_PIECES` pieces, each sent when the test releases it; `CutAfter`
/// drops the connection after that many.
fn speech(state: Arc<State>, _body: &str, behavior: Behavior) -> Response<Body> {
    let pieces = match behavior {
        Behavior::CutAfter(n) => n,
        _ => SPEECH_PIECES,
    };
    let cut = matches!(behavior, Behavior::CutAfter(_));
    let stream = futures_util::stream::iter(0..pieces)
        .then(move |i| {
            let state = state.clone();
            async move {
                state.pieces.acquire().await.unwrap().forget();
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'a' + i as u8; PIECE])))
            }
        })
        .chain(
            futures_util::stream::iter(cut.then(|| Err(std::io::Error::other("cut")))).then(
                // After the pieces have been flushed: a cut, not a connection never answered.
                |e| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    e
                },
            ),
        );
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut()
        .insert("content-type", "audio/flac".parse().unwrap());
    r
}
