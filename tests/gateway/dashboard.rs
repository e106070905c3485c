//! The dashboard: `GET /admin/v1/stats` (admin only; routes, the last 15 minutes, tokens and
//! cost) and `GET /dashboard` rendered by a real headless Chromium (Debian's `chromium`), which
//! must draw every model's routes and the plots; a screenshot is kept.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, client, post_as, unique};
use crate::mock_openai::{Behavior, MockOpenAi};

const OPS: &str = "sk-dashboard-ops-000000";
const TEAM: &str = "sk-dashboard-team-00000";

fn config(a: &MockOpenAi, b: &MockOpenAi, ledger: &std::path::Path) -> String {
    format!(
        "providers:
  - {{ id: alpha, kind: openai, base_url: \"{}\", api_key: sk-a, max_rps: 500, health_check: {{ enabled: false }} }}
  - {{ id: beta, kind: openai, base_url: \"{}\", api_key: sk-b, health_check: {{ enabled: false }} }}
models:
  - name: gpt-4o-mini
    price: {{ input_per_1m: 0.15, output_per_1m: 0.6 }}
    cache: false
    routes:
      - {{ provider: alpha, model: up-alpha, weight: 3 }}
      - {{ provider: beta, model: up-beta, weight: 1, max_rps: 50 }}
  - {{ name: embed-small, type: embedding, routes: [{{ provider: beta, model: embed-beta }}] }}
routing:
  unhealthy_after: 1
auth:
  keys:
    - {{ name: ops, key: {OPS}, admin: true }}
    - {{ name: team, key: {TEAM} }}
cache: {{}}
usage:
  sink: file
  path: {}
",
        a.base_url(),
        b.base_url(),
        ledger.display()
    )
}

async fn stats(gw: &Gateway, key: Option<&str>) -> (u16, Value) {
    let mut req = client().get(gw.url("/admin/v1/stats"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let response = req.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn stats_show_routes_traffic_and_spend_and_chromium_draws_the_dashboard() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let dir = std::env::temp_dir().join(unique("dashboard"));
    std::fs::create_dir_all(&dir).unwrap();
    let gw = Gateway::start(&config(&a, &b, &dir.join("usage.jsonl"))).await;
    let ask = async || {
        post_as(
            &gw,
            "/v1/chat/completions",
            TEAM,
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .status()
    };
    for _ in 0..8 {
        assert_eq!(ask().await, 200);
    }
    // beta fails once and is ejected (unhealthy_after: 1); alpha answers instead.
    b.set(Behavior::Status(500, vec![]));
    for _ in 0..4 {
        assert_eq!(ask().await, 200);
    }
    b.set(Behavior::Normal);
    // The same embeddings twice: a miss, then a result-cache hit (gpt-4o-mini's cache is off).
    for verdict in ["miss", "hit"] {
        let r = client()
            .post(gw.url("/v1/embeddings"))
            .bearer_auth(TEAM)
            .json(&json!({"model": "embed-small", "input": "cache me"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-switchyard-cache"], verdict);
        crate::harness::eventually(Duration::from_secs(2), "stored", || async {
            crate::harness::metric(&gw, "gateway_cache_stored_bytes").await > 0.0
        })
        .await;
    }

    assert_eq!(stats(&gw, None).await.0, 401);
    assert_eq!(stats(&gw, Some(TEAM)).await.0, 403);
    // The ledger file is written by the background writer: wait for all fourteen rows before
    // the first figures (they are cached for 5 s, so a partial count would stick).
    crate::harness::eventually(Duration::from_secs(10), "the ledger rows", || async {
        crate::harness::metric(&gw, "gateway_usage_rows_written_total{sink=\"file\"}").await == 14.0
    })
    .await;
    let (status, figures) = stats(&gw, Some(OPS)).await;
    assert_eq!(status, 200);
    let models = figures["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    let routes = models[0]["routes"].as_array().unwrap();
    assert_eq!(
        routes
            .iter()
            .map(|r| (
                r["provider"].as_str().unwrap(),
                r["weight"].as_u64().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("alpha", 3), ("beta", 1)]
    );
    assert_eq!(routes[0]["health"], "healthy");
    assert_eq!(routes[0]["provider_max_rps"], 500);
    assert_eq!(routes[1]["health"], "ejected");
    assert!(routes[1]["ejected_for_s"].as_f64().unwrap() > 0.0);
    assert_eq!(routes[1]["max_rps"], 50);
    let requests: u64 = figures["series"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(requests >= 12, "{}", figures["series"]);
    assert_eq!(figures["series"]["at"].as_array().unwrap().len(), 90);
    let by_key = figures["usage"]["today"]["by_key"].as_array().unwrap();
    let team = by_key.iter().find(|k| k["name"] == "team").unwrap();
    // 12 answers of 19 + 10 tokens at $0.15 / $0.60 per million: exactly $0.0001062 (the
    // embeddings have no price); one of its 14 requests answered by the result cache.
    assert_eq!(team["requests"], 14, "{team}");
    assert_eq!(team["cost"], "0.0001062000");
    assert_eq!(
        (&team["cache_hits"], &team["cache_hit_ratio"]),
        (&json!(1), &json!(0.0714))
    );
    let by_model = figures["usage"]["today"]["by_model"].as_array().unwrap();
    let chat = by_model
        .iter()
        .find(|m| m["name"] == "gpt-4o-mini")
        .unwrap();
    // Nothing read from a prompt cache yet: a share of 0 and nothing saved.
    assert_eq!(
        (&chat["cached_input_tokens"], &chat["saved"]),
        (&json!(0), &json!("0.0000000000")),
        "{chat}"
    );
    assert_eq!(figures["sessions"]["count"], 0);

    let page = client().get(gw.url("/dashboard")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("/dashboard/uPlot.iife.min.js")
    );

    // The page in a real browser: the DOM after its scripts ran, and a screenshot.
    let url = format!("{}#key={OPS}", gw.url("/dashboard"));
    let dom = chromium(&["--dump-dom", &url]).await;
    for expected in [
        "data-model=\"gpt-4o-mini\"",
        "data-model=\"embed-small\"",
        "up-alpha",
        "up-beta",
        "ejected",
        "class=\"uplot",
        "<canvas",
        "Today (UTC) by key",
        "cache saved",
        "result cache hits",
        "1 (7%)",
        "team",
    ] {
        assert!(
            dom.contains(expected),
            "{expected:?} missing from the rendered dashboard:\n{dom}"
        );
    }
    assert!(!dom.contains(OPS), "the key is not left in the page");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[
        "--window-size=1400,1200",
        &format!("--screenshot={}", shot.display()),
        &url,
    ])
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    gw.shutdown().await;
}

/// Headless Chromium with a virtual-time budget long enough for the page's first refresh.
async fn chromium(args: &[&str]) -> String {
    let profile = std::env::temp_dir().join(unique("chromium-profile"));
    let out = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--virtual-time-budget=5000")
        .args(args)
        .output()
        .await
        .expect("chromium is installed (scripts/test installs Debian's chromium)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
