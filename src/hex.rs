//! Lower-case hex, written by hand into fixed buffers: request ids, trace ids and `traceparent`,
//! stored-response ids. A request id through `format!` cost ~1,500 instructions of every request.

/// The sixteen digits, for a caller writing one byte's digits in place (a JSON `\u00XX`).
pub const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as hex into `out`, which is twice as long (a shorter `out` takes the first bytes).
pub fn write(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// `bytes` as hex, appended to `out`.
pub fn push(out: &mut String, bytes: &[u8]) {
    out.reserve(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// One byte from two lower-case hex digits (what W3C `traceparent` allows); `None` otherwise.
pub fn parse_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match pair {
        [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
        _ => None,
    }
}

/// Decodes `%XX` escapes leniently (model ids with `/` or `:`, query parameters, a database
/// URL's file paths).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_what_format_writes_and_reads_back() {
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut fixed = vec![0u8; 512];
        write(&mut fixed, &bytes);
        assert_eq!(std::str::from_utf8(&fixed).unwrap(), expected);
        let mut text = String::from("id_");
        push(&mut text, &bytes);
        assert_eq!(text, format!("id_{expected}"));
        for (pair, b) in fixed.chunks(2).zip(&bytes) {
            assert_eq!(parse_byte(pair), Some(*b));
        }
        assert_eq!(parse_byte(b"AB"), None, "upper case is not W3C's");
        assert_eq!(parse_byte(b"0g"), None);
        assert_eq!(parse_byte(b"0"), None);
    }
}
