//! An incremental `multipart/form-data` reader (RFC 7578 over RFC 2046 §5.1) that only watches:
//! fed the body's bytes as they arrive, it reports where each part starts and ends and the small
//! fields' values, and refuses a body that breaks the framing. It never holds the body: a
//! 20 MB file passes through it while it keeps a delimiter's length of bytes and one part's
//! head.

use std::ops::Range;

use memchr::memmem;

/// Longest part head (its `Content-Disposition` and `Content-Type` lines).
const MAX_HEAD: usize = 16 * 1024;
/// Longest field value kept (`model`, `response_format`, a prompt); longer ones are passed on
/// but not kept.
const MAX_FIELD: usize = 64 * 1024;
/// Most parts in one body (openai-python sends ten or so; images accept up to 16 files).
const MAX_PARTS: usize = 256;
/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// A body that is not multipart as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// A part seen so far: its name, whether it is a file, and where its content lies in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    /// Where its content starts, and ends once its closing delimiter was seen.
    pub start: u64,
    pub end: Option<u64>,
    /// The value of a field (no filename) up to `MAX_FIELD` bytes; `None` for files and longer
    /// fields.
    pub value: Option<Vec<u8>>,
}

pub struct Scanner {
    /// `\r\n--boundary`: what ends a part's content.
    delimiter: Vec<u8>,
    finder: memmem::Finder<'static>,
    state: State,
    /// Bytes fed so far.
    pos: u64,
    /// The last bytes of content (fewer than a delimiter), searched again with the next chunk's
    /// first bytes for a delimiter split between chunks. Starts as a virtual `\r\n` so that a
    /// body opening with `--boundary` is found like any other delimiter.
    tail: Vec<u8>,
    /// A part's head, or the bytes after a delimiter, until they are complete.
    pending: Vec<u8>,
    parts: Vec<Part>,
    /// Where the first delimiter line starts (a new part may be put before it).
    first_delimiter: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// After a delimiter: `--` (the end) or padding and a line end (a part) follow.
    Delimited,
    Head,
    Content,
    /// After the closing delimiter: the epilogue, ignored.
    Closed,
}

// === impl Scanner ===

impl Scanner {
    pub fn new(boundary: &[u8]) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        let finder = memmem::Finder::new(&delimiter).into_owned();
        Self {
            delimiter,
            finder,
            state: State::Preamble,
            pos: 0,
            tail: b"\r\n".to_vec(),
            pending: Vec::new(),
            parts: Vec::new(),
            first_delimiter: None,
        }
    }

    /// The parts seen so far, the last one possibly still open.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Where the first delimiter line starts.
    pub fn first_delimiter(&self) -> Option<u64> {
        self.first_delimiter
    }

    /// Reads the next bytes of the body.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Malformed> {
        while !chunk.is_empty() {
            let used = match self.state {
                State::Preamble | State::Content => self.content(chunk)?,
                State::Delimited => self.delimited(chunk)?,
                State::Head => self.head(chunk)?,
                State::Closed => chunk.len(),
            };
            self.pos += used as u64;
            chunk = &chunk[used..];
        }
        Ok(())
    }

    /// The body ended: it must have ended with its closing delimiter.
    pub fn finish(&self) -> Result<(), Malformed> {
        match self.state {
            State::Closed => Ok(()),
            State::Preamble => Err(malformed("no part (the boundary never appears)")),
            _ => Err(malformed("the body ended before its closing boundary")),
        }
    }

    /// Content (or preamble) bytes up to the next delimiter; returns how many were used.
    fn content(&mut self, chunk: &[u8]) -> Result<usize, Malformed> {
        let d = self.delimiter.len();
        // A delimiter that starts in the tail and ends in this chunk.
        let head_len = chunk.len().min(d - 1);
        let mut joined = Vec::with_capacity(self.tail.len() + head_len);
        joined.extend_from_slice(&self.tail);
        joined.extend_from_slice(&chunk[..head_len]);
        let found = match self.finder.find(&joined) {
            Some(i) if i < self.tail.len() && i + d <= joined.len() => {
                Some(i as i64 - self.tail.len() as i64)
            }
            _ => self.finder.find(chunk).map(|i| i as i64),
        };
        match found {
            Some(at) => {
                // `at` may be negative (in the tail): the delimiter ends `at + d` into the chunk.
                let delimiter_at = self.pos as i64 + at;
                self.close_part(delimiter_at.max(0) as u64, chunk, at);
                self.tail.clear();
                self.state = State::Delimited;
                Ok((at + d as i64) as usize)
            }
            None => {
                self.keep(chunk);
                let keep_from = chunk.len().saturating_sub(d - 1);
                if chunk.len() >= d - 1 {
                    self.tail.clear();
                    self.tail.extend_from_slice(&chunk[keep_from..]);
                } else {
                    self.tail.extend_from_slice(chunk);
                    let over = self.tail.len().saturating_sub(d - 1);
                    self.tail.drain(..over);
                }
                Ok(chunk.len())
            }
        }
    }

    /// Adds content to the open field's value, while it is short enough to keep.
    fn keep(&mut self, content: &[u8]) {
        if self.state != State::Content {
            return;
        }
        if let Some(part) = self.parts.last_mut()
            && let Some(value) = &mut part.value
        {
            if value.len() + content.len() > MAX_FIELD + self.delimiter.len() {
                part.value = None;
            } else {
                value.extend_from_slice(content);
            }
        }
    }

    /// A delimiter starting at `at` in `chunk` (negative: in the tail) ends the open part.
    fn close_part(&mut self, delimiter_at: u64, chunk: &[u8], at: i64) {
        if self.state == State::Preamble {
            // The delimiter's line (`--boundary`) starts after its line end, which may be the
            // virtual one before a body that opens with it.
            self.first_delimiter = Some((self.pos as i64 + at + 2) as u64);
            return;
        }
        if at > 0 {
            self.keep(&chunk[..at as usize]);
        }
        if let Some(part) = self.parts.last_mut() {
            part.end = Some(delimiter_at);
            let len = delimiter_at.saturating_sub(part.start) as usize;
            if let Some(value) = &mut part.value {
                value.truncate(len);
                if len > MAX_FIELD {
                    part.value = None;
                }
            }
        }
    }

    /// After a delimiter: `--` closes the body; otherwise optional padding and a line end open
    /// the next part's head.
    fn delimited(&mut self, chunk: &[u8]) -> Result<usize, Malformed> {
        let start = self.pending.len();
        self.pending
            .extend_from_slice(&chunk[..chunk.len().min(MAX_BOUNDARY)]);
        let p = &self.pending;
        if p.len() >= 2 && &p[..2] == b"--" {
            self.state = State::Closed;
            self.pending.clear();
            return Ok(2 - start);
        }
        let padding = p.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
        let rest = &p[padding..];
        if rest.len() >= 2 {
            if &rest[..2] != b"\r\n" {
                return Err(malformed("a boundary line is followed by text"));
            }
            if self.parts.len() >= MAX_PARTS {
                return Err(malformed(&format!("more than {MAX_PARTS} parts")));
            }
            let used = padding + 2 - start;
            self.pending.clear();
            self.state = State::Head;
            return Ok(used);
        }
        if padding >= MAX_BOUNDARY {
            return Err(malformed("a boundary line is followed by text"));
        }
        Ok(self.pending.len() - start)
    }

    /// A part's head, up to its blank line.
    fn head(&mut self, chunk: &[u8]) -> Result<usize, Malformed> {
        let start = self.pending.len();
        // The blank line may begin in what is pending: search from three bytes back.
        let from = start.saturating_sub(3);
        let take = chunk.len().min(MAX_HEAD + 4 - start.min(MAX_HEAD));
        self.pending.extend_from_slice(&chunk[..take]);
        if self.pending.starts_with(b"\r\n") {
            return Err(malformed("a part has no Content-Disposition"));
        }
        let Some(i) = memmem::find(&self.pending[from..], b"\r\n\r\n") else {
            if self.pending.len() > MAX_HEAD {
                return Err(malformed("a part's head is too long"));
            }
            return Ok(take);
        };
        let end = from + i;
        let used = end + 4 - start;
        let part = parse_head(&self.pending[..end], self.pos + used as u64)?;
        self.pending.clear();
        self.parts.push(part);
        self.state = State::Content;
        Ok(used)
    }
}

/// A part from its head lines: its `Content-Disposition` must be `form-data` with a `name`.
fn parse_head(head: &[u8], start: u64) -> Result<Part, Malformed> {
    let text = std::str::from_utf8(head).map_err(|_| malformed("a part's head is not UTF-8"))?;
    let disposition = text
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-disposition")
                .then_some(value.trim())
        })
        .ok_or_else(|| malformed("a part has no Content-Disposition"))?;
    let mut params = Params(disposition);
    let kind = params.kind();
    if !kind.eq_ignore_ascii_case("form-data") {
        return Err(malformed("a part's Content-Disposition is not form-data"));
    }
    let (mut name, mut filename) = (None, None);
    while let Some((key, value)) = params.next_param()? {
        match key.to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| malformed("a part has no name"))?;
    Ok(Part {
        value: filename.is_none().then(Vec::new),
        name,
        filename,
        start,
        end: None,
    })
}

/// `form-data; name="x"; filename="a b.wav"` read parameter by parameter.
struct Params<'a>(&'a str);

impl<'a> Params<'a> {
    fn kind(&mut self) -> &'a str {
        let (kind, rest) = self.0.split_once(';').unwrap_or((self.0, ""));
        self.0 = rest;
        kind.trim()
    }

    fn next_param(&mut self) -> Result<Option<(String, String)>, Malformed> {
        let rest = self.0.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return Ok(None);
        }
        let (key, rest) = rest
            .split_once('=')
            .ok_or_else(|| malformed("a Content-Disposition parameter has no value"))?;
        let rest = rest.trim_start();
        let (value, rest) = match rest.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => {
                let end = rest.find(';').unwrap_or(rest.len());
                (rest[..end].trim().to_owned(), &rest[end..])
            }
        };
        self.0 = rest;
        Ok(Some((key.trim().to_owned(), value)))
    }
}

/// A quoted string's value (backslash escapes undone) and what follows its closing quote.
fn unquote(s: &str) -> Result<(String, &str), Malformed> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(malformed(
        "a quoted Content-Disposition parameter is not closed",
    ))
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<Vec<u8>, Malformed> {
    let mut params = Params(content_type);
    if !params.kind().eq_ignore_ascii_case("multipart/form-data") {
        return Err(malformed("the body must be multipart/form-data"));
    }
    while let Some((key, value)) = params.next_param()? {
        if key.eq_ignore_ascii_case("boundary") {
            if value.is_empty() || value.len() > MAX_BOUNDARY {
                return Err(malformed(
                    "the multipart boundary must be 1 to 70 characters",
                ));
            }
            return Ok(value.into_bytes());
        }
    }
    Err(malformed("the multipart content type has no boundary"))
}

/// Where a part's content lies (a closed part).
pub fn span(part: &Part) -> Option<Range<u64>> {
    Some(part.start..part.end?)
}

fn malformed(why: &str) -> Malformed {
    Malformed(format!("malformed multipart body: {why}"))
}

#[cfg(test)]
#[path = "multipart_tests.rs"]
mod tests;
