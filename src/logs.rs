//! Log output where one event is one line, whatever its fields hold: a CR or LF inside an event
//! (a client's model name, an upstream's error text) is written as `\r` / `\n`, so no client
//! text can forge a log line. The JSON format escapes them already; this holds the text format
//! to the same rule, in one place, for every field of every event.

use std::io::{self, Write};

/// Writes each event with its inner line breaks escaped (the final newline kept).
pub struct OneLine<W>(pub W);

// === impl OneLine ===

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        if !body.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b => line.push(b),
            }
        }
        line.extend_from_slice(end);
        self.0.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Standard error, one event per line.
pub fn stderr() -> OneLine<io::Stderr> {
    OneLine(io::stderr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_line_breaks_are_escaped_and_the_last_kept() {
        let mut out = OneLine(Vec::new());
        out.write_all(b"refused error=The model `x\nFAKE LINE\r` does not exist\n")
            .unwrap();
        out.write_all(b"plain line\n").unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "refused error=The model `x\\nFAKE LINE\\r` does not exist\nplain line\n"
        );
    }
}
