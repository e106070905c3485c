//! Ledger throughput: rows per second the gateway's own writer puts into the local PostgreSQL
//! (one UNNEST insert per batch). `cargo bench --bench ledger` (needs 127.0.0.1:5432, trust auth).
//! Creates a scratch database, queues `ROWS` records as fast as the writer takes them (never more
//! than half its queue ahead), waits until it has written them all (shutdown drains), checks the
//! count, drops the database.

use std::time::Instant;

use switchyard::usage::record::{Purpose, Status, UsageRecord, UsageSource};
use switchyard::usage::writer::UsageSink;
use tokio_postgres::NoTls;

const ROWS: usize = 200_000;
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[tokio::main]
async fn main() {
    let name = format!("switchyard_bench_ledger_{}", std::process::id());
    let (admin, connection) = tokio_postgres::connect(ADMIN_URL, NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let spill = std::env::temp_dir().join(format!("{name}.spill"));
    let yaml = format!(
        "usage:\n  sink: postgres\n  database_url: {url}\n  spill_path: {}\n",
        spill.display()
    );
    let (config, _) = switchyard::config::parse(&yaml, &|_: &str| None).unwrap();

    let sink = UsageSink::start(&config.usage, None).unwrap().unwrap();
    // Let the writer connect, migrate and make partitions before the clock starts.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let now_us = switchyard::clock::unix_micros();
    let started = Instant::now();
    for i in 0..ROWS {
        sink.record(record(i, now_us));
        // Keep to what the writer sustains: past its queue it would drop rows (by design).
        if i.is_multiple_of(1_024) {
            while sink.backlog() > 32_768 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }
    sink.shutdown().await;
    let elapsed = started.elapsed();

    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM request_logs", &[])
        .await
        .unwrap()
        .get(0);
    drop(client);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
    assert_eq!(
        rows as usize,
        ROWS,
        "every row written (spill: {})",
        spill.display()
    );
    println!(
        "ledger: {ROWS} rows in {:.2} s = {:.0} rows/s",
        elapsed.as_secs_f64(),
        ROWS as f64 / elapsed.as_secs_f64()
    );
}

fn record(i: usize, now_us: i64) -> UsageRecord {
    UsageRecord {
        request_id: format!("req_bench_{i:09}"),
        created_at_us: now_us + i as i64,
        key_name: Some("team-a".into()),
        session_id: None,
        model_name: "gpt-4o-mini".into(),
        provider_id: Some("openai".into()),
        upstream_model: Some("gpt-4o-mini".into()),
        stream: i.is_multiple_of(2),
        input_tokens: 19,
        output_tokens: 10,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        usage_source: UsageSource::Upstream,
        cost: "0.0000088500".into(),
        cache_saved_cost: "0".into(),
        units: None,
        unit: None,
        latency_ms: 120,
        ttft_ms: None,
        attempts: 1,
        status: Status::Ok,
        http_status: 200,
        error_message: None,
        purpose: Purpose::Chat,
        estimate: None,
        journal: 0,
    }
}
