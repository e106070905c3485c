//! Top-level members of a JSON object found without parsing it: one pass over its structure,
//! strings skipped with a SIMD search for their end. For answers the gateway forwards as they
//! are but must read a field of (usage) or rewrite one in place (the model's name): no tree, no
//! copy, and a key nested deeper or inside a string never matches.

use std::ops::Range;

/// The byte ranges of the values of `keys` among the top-level members of the object `body`
/// (`None` where a key is absent; the last wins if one repeats). All `None` if `body` is not an
/// object or is malformed where the pass looks. Keys are compared as written, escapes and all.
pub fn top_level<const N: usize>(body: &[u8], keys: [&[u8]; N]) -> [Option<Range<usize>>; N] {
    let mut found = [const { None }; N];
    let walked = members(body, |key, value| {
        if let Some(slot) = keys.iter().position(|k| *k == key) {
            found[slot] = Some(value);
        }
        false
    });
    match walked {
        Some(()) => found,
        None => [const { None }; N],
    }
}

/// [`top_level`] for one key, stopping at the first match: cheap for a key near the start (an
/// answer's `model`, before its content).
pub fn first_top_level(body: &[u8], key: &[u8]) -> Option<Range<usize>> {
    let mut found = None;
    members(body, |k, value| {
        let hit = k == key;
        if hit {
            found = Some(value);
        }
        hit
    })?;
    found
}

/// Calls `visit` with each top-level member's key (as written) and value range, in order,
/// until it returns true. `None` if `body` is not an object or is malformed where the walk went.
fn members(body: &[u8], mut visit: impl FnMut(&[u8], Range<usize>) -> bool) -> Option<()> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(body, i);
        match body.get(i)? {
            b'}' => return Some(()),
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = string_end(body, i)?;
        let key = &body[i + 1..key_end];
        i = skip_ws(body, key_end + 1);
        if body.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(body, i + 1);
        let end = value_end(body, start)?;
        if visit(key, start..end) {
            return Some(());
        }
        i = end;
    }
}

/// The value of `key` when it is the object's last member (`…,"key":value}`), found from the
/// end without reading what comes before it: cheap for an answer's `usage`. `None` when the
/// last member is another (then [`top_level`]). Exactly one `}` after the value proves the
/// member is the outermost object's: a nested one is followed by at least two. The key is
/// looked for quote by quote from the end (a reverse substring search has no SIMD form).
pub fn last_member(body: &[u8], key: &[u8]) -> Option<Range<usize>> {
    let quoted_len = key.len() + 2;
    let mut search_end = body.len();
    loop {
        let at = memchr::memrchr(b'"', &body[..search_end])?;
        search_end = at;
        let quoted = body.get(at + 1..at + quoted_len);
        if quoted.is_none_or(|q| &q[..key.len()] != key || q[key.len()] != b'"') {
            continue;
        }
        let colon = skip_ws(body, at + quoted_len);
        if body.get(colon) != Some(&b':') {
            continue;
        }
        let start = skip_ws(body, colon + 1);
        let end = value_end(body, start)?;
        let close = skip_ws(body, end);
        return (body.get(close) == Some(&b'}') && skip_ws(body, close + 1) == body.len())
            .then_some(start..end);
    }
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while matches!(body.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index of the quote closing the string that opens at `open`.
fn string_end(body: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', body.get(i..)?)?;
        match body[i] {
            b'\\' => i += 2,
            _ => return Some(i),
        }
    }
}

/// Where the value starting at `start` ends (one past its last byte).
fn value_end(body: &[u8], start: usize) -> Option<usize> {
    match body.get(start)? {
        b'"' => string_end(body, start).map(|e| e + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                match body.get(i)? {
                    b'"' => i = string_end(body, i)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = body[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            (len > 0).then_some(start + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::top_level;

    fn values<'a, const N: usize>(body: &'a str, keys: [&str; N]) -> [Option<&'a str>; N] {
        let keys = keys.map(str::as_bytes);
        top_level(body.as_bytes(), keys).map(|r| r.map(|r| &body[r]))
    }

    #[test]
    fn finds_top_level_members_only() {
        let body = r#" { "content" : [{"type":"tool_use","input":{"model":"no","usage":{"x":1}}}, "a\"model\":b"],
            "model":"claude-x", "n": -1.5e3 ,"ok":true,"usage":{"input_tokens":3,"s":"}"} } "#;
        assert_eq!(
            values(body, ["model", "usage", "n", "ok", "missing"]),
            [
                Some(r#""claude-x""#),
                Some(r#"{"input_tokens":3,"s":"}"}"#),
                Some("-1.5e3"),
                Some("true"),
                None
            ]
        );
    }

    #[test]
    fn the_first_and_the_last_member_are_found_without_the_rest() {
        use super::first_top_level;
        let last_member = |body: &[u8]| super::last_member(body, b"usage");
        let body = r#"{"id":"m","model" : "claude-x","content":[{"input":{"usage":{"a":1}}}],"usage":{"input_tokens":3}}"#;
        let at = |r: Option<std::ops::Range<usize>>| r.map(|r| &body[r]);
        assert_eq!(
            at(first_top_level(body.as_bytes(), b"model")),
            Some(r#""claude-x""#)
        );
        assert_eq!(
            at(last_member(body.as_bytes())),
            Some(r#"{"input_tokens":3}"#)
        );
        // Not last: found by neither shortcut's promise, so not found.
        let nested_last = r#"{"usage":{"x":1},"content":[{"input":{"usage":{"a":1}}}]}"#;
        assert_eq!(last_member(nested_last.as_bytes()), None);
        let inner_object = r#"{"a":{"usage":{"x":1}}}"#;
        assert_eq!(last_member(inner_object.as_bytes()), None);
        let as_value = r#"{"k":"usage"}"#;
        assert_eq!(last_member(as_value.as_bytes()), None);
        assert_eq!(first_top_level(br#"{"a":1}"#, b"model"), None);
    }

    #[test]
    fn what_is_not_an_object_finds_nothing() {
        for body in [
            "",
            "[]",
            r#""model""#,
            r#"{"model":"#,
            r#"{"model" 1}"#,
            r#"{"a":"unterminated}"#,
        ] {
            assert_eq!(values(body, ["model"]), [None], "{body:?}");
        }
        assert_eq!(values("{}", ["model"]), [None]);
    }
}
