//! Members of a JSON object found without parsing it: one pass over its structure, strings
//! skipped eight bytes at a time (a SIMD search past their first 32 bytes). For answers the
//! gateway forwards as they are but must read a field of (usage, images) or rewrite one in place
//! (the model's name), and for the cache's canonical key: no tree, no copy, and a key nested
//! deeper or inside a string never matches.

use std::ops::Range;

use memchr::memmem;

/// A key looked for by a search instead of a walk: its quoted form's searchers, built once
/// (a `static`), for keys read from every answer.
pub struct Key {
    quoted: &'static [u8],
    finder: memmem::Finder<'static>,
}

impl Key {
    /// `quoted` is the key as written, quotes included (`"\"model\""`).
    pub fn new(quoted: &'static [u8]) -> Self {
        Self {
            quoted,
            finder: memmem::Finder::new(quoted),
        }
    }

    /// The key without its quotes.
    fn name(&self) -> &'static [u8] {
        &self.quoted[1..self.quoted.len() - 1]
    }
}

/// The byte ranges of the values of `keys` among the top-level members of the object `body`
/// (`None` where a key is absent; the last wins if one repeats); `None` when `body` is not an
/// object or is malformed where the pass looks. Keys are compared as written, escapes and all.
pub fn object<const N: usize>(body: &[u8], keys: [&[u8]; N]) -> Option<[Option<Range<usize>>; N]> {
    object_at(body, skip_ws(body, 0), keys).map(|(found, _)| found)
}

/// [`object`] for the object opening at `start` (which need not be the whole of `body`): its
/// members' ranges in `body`, and where the object ends (one past its `}`).
fn object_at<const N: usize>(
    body: &[u8],
    start: usize,
    keys: [&[u8]; N],
) -> Option<([Option<Range<usize>>; N], usize)> {
    let mut found = [const { None }; N];
    let end = members(body, start, |key, value| {
        if let Some(slot) = keys.iter().position(|k| *k == key) {
            found[slot] = Some(value);
        }
        false
    })?;
    Some((found, end))
}

/// [`object`] for one key, stopping at the first match: cheap for a key near the start (an
/// answer's `model`, before its content).
pub fn first_top_level(body: &[u8], key: &[u8]) -> Option<Range<usize>> {
    let mut found = None;
    members(body, skip_ws(body, 0), |k, value| {
        let hit = k == key;
        if hit {
            found = Some(value);
        }
        hit
    })?;
    found
}

/// [`first_top_level`] for a key an answer writes among its first members (Anthropic's
/// `model`, after `id`, `type` and `role`), found by a search instead of a walk when nothing
/// before it opens a nested value: the first `"model"` after the `{` or a `,` is then a key of
/// the outermost object (inside a string its quotes would be escaped, and the closing one is
/// not). Otherwise, the walk.
pub fn leading_member(body: &[u8], key: &Key) -> Option<Range<usize>> {
    let open = skip_ws(body, 0);
    if body.get(open) != Some(&b'{') {
        return None;
    }
    let searched = || {
        let at = open + 1 + key.finder.find(&body[open + 1..])?;
        if memchr::memchr2(b'{', b'[', &body[open + 1..at]).is_some() {
            return None;
        }
        let before = body[open..at].trim_ascii_end().last();
        if !matches!(before, Some(b'{' | b',')) {
            return None;
        }
        let colon = skip_ws(body, at + key.quoted.len());
        if body.get(colon) != Some(&b':') {
            return None;
        }
        value_at(body, skip_ws(body, colon + 1))
    };
    searched().or_else(|| first_top_level(body, key.name()))
}

/// Calls `visit` with the key (as written) and value range of each member of the object opening
/// at `start`, in order, until it returns true; then returns where the walk ended (one past the
/// `}`, or past the value `visit` stopped at). `None` if there is no object at `start` or it is
/// malformed where the walk went.
fn members(
    body: &[u8],
    start: usize,
    mut visit: impl FnMut(&[u8], Range<usize>) -> bool,
) -> Option<usize> {
    let mut i = open(body, start)?;
    loop {
        match next_member(body, i)? {
            Member::End(end) => return Some(end),
            Member::At { key, value } => {
                let end = value_end(body, value)?;
                if visit(&body[key], value..end) {
                    return Some(end);
                }
                i = end;
            }
        }
    }
}

/// A member's key as written (quotes included) and its value, as ranges of the body.
pub type KeyValue = (Range<usize>, Range<usize>);

/// Every member of the object opening at `start`: its key as written (quotes included) and its
/// value's range, in order; and where the object ends. `None` if there is no object at `start`
/// or it is malformed where the walk went.
pub fn members_at(body: &[u8], start: usize) -> Option<(Vec<KeyValue>, usize)> {
    let mut found = Vec::new();
    let end = members(body, start, |key, value| {
        // `key` is a slice of `body`: its address is its place (quotes on either side).
        let at = (key.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        found.push((at - 1..at + key.len() + 1, value));
        false
    })?;
    Some((found, end))
}

/// The range of the value starting at `start` (a string, number, literal, object or array).
pub fn value_at(body: &[u8], start: usize) -> Option<Range<usize>> {
    value_end(body, start).map(|end| start..end)
}

/// Every element of the array opening at `start`, as value ranges in order, and where the array
/// ends. `None` if there is no array at `start` or it is malformed where the walk went.
pub fn elements_at(body: &[u8], start: usize) -> Option<(Vec<Range<usize>>, usize)> {
    if body.get(start) != Some(&b'[') {
        return None;
    }
    let mut found = Vec::new();
    let mut i = start + 1;
    loop {
        i = skip_ws(body, i);
        match body.get(i)? {
            b']' => return Some((found, i + 1)),
            b',' if !found.is_empty() => i += 1,
            _ => {
                let end = value_end(body, i)?;
                found.push(i..end);
                i = end;
            }
        }
    }
}

/// Where the value of the top-level member `key` of the object `body` starts (the first if it
/// repeats), found without reading that value: `message_start`'s `message`, which is then
/// walked itself, or a completion's `choices`, which a deserializer then reads (and ends).
pub fn member_start(body: &[u8], key: &[u8]) -> Option<usize> {
    let mut i = open(body, skip_ws(body, 0))?;
    loop {
        match next_member(body, i)? {
            Member::End(_) => return None,
            Member::At { key: k, value } if body[k.clone()] == *key => return Some(value),
            Member::At { value, .. } => i = value_end(body, value)?,
        }
    }
}

/// What comes next in an object being walked.
enum Member {
    /// A member: where its key (as written, without the quotes) is, and where its value starts.
    At { key: Range<usize>, value: usize },
    /// The object's end, one past its `}`.
    End(usize),
}

/// Past the `{` at `start`.
fn open(body: &[u8], start: usize) -> Option<usize> {
    (body.get(start) == Some(&b'{')).then_some(start + 1)
}

/// The member (or end) at or after `i`, inside an object: `,` and whitespace skipped.
fn next_member(body: &[u8], mut i: usize) -> Option<Member> {
    loop {
        i = skip_ws(body, i);
        match body.get(i)? {
            b'}' => return Some(Member::End(i + 1)),
            b',' => i += 1,
            b'"' => break,
            _ => return None,
        }
    }
    let key_end = string_end(body, i)?;
    let colon = skip_ws(body, key_end + 1);
    if body.get(colon) != Some(&b':') {
        return None;
    }
    Some(Member::At {
        key: i + 1..key_end,
        value: skip_ws(body, colon + 1),
    })
}

/// The members `keys` of the object that is the value of `key` when `key` is the last member
/// of the object `body` (`…,"key":{…}}`), found from the end without reading what comes before
/// it, and walked once: an answer's `usage`. `None` when the last member is another (then
/// [`object`]). Exactly one `}` after the value proves the member is the outermost object's: a
/// nested one is followed by at least two.
pub fn last_object<const N: usize>(
    body: &[u8],
    key: &Key,
    keys: [&[u8]; N],
) -> Option<[Option<Range<usize>>; N]> {
    let (found, end) = object_at(body, last_key(body, key)?, keys)?;
    closes_body(body, end).then_some(found)
}

/// Whether the value ending at `end` is followed by exactly the `}` that ends the body.
fn closes_body(body: &[u8], end: usize) -> bool {
    let close = skip_ws(body, end);
    body.get(close) == Some(&b'}') && skip_ws(body, close + 1) == body.len()
}

/// Where the value of the last `"key":` in `body` starts. Searched forward, where the search
/// has a SIMD form (a reverse one has none: it cost more than the walk it saves), in the last
/// [`TAIL`] bytes first: the member is near the end of any answer, however long its content.
fn last_key(body: &[u8], key: &Key) -> Option<usize> {
    const TAIL: usize = 1024;
    let last_from = |from: usize| {
        key.finder
            .find_iter(&body[from..])
            .filter_map(|at| {
                let colon = skip_ws(body, from + at + key.quoted.len());
                (body.get(colon) == Some(&b':')).then(|| skip_ws(body, colon + 1))
            })
            .last()
    };
    let tail = body.len().saturating_sub(TAIL);
    last_from(tail).or_else(|| (tail > 0).then(|| last_from(0)).flatten())
}

/// A JSON number that is a whole non-negative count (`12`; not `1.0`, `-1`, `1e3` or `null`):
/// how every usage field is written.
pub fn count(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The counts among the top-level members of the object `body` named in `keys` (`None` where a
/// key is absent or not a count); `None` if `body` is not an object. For usage objects: a walk
/// over a few flat members instead of a deserializer.
pub fn counts<const N: usize>(body: &[u8], keys: [&[u8]; N]) -> Option<[Option<u64>; N]> {
    Some(object(body, keys)?.map(|span| span.and_then(|s| count(&body[s]))))
}

/// The value of the top-level member `key` of the object `body`, as its bytes (the first if
/// it repeats).
pub fn member<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    body.get(first_top_level(body, key)?)
}

/// [`object`] for the object that is the value of the top-level member `key` of `body` (the
/// first if it repeats), with its members' ranges in `body`: walked once, its end not looked
/// for first.
pub fn member_object<const N: usize>(
    body: &[u8],
    key: &[u8],
    keys: [&[u8]; N],
) -> Option<[Option<Range<usize>>; N]> {
    object_at(body, member_start(body, key)?, keys).map(|(found, _)| found)
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
        // Keys and most values end within a few words; a long text, by a SIMD search.
        let near = (i + 32).min(body.len());
        i = match find_any(&body[..near], i, [b'"', b'\\']) {
            Some(at) => at,
            None => near + memchr::memchr2(b'"', b'\\', body.get(near..)?)?,
        };
        match body[i] {
            b'\\' => i += 2,
            _ => return Some(i),
        }
    }
}

/// Where the value starting at `start` ends (one past its last byte).
fn value_end(body: &[u8], start: usize) -> Option<usize> {
    let (open, close) = match body.get(start)? {
        b'"' => return string_end(body, start).map(|e| e + 1),
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => {
            let len = body[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            return (len > 0).then_some(start + len);
        }
    };
    // Only this value's own brackets are counted: in valid JSON the other kind nests inside.
    let mut depth = 0usize;
    let mut i = start;
    loop {
        i = find_any(body, i, [b'"', open, close])?;
        match body[i] {
            b'"' => i = string_end(body, i)?,
            b if b == open => depth += 1,
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
        }
        i += 1;
    }
}

/// The first index at or after `from` holding one of `bytes`, eight bytes at a time: the keys,
/// numbers and short strings of an answer's top level are passed in a few steps, where a byte
/// loop takes several instructions a byte and a SIMD search costs its set-up for each string.
fn find_any<const K: usize>(body: &[u8], from: usize, bytes: [u8; K]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = body.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte equal to `b` is a zero byte of `x ^ b…b`: its high bit is set below. Only a
        // byte above a true match can be flagged falsely, so the lowest flag is a match.
        let found = bytes.iter().fold(0, |found, &b| {
            let y = x ^ (u64::from(b) * ONES);
            found | (y.wrapping_sub(ONES) & !y & HIGHS)
        });
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    body.get(i..)?
        .iter()
        .position(|b| bytes.contains(b))
        .map(|at| i + at)
}

#[cfg(test)]
mod tests {
    use super::object;

    /// The members' values, all `None` when there is no object.
    fn values<'a, const N: usize>(body: &'a str, keys: [&str; N]) -> [Option<&'a str>; N] {
        let keys = keys.map(str::as_bytes);
        object(body.as_bytes(), keys)
            .unwrap_or([const { None }; N])
            .map(|r| r.map(|r| &body[r]))
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
        fn last_member(body: &[u8]) -> Option<[Option<&[u8]>; 2]> {
            let usage = super::Key::new(br#""usage""#);
            super::last_object(body, &usage, [b"input_tokens", b"x"])
                .map(|found| found.map(|r| r.map(|r| &body[r])))
        }
        let body = r#"{"id":"m","model" : "claude-x","content":[{"input":{"usage":{"a":1}}}],"usage":{"input_tokens":3}}"#;
        let at = |r: Option<std::ops::Range<usize>>| r.map(|r| &body[r]);
        assert_eq!(
            at(first_top_level(body.as_bytes(), b"model")),
            Some(r#""claude-x""#)
        );
        assert_eq!(last_member(body.as_bytes()), Some([Some(&b"3"[..]), None]));
        // Not last: found by neither shortcut's promise, so not found.
        let nested_last = r#"{"usage":{"x":1},"content":[{"input":{"usage":{"a":1}}}]}"#;
        assert_eq!(last_member(nested_last.as_bytes()), None);
        let inner_object = r#"{"a":{"usage":{"x":1}}}"#;
        assert_eq!(last_member(inner_object.as_bytes()), None);
        let as_value = r#"{"k":"usage"}"#;
        assert_eq!(last_member(as_value.as_bytes()), None);
        let not_an_object = r#"{"usage":null}"#;
        assert_eq!(last_member(not_an_object.as_bytes()), None);
        // Past the tail searched first: a long answer, and a usage object longer than the tail.
        let text = "x".repeat(5000);
        let long = format!(r#"{{"content":"{text}","usage" :{{"input_tokens":7}}}}"#);
        assert_eq!(last_member(long.as_bytes()), Some([Some(&b"7"[..]), None]));
        let long_usage = format!(r#"{{"usage":{{"input_tokens":8,"x":"{text}"}}}}"#);
        let [input, x] = last_member(long_usage.as_bytes()).expect("found");
        assert_eq!(
            (input, x.map(<[u8]>::len)),
            (Some(&b"8"[..]), Some(text.len() + 2))
        );
        assert_eq!(first_top_level(br#"{"a":1}"#, b"model"), None);
    }

    /// The search finds what the walk finds, on bodies where it may answer itself and where it
    /// must leave the answer to the walk.
    #[test]
    fn a_leading_member_is_found_where_the_walk_finds_it() {
        let model = super::Key::new(br#""model""#);
        for body in [
            r#"{"id":"m","type":"message","model":"claude-x","content":[]}"#,
            r#" { "id" : "m" ,  "model" :"claude-x" }"#,
            r#"{"model":"claude-x"}"#,
            r#"{"model":{"name":"x"}}"#,
            // A nested value first: the walk decides.
            r#"{"meta":{"model":"inner"},"model":"claude-x"}"#,
            r#"{"tags":["model"],"model":"claude-x"}"#,
            // In strings, as a value, escaped, or not followed by a colon.
            r#"{"id":"a "model": b","model":"claude-x"}"#,
            r#"{"id":"model","model":"claude-x"}"#,
            r#"{"note":"x,"model"","model":"claude-x"}"#,
            r#"{"k":"v","model"}"#,
            r#"{"a":1}"#,
            r#"["model"]"#,
            "",
        ] {
            let body = body.as_bytes();
            assert_eq!(
                super::leading_member(body, &model),
                super::first_top_level(body, b"model"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_members_object_is_walked_where_it_starts() {
        use super::{member_object, member_start};
        let data = br#"{"type":"message_start", "message" : {"id":"m","model":"claude-x","content":[{"model":"no"}],"usage":{"input_tokens":3}},"model":"outer"}"#;
        let at = |r: Option<std::ops::Range<usize>>| r.map(|r| &data[r]);
        let [model, usage] = member_object(data, b"message", [b"model", b"usage"]).unwrap();
        assert_eq!(at(model), Some(&br#""claude-x""#[..]));
        assert_eq!(at(usage), Some(&br#"{"input_tokens":3}"#[..]));
        assert_eq!(data[member_start(data, b"model").unwrap()], b'"');
        assert_eq!(
            member_start(data, b"usage"),
            None,
            "nested keys are not members"
        );
        assert_eq!(member_object(data, b"type", [b"x"]), None, "not an object");
        assert_eq!(member_start(br#"{"a":"#, b"b"), None);
    }

    #[test]
    fn counts_are_whole_non_negative_numbers() {
        use super::{count, counts};
        let body = br#"{"a":12,"b":null,"c":1.5,"d":-1,"e":"3","f":{"x":1},"g":0,"h":18446744073709551615}"#;
        assert_eq!(
            counts(body, [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"z"]),
            Some([Some(12), None, None, None, None, None, Some(0), None, None])
        );
        assert_eq!(
            count(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(count(b""), None);
        assert_eq!(counts(b"null", [b"a"]), None);
        assert_eq!(counts(b"{}", [b"a"]), Some([None]));
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
