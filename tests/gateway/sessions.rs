//! Sessions end to end on the machine's real Redis (and the memory store): a 40-turn
//! conversation through the openai Python SDK that stays within its token budget, concurrent
//! turns, TTL expiry, Redis going away, a failing summary model, the memory store's bound,
//! DashScope routes, and session affinity.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard::routing::affinity;
use switchyard::tokens::Encoding;

use crate::dashscope::dashscope_config;
use crate::harness::{Gateway, client, config_for, get_text, post_as, sse_data, unique};
use crate::mock_dashscope::MockDashScope;
use crate::mock_openai::{Behavior, MockOpenAi};
use crate::tcp_proxy::TcpProxy;

const KEYS: &str = "auth:\n  keys:\n    - { name: team-a, key: sk-team-a }\n    - { name: team-b, key: sk-team-b }\n";

/// One mock `a` serving gpt-4o-mini, and the summary model on mock `s` if given (else on `a`).
fn config(a: &MockOpenAi, summarizer: Option<&MockOpenAi>, sessions: &str) -> String {
    let provider = if summarizer.is_some() { "s" } else { "a" };
    let yaml = config_for(
        &[("a", &a.base_url(), 1, 1)],
        &format!(
            "  - {{ name: summarizer, routes: [{{ provider: {provider}, model: summarizer-up }}] }}\n{KEYS}sessions:\n  summary_model: summarizer\n  ttl: 60s\n{sessions}"
        ),
    );
    match summarizer {
        None => yaml,
        Some(s) => yaml.replacen(
            "models:\n",
            &format!("  - {{ id: s, kind: openai, base_url: \"{}\", timeout: 1s, health_check: {{ enabled: false }} }}\nmodels:\n", s.base_url()),
            1,
        ),
    }
}

const REDIS_STORE: &str = "  store: redis\n  redis_url: redis://127.0.0.1:6379\n";
const SMALL_BUDGET: &str = "  max_tokens: 600\n  compression_threshold: 400\n  keep_recent: 4\n";

/// One turn: `text` as the only new message, the session named in the body. `key` "" sends none.
async fn turn(
    gw: &Gateway,
    key: &str,
    session: &str,
    text: &str,
    stream: bool,
) -> reqwest::Response {
    let mut request = client().post(gw.url("/v1/chat/completions"));
    if !key.is_empty() {
        request = request.bearer_auth(key);
    }
    request
        .json(
            &json!({"model": "gpt-4o-mini", "session_id": session, "stream": stream,
            "messages": [{"role": "user", "content": text}]}),
        )
        .send()
        .await
        .unwrap()
}

async fn session_info(gw: &Gateway, key: &str, session: &str) -> (u16, Value) {
    let mut request = client().get(gw.url(&format!("/v1/sessions/{session}?messages=true")));
    if !key.is_empty() {
        request = request.bearer_auth(key);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn chat_requests(mock: &MockOpenAi, upstream_model: &str) -> Vec<Value> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/chat/completions") && r.body["model"] == upstream_model)
        .map(|r| r.body)
        .collect()
}

fn tokens(messages: &[Value]) -> u64 {
    messages
        .iter()
        .map(|m| Encoding::O200kBase.count_message(m))
        .sum()
}

#[tokio::test]
async fn forty_turns_through_the_python_sdk_stay_within_the_budget() {
    let a = MockOpenAi::start("a").await;
    let ledger = std::env::temp_dir().join(format!("{}.jsonl", unique("sdk40-ledger")));
    let usage = format!("usage:\n  sink: file\n  path: {}\n", ledger.display());
    let yaml = config(&a, None, &format!("{REDIS_STORE}{SMALL_BUDGET}")) + &usage;
    let gw = Gateway::start(&yaml).await;
    let session = unique("sdk40");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dropin/sessions_sdk.py");
    let (url, sid) = (gw.url("/v1"), session.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .env("SWITCHYARD_BASE_URL", url)
            .env("SWITCHYARD_API_KEY", "sk-team-a")
            .env("SWITCHYARD_SESSION_ID", sid)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
    })
    .await
    .unwrap()
    .expect("python3 runs (the README's test command installs the openai package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("all session checks passed"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let turns = chat_requests(&a, "upstream-a");
    assert_eq!(turns.len(), 40);
    for (i, body) in turns.iter().enumerate() {
        assert!(
            body.get("session_id").is_none(),
            "turn {i}: session_id is never forwarded"
        );
        let messages = body["messages"].as_array().unwrap();
        let history = tokens(&messages[..messages.len() - 1]);
        assert!(
            history <= 600,
            "turn {i} carried {history} tokens of history"
        );
    }
    // The upstream saw the history grow (each turn: all before it plus the new message) …
    for (i, body) in turns.iter().take(3).enumerate() {
        assert_eq!(body["messages"].as_array().unwrap().len(), 2 * i + 1);
    }
    assert_eq!(
        turns[1]["messages"][1],
        json!({"role": "assistant", "content": "Hello from a"})
    );
    // … then a summary (as a system message, first) plus the recent turns.
    let last = turns[39]["messages"].as_array().unwrap();
    assert_eq!(last[0]["role"], "system");
    assert!(
        last[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Summary of the earlier conversation:"),
        "{last:?}"
    );
    assert!(
        last.len() < 20,
        "older turns were compressed away: {} messages",
        last.len()
    );
    assert_eq!(
        last.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("Turn 39")
    );
    let summaries = chat_requests(&a, "summarizer-up");
    assert!(!summaries.is_empty(), "the summary model was called");
    assert!(
        summaries[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Turn 0:")
    );
}

#[tokio::test]
async fn concurrent_turns_on_one_session_all_land() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config(&a, None, REDIS_STORE)).await;
    let session = unique("concurrent");
    let turns = (0..10).map(|i| {
        let (gw, session) = (&gw, &session);
        async move {
            // Half name the session in the header instead of the body.
            let mut request = client()
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth("sk-team-a");
            let mut body = json!({"model": "gpt-4o-mini", "stream": i % 3 == 0,
                "messages": [{"role": "user", "content": format!("message {i}")}]});
            match i % 2 {
                0 => body["session_id"] = json!(session),
                _ => request = request.header("x-session-id", session.as_str()),
            }
            let r = request.json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-session-id"], session.as_str());
            r.text().await.unwrap();
        }
    });
    futures_util::future::join_all(turns).await;
    let (status, info) = session_info(&gw, "sk-team-a", &session).await;
    assert_eq!(status, 200);
    assert_eq!(
        info["message_count"], 20,
        "every turn's message and reply: {info}"
    );
    let users: Vec<&str> = info["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 10);
    // Only the owner sees it; an invalid id is a 400.
    assert_eq!(session_info(&gw, "sk-team-b", &session).await.0, 403);
    assert_eq!(
        turn(&gw, "sk-team-b", &session, "mine?", false)
            .await
            .status(),
        403
    );
    assert_eq!(
        turn(&gw, "sk-team-a", "bad id!", "x", false).await.status(),
        400
    );
    let deleted = client()
        .delete(gw.url(&format!("/v1/sessions/{session}")))
        .bearer_auth("sk-team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(session_info(&gw, "sk-team-a", &session).await.0, 404);
}

#[tokio::test]
async fn sessions_expire_after_their_ttl_in_both_stores() {
    for store in ["  store: memory\n", REDIS_STORE] {
        let a = MockOpenAi::start("a").await;
        let yaml = config(&a, None, store).replace("ttl: 60s", "ttl: 1s");
        let gw = Gateway::start(&yaml).await;
        let session = unique("ttl");
        assert_eq!(
            turn(&gw, "sk-team-a", &session, "remember me", false)
                .await
                .status(),
            200
        );
        assert_eq!(session_info(&gw, "sk-team-a", &session).await.0, 200);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(
            session_info(&gw, "sk-team-a", &session).await.0,
            404,
            "{store}"
        );
        assert_eq!(
            turn(&gw, "sk-team-a", &session, "again", false)
                .await
                .status(),
            200
        );
        let last = chat_requests(&a, "upstream-a").pop().unwrap();
        assert_eq!(
            last["messages"].as_array().unwrap().len(),
            1,
            "a fresh session"
        );
    }
}

#[tokio::test]
async fn redis_going_away_fails_session_requests_fast_and_nothing_else() {
    let proxy = TcpProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let a = MockOpenAi::start("a").await;
    let store = format!(
        "  store: redis\n  redis_url: redis://127.0.0.1:{}\n  timeout: 300ms\n",
        proxy.port
    );
    let gw = Gateway::start(&config(&a, None, &store)).await;
    let session = unique("outage");
    let first = turn(&gw, "sk-team-a", &session, "one", false).await;
    assert_eq!(first.status(), 200, "{}", first.text().await.unwrap());

    proxy.cut();
    let started = std::time::Instant::now();
    let r = turn(&gw, "sk-team-a", &session, "two", false).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "session_store_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        started.elapsed()
    );
    // The store's breaker is open now: the next ones fail at once instead of each waiting out
    // the 300 ms timeout (ten of them would take 3 s).
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let r = turn(&gw, "sk-team-a", &session, "two", false).await;
        assert_eq!(r.status(), 503);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "skipped while down: {:?}",
        started.elapsed()
    );
    let keyed = post_as(
        &gw,
        "/v1/chat/completions",
        "sk-team-a",
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(
        keyed.status(),
        200,
        "requests without a session are unaffected"
    );

    proxy.restore().await;
    let started = std::time::Instant::now();
    loop {
        let r = turn(&gw, "sk-team-a", &session, "three", false).await;
        if r.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the store reconnects"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, info) = session_info(&gw, "sk-team-a", &session).await;
    assert_eq!(
        info["message_count"], 4,
        "turn one and three, not the failed two: {info}"
    );
}

#[tokio::test]
async fn a_failing_summary_model_drops_old_turns_and_never_fails_the_request() {
    let a = MockOpenAi::start("a").await;
    let summarizer = MockOpenAi::start("s").await;
    summarizer.set(Behavior::Status(500, vec![]));
    let gw = Gateway::start(&config(&a, Some(&summarizer), SMALL_BUDGET)).await;
    let session = unique("nosummary");
    for i in 0..30 {
        let text = format!(
            "Turn {i}: a long question about topic {i}, its history, uses and open problems."
        );
        assert_eq!(
            turn(&gw, "sk-team-a", &session, &text, i % 2 == 1)
                .await
                .status(),
            200
        );
    }
    assert!(summarizer.count() > 0, "the summary model was tried");
    let metrics = get_text(&gw, "/metrics").await;
    assert!(
        metrics.contains("gateway_session_compressions_total{outcome=\"dropped\"}"),
        "{metrics}"
    );
    for (i, body) in chat_requests(&a, "upstream-a").iter().enumerate() {
        let messages = body["messages"].as_array().unwrap();
        let history = tokens(&messages[..messages.len() - 1]);
        assert!(history <= 600, "turn {i} carried {history} tokens");
    }
    let (_, info) = session_info(&gw, "sk-team-a", &session).await;
    assert_eq!(info["summary"], Value::Null);
}

#[tokio::test]
async fn the_memory_store_evicts_the_least_recently_active_session_at_its_bound() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config(&a, None, "  store: memory\n  max_sessions: 2\n")).await;
    for session in ["first", "second", "third"] {
        assert_eq!(
            turn(&gw, "sk-team-a", session, "hi", false).await.status(),
            200
        );
    }
    assert_eq!(session_info(&gw, "sk-team-a", "first").await.0, 404);
    assert_eq!(session_info(&gw, "sk-team-a", "second").await.0, 200);
    assert_eq!(session_info(&gw, "sk-team-a", "third").await.0, 200);
}

#[tokio::test]
async fn sessions_work_on_dashscope_routes_streamed_or_not() {
    let ds = MockDashScope::start("q").await;
    let gw = Gateway::start(&dashscope_config(
        &ds,
        None,
        &format!("{KEYS}sessions:\n  store: memory\n"),
    ))
    .await;
    let session = unique("dashscope");
    let first = turn(&gw, "sk-team-a", &session, "hi", true)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(sse_data(&first).last().unwrap(), "[DONE]");
    assert_eq!(
        turn(&gw, "sk-team-a", &session, "and now?", false)
            .await
            .status(),
        200
    );
    let last = ds.requests().pop().unwrap();
    let messages = last.body["input"]["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0]["content"], "hi");
    assert_eq!(messages[1]["role"], "assistant");
    assert!(!messages[1]["content"].as_str().unwrap().is_empty());
    assert_eq!(messages[2]["content"], "and now?");
}

#[tokio::test]
async fn a_sessions_turns_stick_to_one_route_weights_hold_and_it_repins_on_failure() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let yaml = config_for(
        &[("a", &a.base_url(), 3, 1), ("b", &b.base_url(), 1, 1)],
        "routing:\n  unhealthy_after: 1\n  ejection: 60s\n",
    );
    let gw = Gateway::start(&yaml).await;
    let served_by = |r: &reqwest::Response| {
        r.headers()["x-switchyard-provider"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    let on_a: usize = futures_util::stream::iter(0..1_000)
        .map(|i| {
            let gw = &gw;
            async move {
                let r = turn(gw, "", &format!("affinity-{i}"), "hi", false).await;
                usize::from(served_by(&r) == "a")
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<usize>>()
        .await
        .into_iter()
        .sum();
    // Weights 3:1 over 1,000 sessions: 750 expected (σ ≈ 14).
    assert!((680..=820).contains(&on_a), "{on_a} of 1000 sessions on a");

    let pinned = (0..100)
        .map(|i| format!("pinned-{i}"))
        .find(|s| {
            let routes = [("a/upstream-a", 3), ("b/upstream-b", 1)];
            affinity::choose(affinity::session_key(s), routes.into_iter()) == Some(0)
        })
        .unwrap();
    for _ in 0..5 {
        assert_eq!(served_by(&turn(&gw, "", &pinned, "hi", false).await), "a");
    }
    a.set(Behavior::Status(500, vec![]));
    let r = turn(&gw, "", &pinned, "hi", false).await;
    assert_eq!(
        (r.status().as_u16(), served_by(&r)),
        (200, "b".to_owned()),
        "falls back like any request"
    );
    a.set(Behavior::Normal);
    for _ in 0..3 {
        assert_eq!(
            served_by(&turn(&gw, "", &pinned, "hi", false).await),
            "b",
            "re-pinned while a is ejected"
        );
    }
    let (_, info) = session_info(&gw, "", &pinned).await;
    assert_eq!(
        info["message_count"], 18,
        "every successful turn stored, on either route"
    );
}
