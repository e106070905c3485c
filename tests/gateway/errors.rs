//! Bad input gets a clear OpenAI envelope with the status an SDK maps correctly; never a panic,
//! a hang or a dropped connection.

use serde_json::{Value, json};

use reqwest::Method;

use crate::harness::{Gateway, client, config_for, post, post_as};
use crate::mock_openai::MockOpenAi;

async fn expect_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert!(
        response.headers().contains_key("x-request-id"),
        "every response carries x-request-id"
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("not an OpenAI envelope: {body}"));
    for field in ["message", "type", "param", "code"] {
        assert!(error.contains_key(field), "envelope lacks {field}: {body}");
    }
    assert!(!error["message"].as_str().unwrap().is_empty());
    body
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let deep = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"x"}}],"x":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut non_utf8 = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""#.to_vec();
    non_utf8.extend_from_slice(&[0xc3, 0x28, 0xff]);
    non_utf8.extend_from_slice(br#""}]}"#);
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (b"{not json".to_vec(), None),
        (b"".to_vec(), None),
        (
            br#"{"messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            Some("model"),
        ),
        (
            br#"{"model":"gpt-4o-mini","messages":"hello"}"#.to_vec(),
            Some("messages"),
        ),
        (br#"{"model":"gpt-4o-mini"}"#.to_vec(), Some("messages")),
        (
            br#"{"model":["gpt-4o-mini"],"messages":[]}"#.to_vec(),
            Some("model"),
        ),
        // Well-formed JSON with a field of the wrong type or range: the field is named.
        (
            br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#
                .to_vec(),
            Some("stream"),
        ),
        (
            br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#
                .to_vec(),
            Some("max_tokens"),
        ),
        (
            br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":1}}"#
                .to_vec(),
            Some("stream_options.include_usage"),
        ),
        (deep.into_bytes(), None),
        (non_utf8, None),
    ];
    for (body, param) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let v = expect_error(r, 400).await;
        assert_eq!(v["error"]["type"], "invalid_request_error", "{shown}");
        match param {
            Some(param) => assert_eq!(v["error"]["param"], param, "{shown}"),
            None => assert_eq!(v["error"]["code"], "invalid_json", "{shown}"),
        }
    }
    assert_eq!(a.count(), 0, "nothing malformed reaches an upstream");
}

/// The parsers skip fields they do not read without looking inside their strings: bytes that are
/// not UTF-8 there must still never reach an upstream, on any endpoint.
#[tokio::test]
async fn a_body_that_is_not_utf8_anywhere_is_400_on_every_endpoint() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let with_bad_field = |json: &str| {
        let mut body = json.as_bytes()[..json.len() - 1].to_vec();
        body.extend_from_slice(b",\"x_unknown\":\"");
        body.extend_from_slice(&[0xc3, 0x28, 0xff, 0xfe]);
        body.extend_from_slice(b"\"}");
        body
    };
    for (path, json) in [
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}"#,
        ),
        ("/v1/completions", r#"{"model":"gpt-4o-mini","prompt":"x"}"#),
        (
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"x"}"#,
        ),
        ("/v1/responses", r#"{"model":"gpt-4o-mini","input":"x"}"#),
    ] {
        // The same body without the bad bytes is answered: only the encoding is refused.
        let good = client()
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body(json.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(good.status(), 200, "{path}");
        let before = a.count();
        let r = client()
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body(with_bad_field(json))
            .send()
            .await
            .unwrap();
        let v = expect_error(r, 400).await;
        assert_eq!(v["error"]["code"], "invalid_json", "{path}");
        assert_eq!(a.count(), before, "{path}: nothing reached the upstream");
    }
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found_and_wrong_type_is_400() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let v = expect_error(r, 404).await;
    assert_eq!(v["error"]["code"], "model_not_found");
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "text-embedding-3-small", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    expect_error(r, 400).await;
    let r = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "gpt-4o-mini", "input": "x"}),
    )
    .await;
    expect_error(r, 400).await;
}

#[tokio::test]
async fn oversize_bodies_are_413_declared_or_streamed() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let big = vec![b' '; 50 * 1024 * 1024];
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .body(big)
        .send()
        .await
        .unwrap();
    expect_error(r, 413).await;
    // Chunked, no content-length: refused once the limit is crossed.
    let chunks = futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024])),
    );
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    expect_error(r, 413).await;
    let ok = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(
        ok.status(),
        200,
        "the gateway still serves after refusing big bodies"
    );
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let gw = Gateway::start(&crate::harness::embedded_default()).await;
    let r = client()
        .get(gw.url("/v1/completions/nope"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404).await;
    // A 405 names what the path takes (RFC 9110 §15.5.6).
    for (method, path, allow) in [
        (Method::GET, "/v1/chat/completions", "POST"),
        (Method::PUT, "/v1/responses", "POST"),
        (Method::DELETE, "/v1/models", "GET"),
        (Method::POST, "/v1/models/demo", "GET"),
        (Method::POST, "/v1/sessions/s1", "GET, DELETE"),
        (Method::POST, "/v1/responses/resp_1/input_items", "GET"),
        (Method::POST, "/health", "GET, HEAD"),
    ] {
        let r = client()
            .request(method.clone(), gw.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        expect_error(r, 405).await;
    }
    // HEAD is GET without the body, for the endpoints monitors probe.
    for path in ["/health", "/ready", "/metrics"] {
        let r = client().head(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "HEAD {path}");
        assert!(r.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn keys_are_required_and_allow_lists_enforced() {
    let a = MockOpenAi::start("a").await;
    let extra = "auth:\n  keys:\n    - { name: team-a, key: sk-team-a }\n    - { name: embed-only, key: sk-embed, models: [\"text-embedding-*\"] }\n";
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], extra)).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]});
    let r = post(&gw, "/v1/chat/completions", &body).await;
    let v = expect_error(r, 401).await;
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let r = post_as(&gw, "/v1/chat/completions", "sk-wrong", &body).await;
    expect_error(r, 401).await;
    let r = post_as(&gw, "/v1/chat/completions", "sk-embed", &body).await;
    let v = expect_error(r, 403).await;
    assert_eq!(v["error"]["code"], "model_not_allowed");
    let r = client()
        .get(gw.url("/v1/models"))
        .bearer_auth("sk-embed")
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["text-embedding-3-small"],
        "a key lists only the models it may use"
    );
    let r = post_as(&gw, "/v1/chat/completions", "sk-team-a", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(a.count(), 1);
}

#[tokio::test]
async fn upstream_request_errors_pass_through_and_credential_errors_do_not() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]});
    a.next(1, crate::mock_openai::Behavior::Status(422, vec![]));
    let r = post(&gw, "/v1/chat/completions", &body).await;
    let v = expect_error(r, 422).await;
    assert_eq!(
        v["error"]["code"], "mock_422",
        "the upstream's own error reaches the client"
    );
    a.next(1, crate::mock_openai::Behavior::Status(401, vec![]));
    let r = post(&gw, "/v1/chat/completions", &body).await;
    let v = expect_error(r, 502).await;
    assert_eq!(v["error"]["code"], "upstream_auth_failed");
    assert!(!v.to_string().contains("sk-upstream"), "{v}");
}

#[tokio::test]
async fn n_is_capped_and_numbers_no_parser_can_hold_are_refused() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(
        &[("a", &a.base_url(), 1, 1)],
        "limits:\n  max_n: 4\n",
    ))
    .await;
    let chat = |extra: Value| {
        let mut body =
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let e = expect_error(
        post(&gw, "/v1/chat/completions", &chat(json!({"n": 5}))).await,
        400,
    )
    .await;
    assert_eq!(e["error"]["param"], "n");
    let r = post(&gw, "/v1/chat/completions", &chat(json!({"n": 4}))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(a.requests().last().unwrap().body["n"], 4);
    let e = expect_error(
        post(
            &gw,
            "/v1/completions",
            &json!({"model": "gpt-4o-mini", "prompt": "x", "n": 50}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(e["error"]["param"], "n");

    // Raw bodies: serde_json cannot build these values, so they are written by hand.
    let raw = |body: String| {
        client()
            .post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let messages = r#""messages":[{"role":"user","content":"hi 1e999 inside a string is text"}]"#;
    for bad in [
        format!(r#"{{"model":"gpt-4o-mini","temperature":1e999,{messages}}}"#),
        format!(r#"{{"model":"gpt-4o-mini","logit_bias":{{"50256":-1E+400}},{messages}}}"#),
        format!(
            r#"{{"model":"gpt-4o-mini","seed":{},{messages}}}"#,
            "9".repeat(400)
        ),
    ] {
        let e = expect_error(raw(bad.clone()).await.unwrap(), 400).await;
        assert_eq!(e["error"]["code"], "invalid_json", "{bad}");
    }
    let before = a.count();
    let fine = format!(r#"{{"model":"gpt-4o-mini","temperature":1e-5,"top_p":0.5E1,{messages}}}"#);
    assert_eq!(raw(fine).await.unwrap().status(), 200);
    assert_eq!(a.count(), before + 1, "ordinary exponents pass");
}
