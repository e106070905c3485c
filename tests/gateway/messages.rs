//! Anthropic's Messages API on chat routes, end to end over HTTP: the wire details the SDK test
//! (`tests/dropin/anthropic_sdk.py`) does not see — every frame's `event:` line, Anthropic's
//! statuses and envelope for the gateway's own errors, `x-api-key`, the ledger's `messages`
//! rows, count_tokens without an upstream call, the models list's union shape, and the error
//! event after the commit point.

use serde_json::{Value, json};

use crate::harness::{Gateway, client, config_for, json_of, ledger_rows, unique};
use crate::mock_openai::{Behavior, MockOpenAi};

const KEYS: &str = "auth:\n  keys:\n    - { name: claude, key: sk-claude }\n";

fn hello(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "Say hello."}]})
}

async fn send(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .header("x-api-key", "sk-claude")
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        )
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_answer_as_anthropic_and_are_recorded_as_messages() {
    let a = MockOpenAi::start("a").await;
    let ledger = std::env::temp_dir().join(format!("{}.jsonl", unique("messages-ledger")));
    let gw = Gateway::start(&config_for(
        &[("a", &a.base_url(), 1, 1)],
        &format!("{KEYS}usage:\n  sink: file\n  path: {}\n", ledger.display()),
    ))
    .await;

    // A base URL set with /v1 gives /v1/v1/messages: served as well.
    let r = send(&gw, "/v1/v1/messages?beta=true", &hello(false)).await;
    assert_eq!(r.status(), 200);
    let r = send(&gw, "/v1/messages?beta=true", &hello(false)).await;
    assert_eq!(r.status(), 200);
    let message: Value = r.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Hello from a"}])
    );
    // The upstream got a chat request: the client's key and Anthropic headers stay behind.
    let sent = &a.requests()[1];
    assert!(sent.path.ends_with("/chat/completions"));
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": "Say hello."}])
    );
    assert_eq!(sent.headers["authorization"], "Bearer sk-upstream-a");
    assert!(
        !sent.headers.contains_key("x-api-key") && !sent.headers.contains_key("anthropic-beta")
    );

    let r = send(&gw, "/v1/messages", &hello(true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    for frame in &frames {
        assert!(
            frame.starts_with("event: "),
            "every frame names its event: {frame:?}"
        );
    }
    let names: Vec<&str> = frames
        .iter()
        .map(|f| f["event: ".len()..].split('\n').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(!text.contains("[DONE]"));

    // count_tokens never reaches an upstream.
    let before = a.count();
    let r = send(
        &gw,
        "/v1/messages/count_tokens?beta=true",
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, world"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let counted: Value = r.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 3, "{counted}");
    assert_eq!(a.count(), before);
    gw.shutdown().await;

    let rows = ledger_rows(&ledger);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert_eq!(
            (
                row["purpose"].as_str(),
                row["status"].as_str(),
                row["key_name"].as_str()
            ),
            (Some("messages"), Some("ok"), Some("claude"))
        );
    }
    let streamed = rows
        .iter()
        .find(|r| r["stream"] == true)
        .expect("the stream's row");
    assert_eq!(
        streamed["output_tokens"], 16,
        "the stream's usage chunk was read"
    );
}

#[tokio::test]
async fn the_gateways_own_errors_use_anthropics_envelope_and_statuses() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(
        &[("a", &a.base_url(), 1, 1)],
        &format!("{KEYS}routing:\n  unhealthy_after: 1\n  max_attempts: 1\n"),
    ))
    .await;
    let envelope = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let request_id = r.headers().get("request-id").cloned();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert!(request_id.is_some(), "request-id header");
        assert_eq!(body["request_id"], request_id.unwrap().to_str().unwrap());
        (
            status,
            body["error"]["type"].as_str().unwrap().to_owned(),
            body,
        )
    };
    let mut no_model = hello(false);
    no_model["model"] = json!("claude-opus-9");
    let (status, kind, _) = envelope(send(&gw, "/v1/messages", &no_model).await).await;
    assert_eq!((status, kind.as_str()), (404, "not_found_error"));
    let mut no_max = hello(false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (status, kind, body) = envelope(send(&gw, "/v1/messages", &no_max).await).await;
    assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    let r = client()
        .post(gw.url("/v1/messages"))
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    let (status, kind, _) = envelope(r).await;
    assert_eq!((status, kind.as_str()), (401, "authentication_error"));
    // No route left: 529 overloaded_error, which the SDKs and Claude Code retry.
    a.next(1, Behavior::Status(500, vec![]));
    let (status, kind, _) = envelope(send(&gw, "/v1/messages", &hello(false)).await).await;
    assert_eq!((status, kind.as_str()), (500, "api_error"));
    let (status, kind, _) = envelope(send(&gw, "/v1/messages", &hello(false)).await).await;
    assert_eq!((status, kind.as_str()), (529, "overloaded_error"));
}

#[tokio::test]
async fn a_stream_that_fails_after_the_commit_point_ends_with_an_error_event() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEYS)).await;
    a.next(1, Behavior::ErrorEventAfter(2));
    let text = send(&gw, "/v1/messages", &hello(true))
        .await
        .text()
        .await
        .unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\ndata: "), "{text}");
    let data: Value = serde_json::from_str(&last["event: error\ndata: ".len()..]).unwrap();
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!text.contains("message_delta") && !text.contains("message_stop"));
}

#[tokio::test]
async fn an_anthropic_client_gets_the_model_list_in_the_union_shape() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEYS)).await;
    let list = json_of(
        client()
            .get(gw.url("/v1/models?limit=1000"))
            .header("x-api-key", "sk-claude"),
    )
    .await;
    let first = &list["data"][0];
    assert_eq!(first["id"], "gpt-4o-mini");
    assert_eq!(
        (&first["object"], &first["type"]),
        (&json!("model"), &json!("model"))
    );
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], "gpt-4o-mini");
    // An OpenAI client (no anthropic-version, no x-api-key) gets OpenAI's shape.
    let plain = json_of(client().get(gw.url("/v1/models")).bearer_auth("sk-claude")).await;
    assert!(plain.get("has_more").is_none(), "{plain}");
    assert!(plain["data"][0].get("created_at").is_none(), "{plain}");
}

/// The recipe people run Claude Code with: a Qwen model on DashScope's native API behind the
/// gateway. A Claude Code–shaped turn (block system prompt, a mid-conversation system message, a
/// tool result) reaches DashScope as native messages with the system text hoisted first, and the
/// answers come back as Anthropic's, streamed and not.
#[tokio::test]
async fn claude_code_turns_run_on_a_dashscope_route() {
    let ds = crate::mock_dashscope::MockDashScope::start("qwen").await;
    let gw = Gateway::start(&crate::dashscope::dashscope_config(&ds, None, KEYS)).await;
    let turn = |stream: bool| {
        json!({"model": "gpt-4o-mini", "max_tokens": 512, "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "again"}]},
        ]})
    };
    let message: Value = send(&gw, "/v1/messages?beta=true", &turn(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        message["content"][0]["text"], "Hello from qwen",
        "{message}"
    );
    assert_eq!(message["stop_reason"], "end_turn");
    let native = &ds.requests()[0].body;
    assert_eq!(
        native["input"]["messages"][0],
        json!({"role": "system", "content": "You are Claude Code.\n\nBe brief."})
    );
    assert_eq!(native["input"]["messages"].as_array().unwrap().len(), 4);
    let text = send(&gw, "/v1/messages", &turn(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"text_delta\""), "{text}");
    assert!(
        text.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
}
