//! Server-sent events: an incremental decoder that accepts any split of the byte stream, and the
//! few encoders the gateway needs.
//!
//! The decoder yields whole *frames* (every byte of an event up to and including its blank
//! line) as zero-copy `Bytes`, so a pass-through relay forwards the upstream's exact bytes and
//! never a partial event; [`SseEvent::parse`] reads the fields of a frame when a caller needs
//! them. Line endings may be `\n`, `\r\n` or `\r` (WHATWG SSE §9.2.5).

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// The stream terminator OpenAI clients wait for.
pub const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

/// The frames of bytes a relay produced (whole frames, each ending with its blank line; usually
/// one), one by one.
pub fn frames(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    static BLANK_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = BLANK_LINE.find(rest).map_or(rest.len(), |at| at + 2);
        let (frame, next) = rest.split_at(end);
        rest = next;
        Some(frame)
    })
}

/// A frame grew past the decoder's bound without ending: the upstream is not speaking SSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge(pub usize);

pub struct SseDecoder {
    buf: BytesMut,
    /// Offset of the line being scanned.
    line_start: usize,
    /// Where the scan of that line resumes (bytes before it hold no line terminator).
    scan: usize,
    /// Whether the pending frame has a non-blank line yet; blank lines before one are dropped.
    has_content: bool,
    max_frame: usize,
    /// A `data:` line ends the frame even without a blank line after it.
    data_line_ends_frame: bool,
}

/// The fields of one frame. `data` joins multiple `data:` lines with `\n` and borrows when there
/// is only one (the common case).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent<'a> {
    pub event: Option<&'a [u8]>,
    pub data: Option<Cow<'a, [u8]>>,
    pub id: Option<&'a [u8]>,
    /// Comment lines without the leading `:` (DashScope puts `HTTP_STATUS/400` here).
    pub comments: Vec<&'a [u8]>,
}

// === impl SseDecoder ===

impl SseDecoder {
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            line_start: 0,
            scan: 0,
            has_content: false,
            max_frame,
            data_line_ends_frame: false,
        }
    }

    /// Line mode, for upstreams that put each event on one `data:` line and may omit the blank
    /// line between events (DashScope): a `data:` line ends the frame.
    pub fn with_data_line_ends_frame(mut self, on: bool) -> Self {
        self.data_line_ends_frame = on;
        self
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, if the bytes pushed so far hold one.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameTooLarge> {
        loop {
            let Some(offset) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scan..]) else {
                self.scan = self.buf.len();
                return self.check_size();
            };
            let eol = self.scan + offset;
            let next = match self.buf[eol] {
                b'\r' if eol + 1 == self.buf.len() => {
                    // A `\r` at the end may be the first half of `\r\n`: wait for the next byte.
                    self.scan = eol;
                    return self.check_size();
                }
                b'\r' if self.buf[eol + 1] == b'\n' => eol + 2,
                _ => eol + 1,
            };
            let blank = eol == self.line_start;
            let data_line =
                self.data_line_ends_frame && self.buf[self.line_start..eol].starts_with(b"data:");
            self.line_start = next;
            self.scan = next;
            if data_line {
                self.has_content = false;
                self.line_start = 0;
                self.scan = 0;
                return Ok(Some(self.buf.split_to(next).freeze()));
            }
            if !blank {
                self.has_content = true;
                continue;
            }
            let taken = self.buf.split_to(next);
            self.line_start = 0;
            self.scan = 0;
            if std::mem::take(&mut self.has_content) {
                return Ok(Some(taken.freeze()));
            }
        }
    }

    /// What is left when the stream ends: an unterminated last frame, if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = std::mem::take(&mut self.buf);
        self.line_start = 0;
        self.scan = 0;
        self.has_content = false;
        let trimmed = rest.iter().any(|b| !b.is_ascii_whitespace());
        trimmed.then(|| rest.freeze())
    }

    fn check_size(&self) -> Result<Option<Bytes>, FrameTooLarge> {
        match self.buf.len() > self.max_frame {
            true => Err(FrameTooLarge(self.buf.len())),
            false => Ok(None),
        }
    }
}

// === impl SseEvent ===

impl<'a> SseEvent<'a> {
    /// The common frame of named events (`event: <name>\ndata: <json>\n\n`, every Anthropic
    /// event) as its name and data, read without the general parser; `None` for any other shape
    /// (then [`SseEvent::parse`]).
    pub fn named(frame: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        let rest = frame.strip_prefix(b"event:")?;
        let end = memchr::memchr(b'\n', rest)?;
        let name = rest[..end].strip_prefix(b" ").unwrap_or(&rest[..end]);
        let rest = rest[end + 1..].strip_prefix(b"data:")?;
        let data = rest
            .strip_prefix(b" ")
            .unwrap_or(rest)
            .strip_suffix(b"\n\n")?;
        let plain = !name.contains(&b'\r') && memchr::memchr2(b'\n', b'\r', data).is_none();
        plain.then_some((name, data))
    }

    /// The common frame of unnamed events (`data: <json>\n\n`, every chat chunk) as its data;
    /// `None` for any other shape (then [`SseEvent::parse`]).
    pub fn data_only(frame: &'a [u8]) -> Option<&'a [u8]> {
        let rest = frame.strip_prefix(b"data:")?;
        let data = rest
            .strip_prefix(b" ")
            .unwrap_or(rest)
            .strip_suffix(b"\n\n")?;
        memchr::memchr2(b'\n', b'\r', data)
            .is_none()
            .then_some(data)
    }

    /// A frame's data: [`SseEvent::data_only`]'s reading when the frame has that shape, the
    /// general parser's (data lines joined) otherwise; `None` for a frame without data (a
    /// comment).
    pub fn data(frame: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match Self::data_only(frame) {
            Some(data) => Some(Cow::Borrowed(data)),
            None => Self::parse(frame).data,
        }
    }

    /// Whether `frames` hold a data line (what makes an event, as opposed to a comment). A line
    /// starting `data:` is looked for as the first or second line, then by a search; only a
    /// peer's other shapes (`data` alone, lines ended by a lone CR) take the parser.
    pub fn has_data(frames: &[u8]) -> bool {
        static DATA_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\ndata:"));
        // Usually the first line (`data:`) or the second (after `event:`).
        let second = memchr::memchr(b'\n', frames).map_or(&b""[..], |nl| &frames[nl + 1..]);
        frames.starts_with(b"data:")
            || second.starts_with(b"data:")
            || DATA_LINE.find(frames).is_some()
            || SseEvent::parse(frames).data.is_some()
    }

    /// Reads the fields of one frame (as returned by the decoder, or an unterminated remainder).
    pub fn parse(frame: &'a [u8]) -> Self {
        let mut event = SseEvent::default();
        let mut rest = frame;
        while !rest.is_empty() {
            let end = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
            let line = &rest[..end];
            let skip = match (rest.get(end), rest.get(end + 1)) {
                (None, _) => 0,
                (Some(b'\r'), Some(b'\n')) => 2,
                _ => 1,
            };
            rest = &rest[end + skip..];
            event.add_line(line);
        }
        event
    }

    fn add_line(&mut self, line: &'a [u8]) {
        if line.is_empty() {
            return;
        }
        if line[0] == b':' {
            self.comments.push(&line[1..]);
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                self.data = Some(match self.data.take() {
                    None => Cow::Borrowed(value),
                    Some(prev) => {
                        let mut joined = prev.into_owned();
                        joined.push(b'\n');
                        joined.extend_from_slice(value);
                        Cow::Owned(joined)
                    }
                })
            }
            b"event" => self.event = Some(value),
            b"id" => self.id = Some(value),
            _ => {}
        }
    }
}

/// `data: <payload>\n\n`.
pub fn data_frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// The frames glued back together; tests use it to prove frames are the exact input bytes.
#[cfg(test)]
fn concat(frames: &[Bytes]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
