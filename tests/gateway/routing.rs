//! Routing behaviour a user can observe: weights, tiers, fallback before the commit point,
//! ejection and recovery, probes, and the error event after it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, client, config_for, eventually, get_text, post, sse_data};
use crate::mock_openai::{Behavior, MockOpenAi};

/// Mocks `a` and `b` as two equal routes of `gpt-4o-mini`.
async fn two_routes(extra: &str) -> (MockOpenAi, MockOpenAi, Gateway) {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let gw = Gateway::start(&config_for(
        &[("a", &a.base_url(), 1, 1), ("b", &b.base_url(), 1, 1)],
        extra,
    ))
    .await;
    (a, b, gw)
}

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

async fn provider_of(gw: &Gateway, stream: bool) -> (u16, String, String) {
    let r = post(gw, "/v1/chat/completions", &chat(stream)).await;
    let status = r.status().as_u16();
    let provider = r
        .headers()
        .get("x-switchyard-provider")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, provider, r.text().await.unwrap())
}

#[tokio::test]
async fn weights_hold_exactly_and_interleave() {
    let (a, b, c) = (
        MockOpenAi::start("a").await,
        MockOpenAi::start("b").await,
        MockOpenAi::start("c").await,
    );
    let gw = Gateway::start(&config_for(
        &[
            ("a", &a.base_url(), 5, 1),
            ("b", &b.base_url(), 1, 1),
            ("c", &c.base_url(), 1, 1),
        ],
        "",
    ))
    .await;
    let mut picks = Vec::new();
    for _ in 0..70 {
        let (status, provider, _) = provider_of(&gw, false).await;
        assert_eq!(status, 200);
        picks.push(provider);
    }
    for window in picks.chunks(7) {
        assert_eq!(
            window,
            ["a", "a", "b", "a", "c", "a", "a"],
            "smooth WRR order"
        );
    }
    assert_eq!((a.count(), b.count(), c.count()), (50, 10, 10));
}

#[tokio::test]
async fn lower_tier_serves_only_when_the_best_tier_cannot() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let gw = Gateway::start(&config_for(
        &[("a", &a.base_url(), 1, 1), ("b", &b.base_url(), 1, 2)],
        "",
    ))
    .await;
    for _ in 0..5 {
        assert_eq!(provider_of(&gw, false).await.1, "a");
    }
    a.next(1, Behavior::Status(503, vec![]));
    let (status, provider, body) = provider_of(&gw, false).await;
    assert_eq!(
        (status, provider.as_str()),
        (200, "b"),
        "one request falls through to the lower tier: {body}"
    );
    assert_eq!(
        provider_of(&gw, false).await.1,
        "a",
        "a single failure does not eject"
    );
}

#[tokio::test]
async fn every_pre_commit_failure_falls_back_transparently() {
    let (a, _b, gw) = two_routes("routing:\n  unhealthy_after: 100\n").await;
    let failures = [
        Behavior::Status(500, vec![]),
        Behavior::Status(502, vec![]),
        Behavior::Status(429, vec![("retry-after", "1")]),
        Behavior::Hang,
        Behavior::CutAfter(0),
        Behavior::ErrorEventAfter(0),
    ];
    for failure in failures {
        for stream in [false, true] {
            if !stream
                && matches!(
                    failure,
                    Behavior::CutAfter(_) | Behavior::ErrorEventAfter(_)
                )
            {
                continue; // stream-only failures
            }
            // Make sure the next pick is `a`, then make `a` fail once.
            while provider_of(&gw, false).await.1 != "b" {}
            a.next(1, failure.clone());
            let (status, provider, body) = provider_of(&gw, stream).await;
            assert_eq!(
                (status, provider.as_str()),
                (200, "b"),
                "{failure:?} stream={stream}: {body}"
            );
            if stream {
                assert!(body.ends_with("data: [DONE]\n\n"), "{failure:?}: {body}");
                assert!(
                    !body.contains("error"),
                    "nothing of a's failure may reach the client: {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn refused_connections_fall_back() {
    let b = MockOpenAi::start("b").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = Gateway::start(&config_for(
        &[
            ("a", &format!("http://{closed}/v1"), 1, 1),
            ("b", &b.base_url(), 1, 1),
        ],
        "",
    ))
    .await;
    for stream in [false, true, false, true] {
        let (status, provider, _) = provider_of(&gw, stream).await;
        assert_eq!((status, provider.as_str()), (200, "b"));
    }
}

#[tokio::test]
async fn ejection_then_half_open_recovery() {
    let (a, _b, gw) =
        two_routes("routing:\n  unhealthy_after: 2\n  ejection: 200ms\n  max_ejection: 10s\n")
            .await;
    a.set(Behavior::Status(500, vec![]));
    for _ in 0..6 {
        assert_eq!(provider_of(&gw, false).await.0, 200);
    }
    let failed_attempts = a.count();
    assert_eq!(
        failed_attempts, 2,
        "a is ejected after two consecutive failures"
    );
    for _ in 0..10 {
        assert_eq!(provider_of(&gw, false).await.1, "b");
    }
    assert_eq!(
        a.count(),
        failed_attempts,
        "an ejected route gets no traffic"
    );

    // Still broken when the ejection expires: one trial (b answers the client), then a is
    // re-ejected for longer (400ms).
    eventually(Duration::from_secs(5), "a's half-open trial", || async {
        assert_eq!(provider_of(&gw, false).await.1, "b");
        a.count() > failed_attempts
    })
    .await;
    for _ in 0..5 {
        assert_eq!(provider_of(&gw, false).await.1, "b");
    }
    assert_eq!(
        a.count(),
        failed_attempts + 1,
        "half-open admits exactly one trial"
    );

    a.set(Behavior::Normal);
    eventually(Duration::from_secs(5), "a's successful trial", || async {
        provider_of(&gw, false).await.1 == "a"
    })
    .await;
    let mut served_by_a = 0;
    for _ in 0..10 {
        if provider_of(&gw, false).await.1 == "a" {
            served_by_a += 1;
        }
    }
    assert_eq!(served_by_a, 5, "a successful trial restores a's full share");
}

#[tokio::test]
async fn failing_probes_take_a_provider_out_and_passing_ones_bring_it_back() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let yaml = config_for(
        &[("a", &a.base_url(), 1, 1), ("b", &b.base_url(), 1, 1)],
        "routing:\n  unhealthy_after: 2\n",
    )
    .replace(
        "health_check: { enabled: false }",
        "health_check: { interval: 50ms, timeout: 1s }",
    );
    let gw = Gateway::start(&yaml).await;
    a.set_probe_status(503);
    eventually(
        Duration::from_secs(5),
        "a marked down by probes",
        || async {
            get_text(&gw, "/metrics")
                .await
                .contains("gateway_upstream_healthy{provider=\"a\"} 0")
        },
    )
    .await;
    assert!(a.probes() >= 2, "probes GET {{base_url}}/models");
    let before = a.count();
    for _ in 0..6 {
        assert_eq!(provider_of(&gw, false).await.1, "b");
    }
    assert_eq!(
        a.count(),
        before,
        "a provider marked down by probes gets no traffic"
    );
    let metrics = get_text(&gw, "/metrics").await;
    assert!(
        metrics.contains("gateway_upstream_healthy{provider=\"a\"} 0"),
        "{metrics}"
    );

    a.set_probe_status(200);
    eventually(
        Duration::from_secs(5),
        "a back after a passing probe",
        || async {
            get_text(&gw, "/metrics")
                .await
                .contains("gateway_upstream_healthy{provider=\"a\"} 1")
        },
    )
    .await;
    let picks: Vec<String> =
        futures_util::future::join_all((0..4).map(|_| async { provider_of(&gw, false).await.1 }))
            .await;
    assert!(
        picks.iter().any(|p| p == "a"),
        "a is back after a passing probe: {picks:?}"
    );
    let metrics = get_text(&gw, "/metrics").await;
    assert!(
        metrics.contains("gateway_upstream_healthy{provider=\"a\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn mid_stream_failure_ends_with_an_error_event_and_no_done() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    for failure in [Behavior::CutAfter(3), Behavior::ErrorEventAfter(3)] {
        a.next(1, failure.clone());
        let (status, _, body) = provider_of(&gw, true).await;
        assert_eq!(status, 200, "committed before the failure");
        let data = sse_data(&body);
        assert_eq!(
            data.len(),
            4,
            "{failure:?}: three chunks then the error: {body}"
        );
        let error: Value = serde_json::from_str(&data[3]).unwrap();
        assert!(error["error"]["message"].as_str().is_some(), "{body}");
        assert!(error["error"]["type"].as_str().is_some());
        assert!(
            !body.contains("[DONE]"),
            "a failed stream must not look finished: {body}"
        );
    }
}

#[tokio::test]
async fn when_every_route_fails_the_client_gets_the_last_error() {
    let (a, b, gw) = two_routes("routing:\n  unhealthy_after: 100\n").await;
    a.set(Behavior::Status(429, vec![("retry-after", "7")]));
    b.set(Behavior::Status(429, vec![("retry-after", "7")]));
    let r = post(&gw, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(
        r.headers()["x-should-retry"],
        "false",
        "the gateway already failed over"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    a.set(Behavior::Status(500, vec![]));
    b.set(Behavior::Status(500, vec![]));
    for stream in [false, true] {
        let r = post(&gw, "/v1/chat/completions", &chat(stream)).await;
        assert_eq!(r.status(), 502, "stream={stream}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "server_error");
    }
}

#[tokio::test]
async fn no_healthy_route_is_503() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(
        &[("a", &a.base_url(), 1, 1)],
        "routing:\n  unhealthy_after: 1\n  ejection: 60s\n",
    ))
    .await;
    a.set(Behavior::Status(500, vec![]));
    assert_eq!(provider_of(&gw, false).await.0, 502);
    let r = post(&gw, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_healthy_upstream");
    let ready = client().get(gw.url("/ready")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        503,
        "readiness reflects a model without a route"
    );
}

#[tokio::test]
async fn a_tls_handshake_failure_falls_back() {
    // An https:// route pointed at a plain-HTTP port: the TLS client runs and fails its handshake.
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let tls_to_plain = format!("https://{}/v1", a.addr);
    let gw = Gateway::start(&config_for(
        &[("a", &tls_to_plain, 1, 1), ("b", &b.base_url(), 1, 1)],
        "",
    ))
    .await;
    for stream in [false, true, false, true] {
        let (status, provider, body) = provider_of(&gw, stream).await;
        assert_eq!((status, provider.as_str()), (200, "b"), "{body}");
    }
    assert_eq!(
        a.count(),
        0,
        "no request reached the plain-HTTP port as HTTP"
    );
}

#[tokio::test]
async fn an_upstream_verdict_in_the_first_event_is_a_400_not_retried_and_not_held_against_the_route()
 {
    // One failure would eject a route: the verdict must not count as one.
    let (a, b, gw) = two_routes("routing:\n  unhealthy_after: 1\n").await;
    a.set(Behavior::VerdictFirst);
    b.set(Behavior::VerdictFirst);
    let r = post(&gw, "/v1/chat/completions", &chat(true)).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("x-should-retry").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(body["error"]["param"], "prompt");
    assert_eq!(
        a.count() + b.count(),
        1,
        "the verdict is not retried on another route"
    );
    a.set(Behavior::Normal);
    b.set(Behavior::Normal);
    let served: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(provider_of(&gw, true).await.1);
        }
        v
    };
    assert_eq!(
        served.iter().filter(|p| *p == "a").count(),
        2,
        "both routes still healthy: {served:?}"
    );
}

#[tokio::test]
async fn a_model_whose_routes_all_cool_down_after_429s_answers_429_not_503() {
    let (a, b, gw) = two_routes("routing:\n  unhealthy_after: 1\n  ejection: 5s\n").await;
    a.set(Behavior::Status(429, vec![]));
    b.set(Behavior::Status(429, vec![]));
    assert_eq!(
        provider_of(&gw, false).await.0,
        429,
        "both routes rate limit"
    );
    let r = post(&gw, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(r.status(), 429, "every route is cooling down: 429, not 503");
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=5).contains(&after),
        "retry-after is the soonest end: {after}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(a.count() + b.count(), 2, "no route was tried while cooling");

    // Ejected for failing (not for rate limits): still a 503.
    let (c, d, gw) = two_routes("routing:\n  unhealthy_after: 1\n  ejection: 5s\n").await;
    c.set(Behavior::Status(500, vec![]));
    d.set(Behavior::Status(500, vec![]));
    assert_eq!(provider_of(&gw, false).await.0, 502);
    assert_eq!(provider_of(&gw, false).await.0, 503);
}

/// `gpt-4o-mini` over mocks `a` and `b` (equal weights), with `a_extra` / `b_extra` added to
/// each route and `provider_b` to provider `b`.
fn ceiling_config(
    a: &MockOpenAi,
    b: &MockOpenAi,
    a_extra: &str,
    b_extra: &str,
    provider_b: &str,
) -> String {
    format!(
        "providers:
  - {{ id: a, kind: openai, base_url: \"{}\", api_key: sk-a, timeout: 1s, health_check: {{ enabled: false }} }}
  - {{ id: b, kind: openai, base_url: \"{}\", api_key: sk-b, timeout: 1s, health_check: {{ enabled: false }}{provider_b} }}
models:
  - name: gpt-4o-mini
    routes:
      - {{ provider: a, model: upstream-a{a_extra} }}
      - {{ provider: b, model: upstream-b{b_extra} }}
routing:
  max_attempts: 1
",
        a.base_url(),
        b.base_url()
    )
}

#[tokio::test]
async fn a_route_at_its_max_rps_ceiling_is_skipped_without_costing_an_attempt() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let gw = Gateway::start(&ceiling_config(&a, &b, ", max_rps: 2", "", "")).await;
    // One attempt per request: a route at its ceiling must not use it up.
    for _ in 0..12 {
        let (status, _, _) = provider_of(&gw, false).await;
        assert_eq!(status, 200);
    }
    assert!(a.count() <= 3, "a keeps to its ceiling: {}", a.count());
    assert_eq!(a.count() + b.count(), 12, "b serves the rest");
}

#[tokio::test]
async fn every_route_at_its_ceiling_is_a_429_with_retry_after_and_no_upstream_call() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    // a's ceiling is its route's, b's its provider's.
    let gw = Gateway::start(&ceiling_config(&a, &b, ", max_rps: 1", "", ", max_rps: 1")).await;
    let served: Vec<String> = [provider_of(&gw, false).await, provider_of(&gw, false).await]
        .into_iter()
        .map(|(status, provider, _)| {
            assert_eq!(status, 200);
            provider
        })
        .collect();
    assert!(
        served.contains(&"a".to_owned()) && served.contains(&"b".to_owned()),
        "{served:?}"
    );
    let r = post(&gw, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert_eq!(
        a.count() + b.count(),
        2,
        "no upstream was called past its ceiling"
    );
}
