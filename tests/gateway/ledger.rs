//! The usage ledger end to end on the real PostgreSQL: one row per client request with the
//! upstream's token counts and an exact cost, nothing lost while the database is away, nothing
//! duplicated by a replay, everything written before shutdown returns.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, config_for, post};
use crate::mock_openai::MockOpenAi;
use crate::usage_schema::TestDb;

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
    let spill =
        std::env::temp_dir().join(format!("switchyard-spill-ok-{}.jsonl", std::process::id()));
    let usage = format!(
        "usage:\n  sink: postgres\n  database_url: {}\n  spill_path: {}\n",
        db.url(),
        spill.display()
    );
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

#[tokio::test]
async fn rows_written_while_the_database_is_away_arrive_once_it_is_back() {
    // The database does not exist yet: every write fails and spills, requests still succeed.
    let db = TestDb::named("ledger_outage");
    let a = MockOpenAi::start("a").await;
    let spill = std::env::temp_dir().join(format!("switchyard-spill-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&spill);
    let usage = format!(
        "usage:\n  sink: postgres\n  database_url: {}\n  spill_path: {}\n",
        db.url(),
        spill.display()
    );
    let gw = Gateway::start(&ledger_config(&a, &usage)).await;
    burst(&gw, 30).await;
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&spill)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 30
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "rows must reach the spill file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The database comes back: the writer reconnects, migrates, replays the spill.
    db.create_now().await;
    let started = std::time::Instant::now();
    while spill.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the spill must be replayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    burst(&gw, 10).await;
    gw.shutdown().await;
    let (rows, input, _, _) = count(&db).await;
    assert_eq!(
        rows, 40,
        "30 replayed + 10 written directly, none lost, none twice"
    );
    assert_eq!(input, 15 * 19 + 15 * 44 + 5 * 19 + 5 * 44);
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
