//! Moderations and image generations (PROTOCOLS.md §13.3–§13.4): passed to OpenAI-kind routes
//! as they came (the model replaced, or named when the client gave none), failed over like any
//! request, and written to the ledger with their purpose, tokens and images.

use serde_json::{Value, json};

use crate::harness::{Gateway, ledger_rows, post_json, unique};
use crate::mock_openai::{Behavior, MockOpenAi};

fn config(a: &MockOpenAi, b: &MockOpenAi, ledger: &str) -> String {
    format!(
        r#"providers:
  - {{ id: a, kind: openai, base_url: "{}", api_key: sk-a, timeout: 2s, health_check: {{ enabled: false }} }}
  - {{ id: b, kind: openai, base_url: "{}", api_key: sk-b, timeout: 2s, health_check: {{ enabled: false }} }}
models:
  - name: chat
    routes: [ {{ provider: a, model: up-chat }} ]
  - name: guard
    type: moderation
    routes: [ {{ provider: a, model: omni-moderation-latest }} ]
  - name: painter
    type: image
    price: {{ input_per_1m: 5.0, output_per_1m: 40.0, per_image: 0.04 }}
    routes: [ {{ provider: a, model: gpt-image-1, priority: 1 }}, {{ provider: b, model: gpt-image-1, priority: 2 }} ]
auth:
  keys: [ {{ name: team, key: sk-team }} ]
{ledger}"#,
        a.base_url(),
        b.base_url()
    )
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, Value) {
    post_json(gw, path, "sk-team", body).await
}

#[tokio::test]
async fn moderations_and_images_reach_their_routes_and_the_ledger_counts_images() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let path = std::env::temp_dir().join(format!("{}.jsonl", unique("media-ledger")));
    let ledger = format!("usage: {{ sink: file, path: \"{}\" }}", path.display());
    let gw = Gateway::start(&config(&a, &b, &ledger)).await;

    // No model named: the first moderation model serves, its upstream name written in.
    let (status, answer) = post(&gw, "/v1/moderations", &json!({"input": "hello"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["flagged"], false);
    let sent = &a.requests()[0];
    assert_eq!(sent.path, "/v1/moderations");
    assert_eq!(
        sent.body,
        json!({"model": "omni-moderation-latest", "input": "hello"})
    );

    let ask = json!({"model": "painter", "prompt": "a lighthouse", "n": 2, "size": "1024x1024"});
    let (status, answer) = post(&gw, "/v1/images/generations", &ask).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    let sent = &a.requests()[1];
    assert_eq!(sent.path, "/v1/images/generations");
    assert_eq!(sent.body["model"], "gpt-image-1");
    assert_eq!(sent.body["size"], "1024x1024", "every other field as sent");

    // The first route failing, the second serves.
    a.next(1, Behavior::Status(500, vec![]));
    let (status, _) = post(&gw, "/v1/images/generations", &ask).await;
    assert_eq!(status, 200);
    assert_eq!(b.count(), 1);
    gw.shutdown().await;

    let rows = ledger_rows(&path);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(
        (rows[0]["purpose"].clone(), rows[0]["cost"].clone()),
        (json!("moderation"), json!("0.0000000000"))
    );
    let image = &rows[1];
    assert_eq!(
        (&image["purpose"], &image["unit"], &image["units"]),
        (&json!("image"), &json!("images"), &json!(2))
    );
    // 50 input tokens at $5/1M + 50 output at $40/1M + 2 images at $0.04: $0.08225.
    assert_eq!(image["cost"], "0.0822500000");
    assert_eq!(rows[2]["provider_id"], "b");
}

#[tokio::test]
async fn bad_requests_wrong_models_and_route_kinds_are_refused_before_any_upstream() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let gw = Gateway::start(&config(&a, &b, "usage: { sink: none }")).await;
    for (path, body, param) in [
        ("/v1/moderations", json!({"model": "guard"}), "input"),
        (
            "/v1/images/generations",
            json!({"model": "painter"}),
            "prompt",
        ),
        (
            "/v1/images/generations",
            json!({"model": null, "prompt": "x"}),
            "model",
        ),
    ] {
        let (status, error) = post(&gw, path, &body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["param"], param, "{body}: {error}");
    }
    let (status, error) = post(
        &gw,
        "/v1/images/generations",
        &json!({"model": "guard", "prompt": "x"}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (400, json!("model_not_supported"))
    );
    let (status, _) = post(
        &gw,
        "/v1/moderations",
        &json!({"model": "painter", "input": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!((a.count(), b.count()), (0, 0));
    gw.shutdown().await;

    for (kind, t) in [
        ("dashscope", "image"),
        ("dashscope", "moderation"),
        ("anthropic", "image"),
    ] {
        let yaml = format!(
            "providers:\n  - {{ id: p, kind: {kind}, base_url: \"http://127.0.0.1:9\", api_key: k }}\nmodels:\n  - {{ name: m, type: {t}, routes: [ {{ provider: p, model: x }} ] }}\n"
        );
        let e = switchyard::config::parse(&yaml, &|_: &str| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("models[0].routes[0].provider") && e.contains(t),
            "{e}"
        );
    }
}
