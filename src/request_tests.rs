//! The request fields the gateway reads: the model's place in the body, refusals naming the field,
//! nesting depth, embeddings input shapes.

use super::*;
use http::HeaderValue;

fn chat(body: &str) -> Result<ChatRequest, GatewayError> {
    ChatRequest::parse(Bytes::copy_from_slice(body.as_bytes()))
}

#[test]
fn finds_model_span_even_with_escapes_and_whitespace() {
    let body = r#"{ "messages":[{"role":"user","content":"hi"}], "model" :  "gpt-\u0034o", "stream": true }"#;
    let r = chat(body).unwrap();
    assert_eq!(r.model, "gpt-4o");
    assert_eq!(&body[r.model_span.clone()], r#""gpt-\u0034o""#);
    assert!(r.stream);
    assert!(!r.include_usage);
}

#[test]
fn include_usage_only_counts_for_streams() {
    let r = chat(
        r#"{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}"#,
    )
    .unwrap();
    assert!(r.include_usage);
    let r =
        chat(r#"{"model":"m","messages":[{}],"stream_options":{"include_usage":true}}"#).unwrap();
    assert!(!r.include_usage);
}

#[test]
fn bad_requests_are_400_with_the_field_named() {
    let cases = [
        (r#"{"messages":[{}]}"#, Some("model")),
        (r#"{"model":3,"messages":[{}]}"#, Some("model")),
        (r#"{"model":"m"}"#, Some("messages")),
        (r#"{"model":"m","messages":"hi"}"#, Some("messages")),
        (r#"{"model":"m","messages":[ ]}"#, Some("messages")),
        (r#"{"model":"m","messages":[{}],"stream":"yes"}"#, None),
        (r#"[1,2]"#, None),
        (r#"{"model":"m","messages":[{}]"#, None),
        (r#"{"model":"m","model":"n","messages":[{}]}"#, None),
    ];
    for (body, param) in cases {
        let e = chat(body).expect_err(body);
        assert_eq!(e.status().as_u16(), 400, "{body}");
        if let Some(param) = param {
            assert!(format!("{:?}", e).contains(param), "{body}: {e:?}");
        }
    }
}

#[test]
fn deep_nesting_and_invalid_utf8_are_400() {
    let deep = format!(
        r#"{{"model":"m","messages":[{{}}],"x":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(chat(&deep).unwrap_err().status().as_u16(), 400);
    let mut bytes = br#"{"model":"m","messages":[{"role":"user","content":""#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(br#""}]}"#);
    assert_eq!(
        ChatRequest::parse(Bytes::from(bytes))
            .unwrap_err()
            .status()
            .as_u16(),
        400
    );
}

/// The byte-at-a-time definition the fast scan must agree with.
fn reference_depth_over(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b'[' | b'{') => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            (false, _) => {}
        }
    }
    false
}

#[test]
fn the_fast_depth_scan_agrees_with_the_byte_by_byte_one() {
    let pieces: [&[u8]; 9] = [b"[", b"]", b"{", b"}", b"\"", b"\\", b"\\\"", b"a", b","];
    // Every sequence of up to 6 pieces, inside and outside strings, at limits 0 to 3.
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new()];
    for _ in 0..6 {
        let longer: Vec<Vec<u8>> = bodies
            .iter()
            .flat_map(|b| pieces.iter().map(move |p| [b.as_slice(), p].concat()))
            .collect();
        bodies.extend(longer.into_iter().filter(|b| b.len() <= 8));
        bodies.sort();
        bodies.dedup();
    }
    assert!(bodies.len() > 10_000);
    for body in &bodies {
        for limit in 0..4 {
            assert_eq!(
                max_depth_over(body, limit),
                reference_depth_over(body, limit),
                "{:?} at limit {limit}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[test]
fn depth_counts_only_brackets_outside_strings() {
    let ok = format!(
        r#"{{"model":"m","messages":[{{"content":"{}"}}],"x":{}1{}}}"#,
        "[{\\\"".repeat(500),
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(chat(&ok).is_ok());
    let deep = format!(
        r#"{{"model":"m","messages":[{{}}],"x":{}1{}}}"#,
        "[".repeat(130),
        "]".repeat(130)
    );
    assert_eq!(chat(&deep).unwrap_err().status().as_u16(), 400);
}

#[test]
fn embeddings_accept_every_input_shape() {
    for (input, len) in [
        (r#""a""#, 1),
        (r#"["a","b"]"#, 2),
        ("[1,2,3]", 1),
        ("[[1],[2,3]]", 2),
        (r#"["a\u00e9",""]"#, 2),
    ] {
        let body = format!(r#"{{"model":"e","input":{input},"encoding_format":"base64"}}"#);
        let r = EmbeddingsRequest::parse(Bytes::from(body)).unwrap();
        assert_eq!(r.input.len(), len);
        assert!(r.base64);
    }
    for bad in [
        r#"{"model":"e","input":[]}"#,
        r#"{"model":"e","input":{"a":1}}"#,
        r#"{"model":"e","input":"a","encoding_format":"hex"}"#,
        r#"{"model":"e"}"#,
        // Mixed shapes, an empty token-id array, an id past u32, a negative id.
        r#"{"model":"e","input":["a",1]}"#,
        r#"{"model":"e","input":[1,"a"]}"#,
        r#"{"model":"e","input":[[1],2]}"#,
        r#"{"model":"e","input":[[1],[]]}"#,
        r#"{"model":"e","input":[4294967296]}"#,
        r#"{"model":"e","input":[-1]}"#,
    ] {
        assert_eq!(
            EmbeddingsRequest::parse(Bytes::from(bad))
                .unwrap_err()
                .status()
                .as_u16(),
            400,
            "{bad}"
        );
    }
}

#[test]
fn a_body_too_costly_as_a_tree_is_refused_and_ordinary_ones_fit() {
    let dense = |item: &str, n: usize| {
        let items = vec![item; n].join(",");
        format!(r#"{{"model":"m","input":[{items}]}}"#)
    };
    // Long text, many messages, tool schemas: a few times their own size as a tree.
    let message = format!(
        r#"{{"role":"user","content":"{}"}}"#,
        "a sentence. ".repeat(25)
    );
    let tool = r#"{"type":"function","name":"f","parameters":{"type":"object","properties":{"x":{"type":"string","description":"what x is"}},"required":["x"]}}"#;
    for body in [
        format!(r#"{{"model":"m","input":"{}"}}"#, "x".repeat(8_000_000)),
        dense(&message, 20_000),
        format!(
            r#"{{"model":"m","input":"hi","tools":[{}]}}"#,
            vec![tool; 128].join(",")
        ),
    ] {
        assert!(check_tree(body.as_bytes()).is_ok(), "{} bytes", body.len());
    }
    // Small values by the million: refused, naming the reason.
    for (item, n) in [("0", 1_000_000), ("{}", 1_000_000), (r#"{"a":0}"#, 500_000)] {
        let body = dense(item, n);
        let e = check_tree(body.as_bytes()).expect_err(item);
        assert_eq!(e.status().as_u16(), 400);
        assert!(e.to_string().contains("too many JSON values"), "{e}");
    }
}

fn cache_control(pairs: &[(&'static str, &'static str)]) -> Result<CacheControl, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_static(value));
    }
    CacheControl::from_headers(&headers).map_err(|e| e.message().to_owned())
}

#[test]
fn cache_control_and_the_ttl_header_are_read() {
    assert_eq!(cache_control(&[]), Ok(CacheControl::default()));
    let d = cache_control(&[
        ("cache-control", "No-Cache, max-age=\"60\", private"),
        ("cache-control", "no-store"),
        ("x-switchyard-cache-ttl", "10m"),
    ])
    .unwrap();
    assert!(d.no_cache && d.no_store);
    assert_eq!(d.max_age, Some(60));
    assert_eq!(d.ttl, Some(Duration::from_secs(600)));
    for bad in ["10", "0s", "soon"] {
        let e = cache_control(&[("x-switchyard-cache-ttl", bad)]).unwrap_err();
        assert!(e.contains("x-switchyard-cache-ttl"), "{e}");
    }
}

#[test]
fn a_pass_request_names_its_model_if_any_and_needs_its_field() {
    let parse = |body: &str| PassRequest::parse(Bytes::copy_from_slice(body.as_bytes()), "input");
    let named = parse(r#"{"input":"x","model":"omni"}"#).unwrap();
    let (name, span) = named.model.unwrap();
    assert_eq!(
        (name.as_str(), &named.body[span]),
        ("omni", &br#""omni""#[..])
    );
    assert!(parse(r#"{"input":["a","b"]}"#).unwrap().model.is_none());
    for (bad, param) in [
        (r#"{"model":"m"}"#, "input"),
        (r#"{"input":null}"#, "input"),
        (r#"{"input":"x","model":null}"#, "model"),
        (r#"{"input":"x","model":7}"#, "model"),
    ] {
        let e = parse(bad).unwrap_err();
        assert!(e.message().contains(param), "{bad}: {}", e.message());
    }
    assert!(parse("[1]").is_err());
}
