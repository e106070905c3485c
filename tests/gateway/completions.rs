//! `POST /v1/completions` (legacy): passed through to OpenAI-kind upstreams with only `model`
//! rewritten, translated to and from DashScope's native `input.prompt`, answered by the mock;
//! streams end with `[DONE]`; each request gets its ledger row.

use serde_json::{Value, json};

use crate::dashscope::dashscope_config;
use crate::harness::{Gateway, client, config_for, embedded_default, post, sse_data, unique};
use crate::mock_dashscope::MockDashScope;
use crate::mock_openai::MockOpenAi;

async fn complete(gw: &Gateway, body: &Value) -> (u16, Value) {
    let r = post(gw, "/v1/completions", body).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The `data:` payloads of a streamed completion, `[DONE]` included.
async fn stream(gw: &Gateway, body: &Value) -> Vec<String> {
    let r = post(gw, "/v1/completions", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    sse_data(&r.text().await.unwrap())
}

/// A stream's chunks as JSON; it must end with `[DONE]`.
fn chunks_before_done(data: &[String]) -> Vec<Value> {
    assert_eq!(data.last().unwrap(), "[DONE]");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn openai_kind_routes_get_the_clients_body_with_only_model_rewritten() {
    let a = MockOpenAi::start("a").await;
    let ledger = std::env::temp_dir().join(format!("{}.jsonl", unique("completions-ledger")));
    let usage = format!("usage:\n  sink: file\n  path: {}\n", ledger.display());
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], &usage)).await;
    let body = json!({"model": "gpt-4o-mini", "prompt": "Say this is a test", "max_tokens": 16,
                      "temperature": 0, "suffix": null, "echo": false, "logit_bias": {"50256": -100}});
    let (status, answer) = complete(&gw, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["choices"][0]["text"], " Hello from a");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["total_tokens"], 30);
    let sent = &a.requests()[0];
    assert!(sent.path.ends_with("/v1/completions"), "{}", sent.path);
    let mut expected = body.clone();
    expected["model"] = json!("upstream-a");
    assert_eq!(sent.body, expected, "every field passed through untouched");

    // Streamed: the usage chunk the gateway asked for (for the ledger) is hidden from a client
    // that did not ask for it; the stream ends with [DONE].
    let data = stream(
        &gw,
        &json!({"model": "gpt-4o-mini", "prompt": "Say", "stream": true}),
    )
    .await;
    let chunks = chunks_before_done(&data);
    assert_eq!(chunks.len(), 4);
    let text: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, " Hello from a");
    assert_eq!(
        a.requests()[1].body["stream_options"],
        json!({"include_usage": true})
    );
    // Asked for: the usage chunk arrives.
    let data = stream(
        &gw,
        &json!({"model": "gpt-4o-mini", "prompt": "Say", "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 16);
    gw.shutdown().await;

    let rows = crate::harness::ledger_rows(&ledger);
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row["purpose"], "completion");
        assert_eq!(row["status"], "ok");
        assert_eq!(row["usage_source"], "upstream");
        assert_eq!(
            (row["input_tokens"].as_u64(), row["output_tokens"].as_u64()),
            (Some(14), Some(16))
        );
    }
}

#[tokio::test]
async fn dashscope_routes_use_the_native_prompt_and_answer_text_completions() {
    let ds = MockDashScope::start("qwen").await;
    let gw = Gateway::start(&dashscope_config(&ds, None, "")).await;
    let (status, answer) = complete(
        &gw,
        &json!({"model": "gpt-4o-mini", "prompt": "1+1=", "top_p": 1.0}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(answer["model"], "gpt-4o-mini");
    assert_eq!(answer["choices"][0]["text"], "Hello from qwen");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["prompt_tokens"], 16);
    assert_eq!(answer["usage"]["completion_tokens"], 4);
    let sent = &ds.requests()[0].body;
    assert_eq!(sent["input"], json!({"prompt": "1+1="}));
    assert_eq!(sent["parameters"]["result_format"], "text");
    assert_eq!(
        sent["parameters"]["max_tokens"], 16,
        "OpenAI's default when none is given"
    );
    assert!(
        sent["parameters"]["top_p"].as_f64().unwrap() < 1.0,
        "clamped"
    );

    let data = stream(
        &gw,
        &json!({"model": "gpt-4o-mini", "prompt": "1+1=", "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    let chunks = chunks_before_done(&data);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from qwen");
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let finished = chunks
        .iter()
        .filter(|c| c["choices"][0]["finish_reason"] == "stop")
        .count();
    assert_eq!(finished, 1);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 5);
    assert_eq!(
        ds.requests()[1].body["parameters"]["incremental_output"],
        true
    );

    let (status, error) =
        complete(&gw, &json!({"model": "gpt-4o-mini", "prompt": ["a", "b"]})).await;
    assert_eq!(status, 400, "several prompts need an OpenAI-kind route");
    assert_eq!(error["error"]["param"], "prompt");
    let (status, error) = complete(
        &gw,
        &json!({"model": "gpt-4o-mini", "prompt": "a", "suffix": "b"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["param"], "suffix");
}

#[tokio::test]
async fn the_embedded_mock_answers_completions_and_bad_requests_are_400s() {
    let gw = Gateway::start(&embedded_default()).await;
    let (status, answer) = complete(&gw, &json!({"model": "demo", "prompt": "Once upon"})).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["choices"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Once upon")
    );
    let data = stream(
        &gw,
        &json!({"model": "demo", "prompt": "Once", "stream": true}),
    )
    .await;
    assert_eq!(data.last().unwrap(), "[DONE]");

    for (body, param) in [
        (json!({"model": "demo"}), "prompt"),
        (json!({"model": "demo", "prompt": []}), "prompt"),
        (json!({"model": "demo", "prompt": {"x": 1}}), "prompt"),
        (json!({"prompt": "x"}), "model"),
    ] {
        let (status, error) = complete(&gw, &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    let (status, _) = complete(&gw, &json!({"model": "demo-embedding", "prompt": "x"})).await;
    assert_eq!(status, 400, "an embedding model cannot complete text");
    let r = client()
        .get(gw.url("/v1/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}
