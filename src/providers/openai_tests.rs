//! The OpenAI-kind adapter: the model spliced in place, error mapping, usage found without a full
//! parse, relayed streams.

use super::*;
use crate::secret::Secret;

#[test]
fn splice_replaces_only_the_model_value() {
    let body = Bytes::from_static(
        br#"{"model":"alias","messages":[],"tools":[{"x":1}],"extra_vendor":true}"#,
    );
    let out = splice(&body, &(9..16), br#""gpt-4o-mini""#);
    assert_eq!(
        &out[..],
        br#"{"model":"gpt-4o-mini","messages":[],"tools":[{"x":1}],"extra_vendor":true}"#
    );
    let same = splice(&body, &(9..16), br#""alias""#);
    assert_eq!(
        same.as_ptr(),
        body.as_ptr(),
        "an unchanged model must not copy the body"
    );
}

#[test]
fn error_mapping_keeps_request_errors_and_hides_credentials() {
    let key = Secret::new("sk-abcdefghijklmnop");
    let body = br#"{"error":{"message":"Incorrect API key provided: sk-abcdefghijklmnop","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let e = parse_error("openai", StatusCode::UNAUTHORIZED, None, body).scrubbed(Some(&key));
    assert_eq!(e.kind(), ErrorKind::UpstreamAuth);
    assert!(!e.message().contains("sk-"), "{e}");

    let body = br#"{"error":{"message":"Invalid schema for function 'f' (key sk-abcdefghijklmnop)","type":"invalid_request_error","param":"tools[0]","code":"invalid_function_parameters"}}"#;
    let e = parse_error("openai", StatusCode::BAD_REQUEST, None, body).scrubbed(Some(&key));
    assert_eq!(e.kind(), ErrorKind::UpstreamRejected);
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(!e.message().contains("sk-abc"), "{e}");
    assert!(e.message().contains("Invalid schema"));

    let e = parse_error(
        "openai",
        StatusCode::TOO_MANY_REQUESTS,
        Some(Duration::from_secs(2)),
        b"{}",
    );
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));

    let e = parse_error(
        "openai",
        StatusCode::BAD_GATEWAY,
        None,
        b"<html>bad gateway</html>",
    );
    assert!(e.is_retryable());
    assert!(e.message().contains("bad gateway"));
}

#[test]
fn usage_is_found_without_parsing_the_whole_body() {
    let body = br#"{"id":"x","choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\": 999}"}}],"usage" : {"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}}}"#;
    assert_eq!(find_usage(body), Some(Usage::tokens(19, 10)));
    // A string value "usage" after the key is not mistaken for it.
    assert_eq!(
        find_usage(
            br#"{"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"note":"usage"}"#
        ),
        Some(Usage::tokens(3, 1))
    );
    // Cached and reasoning parts, as OpenAI reports them; parts past their whole are capped.
    assert_eq!(
        find_usage(
            br#"{"usage":{"prompt_tokens":2006,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1920},"completion_tokens_details":{"reasoning_tokens":128}}}"#
        ),
        Some(Usage {
            cached_input_tokens: 1920,
            reasoning_tokens: 128,
            ..Usage::tokens(2006, 300)
        })
    );
    assert_eq!(
        find_usage(
            br#"{"usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":8,"cache_write_tokens":5},"completion_tokens_details":{"reasoning_tokens":9}}}"#
        ),
        Some(Usage {
            cached_input_tokens: 8,
            cache_write_tokens: 2,
            reasoning_tokens: 1,
            ..Usage::tokens(10, 1)
        })
    );
    assert_eq!(find_usage(br#"{"id":"x","usage":null}"#), None);
    assert_eq!(find_usage(br#"{"id":"x"}"#), None);
    let (_, usage) = parse_response(Bytes::from_static(
        br#"{"data":[{"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":8,"total_tokens":8}}"#,
    ))
    .unwrap();
    assert_eq!(usage, Some(Usage::tokens(8, 0)));
    assert!(parse_response(Bytes::from_static(b"<html>oops</html>")).is_err());
}

#[test]
fn relay_forwards_exact_bytes_and_reads_usage() {
    let mut relay = StreamRelay::new(true);
    let chunk = Bytes::from_static(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"the word \\\"usage\\\" and \\\"error\\\"\"}}]}\n\n");
    assert_eq!(
        relay.on_frame(chunk.clone()).unwrap(),
        Relayed::Forward(chunk)
    );
    let usage = Bytes::from_static(b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":44,\"completion_tokens\":16,\"total_tokens\":60}}\n\n");
    relay.on_frame(usage).unwrap();
    assert_eq!(relay.usage, Some(Usage::tokens(44, 16)));
    let done = Bytes::from_static(b"data: [DONE]\n\n");
    assert_eq!(relay.on_frame(done.clone()).unwrap(), Relayed::Done(done));
}

#[test]
fn streams_ask_for_usage_without_touching_anything_else() {
    let body = Bytes::from_static(br#"  {"model":"m","stream":true,"messages":[{"role":"user","content":"{x}"}],"extra":{"a":1}}"#);
    let asked = ask_for_usage(body, false);
    assert_eq!(
        &asked[..],
        br#"  {"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[{"role":"user","content":"{x}"}],"extra":{"a":1}}"#
    );
    let merged = ask_for_usage(
        Bytes::from_static(
            br#"{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}"#,
        ),
        true,
    );
    let v: serde_json::Value = serde_json::from_slice(&merged).unwrap();
    assert_eq!(
        v["stream_options"],
        serde_json::json!({"include_obfuscation": false, "include_usage": true})
    );
}

#[test]
fn the_usage_chunk_the_client_did_not_ask_for_is_hidden_but_counted() {
    let mut relay = StreamRelay::new(false);
    let usage = Bytes::from_static(b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":44,\"completion_tokens\":16,\"total_tokens\":60}}\n\n");
    assert_eq!(
        relay.on_frame(usage).unwrap(),
        Relayed::Forward(Bytes::new())
    );
    assert_eq!(relay.usage, Some(Usage::tokens(44, 16)));
    // A content chunk that happens to carry usage (some servers do) is never hidden.
    let both = Bytes::from_static(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n");
    assert_eq!(
        relay.on_frame(both.clone()).unwrap(),
        Relayed::Forward(both)
    );
}

#[test]
fn relay_turns_an_in_stream_error_into_an_error() {
    let mut relay = StreamRelay::new(true);
    let e = relay
        .on_frame(Bytes::from_static(
            b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
        ))
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.message(), "overloaded");
}

#[test]
fn a_model_is_written_in_first_and_every_other_byte_kept() {
    let body = Bytes::from_static(br#" {"input": "hi", "n": 2}"#);
    assert_eq!(
        insert_model(&body, br#""omni""#),
        Bytes::from_static(br#" {"model":"omni","input": "hi", "n": 2}"#)
    );
    // An empty object gets no dangling comma.
    assert_eq!(
        insert_model(&Bytes::from_static(b"{ }"), br#""m""#),
        Bytes::from_static(br#"{"model":"m" }"#)
    );
    let images = br#"{"created":1,"data":[{"b64_json":"AAAA"},{"b64_json":"BBBB"}],"usage":{"input_tokens":50,"output_tokens":30,"total_tokens":80}}"#;
    let (usage, units) = pass_units(Endpoint::ImageGenerations, images);
    assert_eq!(usage, Some(Usage::tokens(50, 30)));
    assert_eq!(units, Some((Unit::Images, 2)));
    assert_eq!(
        pass_units(Endpoint::Moderations, br#"{"results":[]}"#),
        (None, None)
    );
}
