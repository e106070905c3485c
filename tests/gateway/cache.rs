//! The result cache (DESIGN §5 "Result cache"): identical requests answered once, never across
//! keys, every answer-changing field in the key, streams stored from what the client got and
//! replayed as valid SSE, the request's cache controls, what is never stored, and the ledger's
//! and limits' view of a hit. Each test counts the mock upstream's calls: a hit never reaches it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, client, eventually, ledger_rows, metric, sse_data, unique};
use crate::mock_openai::{Behavior, MockOpenAi};

/// A gateway with a memory cache in front of `a`, keys `sk-a` (rpm 3), `sk-b` and `sk-admin`,
/// a priced chat model and an embeddings model; `extra` is added to the `cache` section.
fn config(a: &MockOpenAi, cache_extra: &str, ledger: &str) -> String {
    format!(
        r#"providers:
  - {{ id: a, kind: openai, base_url: "{url}", api_key: sk-upstream-a, timeout: 2s, health_check: {{ enabled: false }} }}
models:
  - name: gpt-4o-mini
    price: {{ input_per_1m: 1.0, output_per_1m: 2.0 }}
    routes: [ {{ provider: a, model: upstream-a }} ]
  - name: no-cache-model
    cache: false
    routes: [ {{ provider: a, model: upstream-a }} ]
  - name: text-embedding-3-small
    type: embedding
    cache: {{ ttl: 24h }}
    routes: [ {{ provider: a, model: embed-a }} ]
auth:
  keys:
    - {{ name: team-a, key: sk-a, rpm: 3 }}
    - {{ name: team-b, key: sk-b }}
    - {{ name: ops, key: sk-admin, admin: true }}
cache:
  max_bytes: 1MiB
{cache_extra}
{ledger}"#,
        url = a.base_url()
    )
}

async fn ask(
    gw: &Gateway,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, String, String, Option<String>) {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let verdict = header("x-switchyard-cache").unwrap_or_default();
    let age = header("age");
    (status, verdict, r.text().await.unwrap(), age)
}

/// Waits until the cache holds more than `before` bytes: a miss is stored after its response,
/// so the next request may otherwise race the store.
async fn stored(gw: &Gateway, before: f64) {
    eventually(Duration::from_secs(2), "the answer is stored", || async {
        bytes(gw).await > before
    })
    .await;
}

async fn bytes(gw: &Gateway) -> f64 {
    metric(gw, "gateway_cache_stored_bytes").await
}

fn chat(content: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn identical_requests_are_answered_once_and_never_across_keys() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config(&a, "", "usage: { sink: none }")).await;
    let body = chat("What is 2+2?");
    let (status, verdict, first, age) = ask(&gw, "sk-b", &body, &[]).await;
    assert_eq!((status, verdict.as_str(), age), (200, "miss", None));
    stored(&gw, 0.0).await;
    let (status, verdict, second, age) = ask(&gw, "sk-b", &body, &[]).await;
    assert_eq!((status, verdict.as_str()), (200, "hit"));
    assert_eq!(second, first, "the stored answer, byte for byte");
    assert_eq!(age.as_deref(), Some("0"));
    assert_eq!(a.count(), 1, "hits never reach the upstream");

    // The same body from another key is that key's own miss (scope: key).
    let (_, verdict, _, _) = ask(&gw, "sk-a", &body, &[]).await;
    assert_eq!(verdict, "miss");
    assert_eq!(a.count(), 2);

    // Key order, spacing and the delivery fields do not change the key...
    let reordered = r#"{ "messages" : [ {"content":"What is 2+2?", "role":"user"} ], "user": "u-7",
                         "metadata": {"trace": "x"}, "model":"gpt-4o-mini" }"#;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-b")
        .header("content-type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    // ...and every field that can change the answer does.
    for (field, value) in [
        ("temperature", json!(0.7)),
        ("seed", json!(42)),
        ("response_format", json!({"type": "json_object"})),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
        ),
        ("max_tokens", json!(5)),
    ] {
        let mut changed = body.clone();
        changed[field] = value;
        let (_, verdict, _, _) = ask(&gw, "sk-b", &changed, &[]).await;
        assert_eq!(verdict, "miss", "{field} changes the key");
    }
    assert_eq!(a.count(), 7);
    // A model with `cache: false` is never looked up: no header at all.
    let mut off = body.clone();
    off["model"] = json!("no-cache-model");
    let (_, verdict, _, _) = ask(&gw, "sk-b", &off, &[]).await;
    assert_eq!(verdict, "");
    assert_eq!(
        metric(
            &gw,
            r#"gateway_cache_lookups_total{model="gpt-4o-mini",result="hit"}"#
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(
            &gw,
            r#"gateway_cache_lookups_total{model="gpt-4o-mini",result="miss"}"#
        )
        .await,
        7.0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn streams_are_stored_from_what_the_client_got_and_replayed_as_sse() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config(&a, "", "usage: { sink: none }")).await;
    let mut stream = chat("Stream me");
    stream["stream"] = json!(true);
    let (_, verdict, sent, _) = ask(&gw, "sk-b", &stream, &[]).await;
    assert_eq!(verdict, "miss");
    let text = |sse: &str| -> String {
        sse_data(sse)
            .iter()
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| {
                serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    };
    assert_eq!(text(&sent), "Hello from a");
    let whole = chat("Stream me");
    stored(&gw, 0.0).await;
    assert_eq!(
        a.count(),
        1,
        "one upstream call for the stream, none to store it"
    );

    // A non-stream hit from the streamed miss: the completion the chunks add up to.
    let (_, _, answer, _) = ask(&gw, "sk-b", &whole, &[]).await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello from a");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["usage"]["total_tokens"], 60,
        "the usage the relay read"
    );

    // A stream hit: valid SSE, the usage chunk only when asked for, then [DONE].
    for include_usage in [false, true] {
        let mut again = stream.clone();
        if include_usage {
            again["stream_options"] = json!({"include_usage": true});
        }
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth("sk-b")
            .json(&again)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-switchyard-cache"], "hit");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let sse = r.text().await.unwrap();
        let data = sse_data(&sse);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        assert_eq!(text(&sse), "Hello from a");
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
        assert_eq!(usage.len(), usize::from(include_usage), "{sse}");
    }

    // The other way: a whole answer with tool calls, replayed as a stream.
    let tools = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "weather?"}],
                       "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let before = bytes(&gw).await;
    ask(&gw, "sk-b", &tools, &[]).await;
    let mut streamed_tools = tools.clone();
    streamed_tools["stream"] = json!(true);
    stored(&gw, before).await;
    let (_, verdict, sse, _) = ask(&gw, "sk-b", &streamed_tools, &[]).await;
    assert_eq!(verdict, "hit");
    let calls: Vec<Value> = sse_data(&sse)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .collect();
    assert_eq!(calls.len(), 1);
    let call = &calls[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (call["index"].clone(), call["function"]["name"].clone()),
        (json!(0), json!("get_weather"))
    );
    assert!(sse.contains(r#""finish_reason":"tool_calls""#));
    gw.shutdown().await;
}

#[tokio::test]
async fn the_request_says_how_the_cache_may_answer_it() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config(&a, "", "usage: { sink: none }")).await;
    let body = chat("controls");
    // no-store: neither read nor written.
    let (_, verdict, _, _) = ask(&gw, "sk-b", &body, &[("cache-control", "no-store")]).await;
    assert_eq!(verdict, "bypass");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bytes(&gw).await, 0.0, "no-store stored nothing");
    let (_, verdict, _, _) = ask(&gw, "sk-b", &body, &[]).await;
    assert_eq!(verdict, "miss");
    stored(&gw, 0.0).await;
    // no-cache: not read (a miss that refreshes the entry).
    let calls = a.count();
    let (_, verdict, _, _) = ask(&gw, "sk-b", &body, &[("cache-control", "no-cache")]).await;
    assert_eq!(verdict, "miss");
    assert_eq!(a.count(), calls + 1);
    // max-age: an entry older than it is a miss.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, verdict, _, age) = ask(&gw, "sk-b", &body, &[("cache-control", "max-age=600")]).await;
    assert_eq!((verdict.as_str(), age.as_deref()), ("hit", Some("1")));
    let (_, verdict, _, _) = ask(&gw, "sk-b", &body, &[("cache-control", "max-age=0")]).await;
    assert_eq!(verdict, "miss");
    // x-switchyard-cache-ttl: this answer's time to live.
    let short = chat("short-lived");
    let before = bytes(&gw).await;
    ask(&gw, "sk-b", &short, &[("x-switchyard-cache-ttl", "1s")]).await;
    stored(&gw, before).await;
    assert_eq!(ask(&gw, "sk-b", &short, &[]).await.1, "hit");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        ask(&gw, "sk-b", &short, &[]).await.1,
        "miss",
        "expired after its ttl"
    );
    let (status, _, error, _) =
        ask(&gw, "sk-b", &short, &[("x-switchyard-cache-ttl", "soon")]).await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&error).unwrap();
    assert_eq!(error["error"]["param"], "x-switchyard-cache-ttl");
    // A session's turn is never cached.
    let mut session = chat("in a session");
    session["session_id"] = json!(unique("cache-session"));
    assert_eq!(ask(&gw, "sk-b", &session, &[]).await.1, "bypass");
    let calls = a.count();
    assert_eq!(ask(&gw, "sk-b", &session, &[]).await.1, "bypass");
    assert_eq!(a.count(), calls + 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn errors_cut_streams_and_large_answers_are_never_stored() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config(&a, "", "usage: { sink: none }")).await;
    let body = chat("fails first");
    a.next(2, Behavior::Status(400, vec![]));
    assert_eq!(ask(&gw, "sk-b", &body, &[]).await.0, 400);
    assert_eq!(ask(&gw, "sk-b", &body, &[]).await.0, 400);
    assert_eq!(
        ask(&gw, "sk-b", &body, &[]).await.1,
        "miss",
        "an error was not stored"
    );
    let mut cut = chat("cut stream");
    cut["stream"] = json!(true);
    a.next(1, Behavior::CutAfter(2));
    ask(&gw, "sk-b", &cut, &[]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        ask(&gw, "sk-b", &cut, &[]).await.1,
        "miss",
        "a cut stream was not stored"
    );
    a.next(1, Behavior::ErrorEventAfter(2));
    let mut failed = chat("failed stream");
    failed["stream"] = json!(true);
    ask(&gw, "sk-b", &failed, &[]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ask(&gw, "sk-b", &failed, &[]).await.1, "miss");
    gw.shutdown().await;

    let small = Gateway::start(&config(
        &a,
        "  max_entry_bytes: 100",
        "usage: { sink: none }",
    ))
    .await;
    let body = chat("too large to keep");
    assert_eq!(ask(&small, "sk-b", &body, &[]).await.0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        ask(&small, "sk-b", &body, &[]).await.1,
        "miss",
        "over max_entry_bytes: served, not stored"
    );
    small.shutdown().await;
}

#[tokio::test]
async fn a_hit_is_a_free_ledger_row_and_counts_against_rpm_only() {
    let a = MockOpenAi::start("a").await;
    let path = std::env::temp_dir().join(format!("{}.jsonl", unique("cache-ledger")));
    let ledger = format!("usage: {{ sink: file, path: \"{}\" }}", path.display());
    let gw = Gateway::start(&config(&a, "", &ledger)).await;
    let body = chat("priced");
    assert_eq!(ask(&gw, "sk-a", &body, &[]).await.1, "miss");
    stored(&gw, 0.0).await;
    // team-a's rpm is 3: two hits fit after the miss, a third request is refused, hit or not.
    for _ in 0..2 {
        let (status, verdict, _, _) = ask(&gw, "sk-a", &body, &[]).await;
        assert_eq!((status, verdict.as_str()), (200, "hit"));
    }
    assert_eq!(
        ask(&gw, "sk-a", &body, &[]).await.0,
        429,
        "a hit counts against rpm"
    );
    assert_eq!(a.count(), 1);
    gw.shutdown().await;
    let rows = ledger_rows(&path);
    let hits: Vec<&Value> = rows
        .iter()
        .filter(|r| r["usage_source"] == "cache")
        .collect();
    assert_eq!(hits.len(), 2, "{rows:#?}");
    let miss = rows
        .iter()
        .find(|r| r["usage_source"] == "upstream")
        .unwrap();
    // The mock reports 19 prompt and 10 completion tokens: $0.000039 at $1 / $2 per 1M.
    assert_eq!(miss["cost"], "0.0000390000");
    for hit in hits {
        assert_eq!(
            (hit["input_tokens"].clone(), hit["output_tokens"].clone()),
            (json!(0), json!(0))
        );
        assert_eq!(hit["cost"], "0");
        assert_eq!(
            hit["cache_saved_cost"], "0.0000390000",
            "what the stored answer cost"
        );
        assert_eq!(hit["status"], "ok");
        assert_eq!(hit["provider_id"], Value::Null);
    }
}

#[tokio::test]
async fn embeddings_and_completions_are_cached_and_an_admin_empties_the_cache() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config(&a, "  scope: shared", "usage: { sink: none }")).await;
    let embed = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let post = |path: &'static str, key: &'static str, body: Value| {
        let gw = &gw;
        async move {
            let r = client()
                .post(gw.url(path))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let verdict = r
                .headers()
                .get("x-switchyard-cache")
                .map(|v| v.to_str().unwrap().to_owned());
            (verdict.unwrap_or_default(), r.text().await.unwrap())
        }
    };
    let (verdict, first) = post("/v1/embeddings", "sk-a", embed.clone()).await;
    assert_eq!(verdict, "miss");
    stored(&gw, 0.0).await;
    // scope: shared — another key reads what team-a stored.
    let (verdict, again) = post("/v1/embeddings", "sk-b", embed.clone()).await;
    assert_eq!((verdict.as_str(), again), ("hit", first));
    let completion = json!({"model": "gpt-4o-mini", "prompt": "Say hi", "max_tokens": 5});
    let before = bytes(&gw).await;
    assert_eq!(
        post("/v1/completions", "sk-b", completion.clone()).await.0,
        "miss"
    );
    stored(&gw, before).await;
    assert_eq!(
        post("/v1/completions", "sk-b", completion.clone()).await.0,
        "hit"
    );
    let mut streamed = completion.clone();
    streamed["stream"] = json!(true);
    let (verdict, sse) = post("/v1/completions", "sk-b", streamed).await;
    assert_eq!(verdict, "hit");
    let data = sse_data(&sse);
    let first_chunk: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first_chunk["object"], "text_completion");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let calls = a.count();

    // Only an admin key empties it; by model, then all.
    let delete = |key: &'static str, query: &'static str| {
        let gw = &gw;
        async move {
            let r = client()
                .delete(gw.url(&format!("/admin/v1/cache{query}")))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(delete("sk-b", "").await.0, 403);
    let (status, body) = delete("sk-admin", "?model=text-embedding-3-small").await;
    assert_eq!((status, body["deleted"].clone()), (200, json!(1)));
    assert_eq!(
        post("/v1/embeddings", "sk-b", embed.clone()).await.0,
        "miss"
    );
    assert_eq!(
        post("/v1/completions", "sk-b", completion.clone()).await.0,
        "hit",
        "other models keep theirs"
    );
    let (_, body) = delete("sk-admin", "").await;
    assert!(body["deleted"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(post("/v1/completions", "sk-b", completion).await.0, "miss");
    assert_eq!(a.count(), calls + 2);
    gw.shutdown().await;
}

/// A gateway whose cache is in the machine's Redis (or at `redis_url`), serving one model under
/// a name of this run's own (Redis is shared by every test and run).
fn redis_config(a: &MockOpenAi, model: &str, redis_url: &str) -> String {
    format!(
        r#"providers:
  - {{ id: a, kind: openai, base_url: "{url}", api_key: sk-upstream-a, timeout: 2s, health_check: {{ enabled: false }} }}
models:
  - name: {model}
    routes: [ {{ provider: a, model: upstream-a }} ]
auth:
  keys:
    - {{ name: team-b, key: sk-b }}
    - {{ name: ops, key: sk-admin, admin: true }}
cache:
  store: redis
  redis_url: {redis_url}
  timeout: 200ms
usage: {{ sink: none }}
"#,
        url = a.base_url()
    )
}

/// The entries of `model` in the machine's Redis.
async fn redis_entries(model: &str) -> usize {
    let out = tokio::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "--scan",
            "--pattern",
            &format!("switchyard:cache:{model}:*"),
        ])
        .output()
        .await
        .expect("redis-cli is installed with redis-server");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn a_redis_store_is_shared_by_replicas_and_emptied_by_model() {
    let a = MockOpenAi::start("a").await;
    let model = unique("cached-model");
    let yaml = redis_config(&a, &model, "redis://127.0.0.1:6379");
    let (one, two) = (Gateway::start(&yaml).await, Gateway::start(&yaml).await);
    let body = json!({"model": model, "messages": [{"role": "user", "content": "shared?"}]});
    let (_, verdict, first, _) = ask(&one, "sk-b", &body, &[]).await;
    assert_eq!(verdict, "miss");
    eventually(Duration::from_secs(2), "the entry is in Redis", || async {
        redis_entries(&model).await == 1
    })
    .await;
    // Another replica answers from what the first stored; its ttl is the section's.
    let (_, verdict, second, age) = ask(&two, "sk-b", &body, &[]).await;
    assert_eq!((verdict.as_str(), second), ("hit", first));
    assert!(age.is_some());
    assert_eq!(a.count(), 1);
    let r = client()
        .delete(one.url(&format!("/admin/v1/cache?model={model}")))
        .bearer_auth("sk-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["deleted"], 1);
    assert_eq!(redis_entries(&model).await, 0);
    assert_eq!(ask(&two, "sk-b", &body, &[]).await.1, "miss");
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test]
async fn a_redis_outage_makes_the_cache_a_bypass_never_an_error_or_a_wait() {
    let a = MockOpenAi::start("a").await;
    // Nothing listens there: every call fails at once; a blackhole would wait out `timeout`.
    let gw = Gateway::start(&redis_config(&a, "gpt-4o-mini", "redis://127.0.0.1:1")).await;
    let body = chat("is redis there?");
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let (status, verdict, _, _) = ask(&gw, "sk-b", &body, &[]).await;
        assert_eq!((status, verdict.as_str()), (200, "bypass"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "bounded by cache.timeout"
        );
    }
    assert_eq!(a.count(), 5, "served by the upstream every time");
    assert!(metric(&gw, "gateway_cache_redis_errors_total").await >= 1.0);
    let r = client()
        .delete(gw.url("/admin/v1/cache"))
        .bearer_auth("sk-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_responses_hit_is_a_new_stored_response_and_a_continuation_is_never_cached() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config(&a, "", "usage: { sink: none }")).await;
    let create = |body: Value| {
        let gw = &gw;
        async move {
            let r = client()
                .post(gw.url("/v1/responses"))
                .bearer_auth("sk-b")
                .json(&body)
                .send()
                .await
                .unwrap();
            let verdict = r.headers()["x-switchyard-cache"]
                .to_str()
                .unwrap()
                .to_owned();
            (verdict, r.text().await.unwrap())
        }
    };
    let body = json!({"model": "gpt-4o-mini", "input": "Cache this response"});
    let (verdict, first) = create(body.clone()).await;
    assert_eq!(verdict, "miss");
    let first: Value = serde_json::from_str(&first).unwrap();
    stored(&gw, 0.0).await;
    let (verdict, second) = create(body.clone()).await;
    assert_eq!(verdict, "hit");
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["output_text"], first["output_text"]);
    assert_eq!(second["status"], "completed");
    assert_ne!(second["id"], first["id"], "a hit is a new response");
    assert_ne!(second["output"][0]["id"], first["output"][0]["id"]);
    // Stored like any other: it can be fetched and continued.
    let id = second["id"].as_str().unwrap();
    let fetched = client()
        .get(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth("sk-b")
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    // A stream hit: the events of a response, ending with response.completed.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (verdict, sse) = create(streamed).await;
    assert_eq!(verdict, "hit");
    // Every frame is `event: <type>` then its `data:` line.
    let events: Vec<Value> = sse
        .split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["type"], "response.created");
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        first["output"][0]["content"][0]["text"]
    );
    assert_eq!(a.count(), 1);
    // A continuation depends on stored state the key does not cover: never cached.
    let next = json!({"model": "gpt-4o-mini", "input": "and then?", "previous_response_id": id});
    assert_eq!(create(next.clone()).await.0, "bypass");
    assert_eq!(create(next).await.0, "bypass");
    assert_eq!(a.count(), 3);
    gw.shutdown().await;
}
