//! Rerank (PROTOCOLS.md §13.5): `/v1/rerank` and `/v2/rerank` in the Cohere/Jina shape, passed
//! to OpenAI-kind servers at `{base_url}/rerank` with only `model` replaced, translated both
//! ways for DashScope's native text-rerank, failing over like any request, and written to the
//! ledger as `purpose = 'rerank'` with the searches it is priced by.

use serde_json::{Value, json};

use crate::harness::{Gateway, client, ledger_rows, post_json, unique};
use crate::mock_dashscope::MockDashScope;
use crate::mock_openai::{Behavior, MockOpenAi};

fn config(a: &MockOpenAi, ds: &MockDashScope, ledger: &str) -> String {
    format!(
        r#"providers:
  - {{ id: vllm, kind: openai, base_url: "{}", api_key: sk-vllm, timeout: 2s, health_check: {{ enabled: false }} }}
  - {{ id: qwen, kind: dashscope, base_url: "{}", api_key: sk-ds, timeout: 2s, health_check: {{ enabled: false }} }}
models:
  - name: chat
    routes: [ {{ provider: vllm, model: up-chat }} ]
  - name: bge-reranker
    type: rerank
    price: {{ per_1k_searches: 2.0 }}
    routes: [ {{ provider: vllm, model: BAAI/bge-reranker-v2-m3, priority: 1 }}, {{ provider: qwen, model: gte-rerank-v2, priority: 2 }} ]
  - name: gte-rerank
    type: rerank
    price: {{ input_per_1m: 0.115 }}
    routes: [ {{ provider: qwen, model: gte-rerank-v2 }} ]
auth:
  keys: [ {{ name: team, key: sk-team }} ]
{ledger}"#,
        a.base_url(),
        ds.base_url()
    )
}

async fn rerank(gw: &Gateway, path: &str, body: &Value) -> (u16, Value) {
    post_json(gw, path, "sk-team", body).await
}

fn ask(model: &str) -> Value {
    json!({"model": model, "query": "capital of France", "top_n": 2, "return_documents": true,
           "documents": ["Paris is the capital of France.", {"text": "Berlin is in Germany."}, "Madrid"]})
}

#[tokio::test]
async fn both_paths_reach_openai_kind_and_dashscope_routes_and_fail_over() {
    let (a, ds) = (
        MockOpenAi::start("a").await,
        MockDashScope::start("q").await,
    );
    let path = std::env::temp_dir().join(format!("{}.jsonl", unique("rerank-ledger")));
    let ledger = format!("usage: {{ sink: file, path: \"{}\" }}", path.display());
    let gw = Gateway::start(&config(&a, &ds, &ledger)).await;

    // An OpenAI-kind server gets the body as sent, `model` replaced, at {base_url}/rerank.
    let (status, answer) = rerank(&gw, "/v2/rerank", &ask("bge-reranker")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"].as_array().unwrap().len(), 3);
    let sent = &a.requests()[0];
    assert_eq!(sent.path, "/v1/rerank");
    assert_eq!(sent.body["model"], "BAAI/bge-reranker-v2-m3");
    assert_eq!(
        sent.body["documents"],
        ask("x")["documents"],
        "documents as sent"
    );

    // DashScope gets its native body, and its answer comes back in the Cohere/Jina shape.
    let (status, answer) = rerank(&gw, "/v1/rerank", &ask("gte-rerank")).await;
    assert_eq!(status, 200, "{answer}");
    let native = &ds.requests()[0].body;
    assert_eq!(
        native,
        &json!({"model": "gte-rerank-v2",
                "input": {"query": "capital of France", "documents": ["Paris is the capital of France.", "Berlin is in Germany.", "Madrid"]},
                "parameters": {"top_n": 2, "return_documents": true}})
    );
    assert_eq!(answer["id"], "ds-rerank-1");
    assert_eq!(answer["model"], "gte-rerank");
    assert_eq!(answer["results"][0]["index"], 2);
    assert_eq!(
        answer["results"][1]["document"]["text"],
        "Berlin is in Germany."
    );
    assert_eq!(answer["usage"]["total_tokens"], 79);

    // The OpenAI-kind route failing, the DashScope route serves before any byte was sent.
    a.next(1, Behavior::Status(503, vec![]));
    let (status, answer) = rerank(&gw, "/v2/rerank", &ask("bge-reranker")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "ds-rerank-1");
    gw.shutdown().await;

    let rows = ledger_rows(&path);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert!(
        rows.iter()
            .all(|r| r["purpose"] == "rerank" && r["unit"] == "searches")
    );
    // Priced per search ($2 per 1,000): one search (3 documents) is $0.002, tokens free.
    assert_eq!(
        (rows[0]["units"].clone(), rows[0]["cost"].clone()),
        (json!(1), json!("0.0020000000"))
    );
    assert_eq!(rows[0]["input_tokens"], 42);
    // Priced per token ($0.115 per 1M): 79 tokens.
    assert_eq!(rows[1]["cost"], "0.0000090850");
    assert_eq!(rows[2]["provider_id"], "qwen");
    assert_eq!(rows[2]["attempts"], 2);
}

#[tokio::test]
async fn bad_requests_and_wrong_models_are_400s_naming_the_problem_and_reach_no_upstream() {
    let (a, ds) = (
        MockOpenAi::start("a").await,
        MockDashScope::start("q").await,
    );
    let gw = Gateway::start(&config(&a, &ds, "usage: { sink: none }")).await;
    for (body, param) in [
        (
            json!({"model": "bge-reranker", "documents": ["a"]}),
            "query",
        ),
        (json!({"model": "bge-reranker", "query": "q"}), "documents"),
        (
            json!({"model": "bge-reranker", "query": "q", "documents": []}),
            "documents",
        ),
        (
            json!({"model": "bge-reranker", "query": "q", "documents": [1, 2]}),
            "documents",
        ),
        (
            json!({"model": "bge-reranker", "query": 7, "documents": ["a"]}),
            "query",
        ),
        (json!({"query": "q", "documents": ["a"]}), "model"),
        (
            json!({"model": "bge-reranker", "query": "q", "documents": ["a"], "top_n": -1}),
            "top_n",
        ),
    ] {
        let (status, error) = rerank(&gw, "/v1/rerank", &body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(param)
                || error["error"]["param"] == param,
            "{body}: {error}"
        );
    }
    // A chat model is not a reranker, and a reranker is not a chat model.
    let (status, error) = rerank(&gw, "/v2/rerank", &ask("chat")).await;
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (400, json!("model_not_supported")),
        "{error}"
    );
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-team")
        .json(&json!({"model": "bge-reranker", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // DashScope takes text documents only: anything else is the client's 400, not a failover.
    let odd = json!({"model": "gte-rerank", "query": "q", "documents": [{"title": "no text"}]});
    let (status, error) = rerank(&gw, "/v1/rerank", &odd).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("documents[0]")
    );
    assert_eq!((a.count(), ds.count()), (0, 0), "no upstream was called");
    gw.shutdown().await;

    // A route kind that cannot rerank is refused at load time, naming the field.
    let yaml = "providers:\n  - { id: claude, kind: anthropic, base_url: \"http://127.0.0.1:9\", api_key: k }\nmodels:\n  - { name: r, type: rerank, routes: [ { provider: claude, model: m } ] }\n";
    let e = switchyard::config::parse(yaml, &|_: &str| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("models[0].routes[0].provider"), "{e}");
}
