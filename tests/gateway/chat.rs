//! Chat completions through the gateway: what the client receives and what the upstream saw.

use serde_json::{Value, json};

use crate::harness::{Gateway, client, config_for, post, sse_data};
use crate::mock_openai::{MockOpenAi, stream_chunks};

#[tokio::test]
async fn non_stream_forwards_the_body_untouched_but_for_model() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let request = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "auto", "parallel_tool_calls": true, "response_format": {"type": "text"},
        "n": 1, "seed": 42, "logprobs": false, "max_completion_tokens": 256, "stop": ["\n\n"],
        "enable_thinking": true, "vendor_extra": {"nested": [1, 2, {"x": null}]}
    });
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("client-key-must-not-leak")
        .header("x-request-id", "trace-123")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-123");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );

    let seen = &a.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    let mut expected = request.clone();
    expected["model"] = json!("upstream-a");
    assert_eq!(
        seen.body, expected,
        "every field but model must arrive untouched"
    );
    assert_eq!(seen.headers["authorization"], "Bearer sk-upstream-a");
    let all_headers = format!("{:?}", seen.headers);
    assert!(
        !all_headers.contains("client-key-must-not-leak"),
        "the client's key reached the upstream: {all_headers}"
    );
}

#[tokio::test]
async fn stream_delivers_every_chunk_usage_and_done() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let request = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&gw, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("x-request-id"));
    let text = response.text().await.unwrap();
    let data = sse_data(&text);
    let mut expected = stream_chunks("a", &a.requests()[0].body);
    expected.push("[DONE]".into());
    assert_eq!(
        data, expected,
        "the client must get the upstream's chunks byte for byte"
    );
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 60);
}

#[tokio::test]
async fn stream_tool_call_fragments_concatenate() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let request = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let text = post(&gw, "/v1/chat/completions", &request)
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["id"], "call_4XzlGBLtUe9dy3GVNV4jhq7h");
    assert_eq!(first["function"]["name"], "get_weather");
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage chunk unless the client asked"
    );
}

#[tokio::test]
async fn embedded_default_answers_offline_streaming_too() {
    let gw = Gateway::start(&crate::harness::embedded_default()).await;
    let response = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "demo", "messages": [{"role": "user", "content": "ping"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("ping")
    );
    let text = post(&gw, "/v1/chat/completions", &json!({"model": "demo", "stream": true, "messages": [{"role": "user", "content": "ping"}]})).await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let content: String = data[..data.len() - 1]
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(content.ends_with("You said: ping"), "{content}");
}
