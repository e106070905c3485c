//! Multipart uploads (audio transcriptions and translations, image edits; DESIGN.md §5 "Other
//! endpoints", PROTOCOLS.md §13.1, §13.3): read far enough to route them, then streamed to the
//! upstream as they arrive, never held whole.
//!
//! The first MiB is read and kept. A body that ends within it is checked whole and kept, so a
//! failed route can be retried on another. A longer one is routed from its fields and sent on
//! as it arrives, once: [`Upload::outgoing`] hands its stream to one route only (a route that
//! could not be reached gives it back). Where the `model` field follows the file (curl's `-F`
//! keeps the user's order), the body is spooled to an unlinked temporary file until the model
//! is known: on disk, not in memory, and retryable like a short one.
//!
//! Only the `model` field is rewritten (or written in, where a client may leave it out); every
//! other byte goes upstream as the client sent it.

pub mod multipart;
mod spool;
pub mod wav;

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::{ErrorKind, GatewayError};
use crate::routing::transport::{ByteStream, Outgoing};
use multipart::{Malformed, Part, Scanner};
use spool::{Spool, Spooled};

/// Kept in memory, and retryable on another route: bodies up to this size.
const KEEP: usize = 1024 * 1024;
/// Room for the frame that crosses `KEEP` (HTTP/1.1 reads and HTTP/2 frames are smaller).
const SLACK: usize = 64 * 1024;

/// What an endpoint's form must hold.
pub struct Form {
    /// The parts that carry the upload; one at least must be present.
    pub files: &'static [&'static str],
    /// Fields that must be present besides `model`.
    pub required: &'static [&'static str],
    /// Whether `model` must be named (image edits default to the first image model).
    pub model_required: bool,
}

/// `/v1/audio/transcriptions` and `/translations` (PROTOCOLS.md §13.1).
pub const AUDIO: Form = Form {
    files: &["file"],
    required: &[],
    model_required: true,
};

/// `/v1/images/edits` (PROTOCOLS.md §13.3): one `image` or several `image[]`.
pub const IMAGE_EDIT: Form = Form {
    files: &["image", "image[]"],
    required: &["prompt"],
    model_required: false,
};

/// An upload whose fields are known, ready to be sent to a route.
pub struct Upload {
    content_type: HeaderValue,
    boundary: Vec<u8>,
    /// The `model` field's value and where it lies in the body.
    model: Option<(String, Range<u64>)>,
    /// Where a `model` field is written in when the client named none.
    first_delimiter: u64,
    /// The whole body's length, when known (declared, or read to its end).
    length: Option<u64>,
    source: Source,
    /// A WAV file's duration, read from its header (rounded up): the seconds a transcription is
    /// priced by when the answer reports none.
    pub audio_seconds: Option<u64>,
    /// The images an edit asks for (its `n` field; 1 without one).
    pub images: u64,
}

enum Source {
    /// The whole body (up to `KEEP`).
    Memory(Bytes),
    /// The whole body, on disk.
    Spooled(Spooled),
    /// The first `KEEP` bytes and the rest as it arrives: taken by the first route that reads
    /// it, so a route that could not be reached leaves it for the next.
    Live(Arc<Mutex<Live>>),
}

enum Live {
    Waiting(Bytes, ByteStream),
    Taken,
}

/// How the body is read: its limit and how long it may stall.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub read_timeout: Duration,
}

// === impl Upload ===

impl Upload {
    /// Reads the body far enough to know its fields. Refused (400, 413, 408) before any of it
    /// goes upstream: a body that is not the form it should be, names no `model` or no file, or
    /// is larger than `max_bytes`.
    pub async fn read(
        req: Request<Incoming>,
        form: &Form,
        limits: &Limits,
        discard: Discard,
    ) -> Result<Self, GatewayError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .cloned()
            .ok_or_else(|| bad("the body must be multipart/form-data (no Content-Type)"))?;
        let boundary = content_type
            .to_str()
            .map_err(|_| bad("the Content-Type is not ASCII"))
            .and_then(|v| multipart::boundary(v).map_err(refused))?;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limits.max_bytes) {
            discard(req.into_body());
            return Err(too_large(limits.max_bytes));
        }
        let mut reader = Reader {
            body: Some(req.into_body()),
            scanner: Scanner::new(&boundary),
            limits: *limits,
            read: 0,
            discard: Some(discard),
        };
        // Sized once: the last read may pass KEEP by one frame, and a buffer that grew would
        // double (2 MiB held for a 1 MiB window). Pages are touched only as they are written.
        let capacity = declared.map_or(KEEP + SLACK, |l| (l as usize).min(KEEP + SLACK));
        let mut kept = BytesMut::with_capacity(capacity);
        let mut ended = false;
        while kept.len() < KEEP {
            match reader.next().await? {
                Some(chunk) => kept.extend_from_slice(&chunk),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let kept = kept.freeze();
        let mut upload = Self {
            content_type,
            boundary,
            model: None,
            first_delimiter: 0,
            length: declared,
            source: Source::Memory(Bytes::new()),
            audio_seconds: None,
            images: 1,
        };
        if ended {
            reader.scanner.finish().map_err(refused)?;
            upload.learn(&reader.scanner, form, &kept, true)?;
            upload.length = Some(kept.len() as u64);
            upload.source = Source::Memory(kept);
            return Ok(upload);
        }
        // Longer than what is kept: send it on as it comes once the fields say where.
        if upload.learn(&reader.scanner, form, &kept, false)? {
            let live = Live::Waiting(kept, reader.into_stream());
            upload.source = Source::Live(Arc::new(Mutex::new(live)));
            return Ok(upload);
        }
        // The file came before the fields: on disk until the body ends.
        let mut spool = Spool::create().await?;
        spool.write(&kept).await?;
        while let Some(chunk) = reader.next().await? {
            spool.write(&chunk).await?;
        }
        reader.scanner.finish().map_err(refused)?;
        upload.learn(&reader.scanner, form, &kept, true)?;
        upload.length = Some(spool.len());
        upload.source = Source::Spooled(spool.finish().await?);
        Ok(upload)
    }

    /// The client's name for the model (`None`: left out, where the form allows it).
    pub fn model(&self) -> Option<&str> {
        self.model.as_ref().map(|(name, _)| name.as_str())
    }

    /// Whether a route has read the body that cannot be sent again: a failure then is final.
    pub fn spent(&self) -> bool {
        match &self.source {
            Source::Live(live) => live.lock().map_or(true, |l| matches!(*l, Live::Taken)),
            _ => false,
        }
    }

    /// The body for a route, its model field naming `upstream_model`. A body sent as it arrives
    /// goes to one route only; a second call is refused.
    pub fn outgoing(&self, upstream_model: &str) -> Result<Outgoing, GatewayError> {
        let (range, with) = self.edit(upstream_model);
        let length = self
            .length
            .map(|l| l - (range.end - range.start) + with.len() as u64);
        let stream: ByteStream = match &self.source {
            Source::Memory(body) => {
                let (a, b) = (range.start as usize, range.end as usize);
                let pieces = [body.slice(..a), with, body.slice(b..)];
                futures_util::stream::iter(pieces.into_iter().map(Ok)).boxed()
            }
            Source::Spooled(spool) => spool.edited(range, with),
            Source::Live(live) => {
                let (a, b) = (range.start as usize, range.end as usize);
                let live = live.clone();
                // Taken when first read: after the connection to the route exists.
                futures_util::stream::once(async move {
                    let taken = live
                        .lock()
                        .map(|mut l| std::mem::replace(&mut *l, Live::Taken));
                    match taken {
                        Ok(Live::Waiting(kept, rest)) => {
                            let head = [kept.slice(..a), with, kept.slice(b..)];
                            futures_util::stream::iter(head.into_iter().map(Ok))
                                .chain(rest)
                                .boxed()
                        }
                        _ => futures_util::stream::once(async { Err(spent()) }).boxed(),
                    }
                })
                .flatten()
                .boxed()
            }
        };
        Ok(Outgoing {
            content_type: self.content_type.clone(),
            length,
            stream,
        })
    }

    /// What changes in the body: the model's value replaced, or a `model` part written in
    /// before the first part.
    fn edit(&self, upstream_model: &str) -> (Range<u64>, Bytes) {
        match &self.model {
            Some((_, span)) => (
                span.clone(),
                Bytes::copy_from_slice(upstream_model.as_bytes()),
            ),
            None => {
                let at = self.first_delimiter;
                let mut part = b"--".to_vec();
                part.extend_from_slice(&self.boundary);
                part.extend_from_slice(
                    b"\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n",
                );
                part.extend_from_slice(upstream_model.as_bytes());
                part.extend_from_slice(b"\r\n");
                (at..at, Bytes::from(part))
            }
        }
    }

    /// Takes what the parts seen so far say: the model, the file, the required fields. `whole`:
    /// the body has ended, so what is missing is missing. Returns whether enough is known to
    /// send the body on while the rest arrives (the model's field and the file's start are in
    /// `kept`).
    fn learn(
        &mut self,
        scanner: &Scanner,
        form: &Form,
        kept: &Bytes,
        whole: bool,
    ) -> Result<bool, GatewayError> {
        let parts = scanner.parts();
        let model = parts.iter().find(|p| p.name == "model" && p.end.is_some());
        if let Some(part) = model {
            let name = field_text(part, "model")?;
            if name.is_empty() {
                return Err(bad("'model' is empty").with_param("model"));
            }
            let span = multipart::span(part).unwrap_or(0..0);
            self.model = Some((name, span));
        }
        self.first_delimiter = scanner.first_delimiter().unwrap_or(0);
        if let Some(n) = parts.iter().find(|p| p.name == "n" && p.end.is_some()) {
            let n = field_text(n, "n")?;
            self.images = n.parse::<u64>().map_or(1, |n| n.max(1));
        }
        let file = parts.iter().find(|p| form.files.contains(&p.name.as_str()));
        if let Some(file) = file
            && self.audio_seconds.is_none()
            && (file.start as usize) < kept.len()
        {
            self.audio_seconds = wav::seconds(&kept[file.start as usize..]);
        }
        if !whole {
            let in_kept = |p: &Part| p.end.is_some_and(|end| end <= kept.len() as u64);
            let model_known = match model {
                Some(part) => in_kept(part),
                // Left out (allowed): it may still follow the file.
                None => false,
            };
            return Ok(model_known && file.is_some());
        }
        if form.model_required && self.model.is_none() {
            return Err(bad("you must provide a model parameter").with_param("model"));
        }
        if file.is_none() {
            let name = form.files[0];
            return Err(bad(format!("you must provide a '{name}' file part")).with_param(name));
        }
        for field in form.required {
            if !parts.iter().any(|p| p.name == *field) {
                return Err(bad(format!("the form has no '{field}' field")).with_param(*field));
            }
        }
        Ok(true)
    }
}

/// A field's value as text.
fn field_text(part: &Part, name: &'static str) -> Result<String, GatewayError> {
    let value = part
        .value
        .as_deref()
        .ok_or_else(|| bad(format!("'{name}' is too long")).with_param(name))?;
    let text = std::str::from_utf8(value)
        .map_err(|_| bad(format!("'{name}' is not UTF-8")).with_param(name))?;
    Ok(text.trim().to_owned())
}

/// The client's body, read frame by frame through the multipart scanner, within its limits.
struct Reader {
    /// `None` once handed to `discard`.
    body: Option<Incoming>,
    scanner: Scanner,
    limits: Limits,
    read: u64,
    /// Where a body refused as too large goes: read and dropped in the background, so a client
    /// still writing it reads the 413 instead of a reset.
    discard: Option<Discard>,
}

/// What reads and drops a refused body.
pub type Discard = Box<dyn FnOnce(Incoming) + Send>;

impl Reader {
    async fn next(&mut self) -> Result<Option<Bytes>, GatewayError> {
        loop {
            let body = self
                .body
                .as_mut()
                .ok_or_else(|| too_large(self.limits.max_bytes))?;
            let frame = tokio::time::timeout(self.limits.read_timeout, body.frame())
                .await
                .map_err(|_| {
                    GatewayError::new(
                        ErrorKind::BodyTimeout,
                        "the request body stalled (server.body_read_timeout)",
                    )
                })?;
            let frame = match frame {
                None => return Ok(None),
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Err(bad(format!("could not read the request body: {e}"))),
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.read += data.len() as u64;
            if self.read > self.limits.max_bytes {
                if let (Some(body), Some(discard)) = (self.body.take(), self.discard.take()) {
                    discard(body);
                }
                return Err(too_large(self.limits.max_bytes));
            }
            self.scanner.feed(&data).map_err(refused)?;
            return Ok(Some(data));
        }
    }

    /// The rest of the body as it arrives, checked as it goes: a framing error, a body over the
    /// limit or one that stalls ends the stream with the error (the upstream request is
    /// abandoned and the client told why).
    fn into_stream(self) -> ByteStream {
        futures_util::stream::unfold(Some(self), |reader| async move {
            let mut reader = reader?;
            match reader.next().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(reader))),
                Ok(None) => match reader.scanner.finish() {
                    Ok(()) => None,
                    Err(e) => Some((Err(refused(e)), None)),
                },
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }
}

fn bad(message: impl Into<std::borrow::Cow<'static, str>>) -> GatewayError {
    GatewayError::invalid_request(message)
}

fn refused(e: Malformed) -> GatewayError {
    bad(e.0).with_code("invalid_multipart")
}

fn too_large(max: u64) -> GatewayError {
    GatewayError::new(
        ErrorKind::PayloadTooLarge,
        format!("The upload is larger than the limit of {max} bytes (server.max_upload_bytes)."),
    )
}

fn spent() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamFailed,
        "the upload was already sent to a route that failed, and is too large to be sent again",
    )
}
