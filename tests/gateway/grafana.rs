//! The Grafana dashboard (`k8s/grafana/switchyard-dashboard.json`) queries only metrics the
//! gateway exports: every metric name in its PromQL is found in a real `/metrics` after traffic
//! that exercises each panel (answers, a stream, an upstream failure and ejection, a refused
//! key, a session turn, ledger writes).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, client, post_as, unique};
use crate::mock_openai::{Behavior, MockOpenAi};

const DASHBOARD: &str = include_str!("../../k8s/grafana/switchyard-dashboard.json");

/// Every `gateway_*` name in the dashboard's queries.
fn queried_metrics(dashboard: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("gateway_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    assert_eq!(dashboard["uid"], "switchyard");
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert!(p["gridPos"]["w"].as_u64().unwrap() <= 24, "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
    assert!(queried_metrics(&dashboard).len() >= 15);
}

async fn scrape(gw: &Gateway) -> String {
    let metrics = client().get(gw.url("/metrics")).send().await.unwrap();
    metrics.text().await.unwrap()
}

/// The dashboard's metrics a `/metrics` text does not have.
fn missing(metrics: &str) -> Vec<String> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    queried_metrics(&dashboard)
        .into_iter()
        .filter(|name| !exported.contains(name.as_str()))
        .collect()
}

#[tokio::test]
async fn a_fresh_gateway_exports_every_metric_the_dashboard_queries() {
    // No request yet: every panel must read "0", never "No data", and `rate()` alerts need a
    // starting point. (Each test is its own process: the recorder is fresh.)
    let ok = MockOpenAi::start("ok").await;
    let yaml = format!(
        "providers:
  - {{ id: ok, kind: openai, base_url: \"{}\", api_key: sk-ok, health_check: {{ enabled: false }} }}
models:
  - name: chat
    price: {{ input_per_1m: 1, output_per_1m: 2 }}
    routes: [{{ provider: ok, model: up-ok }}]
auth:
  keys: [ {{ name: tight, key: sk-tight, rpm: 1 }} ]
usage: {{ sink: file, path: {} }}
",
        ok.base_url(),
        std::env::temp_dir()
            .join(unique("fresh"))
            .join("usage.jsonl")
            .display()
    );
    let gw = Gateway::start(&yaml).await;
    let metrics = scrape(&gw).await;
    let missing = missing(&metrics);
    assert!(
        missing.is_empty(),
        "not exported before any request: {missing:?}\n{metrics}"
    );
    assert!(
        metrics.contains("gateway_rate_limited_total{key=\"tight\"} 0"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let (ok, bad) = (
        MockOpenAi::start("ok").await,
        MockOpenAi::start("bad").await,
    );
    bad.set(Behavior::Status(500, vec![]));
    let ledger = std::env::temp_dir()
        .join(unique("grafana"))
        .join("usage.jsonl");
    let yaml = format!(
        "providers:
  - {{ id: ok, kind: openai, base_url: \"{}\", api_key: sk-ok, health_check: {{ enabled: false }} }}
  - {{ id: bad, kind: openai, base_url: \"{}\", api_key: sk-bad, health_check: {{ enabled: false }} }}
models:
  - name: chat
    price: {{ input_per_1m: 1, output_per_1m: 2 }}
    routes: [{{ provider: bad, model: up-bad, priority: 1 }}, {{ provider: ok, model: up-ok, priority: 2 }}]
routing:
  unhealthy_after: 1
auth:
  keys:
    - {{ name: team, key: sk-team }}
    - {{ name: tight, key: sk-tight, rpm: 1 }}
usage:
  sink: file
  path: {}
",
        ok.base_url(),
        bad.base_url(),
        ledger.display()
    );
    let gw = Gateway::start(&yaml).await;
    let send =
        async |key: &str, body: Value| post_as(&gw, "/v1/chat/completions", key, &body).await;
    let chat = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    // bad fails and is ejected; ok answers.
    assert_eq!(send("sk-team", chat.clone()).await.status(), 200);
    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    let streamed = send("sk-team", stream).await;
    assert_eq!(streamed.status(), 200);
    streamed.text().await.unwrap();
    // A refused key, and a session turn.
    assert_eq!(send("sk-tight", chat.clone()).await.status(), 200);
    assert_eq!(send("sk-tight", chat.clone()).await.status(), 429);
    let mut turn = chat.clone();
    turn["session_id"] = json!(unique("grafana-session"));
    assert_eq!(send("sk-team", turn).await.status(), 200);
    // The ledger writer's first batch.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut metrics = String::new();
    while tokio::time::Instant::now() < deadline {
        metrics = scrape(&gw).await;
        if metrics.contains("gateway_usage_write_seconds_bucket") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = missing(&metrics);
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\n{metrics}"
    );
    gw.shutdown().await;
}
