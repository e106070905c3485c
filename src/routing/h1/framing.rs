//! HTTP/1.1 response framing, pure over bytes: the response head (status, how the body is
//! delimited, whether the connection may be reused, the retry hint) and a body decoder for
//! Content-Length, chunked and read-until-close bodies (RFC 9112 §6.3, §7.1).
//!
//! Strict where leniency lets a hostile upstream desynchronise a pooled connection: a
//! Content-Length that is not plain digits or differs between repeats, a chunk size that is not
//! hex or overflows, a missing CRLF after chunk data, a head or trailer section past its bound
//! are errors, and the connection is never reused after one. A head whose framing is merely
//! suspect (a bodiless status announcing a body, both length headers, `chunked` twice, an
//! HTTP/1.0 answer with a transfer coding) is read as RFC 9112 says, and its connection closed
//! after it: the bytes the upstream meant as a body would otherwise be read as the answer to the
//! next request on that connection, which may be another client's.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;

/// Largest response head accepted (status line and header fields).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields a response head may carry.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// What the client needs from a response head.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub framing: Framing,
    /// The connection may carry another request once the body is read.
    pub keep_alive: bool,
    pub retry_after: Option<Duration>,
    /// Where the `content-type` value lies in the buffer parsed (read only by who needs it).
    pub content_type: Option<std::ops::Range<usize>>,
    /// Bytes of the head, to drop from the front of the read buffer.
    pub len: usize,
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// No length and not chunked: the body ends when the upstream closes.
    UntilClose,
}

/// Decodes a body from a read buffer, handing out its data as it arrives.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers(usize),
    UntilClose,
    Done,
}

/// Parses a response head from the front of `buf`: `None` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<ResponseHead>> {
    // Uninitialised: initialising 100 fields costs more than parsing a typical head.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut fields,
    );
    let len = match parsed {
        // A head that arrived in one piece is held to the same bound as one still arriving.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
            return Err(invalid("response head too large"));
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(invalid("response head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(invalid("response head has too many fields"));
        }
        Err(_) => return Err(invalid("malformed response head")),
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| invalid("malformed status code"))?;
    // The gateway never asks for an upgrade: after a 101 the bytes are not HTTP/1.1 any more.
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(invalid("unrequested protocol switch"));
    }
    let http10 = response.version == Some(0);

    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut chunked_codings = 0usize;
    let mut transfer_encoding = false;
    let mut close = http10;
    let mut retry_after_ms: Option<&[u8]> = None;
    let mut retry_after_s: Option<&[u8]> = None;
    let mut content_type = None;
    for field in response.headers.iter() {
        let name = field.name.as_bytes();
        // By length first: most of an answer's fields are none of these, and are passed over
        // with one comparison instead of six.
        let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
        match name.len() {
            14 if is("content-length") => {
                let value = parse_length(field.value)?;
                if length.is_some_and(|seen| seen != value) {
                    return Err(invalid("conflicting content-length"));
                }
                length = Some(value);
            }
            17 if is("transfer-encoding") => {
                transfer_encoding = true;
                // Only the last coding says how the message ends.
                chunked = last_token(field.value).eq_ignore_ascii_case(b"chunked");
                chunked_codings += field
                    .value
                    .split(|b| *b == b',')
                    .filter(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
                    .count();
            }
            10 if is("connection") => {
                for token in field.value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                        close = false;
                    }
                }
            }
            14 if is("retry-after-ms") => retry_after_ms = Some(field.value),
            11 if is("retry-after") => retry_after_s = Some(field.value),
            12 if is("content-type") => {
                // httparse's values are slices of `buf`.
                let at = field.value.as_ptr() as usize - buf.as_ptr() as usize;
                content_type = Some(at..at + field.value.len());
            }
            _ => {}
        }
    }

    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let announces_body = transfer_encoding || length.is_some_and(|n| n > 0);
    // Suspect framing (RFC 9112 §6.1, §6.3): read as the RFC says, then never reuse.
    if (bodiless && announces_body)
        || (transfer_encoding && (length.is_some() || http10 || chunked_codings > 1))
    {
        close = true;
    }
    let framing = if bodiless {
        Framing::Empty
    } else if transfer_encoding {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    Ok(Some(ResponseHead {
        status,
        framing,
        keep_alive: !close && framing != Framing::UntilClose,
        retry_after: retry_hint(retry_after_ms, retry_after_s),
        content_type,
        len,
    }))
}

fn parse_length(value: &[u8]) -> io::Result<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid("malformed content-length"));
    }
    Ok(digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|b| *b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

/// An upstream's retry hint from its `retry-after-ms` value (what openai-python reads first),
/// else its `retry-after` in seconds. Both every HTTP client's: untrusted text, so a value that is
/// not a plain non-negative number below a billion seconds is no hint (and never a panic in
/// `Duration::from_secs_f64`).
pub fn retry_hint(ms: Option<&[u8]>, s: Option<&[u8]>) -> Option<Duration> {
    ms.and_then(seconds)
        .map(|ms| ms / 1000.0)
        .or_else(|| s.and_then(seconds))
        .map(Duration::from_secs_f64)
}

/// A non-negative finite number below 1e9, as a retry hint carries it.
fn seconds(value: &[u8]) -> Option<f64> {
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

// === impl Decoder ===

impl Decoder {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// The body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still to come, when the framing says (a hint for the next read's size).
    pub fn remaining_hint(&self) -> Option<u64> {
        match self.state {
            State::Length(n) | State::ChunkData(n) => Some(n),
            _ => None,
        }
    }

    /// Takes the next piece of body data from `buf`: `None` when more input is needed or the
    /// body is done ([`Decoder::is_done`]). Never returns an empty piece.
    pub fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Bytes>> {
        self.skip_framing(buf)?;
        match self.state {
            State::Length(remaining) => {
                Ok(self.counted(buf, remaining, State::Done, State::Length))
            }
            State::ChunkData(remaining) => {
                Ok(self.counted(buf, remaining, State::ChunkDataEnd, State::ChunkData))
            }
            State::UntilClose if !buf.is_empty() => Ok(Some(buf.split().freeze())),
            _ => Ok(None),
        }
    }

    /// Up to `remaining` bytes of data whose length the framing gave; then `done`, or `more`
    /// of what is left.
    fn counted(
        &mut self,
        buf: &mut BytesMut,
        remaining: u64,
        done: State,
        more: fn(u64) -> State,
    ) -> Option<Bytes> {
        let data = take(buf, remaining)?;
        let left = remaining - data.len() as u64;
        self.state = if left == 0 { done } else { more(left) };
        Some(data)
    }

    /// Consumes the chunked framing (CRLFs, size lines, trailers) at the front of `buf` up to
    /// the next data, so a body whose last bytes have arrived is known to be done before its
    /// reader asks again.
    pub fn skip_framing(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        loop {
            match self.state {
                State::ChunkSize => {
                    let Some(line) = line(buf, MAX_CHUNK_LINE, "chunk size line too long")? else {
                        return Ok(());
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkDataEnd => {
                    if buf.len() < 2 {
                        return Ok(());
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let limit = MAX_TRAILERS.saturating_sub(seen);
                    let Some(line) = line(buf, limit, "trailer section too large")? else {
                        return Ok(());
                    };
                    self.state = if line.is_empty() {
                        State::Done
                    } else {
                        State::Trailers(seen + line.len() + 2)
                    };
                }
                _ => return Ok(()),
            }
        }
    }

    /// The upstream closed the connection: fine only where the close is the body's end.
    pub fn eof(&mut self) -> io::Result<()> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response body ended",
            )),
        }
    }
}

/// Up to `limit` bytes from the front of `buf`, without copying; `None` if `buf` is empty.
fn take(buf: &mut BytesMut, limit: u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(limit).map_or(buf.len(), |limit| limit.min(buf.len()));
    Some(buf.split_to(n).freeze())
}

/// The next CRLF-terminated line, without its CRLF; `None` while incomplete.
fn line(buf: &mut BytesMut, limit: usize, too_long: &'static str) -> io::Result<Option<BytesMut>> {
    match memchr::memchr(b'\n', buf) {
        Some(end) if end > 0 && buf[end - 1] == b'\r' => {
            let mut line = buf.split_to(end + 1);
            line.truncate(end - 1);
            if line.len() > limit {
                return Err(invalid(too_long));
            }
            Ok(Some(line))
        }
        Some(_) => Err(invalid("bare LF in chunked framing")),
        None if buf.len() > limit => Err(invalid(too_long)),
        None => Ok(None),
    }
}

/// `1*HEXDIG [ BWS ";" chunk-ext ]`.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 16 || !(rest.is_empty() || rest[0] == b';') {
        return Err(invalid("malformed chunk size"));
    }
    let mut size = 0u64;
    for d in &line[..digits] {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        size = (size << 4) | u64::from(v);
    }
    Ok(size)
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
