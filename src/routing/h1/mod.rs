//! A lean HTTP/1.1 client for plain-http upstreams: the self-hosted servers a gateway usually
//! fronts inside a cluster (vLLM, Ollama, TGI, another gateway) and the benchmark's mock.
//!
//! The request's own task drives the connection: it writes the head and body in one `writev`,
//! reads the response head into a small buffer, and hands the body out as it arrives, without a
//! connection task, a dispatch channel or a shared pool between them. Measured against
//! hyper-util's pooled client on the same path (docs/benchmarks.md): fewer instructions per
//! request and about 27 KB less held per open stream. https upstreams keep hyper-util's client
//! (TLS, HTTP/2 by ALPN).

mod framing;
mod pool;

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::GatewayError;
pub use framing::retry_hint;
use framing::{Decoder, parse_head};

/// First read buffer of a response; it grows only for a large head or body.
const READ_SIZE: usize = 4096;
/// Largest single read while a long body with a known length arrives.
const MAX_READ: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a plain-http upstream listens.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `host:port`: what the `host` header says and what idle connections are kept under.
    addr: Arc<str>,
    host: String,
    port: u16,
}

/// Why an exchange failed: before a connection existed, on one, or because the body being
/// sent failed (a client's upload broke off: its error is what the client is told).
#[derive(Debug)]
pub enum Failure {
    Connect(io::Error),
    Exchange(io::Error),
    Body(GatewayError),
}

/// A response whose head has been read; its body is read as it is consumed.
pub struct Response {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub content_type: Option<HeaderValue>,
    pub body: Body,
}

/// A response body, reading from the connection on demand. Read to its end, the connection goes
/// back to this thread's pool; dropped before, the connection is closed.
pub struct Body {
    io: Option<TcpStream>,
    buf: BytesMut,
    decoder: Decoder,
    keep_alive: bool,
    addr: Arc<str>,
    failed: Option<io::Error>,
}

/// Why an exchange failed; `Stale`: a pooled connection ended before any byte of an answer, so
/// the request may be sent again on a new one.
enum Attempt {
    Stale,
    Failed(io::Error),
}

// === impl Origin ===

impl Origin {
    /// The origin of an `http://` URL.
    pub fn of(uri: &Uri) -> Result<Self, String> {
        if uri.scheme_str() != Some("http") {
            return Err(format!("{uri} is not an http:// URL"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("{uri} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        // From host and port, never the authority as written: userinfo (`user:pass@`) must not
        // reach the `host` header.
        let addr = match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        Ok(Self {
            addr: addr.into(),
            host,
            port,
        })
    }

    /// The start of a request head: request line, `host`, then `fields` (each a complete
    /// `name: value` line). The body's length and the blank line are added per request.
    pub fn head(&self, method: &str, target: &str, fields: &[&[u8]]) -> Vec<u8> {
        let mut head = Vec::with_capacity(128);
        for part in [
            method,
            " ",
            target,
            " HTTP/1.1\r\nhost: ",
            &self.addr,
            "\r\n",
        ] {
            head.extend_from_slice(part.as_bytes());
        }
        for field in fields {
            head.extend_from_slice(field);
            head.extend_from_slice(b"\r\n");
        }
        head
    }

    /// Sends a request whose head starts with `head` (then `extra`, lines as made by
    /// [`Origin::head`]) on an idle connection or a new one, and reads the response head.
    /// A request is sent again only when a pooled connection ended before any byte of an answer.
    pub async fn send(
        &self,
        head: &[u8],
        extra: &[u8],
        body: Option<&Bytes>,
    ) -> Result<Response, Failure> {
        let mut request = Vec::with_capacity(head.len() + extra.len() + 40);
        request.extend_from_slice(head);
        request.extend_from_slice(extra);
        if let Some(body) = body {
            request.extend_from_slice(b"content-length: ");
            request.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        let body = body.map_or(&[][..], |b| &b[..]);

        // A pooled connection the upstream closed while it sat idle (servers close theirs after
        // their own keep-alive timeout) fails before any byte of an answer: the request goes
        // again, once, on a new connection, as curl, Go's net/http and hyper do.
        if let Some(io) = pool::take(&self.addr) {
            match self.exchange(io, &request, body, true).await {
                Ok(response) => return Ok(response),
                Err(Attempt::Failed(e)) => return Err(Failure::Exchange(e)),
                Err(Attempt::Stale) => {}
            }
        }
        let io = self.connect().await.map_err(Failure::Connect)?;
        self.exchange(io, &request, body, false)
            .await
            .map_err(|attempt| match attempt {
                Attempt::Failed(e) => Failure::Exchange(e),
                Attempt::Stale => Failure::Exchange(io::ErrorKind::BrokenPipe.into()),
            })
    }

    async fn connect(&self) -> io::Result<TcpStream> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let io = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        io.set_nodelay(true)?;
        Ok(io)
    }

    async fn exchange(
        &self,
        mut io: TcpStream,
        request: &[u8],
        body: &[u8],
        pooled: bool,
    ) -> Result<Response, Attempt> {
        if let Err(e) = write_all(&mut io, request, body).await {
            // Nothing was answered: a pooled connection the upstream had just closed.
            return Err(if pooled {
                Attempt::Stale
            } else {
                Attempt::Failed(e)
            });
        }
        self.read_response(io, pooled).await
    }

    /// Sends a request whose body (of `content_type`, `length` bytes if known) is read from
    /// `stream` as it is sent (an upload), on a new connection: a pooled one the upstream closed
    /// meanwhile could not be retried once the body's first bytes were taken. With no length the
    /// body goes chunked. A failing body abandons the connection and its error comes back as
    /// [`Failure::Body`].
    pub async fn send_streamed<S>(
        &self,
        head: &[u8],
        extra: &[u8],
        content_type: &[u8],
        length: Option<u64>,
        mut stream: S,
    ) -> Result<Response, Failure>
    where
        S: Stream<Item = Result<Bytes, GatewayError>> + Unpin,
    {
        let mut request = Vec::with_capacity(head.len() + extra.len() + 120);
        request.extend_from_slice(head);
        request.extend_from_slice(extra);
        request.extend_from_slice(b"content-type: ");
        request.extend_from_slice(content_type);
        request.extend_from_slice(b"\r\n");
        match length {
            Some(len) => {
                request.extend_from_slice(b"content-length: ");
                request.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                request.extend_from_slice(b"\r\n\r\n");
            }
            None => request.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n"),
        }
        let chunked = length.is_none();
        let mut io = self.connect().await.map_err(Failure::Connect)?;
        let written = async {
            write_all(&mut io, &request, &[]).await?;
            while let Some(piece) = stream.next().await {
                let piece = piece.map_err(Sent::Body)?;
                if piece.is_empty() {
                    continue;
                }
                if chunked {
                    let mut size = [0u8; 18];
                    let line = chunk_line(&mut size, piece.len());
                    write_all(&mut io, line, &piece).await?;
                    write_all(&mut io, b"\r\n", &[]).await?;
                } else {
                    write_all(&mut io, &piece, &[]).await?;
                }
            }
            if chunked {
                write_all(&mut io, b"0\r\n\r\n", &[]).await?;
            }
            Ok(())
        };
        match written.await {
            Ok(()) => {}
            Err(Sent::Body(e)) => return Err(Failure::Body(e)),
            // The upstream stopped reading: it may have answered already (a 413, a 400).
            Err(Sent::Io(e)) => {
                return match self.read_response(io, false).await {
                    Ok(mut response) => {
                        response.body.keep_alive = false;
                        Ok(response)
                    }
                    Err(_) => Err(Failure::Exchange(e)),
                };
            }
        }
        self.read_response(io, false)
            .await
            .map_err(|attempt| match attempt {
                Attempt::Failed(e) => Failure::Exchange(e),
                Attempt::Stale => Failure::Exchange(io::ErrorKind::BrokenPipe.into()),
            })
    }

    /// Reads the response head (interim ones skipped) and hands the body out as it arrives.
    async fn read_response(&self, io: TcpStream, pooled: bool) -> Result<Response, Attempt> {
        let mut io = io;
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        let mut answered = false;
        // Every head of the exchange, interim ones included, must allow reuse.
        let mut keep_alive = true;
        loop {
            // parse_head refuses a head past MAX_HEAD, so this grows by at most that much.
            if buf.capacity() - buf.len() < READ_SIZE / 4 {
                buf.reserve(READ_SIZE);
            }
            match io.read_buf(&mut buf).await {
                Ok(0) if pooled && !answered => return Err(Attempt::Stale),
                Ok(0) => {
                    return Err(Attempt::Failed(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before a response",
                    )));
                }
                Ok(_) => answered = true,
                Err(e) if pooled && !answered && is_reset(&e) => return Err(Attempt::Stale),
                Err(e) => return Err(Attempt::Failed(e)),
            }
            while let Some(head) = parse_head(&buf).map_err(Attempt::Failed)? {
                let content_type = head.content_type.clone().map(|at| content_type(&buf[at]));
                buf.advance(head.len);
                keep_alive &= head.keep_alive;
                // 100 Continue and 103 Early Hints come before the answer.
                if head.status.is_informational() {
                    continue;
                }
                let mut body = Body {
                    io: Some(io),
                    buf,
                    decoder: Decoder::new(head.framing),
                    keep_alive,
                    addr: self.addr.clone(),
                    failed: None,
                };
                body.settle();
                return Ok(Response {
                    status: head.status,
                    retry_after: head.retry_after,
                    content_type,
                    body,
                });
            }
        }
    }
}

/// Why writing a streamed request stopped: the connection, or the body being sent.
enum Sent {
    Io(io::Error),
    Body(GatewayError),
}

impl From<io::Error> for Sent {
    fn from(e: io::Error) -> Self {
        Sent::Io(e)
    }
}

/// A chunk's size line (`<hex>\r\n`) written into `buf`.
fn chunk_line(buf: &mut [u8; 18], len: usize) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = 16;
    let mut n = len;
    loop {
        at -= 1;
        buf[at] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[at..]
}

/// A response's content type; the two every chat answer has without an allocation (constants:
/// `from_static` checks its bytes where it runs, and a const runs at compile time).
fn content_type(value: &[u8]) -> HeaderValue {
    const JSON: HeaderValue = HeaderValue::from_static("application/json");
    const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
    match value {
        b"application/json" => JSON,
        b"text/event-stream" => EVENT_STREAM,
        other => HeaderValue::from_bytes(other)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    }
}

/// The peer reset or abandoned the connection (a closed idle connection written to).
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Writes `head` and `body` with as few system calls as the socket allows (one, usually).
async fn write_all(io: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    let mut slices = [IoSlice::new(head), IoSlice::new(body)];
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = io.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

// === impl Body ===

impl Body {
    /// The next piece of the body; `None` at its end.
    pub async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            if let Some(e) = self.failed.take() {
                return Some(Err(e));
            }
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(data)) => {
                    self.settle();
                    return Some(Ok(data));
                }
                Ok(None) if self.decoder.is_done() => {
                    self.release();
                    return None;
                }
                Ok(None) => {}
                Err(e) => return Some(Err(self.fail(e))),
            }
            let io = self.io.as_mut()?;
            if self.buf.is_empty() {
                // Between pieces a stream holds no buffer: a slow stream waits most of its life,
                // and a buffer held through each wait is 4 KiB a stream (docs/benchmarks.md).
                // The next one is taken when there is something to read into it.
                self.buf = BytesMut::new();
                if let Err(e) = io.readable().await {
                    return Some(Err(self.fail(e)));
                }
            }
            if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
                let hint = self.decoder.remaining_hint().unwrap_or(0);
                let want = usize::try_from(hint).unwrap_or(MAX_READ);
                self.buf.reserve(want.clamp(READ_SIZE, MAX_READ));
            }
            match io.read_buf(&mut self.buf).await {
                Ok(0) => {
                    if let Err(e) = self.decoder.eof() {
                        return Some(Err(self.fail(e)));
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(Err(self.fail(e))),
            }
        }
    }

    /// The body as a stream of its pieces.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        futures_util::stream::unfold(self, |mut body| async move {
            let piece = body.next().await?;
            Some((piece, body))
        })
    }

    /// Reads past framing already buffered, and gives the connection back as soon as the body
    /// is known to be complete, even if its reader never asks again.
    fn settle(&mut self) {
        match self.decoder.skip_framing(&mut self.buf) {
            Ok(()) if self.decoder.is_done() => self.release(),
            Ok(()) => {}
            Err(e) => {
                let e = self.fail(e);
                self.failed = Some(e);
            }
        }
    }

    fn release(&mut self) {
        if let Some(io) = self.io.take() {
            // Bytes past the end of the answer: the upstream is out of step; close.
            if self.keep_alive && self.buf.is_empty() {
                pool::put(&self.addr, io);
            }
        }
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.io = None;
        e
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
