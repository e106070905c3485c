//! The usage ledger end to end on the real PostgreSQL: one row per client request with the
//! upstream's token counts and an exact cost, nothing lost while the database is away, nothing
//! duplicated by a replay, everything written before shutdown returns.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, config_for, eventually, get_text, metric, post, post_as};
use crate::mock_openai::{Behavior, MockOpenAi};
use crate::tcp_proxy::TcpProxy;
use crate::usage_schema::{TestDb, assert_hourly_totals_match_the_rows};

fn ledger_config(a: &MockOpenAi, usage: &str) -> String {
    config_for(&[("a", &a.base_url(), 1, 1)], "").replace(
        "  - name: gpt-4o-mini\n",
        "  - name: gpt-4o-mini\n    price: { input_per_1m: 0.15, output_per_1m: 0.60 }\n",
    ) + usage
}

/// Streams here do not ask for `include_usage`, as most SDK callers don't: the gateway asks the
/// upstream itself, so the ledger still gets exact counts.
fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// A Postgres sink on `db`, spilling to a file of this test's own.
fn postgres_usage(db: &TestDb, test: &str) -> (String, std::path::PathBuf) {
    let spill = std::env::temp_dir().join(format!(
        "switchyard-spill-{test}-{}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&spill);
    let usage = format!(
        "usage:\n  sink: postgres\n  database_url: {}\n  spill_path: {}\n",
        db.url(),
        spill.display()
    );
    (usage, spill)
}

fn spill_lines(spill: &std::path::Path) -> usize {
    std::fs::read_to_string(spill)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Polls `done` until it holds; fails the test after 15 s.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(15), "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A stream whose upstream breaks after the commit point ends with an error event.
async fn stream_ends_in_an_error_event(gw: &Gateway) {
    let text = post(gw, "/v1/chat/completions", &chat(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"error\""), "{text}");
}

async fn burst(gw: &Gateway, n: usize) {
    let requests = (0..n).map(|i| async move {
        let r = post(gw, "/v1/chat/completions", &chat(i % 2 == 1)).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    });
    futures_util::future::join_all(requests).await;
}

async fn count(db: &TestDb) -> (i64, i64, i64, String) {
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT count(*), coalesce(sum(input_tokens), 0)::int8, coalesce(sum(output_tokens), 0)::int8, coalesce(sum(cost), 0)::text
             FROM request_logs WHERE status = 'ok'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn every_request_is_one_row_with_exact_tokens_and_cost() {
    let db = TestDb::create("ledger").await;
    let a = MockOpenAi::start("a").await;
    let (usage, spill) = postgres_usage(&db, "ok");
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;
    burst(&gw, 40).await;
    let streamed = a
        .requests()
        .into_iter()
        .find(|r| r.body["stream"] == true)
        .unwrap();
    assert_eq!(
        streamed.body["stream_options"]["include_usage"], true,
        "the gateway asks for usage itself"
    );
    let text = post(&gw, "/v1/chat/completions", &chat(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains("\"usage\""),
        "and hides the chunk the client did not ask for: {text}"
    );
    gw.shutdown().await;
    // 20 non-stream answers report 19 + 10 tokens, 21 streams (one more just above) 44 + 16.
    let (rows, input, output, cost) = count(&db).await;
    assert_eq!(
        (rows, input, output),
        (41, 20 * 19 + 21 * 44, 20 * 10 + 21 * 16)
    );
    // 1304 input × $0.15/M + 536 output × $0.60/M, exactly.
    assert_eq!(cost, "0.0005172000");
    let client = db.connect().await;
    let row = client
        .query_one("SELECT key_name, provider_id, upstream_model, usage_source, attempts, http_status, purpose FROM request_logs LIMIT 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("a"));
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("upstream-a")
    );
    assert_eq!(row.get::<_, String>(3), "upstream");
    assert_eq!((row.get::<_, i16>(4), row.get::<_, i16>(5)), (1, 200));
    assert_eq!(row.get::<_, String>(6), "chat");
    assert!(!spill.exists(), "nothing was spilled");
    drop(client);
    db.drop_db().await;
}

/// A prompt-cache hit on a reasoning model: the row keeps all input and all output in its
/// token columns, the cached and reasoning parts beside them, and the cost prices the cached part
/// at `cached_input_per_1m`, no token twice; the hourly totals and `/v1/usage` carry the parts.
#[tokio::test]
async fn cached_input_is_recorded_and_priced_as_such() {
    let db = TestDb::create("cached").await;
    let a = MockOpenAi::start("a").await;
    let (usage, spill) = postgres_usage(&db, "cached");
    let config = ledger_config(&a, &usage).replace(
        "price: { input_per_1m: 0.15, output_per_1m: 0.60 }",
        "price: { input_per_1m: 0.15, output_per_1m: 0.60, cached_input_per_1m: 0.075 }",
    );
    let gw = Gateway::start(&config).await;
    a.next(2, Behavior::CacheHit);
    for stream in [false, true] {
        let r = post(&gw, "/v1/chat/completions", &chat(stream)).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    }
    eventually(Duration::from_secs(10), "both rows written", || async {
        metric(&gw, "gateway_usage_rows_written_total{sink=\"postgres\"}").await == 2.0
    })
    .await;
    let answer: Value =
        serde_json::from_str(&get_text(&gw, "/v1/usage?group_by=none").await).unwrap();
    gw.shutdown().await;
    let client = db.connect().await;
    let rows = client
        .query(
            "SELECT input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                    reasoning_tokens, cost::text FROM request_logs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let counts: (i64, i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!(counts, (2006, 300, 1920, 0, 128));
        // 86 × $0.15/M + 1,920 × $0.075/M + 300 × $0.60/M (the 128 reasoning tokens are output).
        assert_eq!(row.get::<_, String>(5), "0.0003369000");
    }
    assert_hourly_totals_match_the_rows(&client).await;
    let total = &answer["data"][0];
    assert_eq!(
        (
            &total["input_tokens"],
            &total["cached_input_tokens"],
            &total["cache_write_tokens"],
            &total["reasoning_tokens"],
            &total["cost"]
        ),
        (
            &json!(4012),
            &json!(3840),
            &json!(0),
            &json!(256),
            &json!("0.0006738000")
        ),
        "{answer}"
    );
    assert!(!spill.exists());
    drop(client);
    db.drop_db().await;
}

/// Rows whose upstream reported no usage are counted by the gateway (tiktoken, o200k_base for
/// gpt-4o-mini) and marked `estimated`. The prompt `{"role":"user","content":"hi"}` is 3 + 1 + 1
/// tokens, plus 3 for the reply's priming: 8.
#[tokio::test]
async fn streams_cut_or_abandoned_and_answers_without_usage_are_counted_by_the_gateway() {
    let db = TestDb::create("ledger_estimated").await;
    let a = MockOpenAi::start("a").await;
    let (usage, _spill) = postgres_usage(&db, "estimated");
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;

    // Cut after the role chunk, "Hello" and " from": the client gets an error event.
    a.next(1, Behavior::CutAfter(3));
    stream_ends_in_an_error_event(&gw).await;
    // The upstream stalls after three chunks; the client reads the first and leaves.
    a.next(1, Behavior::StallAfter(3));
    let cancelled = || {
        metric(
            &gw,
            "gateway_streams_ended_total{provider=\"a\",outcome=\"cancelled\"}",
        )
    };
    let cancelled_before = cancelled().await;
    let mut abandoned = post(&gw, "/v1/chat/completions", &chat(true)).await;
    assert!(abandoned.chunk().await.unwrap().is_some());
    drop(abandoned);
    // An upstream that ignores include_usage, and an answer without usage.
    a.next(2, Behavior::WithoutUsage);
    for stream in [true, false] {
        let r = post(&gw, "/v1/chat/completions", &chat(stream)).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    }
    // The abandoned stream's row is recorded once the gateway notices the client left.
    eventually(
        Duration::from_secs(5),
        "the abandoned stream recorded",
        || async { cancelled().await > cancelled_before },
    )
    .await;
    gw.shutdown().await;

    let client = db.connect().await;
    let rows = client
        .query(
            "SELECT status, http_status, stream, usage_source, input_tokens, output_tokens, cost::text
             FROM request_logs ORDER BY created_at",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, i16, bool, String, i64, i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let estimated = |status: &str, http: i16, stream: bool, output: i64| {
        // 8 × $0.15/M + output × $0.60/M
        let cost = format!("{:.10}", (8.0 * 0.15 + output as f64 * 0.60) / 1e6);
        (
            status.to_owned(),
            http,
            stream,
            "estimated".to_owned(),
            8,
            output,
            cost,
        )
    };
    // "Hello from": 2 tokens; "Hello from a": 3.
    assert_eq!(rows[0], estimated("error", 200, true, 2), "the cut stream");
    assert_eq!(
        rows[1].0, "cancelled",
        "the abandoned stream: {:?}",
        rows[1]
    );
    assert_eq!(
        (rows[1].1, rows[1].3.as_str(), rows[1].4),
        (499, "estimated", 8)
    );
    assert!(rows[1].5 <= 2, "at most what was relayed: {:?}", rows[1]);
    assert_eq!(
        rows[2],
        estimated("ok", 200, true, 3),
        "the stream without usage"
    );
    assert_eq!(
        rows[3],
        estimated("ok", 200, false, 3),
        "the answer without usage"
    );
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn rows_written_while_the_database_is_away_arrive_once_it_is_back() {
    // The database does not exist yet: every write fails and spills, requests still succeed.
    let db = TestDb::named("ledger_outage");
    let a = MockOpenAi::start("a").await;
    let (usage, spill) = postgres_usage(&db, "outage");
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;
    burst(&gw, 30).await;
    wait_until("rows reach the spill file", || spill_lines(&spill) >= 30).await;
    // The database comes back: the writer reconnects, migrates, replays the spill.
    db.create_now().await;
    wait_until("the spill is replayed", || !spill.exists()).await;
    burst(&gw, 10).await;
    gw.shutdown().await;
    let (rows, input, _, _) = count(&db).await;
    assert_eq!(
        rows, 40,
        "30 replayed + 10 written directly, none lost, none twice"
    );
    assert_eq!(input, 15 * 19 + 15 * 44 + 5 * 19 + 5 * 44);
    assert_eq!(
        assert_hourly_totals_match_the_rows(&db.connect().await).await,
        40
    );
    db.drop_db().await;
}

/// The database's port goes away while a burst is being written, then refuses connections, then
/// comes back: every request has its row, exactly once (batches written but not acknowledged
/// before the cut are spilled too, and their replay must not duplicate them).
#[tokio::test]
async fn the_database_cut_mid_burst_loses_nothing_and_duplicates_nothing() {
    let db = TestDb::create("ledger_cut").await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let a = MockOpenAi::start("a").await;
    let (usage, spill) = postgres_usage(&db, "cut");
    let usage = usage.replace(&db.url(), &db.url_via(proxy.port));
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;
    burst(&gw, 20).await;
    let started = std::time::Instant::now();
    while count(&db).await.0 < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "rows are written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cut = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        proxy.cut();
    };
    tokio::join!(burst(&gw, 200), cut);
    burst(&gw, 20).await;
    wait_until("rows reach the spill file", || spill_lines(&spill) >= 20).await;
    proxy.restore().await;
    wait_until("the spill is replayed", || !spill.exists()).await;
    gw.shutdown().await;

    let (rows, input, output, _) = count(&db).await;
    assert_eq!(rows, 240, "every request once");
    assert_eq!((input, output), (120 * 19 + 120 * 44, 120 * 10 + 120 * 16));
    assert_eq!(
        assert_hourly_totals_match_the_rows(&db.connect().await).await,
        240
    );
    db.drop_db().await;
}

#[tokio::test]
async fn a_replayed_spill_creates_no_duplicate() {
    let db = TestDb::create("ledger_replay").await;
    let a = MockOpenAi::start("a").await;
    let spill =
        std::env::temp_dir().join(format!("switchyard-spill-dup-{}.jsonl", std::process::id()));
    let usage = format!(
        "usage:\n  sink: postgres\n  database_url: {}\n  spill_path: {}\n",
        db.url(),
        spill.display()
    );
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;
    burst(&gw, 6).await;
    gw.shutdown().await;
    assert_eq!(count(&db).await.0, 6);
    // Write the very same rows into a spill file, as if a crash hit between insert and cleanup.
    let client = db.connect().await;
    let rows = client
        .query(
            "SELECT request_id, (extract(epoch from created_at) * 1000000)::int8, model_name FROM request_logs",
            &[],
        )
        .await
        .unwrap();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            json!({"request_id": r.get::<_, String>(0), "created_at_us": r.get::<_, i64>(1), "key_name": null, "session_id": null,
                "model_name": r.get::<_, String>(2), "provider_id": "a", "upstream_model": "upstream-a", "stream": false,
                "input_tokens": 19, "output_tokens": 10, "usage_source": "upstream", "cost": "0.0000088500", "latency_ms": 1,
                "ttft_ms": null, "attempts": 1, "status": "ok", "http_status": 200, "error_message": null, "purpose": "chat"})
            .to_string()
        })
        .collect();
    std::fs::write(&spill, lines.join("\n") + "\n").unwrap();
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;
    let started = std::time::Instant::now();
    while spill.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the spill must be replayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.shutdown().await;
    assert_eq!(
        count(&db).await.0,
        6,
        "replaying rows already written adds nothing"
    );
    assert_eq!(assert_hourly_totals_match_the_rows(&client).await, 6);
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn the_file_sink_writes_one_json_line_per_request() {
    let a = MockOpenAi::start("a").await;
    let path = std::env::temp_dir().join(format!("switchyard-usage-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let gw = Gateway::start(&ledger_config(
        &a,
        &format!("usage:\n  sink: file\n  path: {}\n", path.display()),
    ))
    .await;
    burst(&gw, 8).await;
    gw.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 8);
    assert!(
        rows.iter()
            .all(|r| r["status"] == "ok" && r["model_name"] == "gpt-4o-mini")
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn usage_totals_from_postgres() {
    let db = TestDb::create("ledger_totals").await;
    let (usage, _spill) = postgres_usage(&db, "totals");
    usage_totals_are_scoped_to_the_callers_key(&usage).await;
    db.drop_db().await;
}

#[tokio::test]
async fn usage_totals_from_the_file_sink() {
    let path = std::env::temp_dir().join(format!(
        "switchyard-usage-totals-{}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    usage_totals_are_scoped_to_the_callers_key(&format!(
        "usage:\n  sink: file\n  path: {}\n",
        path.display()
    ))
    .await;
    let _ = std::fs::remove_file(&path);
}

/// The same totals, scoping and errors whichever sink holds the rows; result-cache hits
/// counted, with what they saved.
async fn usage_totals_are_scoped_to_the_callers_key(usage: &str) {
    let a = MockOpenAi::start("a").await;
    let keys = "auth:\n  keys:\n    - { name: team-a, key: sk-team-a }\n    - { name: team-b, key: sk-team-b }\n    - { name: ops, key: sk-ops, admin: true }\ncache: {}\n";
    let gw = Gateway::start(&ledger_config(&a, &format!("{keys}{usage}"))).await;
    let send = |key: &'static str| {
        let gw = &gw;
        async move {
            let r = post_as(gw, "/v1/chat/completions", key, &chat(false)).await;
            assert_eq!(r.status(), 200);
            r.headers()["x-switchyard-cache"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    // Each key's first request is its miss (scope: key); the rest are hits once it is stored.
    for (key, times) in [("sk-team-a", 3), ("sk-team-b", 2)] {
        let stored = crate::harness::metric(&gw, "gateway_cache_stored_bytes").await;
        assert_eq!(send(key).await, "miss");
        crate::harness::eventually(Duration::from_secs(2), "stored", || async {
            crate::harness::metric(&gw, "gateway_cache_stored_bytes").await > stored
        })
        .await;
        for _ in 1..times {
            assert_eq!(send(key).await, "hit");
        }
    }
    assert_eq!(a.count(), 2);
    let totals = |key: &'static str, query: &'static str| {
        let gw = &gw;
        async move {
            let r = crate::harness::client()
                .get(gw.url(&format!("/v1/usage?{query}")))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Rows reach the sink within a flush interval.
    let started = std::time::Instant::now();
    while totals("sk-ops", "").await.1["data"][0]["requests"] != 5 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "rows must reach the sink"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, all) = totals("sk-ops", "group_by=key").await;
    assert_eq!(status, 200);
    assert_eq!(
        all["data"],
        json!([
            {"group": "team-a", "requests": 3, "input_tokens": 19, "output_tokens": 10, "cached_input_tokens": 0,
             "cache_write_tokens": 0, "reasoning_tokens": 0, "cost": "0.0000088500",
             "cache_hits": 2, "cache_hit_ratio": 0.6667, "cache_saved_cost": "0.0000177000",
             "units": {"seconds": 0, "characters": 0, "images": 0, "searches": 0}},
            {"group": "team-b", "requests": 2, "input_tokens": 19, "output_tokens": 10, "cached_input_tokens": 0,
             "cache_write_tokens": 0, "reasoning_tokens": 0, "cost": "0.0000088500",
             "cache_hits": 1, "cache_hit_ratio": 0.5, "cache_saved_cost": "0.0000088500",
             "units": {"seconds": 0, "characters": 0, "images": 0, "searches": 0}}
        ])
    );
    let (_, own) = totals("sk-team-a", "group_by=key&key=team-b").await;
    assert_eq!(
        own["data"].as_array().unwrap().len(),
        1,
        "a non-admin key sees only its own rows: {own}"
    );
    assert_eq!(own["data"][0]["group"], "team-a");
    let (_, by_model) = totals("sk-team-b", "group_by=model").await;
    assert_eq!(by_model["data"][0]["group"], "gpt-4o-mini");
    assert_eq!(by_model["data"][0]["requests"], 2);
    let (_, by_day) = totals("sk-ops", "group_by=day&from=2000-01-01&to=2100-01-01").await;
    assert_eq!(by_day["data"][0]["requests"], 5);
    let (_, future) = totals("sk-ops", "from=2100-01-01&to=2100-02-01").await;
    assert_eq!(future["data"], json!([]));
    assert_eq!(totals("sk-ops", "group_by=colour").await.0, 400);
    assert_eq!(totals("sk-ops", "from=yesterday-ish").await.0, 400);
    assert_eq!(totals("sk-wrong", "").await.0, 401);
    gw.shutdown().await;
}

/// DashScope reports usage on every event: a stream cut mid-way keeps the upstream's partial
/// counts (`upstream`, not `estimated`) on its `error` row.
#[tokio::test]
async fn a_cut_dashscope_stream_keeps_the_upstreams_partial_usage() {
    let ds = crate::mock_dashscope::MockDashScope::start("q").await;
    let path =
        std::env::temp_dir().join(format!("switchyard-usage-ds-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let usage = format!("usage:\n  sink: file\n  path: {}\n", path.display());
    let gw = Gateway::start(&crate::dashscope::dashscope_config(&ds, None, &usage)).await;
    ds.next(1, crate::mock_dashscope::Behavior::CutAfter(2));
    stream_ends_in_an_error_event(&gw).await;
    gw.shutdown().await;
    let row: Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        (
            &row["status"],
            &row["usage_source"],
            &row["input_tokens"],
            &row["output_tokens"]
        ),
        (&json!("error"), &json!("upstream"), &json!(44), &json!(2)),
        "{row}"
    );
}

#[tokio::test]
async fn the_file_sink_rotates_by_size_and_keeps_a_bounded_number_of_files() {
    let a = MockOpenAi::start("a").await;
    let dir = std::env::temp_dir().join(format!("switchyard-rotate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("usage.jsonl");
    let usage = format!(
        "usage:\n  sink: file\n  path: {}\n  max_file_bytes: 5120\n  keep_files: 2\n",
        path.display()
    );
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;
    let now_us = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        i64::try_from(since.unwrap().as_micros()).unwrap()
    };
    let mut burst_started = Vec::new();
    for round in 1..=8 {
        burst_started.push(now_us());
        burst(&gw, 10).await;
        // Every row of a burst is written before the next burst, so no batch spans two bursts
        // and the sink checks its size at least once per burst. (Waiting for the file's size to
        // change is not enough: a rotation empties the path before the batch is appended.)
        eventually(
            Duration::from_secs(5),
            "the burst's rows are written",
            || async {
                metric(&gw, "gateway_usage_rows_written_total{sink=\"file\"}").await
                    == f64::from(round * 10)
            },
        )
        .await;
    }
    gw.shutdown().await;
    let numbered = |n: u32| dir.join(format!("usage.jsonl.{n}"));
    assert!(!numbered(3).exists(), "no more than keep_files");
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    let row_times = |p: &std::path::Path| -> Vec<i64> {
        let text = std::fs::read_to_string(p).unwrap();
        let rows = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap());
        rows.map(|row| row["created_at_us"].as_i64().unwrap())
            .collect()
    };
    // A row is about 470 bytes: a file takes a burst (under 5120 bytes) and rotates during the
    // next, so each holds at most two bursts.
    let row_bytes = size(&path) / row_times(&path).len() as u64;
    assert!((300..5120 / 10).contains(&row_bytes), "{row_bytes}");
    for rotated in [numbered(1), numbered(2)] {
        let bytes = size(&rotated);
        assert!(
            (5120..5120 + 10 * row_bytes).contains(&bytes),
            "{} rotated once full, with the batch that filled it: {bytes}",
            rotated.display()
        );
    }
    let kept: Vec<i64> = [numbered(2), numbered(1), path.clone()]
        .iter()
        .flat_map(|p| row_times(p))
        .collect();
    assert!(
        (23..=60).contains(&kept.len()),
        "two full files and the current one, none over two bursts: {}",
        kept.len()
    );
    assert!(
        kept.iter().all(|&t| t >= burst_started[2]),
        "the two oldest bursts went with the oldest files"
    );
    assert_eq!(
        kept.iter().filter(|&&t| t >= burst_started[7]).count(),
        10,
        "the newest burst is all kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn usage_totals_from_a_hanging_database_fail_fast() {
    let a = MockOpenAi::start("a").await;
    let hole = crate::tcp_proxy::Blackhole::start().await;
    let usage = format!(
        "usage:\n  sink: postgres\n  database_url: postgres://postgres@127.0.0.1:{}/test\n  spill_path: {}\n",
        hole.port,
        std::env::temp_dir()
            .join(format!("{}.jsonl", crate::harness::unique("hole-spill")))
            .display()
    );
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;
    let started = std::time::Instant::now();
    let r = crate::harness::client()
        .get(gw.url("/v1/usage"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded by the pool's timeouts, not the kernel's: {:?}",
        started.elapsed()
    );
}

/// Two gateways on one spill path would lose rows (one replaying and removing the file while the
/// other appends, or recovering the other's live journal): the second refuses to start, and
/// starts once the first has stopped.
#[tokio::test]
async fn a_spill_path_in_use_by_another_gateway_is_refused() {
    let db = TestDb::create("ledger_claim").await;
    let a = MockOpenAi::start("a").await;
    let (usage, spill) = postgres_usage(&db, "claim");
    let yaml = ledger_config(&a, &usage);
    let first = Gateway::start(&yaml).await;
    let (config, _) = switchyard::config::parse(&yaml, &|_: &str| None).unwrap();
    let refused = match switchyard::state::App::new(&config) {
        Ok(_) => panic!("a second gateway on the same spill path must not start"),
        Err(e) => e,
    };
    assert!(
        refused.contains("in use by another running gateway")
            && refused.contains(&spill.display().to_string()),
        "{refused}"
    );
    burst(&first, 3).await;
    first.shutdown().await;
    let second = Gateway::start(&yaml).await;
    burst(&second, 2).await;
    second.shutdown().await;
    assert_eq!(count(&db).await.0, 5);
    db.drop_db().await;
}
