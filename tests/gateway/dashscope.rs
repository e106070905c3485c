//! DashScope routes end to end: the client speaks OpenAI, the mock upstream sees the native
//! protocol, and a model mixing OpenAI and DashScope routes looks the same from the client.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{Gateway, get_status, post, sse_data};
use crate::mock_dashscope::{Behavior, MockDashScope};
use crate::mock_openai::MockOpenAi;

/// `gpt-4o-mini` and `text-embedding-3-small` served by the DashScope mock (and, when given, an
/// OpenAI-kind mock as a second route of equal weight).
pub fn dashscope_config(ds: &MockDashScope, openai: Option<&MockOpenAi>, extra: &str) -> String {
    let mut yaml = format!(
        "providers:\n  - {{ id: qwen, kind: dashscope, base_url: \"{}\", api_key: sk-ds-key-123456, timeout: 2s, health_check: {{ enabled: false }} }}\n",
        ds.base_url()
    );
    if let Some(oa) = openai {
        yaml += &format!(
            "  - {{ id: oa, kind: openai, base_url: \"{}\", api_key: sk-oa, timeout: 2s, health_check: {{ enabled: false }} }}\n",
            oa.base_url()
        );
    }
    let second = if openai.is_some() {
        ", { provider: oa, model: upstream-oa }"
    } else {
        ""
    };
    yaml += &format!(
        "models:\n  - {{ name: gpt-4o-mini, routes: [{{ provider: qwen, model: qwen-plus }}{second}] }}\n"
    );
    yaml += "  - { name: text-embedding-3-small, type: embedding, routes: [{ provider: qwen, model: text-embedding-v4 }] }\n";
    yaml + extra
}

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_completion_tokens": 64, "temperature": 0.5, "frequency_penalty": 0.1, "enable_thinking": false})
}

#[tokio::test]
async fn non_stream_chat_is_translated_both_ways() {
    let ds = MockDashScope::start("ds").await;
    let gw = Gateway::start(&dashscope_config(&ds, None, "")).await;
    let r = post(&gw, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["model"], "gpt-4o-mini",
        "the client sees the name it asked for"
    );
    assert_eq!(body["id"], "chatcmpl-rid-1");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from ds");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29})
    );

    let seen = &ds.requests()[0];
    assert_eq!(
        seen.path,
        "/api/v1/services/aigc/text-generation/generation"
    );
    assert_eq!(seen.headers["authorization"], "Bearer sk-ds-key-123456");
    assert!(seen.headers.get("x-dashscope-sse").is_none());
    assert_eq!(
        seen.body,
        json!({"model": "qwen-plus",
            "input": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]},
            "parameters": {"result_format": "message", "max_tokens": 64, "temperature": 0.5, "enable_thinking": false}})
    );
}

#[tokio::test]
async fn stream_is_translated_incremental_cumulative_or_squashed() {
    let ds = MockDashScope::start("ds").await;
    let gw = Gateway::start(&dashscope_config(&ds, None, "")).await;
    for behavior in [
        Behavior::Normal,
        Behavior::Cumulative,
        Behavior::NoBlankLines,
    ] {
        ds.next(1, behavior.clone());
        let r = post(&gw, "/v1/chat/completions", &chat(true)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let data = sse_data(&r.text().await.unwrap());
        assert_eq!(data.last().unwrap(), "[DONE]", "{behavior:?}");
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(
            text, "Hello from ds",
            "{behavior:?}: deltas must never repeat text"
        );
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 60);
        assert!(
            chunks
                .iter()
                .all(|c| c["model"] == "gpt-4o-mini" && c["id"] == "chatcmpl-rid-stream")
        );
    }
    let seen = ds.requests().last().unwrap().clone();
    assert_eq!(seen.headers["x-dashscope-sse"], "enable");
    assert_eq!(seen.body["parameters"]["incremental_output"], true);
}

#[tokio::test]
async fn native_errors_map_to_openai_errors_and_fall_back() {
    let ds = MockDashScope::start("ds").await;
    let oa = MockOpenAi::start("oa").await;
    let gw = Gateway::start(&dashscope_config(
        &ds,
        None,
        "routing:\n  unhealthy_after: 100\n",
    ))
    .await;
    let cases = [
        (
            Behavior::Status(400, "InvalidParameter"),
            400,
            "invalid_parameter",
        ),
        (
            Behavior::Status(400, "DataInspectionFailed"),
            400,
            "content_filter",
        ),
        (
            Behavior::Status(401, "InvalidApiKey"),
            502,
            "upstream_auth_failed",
        ),
        (
            Behavior::Status(429, "Throttling.RateQuota"),
            429,
            "rate_limit_exceeded",
        ),
        (
            Behavior::Status(500, "InternalError"),
            502,
            "upstream_error",
        ),
        (
            Behavior::ErrorEvent(400, "InvalidParameter"),
            400,
            "invalid_parameter",
        ),
    ];
    for (behavior, status, code) in cases {
        for stream in [false, true] {
            ds.next(1, behavior.clone());
            let r = post(&gw, "/v1/chat/completions", &chat(stream)).await;
            assert_eq!(r.status().as_u16(), status, "{behavior:?} stream={stream}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(
                body["error"]["code"], code,
                "{behavior:?} stream={stream}: {body}"
            );
            assert!(!body.to_string().contains("sk-ds-key"), "{body}");
        }
    }
    drop(gw);

    // With a second route, retryable native errors fall back before the commit point.
    let gw = Gateway::start(&dashscope_config(
        &ds,
        Some(&oa),
        "routing:\n  unhealthy_after: 100\n",
    ))
    .await;
    for behavior in [
        Behavior::Status(429, "Throttling.RateQuota"),
        Behavior::ErrorEvent(429, "Throttling"),
        Behavior::Status(500, "InternalError"),
        Behavior::CutAfter(0),
    ] {
        for stream in [false, true] {
            if !stream && matches!(behavior, Behavior::CutAfter(_)) {
                continue; // a stream-only failure
            }
            // Make the next pick the DashScope route (1:1 interleaving).
            while post(&gw, "/v1/chat/completions", &chat(false))
                .await
                .headers()["x-switchyard-provider"]
                != "oa"
            {}
            ds.next(1, behavior.clone());
            let r = post(&gw, "/v1/chat/completions", &chat(stream)).await;
            assert_eq!(
                (
                    r.status().as_u16(),
                    r.headers()["x-switchyard-provider"].to_str().unwrap()
                ),
                (200, "oa"),
                "{behavior:?} stream={stream}"
            );
        }
    }
}

#[tokio::test]
async fn a_stream_cut_after_the_commit_ends_with_an_error_event() {
    let ds = MockDashScope::start("ds").await;
    let gw = Gateway::start(&dashscope_config(&ds, None, "")).await;
    ds.next(1, Behavior::CutAfter(2));
    let body = post(&gw, "/v1/chat/completions", &chat(true))
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&body);
    let error: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(error["error"]["message"].is_string(), "{body}");
    assert!(!body.contains("[DONE]"));
}

#[tokio::test]
async fn a_mixed_model_looks_the_same_from_either_route() {
    let ds = MockDashScope::start("ds").await;
    let oa = MockOpenAi::start("oa").await;
    let gw = Gateway::start(&dashscope_config(&ds, Some(&oa), "")).await;
    let mut shapes = Vec::new();
    for _ in 0..2 {
        let r = post(&gw, "/v1/chat/completions", &chat(false)).await;
        let provider = r.headers()["x-switchyard-provider"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = r.json().await.unwrap();
        let keys = |v: &Value| {
            v.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let choice = &body["choices"][0];
        shapes.push((
            provider,
            keys(&body)
                .into_iter()
                .filter(|k| k != "system_fingerprint" && k != "service_tier")
                .collect::<Vec<_>>(),
            keys(choice),
            keys(&choice["message"]).len() >= 3,
        ));
    }
    assert_ne!(shapes[0].0, shapes[1].0, "both routes served");
    assert_eq!(shapes[0].1, shapes[1].1, "same top-level fields");
    assert_eq!(shapes[0].2, shapes[1].2, "same choice fields");
}

#[tokio::test]
async fn embeddings_are_batched_reassembled_and_base64_encoded_by_the_gateway() {
    let ds = MockDashScope::start("ds").await;
    let gw = Gateway::start(&dashscope_config(&ds, None, "")).await;
    let texts: Vec<String> = (0..23).map(|i| format!("text {i}")).collect();
    let r = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": texts, "dimensions": 3}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let indices: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, (0..23).collect::<Vec<u64>>());
    assert_eq!(body["model"], "text-embedding-3-small");
    assert_eq!(body["usage"]["prompt_tokens"], 46);
    let calls = ds.requests();
    assert_eq!(calls.len(), 3, "10 + 10 + 3 texts");
    assert!(
        calls
            .iter()
            .all(|c| c.path == "/api/v1/services/embeddings/text-embedding/text-embedding")
    );
    assert_eq!(calls[0].body["parameters"], json!({"dimension": 3}));

    let r = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "one", "encoding_format": "base64"}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(f32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1.0);

    let r = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": [1, 2, 3]}),
    )
    .await;
    assert_eq!(
        r.status(),
        400,
        "token-id input cannot go to a DashScope route"
    );
}

#[tokio::test]
async fn dashscope_providers_are_probed_on_the_compatible_models_list_only_when_idle() {
    let ds = MockDashScope::start("ds").await;
    let yaml = dashscope_config(&ds, None, "").replace(
        "health_check: { enabled: false }",
        "health_check: { interval: 100ms, timeout: 1s }",
    );
    let gw = Gateway::start(&yaml).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let idle_probes = ds.probes();
    assert!(
        idle_probes >= 2,
        "an idle provider is probed every interval (GET /compatible-mode/v1/models): {idle_probes}"
    );
    assert_eq!(ds.count(), 0, "a probe never calls a generation endpoint");

    // Busy: real answers every few milliseconds prove health; probes add nothing.
    let started = std::time::Instant::now();
    let before = ds.probes();
    while started.elapsed() < Duration::from_millis(600) {
        assert_eq!(
            post(&gw, "/v1/chat/completions", &chat(false))
                .await
                .status(),
            200
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        ds.probes() - before <= 1,
        "a busy, healthy provider is not probed: {} probes",
        ds.probes() - before
    );
    assert_eq!(get_status(&gw, "/ready").await, 200);
}
