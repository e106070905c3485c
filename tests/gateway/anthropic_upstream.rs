//! `kind: anthropic` routes end to end: OpenAI-dialect clients (chat, legacy completions,
//! Responses) reach a Messages API translated both ways, streams included; a Messages client's
//! own body goes up with only `model` rewritten and its answer comes back as it came; errors
//! fail over before the commit point; the probe spends no tokens; cache reads and writes reach
//! the ledger.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, client, eventually, ledger_rows, sse_data, unique};
use crate::mock_anthropic::{Behavior, CACHE_READ, CACHE_WRITE, INPUT, MockAnthropic, OUTPUT};
use crate::mock_openai::MockOpenAi;

/// `gpt-4o-mini` on the Anthropic mock as `claude-up` (and, given one, an OpenAI-kind mock as a
/// second route of lower priority), with a file ledger at `ledger`.
fn config(
    claude: &MockAnthropic,
    fallback: Option<&MockOpenAi>,
    ledger: &std::path::Path,
) -> String {
    let mut yaml = format!(
        "providers:\n  - {{ id: claude, kind: anthropic, base_url: \"{}\", api_key: sk-ant-upstream-key, timeout: 2s, health_check: {{ interval: 100ms, timeout: 1s }} }}\n",
        claude.base_url()
    );
    let mut routes = "[{ provider: claude, model: claude-up, priority: 1 }".to_owned();
    if let Some(oa) = fallback {
        yaml += &format!(
            "  - {{ id: oa, kind: openai, base_url: \"{}\", api_key: sk-oa, timeout: 2s, health_check: {{ enabled: false }} }}\n",
            oa.base_url()
        );
        routes += ", { provider: oa, model: upstream-oa, priority: 2 }";
    }
    yaml += &format!(
        "models:\n  - {{ name: gpt-4o-mini, max_output_tokens: 2048, price: {{ input_per_1m: 3, output_per_1m: 15, cached_input_per_1m: 0.3, cache_write_per_1m: 3.75 }}, routes: {routes}] }}\n"
    );
    yaml += "auth:\n  keys:\n    - { name: team, key: sk-team }\n";
    yaml += &format!("usage:\n  sink: file\n  path: {}\n", ledger.display());
    yaml
}

fn ledger_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}.jsonl", unique(name)))
}

async fn send(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .bearer_auth("sk-team")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn send_messages(gw: &Gateway, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url("/v1/messages?beta=true"))
        .header("x-api-key", "sk-team")
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "claude-code-20250219,prompt-caching-scope-2026-01-05",
        )
        .json(body)
        .send()
        .await
        .unwrap()
}

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream,
           "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
           "temperature": 0.5})
}

const ALL_INPUT: u64 = INPUT + CACHE_READ + CACHE_WRITE;

#[tokio::test]
async fn chat_reaches_a_messages_api_translated_both_ways() {
    let claude = MockAnthropic::start("claude").await;
    let ledger = ledger_path("anthropic-chat");
    let gw = Gateway::start(&config(&claude, None, &ledger)).await;

    let r = send(&gw, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from claude"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"]["prompt_tokens"], ALL_INPUT,
        "all input, the cache's included"
    );
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"],
        CACHE_READ
    );
    assert_eq!(body["usage"]["completion_tokens"], OUTPUT);

    let seen = &claude.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-upstream-key");
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert!(
        seen.headers.get("authorization").is_none(),
        "the client's key stays behind"
    );
    assert_eq!(
        seen.body,
        json!({"model": "claude-up", "max_tokens": 2048, "temperature": 0.5,
               "system": [{"type": "text", "text": "Be brief."}],
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    );

    let r = send(&gw, "/v1/chat/completions", &chat(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from claude");
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], ALL_INPUT);
    assert_eq!(claude.requests()[1].body["stream"], true);

    // Tools both ways, and the legacy completions endpoint.
    let mut tools = chat(false);
    tools["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let body: Value = send(&gw, "/v1/chat/completions", &tools)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    let r = send(
        &gw,
        "/v1/completions",
        &json!({"model": "gpt-4o-mini", "prompt": "Say hi", "max_tokens": 5}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "Hello from claude");
    assert_eq!(
        claude.requests()[3].body["max_tokens"],
        5,
        "the client's own value"
    );

    // The probe: `GET /v1/models?limit=1` with the key, never an inference.
    eventually(Duration::from_secs(5), "probed", || async {
        claude.probes() > 0
    })
    .await;
    gw.shutdown().await;

    let rows = ledger_rows(&ledger);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in &rows {
        assert_eq!(row["status"], "ok");
        assert_eq!(row["input_tokens"], ALL_INPUT);
        assert_eq!(row["cached_input_tokens"], CACHE_READ);
        assert_eq!(row["cache_write_tokens"], CACHE_WRITE);
        assert_eq!(row["output_tokens"], OUTPUT);
        assert_eq!(row["cost"], COST, "{row}");
    }
}

/// What each mock answer costs at the test model's prices: 12 new input tokens × $3/M, 100
/// cache reads × $0.30/M, 20 cache writes × $3.75/M, 7 output × $15/M, exactly.
const COST: &str = "0.0002460000";

#[tokio::test]
async fn responses_stream_from_a_messages_api() {
    let claude = MockAnthropic::start("claude").await;
    let gw = Gateway::start(&config(&claude, None, &ledger_path("anthropic-responses"))).await;
    let r = send(
        &gw,
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "input": "hi", "stream": true, "store": false}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("event: response.completed"), "{text}");
    let completed = text
        .split("\n\n")
        .find(|f| f.starts_with("event: response.completed"))
        .unwrap();
    let data: Value = serde_json::from_str(completed.split("data: ").nth(1).unwrap()).unwrap();
    assert_eq!(
        data["response"]["output"][0]["content"][0]["text"],
        "Hello from claude"
    );
    assert_eq!(
        data["response"]["usage"]["input_tokens_details"]["cached_tokens"],
        CACHE_READ
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_messages_client_is_passed_through_with_only_the_model_rewritten() {
    let claude = MockAnthropic::start("claude").await;
    let ledger = ledger_path("anthropic-passthrough");
    let gw = Gateway::start(&config(&claude, None, &ledger)).await;
    let request = json!({
        "model": "gpt-4o-mini", "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Earlier, elsewhere.", "signature": "sygw1"},
                {"type": "text", "text": "Hello."},
            ]},
            {"role": "user", "content": "again"},
        ],
        "thinking": {"type": "adaptive"}, "context_management": {"edits": []}, "metadata": {"user_id": "user_abc"},
    });
    let r = send_messages(&gw, &request).await;
    assert_eq!(r.status(), 200);
    let message: Value = r.json().await.unwrap();
    assert_eq!(message["id"], "msg_mock1", "Anthropic's own answer");
    assert_eq!(
        message["model"], "gpt-4o-mini",
        "renamed to what the client asked for"
    );
    assert_eq!(message["usage"]["cache_read_input_tokens"], CACHE_READ);

    let seen = &claude.requests()[0];
    assert_eq!(
        seen.headers["anthropic-beta"],
        "claude-code-20250219,prompt-caching-scope-2026-01-05"
    );
    assert_eq!(
        seen.headers["x-api-key"], "sk-ant-upstream-key",
        "the provider's key, not the client's"
    );
    let mut expected = request.clone();
    expected["model"] = json!("claude-up");
    // The gateway-signed thinking block (another model's reasoning) never reaches Anthropic.
    expected["messages"][1]["content"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert_eq!(seen.body, expected);

    // Without anything to mend, the stream goes up as sent and comes back frame for frame.
    let mut clean = request.clone();
    clean["messages"][1]["content"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    clean["stream"] = json!(true);
    let r = send_messages(&gw, &clean).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let mut upstream = clean.clone();
    upstream["model"] = json!("claude-up");
    assert_eq!(claude.requests()[1].body, upstream);
    let names: Vec<&str> = text
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            f.strip_prefix("event: ")
                .unwrap()
                .split('\n')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(text.contains("\"model\":\"gpt-4o-mini\""), "{text}");
    assert!(!text.contains("claude-up"));

    // A system turn mid-conversation (Claude Code sends them): this upstream is not
    // api.anthropic.com (DashScope's Anthropic endpoint refuses them), so it moves into `system`.
    let mut reminded = clean.clone();
    reminded["stream"] = json!(false);
    reminded["messages"]
        .as_array_mut()
        .unwrap()
        .insert(2, json!({"role": "system", "content": "Reminder."}));
    let r = send_messages(&gw, &reminded).await;
    assert_eq!(r.status(), 200);
    let sent = &claude.requests()[2].body;
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
               {"type": "text", "text": "Reminder."}])
    );
    assert!(
        sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] != "system")
    );
    gw.shutdown().await;

    let rows = ledger_rows(&ledger);
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row["purpose"], "messages");
        assert_eq!(row["status"], "ok");
        assert_eq!(row["input_tokens"], ALL_INPUT);
        assert_eq!(row["cache_write_tokens"], CACHE_WRITE);
        assert_eq!(row["output_tokens"], OUTPUT);
    }
}

#[tokio::test]
async fn an_overloaded_anthropic_route_fails_over_and_its_verdicts_reach_the_client() {
    let claude = MockAnthropic::start("claude").await;
    let oa = MockOpenAi::start("oa").await;
    let gw = Gateway::start(&config(
        &claude,
        Some(&oa),
        &ledger_path("anthropic-failover"),
    ))
    .await;

    claude.next(1, Behavior::Status(529, "overloaded_error"));
    let r = send(&gw, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "oa");

    claude.next(1, Behavior::ErrorEvent("overloaded_error"));
    let r = send(&gw, "/v1/chat/completions", &chat(true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-switchyard-provider"],
        "oa",
        "an error before the first byte"
    );
    r.text().await.unwrap();

    // On a Messages client's pass-through, the upstream's verdict keeps its words.
    claude.next(1, Behavior::Status(400, "invalid_request_error"));
    let r = send_messages(
        &gw,
        &json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock invalid_request_error"),
        "{body}"
    );
    gw.shutdown().await;
}

/// A pass-through stream cut by the upstream after the first byte ends with Anthropic's `error`
/// event and no `message_stop` (Claude Code then treats the answer as incomplete); an upstream
/// that quotes the provider's key has it scrubbed from answers and streams alike.
#[tokio::test]
async fn a_cut_pass_through_ends_with_an_error_event_and_no_key_leaks() {
    let claude = MockAnthropic::start("claude").await;
    let ledger = ledger_path("anthropic-cut");
    let gw = Gateway::start(&config(&claude, None, &ledger)).await;
    let request = |stream: bool| {
        json!({"model": "gpt-4o-mini", "max_tokens": 10, "stream": stream,
               "messages": [{"role": "user", "content": "x"}]})
    };

    claude.next(1, Behavior::CutAfter(4));
    let r = send_messages(&gw, &request(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\ndata: "), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
    let error: Value = serde_json::from_str(last.split("data: ").nth(1).unwrap()).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "api_error");

    claude.next(2, Behavior::EchoKey);
    for stream in [false, true] {
        let r = send_messages(&gw, &request(stream)).await;
        assert_eq!(r.status(), 200);
        let answer = r.text().await.unwrap();
        assert!(answer.contains("with key"), "{answer}");
        assert!(
            !answer.contains("sk-ant-upstream-key"),
            "the provider's key leaked: {answer}"
        );
    }
    gw.shutdown().await;
    let rows = ledger_rows(&ledger);
    assert_eq!(rows.len(), 3);
    assert_ne!(rows[0]["status"], "ok", "the cut stream: {:?}", rows[0]);
}

/// A Messages client that reads a pass-through stream to `message_stop` and closes: whether its
/// close or the relay's last poll comes first is a race, so it runs 25 times; every row is
/// `ok` with the stream's tokens and cost.
#[tokio::test]
async fn pass_through_streams_read_to_the_end_are_recorded_as_completed() {
    let claude = MockAnthropic::start("claude").await;
    let ledger = ledger_path("anthropic-race");
    let gw = Gateway::start(&config(&claude, None, &ledger)).await;
    let request = json!({"model": "gpt-4o-mini", "max_tokens": 10, "stream": true,
                         "messages": [{"role": "user", "content": "x"}]});
    for _ in 0..25 {
        let r = send_messages(&gw, &request).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(
            text.trim_end()
                .ends_with("data: {\"type\":\"message_stop\"}"),
            "{text}"
        );
    }
    gw.shutdown().await;
    let rows = ledger_rows(&ledger);
    assert_eq!(rows.len(), 25);
    for row in &rows {
        assert_eq!(
            (row["status"].as_str(), row["http_status"].as_i64()),
            (Some("ok"), Some(200)),
            "{row}"
        );
        assert_eq!(row["input_tokens"], ALL_INPUT);
        assert_eq!(row["output_tokens"], OUTPUT);
        assert_eq!(row["cost"], COST);
    }
}
