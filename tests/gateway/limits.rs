//! Per-key limits: requests and tokens per minute in this process, across two replicas through
//! the machine's real Redis, and what happens when that Redis is gone.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, config_for, post_as, unique};
use crate::mock_openai::MockOpenAi;

fn gateway_config(a: &MockOpenAi, keys: &str, limits: &str) -> String {
    config_for(
        &[("a", &a.base_url(), 1, 1)],
        &format!("auth:\n  keys:\n{keys}{limits}"),
    )
}

async fn chat(gw: &Gateway, key: &str, max_tokens: Option<u64>) -> reqwest::Response {
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    if let Some(n) = max_tokens {
        body["max_tokens"] = json!(n);
    }
    post_as(gw, "/v1/chat/completions", key, &body).await
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn requests_per_minute_are_enforced_per_key() {
    let a = MockOpenAi::start("a").await;
    let keys = "    - { name: small, key: sk-small, rpm: 3 }\n    - { name: free, key: sk-free }\n";
    let gw = Gateway::start(&gateway_config(&a, keys, "")).await;
    for left in ["2", "1", "0"] {
        let r = chat(&gw, "sk-small", None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-ratelimit-limit-requests").as_deref(),
            Some("3")
        );
        assert_eq!(
            header(&r, "x-ratelimit-remaining-requests").as_deref(),
            Some(left)
        );
    }
    let refused = chat(&gw, "sk-small", None).await;
    assert_eq!(refused.status(), 429);
    let retry_after: f64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1.0..=21.0).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(a.count(), 3, "a refused request never reaches an upstream");
    for _ in 0..5 {
        assert_eq!(
            chat(&gw, "sk-free", None).await.status(),
            200,
            "other keys are not limited"
        );
    }
}

#[tokio::test]
async fn tokens_are_reserved_then_settled_to_the_real_usage() {
    let a = MockOpenAi::start("a").await;
    let keys = "    - { name: tokens, key: sk-tokens, tpm: 1000 }\n";
    let gw = Gateway::start(&gateway_config(&a, keys, "")).await;
    // "hi" is 8 prompt tokens: 908 reserved of 1,000; the mock reports 29 used.
    let first = chat(&gw, "sk-tokens", Some(900)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "x-ratelimit-remaining-tokens").as_deref(),
        Some("92")
    );
    // Once settled, 879 tokens come back and the same request fits again.
    let started = std::time::Instant::now();
    loop {
        let r = chat(&gw, "sk-tokens", Some(900)).await;
        if r.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the reservation is settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let too_large = chat(&gw, "sk-tokens", Some(5_000)).await;
    assert_eq!(too_large.status(), 429);
    let body: Value = too_large.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Request too large"),
        "{body}"
    );
}

#[tokio::test]
async fn limits_hold_across_replicas_through_redis() {
    let a = MockOpenAi::start("a").await;
    let name = unique("shared");
    let keys = format!("    - {{ name: {name}, key: sk-shared, rpm: 4 }}\n");
    let limits = "limits:\n  redis_url: redis://127.0.0.1:6379\n";
    let one = Gateway::start(&gateway_config(&a, &keys, limits)).await;
    let two = Gateway::start(&gateway_config(&a, &keys, limits)).await;
    for gw in [&one, &two, &one, &two] {
        assert_eq!(chat(gw, "sk-shared", None).await.status(), 200);
    }
    assert_eq!(
        chat(&one, "sk-shared", None).await.status(),
        429,
        "4 per minute in all"
    );
    assert_eq!(chat(&two, "sk-shared", None).await.status(), 429);
}

#[tokio::test]
async fn a_redis_that_is_down_falls_back_to_local_limits_or_refuses_as_configured() {
    let a = MockOpenAi::start("a").await;
    let keys = "    - { name: k, key: sk-k, rpm: 2 }\n";
    // Nothing listens on port 1: every check fails at once.
    let open = "limits:\n  redis_url: redis://127.0.0.1:1\n  on_redis_error: fail_open\n";
    let gw = Gateway::start(&gateway_config(&a, keys, open)).await;
    assert_eq!(chat(&gw, "sk-k", None).await.status(), 200);
    assert_eq!(chat(&gw, "sk-k", None).await.status(), 200);
    assert_eq!(
        chat(&gw, "sk-k", None).await.status(),
        429,
        "this replica's own limit"
    );

    let closed = "limits:\n  redis_url: redis://127.0.0.1:1\n  on_redis_error: fail_closed\n";
    let gw = Gateway::start(&gateway_config(&a, keys, closed)).await;
    let started = std::time::Instant::now();
    let r = chat(&gw, "sk-k", None).await;
    assert_eq!(r.status(), 429);
    assert!(started.elapsed() < Duration::from_secs(3), "no hang");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_unavailable");
}

#[tokio::test]
async fn a_hanging_redis_costs_one_timeout_not_one_per_request() {
    let a = MockOpenAi::start("a").await;
    let hole = crate::tcp_proxy::Blackhole::start().await;
    let keys = "    - { name: k, key: sk-k, rpm: 1000 }\n";
    let limits = format!(
        "limits:\n  redis_url: redis://127.0.0.1:{}\n  on_redis_error: fail_open\n",
        hole.port
    );
    let gw = Gateway::start(&gateway_config(&a, keys, &limits)).await;
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(chat(&gw, "sk-k", None).await.status(), 200);
    }
    // Each check would wait out the 500 ms Redis timeout (10 s for 20): the breaker trips on the
    // first and the rest use this replica's limits at once.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?} for 20 requests",
        started.elapsed()
    );
}
