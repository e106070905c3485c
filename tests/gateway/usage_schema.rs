//! The usage ledger's schema on the machine's real PostgreSQL: migrations (once, even when
//! replicas race), monthly partitions at UTC boundaries, retention, and `switchyard migrate`.
//! Every test works in a database of its own, created here and dropped at the end.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use switchyard::usage::migrations::migrate;
use switchyard::usage::partitions::{Month, maintain, partitions_of};
use tokio_postgres::{Client, NoTls};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct TestDb {
    name: String,
}

impl TestDb {
    pub async fn create(test: &str) -> Self {
        let db = Self::named(test);
        db.create_now().await;
        db
    }

    /// A unique name, not created yet (to stand for a database that is down).
    pub fn named(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self {
            name: format!("switchyard_{test}_{}_{nanos}", std::process::id()),
        }
    }

    pub async fn create_now(&self) {
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {}", self.name))
            .await
            .unwrap();
    }

    pub fn url(&self) -> String {
        self.url_via(5432)
    }

    /// The database's URL through another port on 127.0.0.1 (a proxy that can be cut).
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{}", self.name)
    }

    pub async fn connect(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// Drops the database now (the guard below also does it if a test panics first).
    pub async fn drop_db(self) {
        let name = self.into_name();
        admin()
            .await
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    }

    fn into_name(mut self) -> String {
        std::mem::take(&mut self.name)
    }
}

/// A test that fails still leaves no database behind.
impl Drop for TestDb {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let name = std::mem::take(&mut self.name);
        // Drop runs inside the test's runtime: do the blocking cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(ADMIN_URL, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn admin() -> Client {
    let (client, connection) = tokio_postgres::connect(ADMIN_URL, NoTls)
        .await
        .expect("PostgreSQL answers on 127.0.0.1:5432");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn migrations_apply_exactly_once_when_replicas_race() {
    let db = TestDb::create("race").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = db.url();
        tasks.push(tokio::spawn(async move {
            let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            tokio::spawn(connection);
            migrate(&mut client).await.unwrap()
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.unwrap());
    }
    let all: Vec<i32> = switchyard::usage::migrations::MIGRATIONS
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(all, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(applied, all, "one replica applies, the others find it done");
    let client = db.connect().await;
    let rows = client
        .query("SELECT version, name FROM schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), all.len());
    let indexes: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'request_logs' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes.len(), 3, "{indexes:?}");
    assert!(
        indexes[0].contains("USING brin (created_at)"),
        "{indexes:?}"
    );
    assert!(indexes[1].contains("(key_name, created_at)"), "{indexes:?}");
    assert!(
        indexes[2].contains("(request_id, created_at)"),
        "{indexes:?}"
    );
    let partitioned: String = client
        .query_one("SELECT pg_get_partkeydef('request_logs'::regclass)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(partitioned, "RANGE (created_at)");

    // A released migration that changes is refused, not silently re-run.
    client
        .execute("UPDATE schema_migrations SET checksum = 'tampered'", &[])
        .await
        .unwrap();
    let mut client = db.connect().await;
    let e = migrate(&mut client).await.unwrap_err();
    assert!(
        e.to_string().contains("changed after it was applied"),
        "{e}"
    );
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn partitions_are_premade_and_rows_land_in_their_utc_month() {
    let db = TestDb::create("months").await;
    let mut client = db.connect().await;
    migrate(&mut client).await.unwrap();
    let nov = Month {
        year: 2026,
        month: 11,
    };
    let done = maintain(&client, nov, 2, 12).await.unwrap();
    assert_eq!(
        done.created,
        [
            "request_logs_2026_11",
            "request_logs_2026_12",
            "request_logs_2027_01",
            "usage_hourly_2026_11",
            "usage_hourly_2026_12",
            "usage_hourly_2027_01"
        ]
    );
    assert_eq!(
        maintain(&client, nov, 2, 12).await.unwrap().created,
        Vec::<String>::new(),
        "idempotent"
    );

    for (at, partition) in [
        ("2026-11-30 23:59:59.999999+00", "request_logs_2026_11"),
        ("2026-12-01 00:00:00+00", "request_logs_2026_12"),
        ("2026-12-01 08:30:00+09", "request_logs_2026_11"), // still November in UTC
    ] {
        let row = client
            .query_one(
                "INSERT INTO request_logs (request_id, created_at, model_name, status) VALUES ($1, $2::text::timestamptz, 'm', 'ok')
                 RETURNING tableoid::regclass::text",
                &[&format!("req-{at}"), &at],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), partition, "{at}");
    }
    // The primary key makes a replayed row a no-op.
    let inserted = client
        .execute(
            "INSERT INTO request_logs (request_id, created_at, model_name, status) VALUES ('req-2026-12-01 00:00:00+00', '2026-12-01 00:00:00+00', 'm', 'ok') ON CONFLICT DO NOTHING",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 0);
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn retention_drops_partitions_past_it() {
    let db = TestDb::create("retention").await;
    let mut client = db.connect().await;
    migrate(&mut client).await.unwrap();
    maintain(
        &client,
        Month {
            year: 2025,
            month: 1,
        },
        0,
        12,
    )
    .await
    .unwrap();
    maintain(
        &client,
        Month {
            year: 2025,
            month: 11,
        },
        0,
        12,
    )
    .await
    .unwrap();
    let done = maintain(
        &client,
        Month {
            year: 2026,
            month: 11,
        },
        1,
        12,
    )
    .await
    .unwrap();
    assert_eq!(
        done.dropped,
        ["request_logs_2025_01", "usage_hourly_2025_01"],
        "older than the current month and the 12 before it"
    );
    assert_eq!(
        partitions_of(&client, "request_logs").await.unwrap(),
        [
            "request_logs_2025_11",
            "request_logs_2026_11",
            "request_logs_2026_12"
        ]
    );
    assert_eq!(
        partitions_of(&client, "usage_hourly").await.unwrap(),
        [
            "usage_hourly_2025_11",
            "usage_hourly_2026_11",
            "usage_hourly_2026_12"
        ]
    );
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn migrate_command_prepares_the_database() {
    let db = TestDb::create("cli").await;
    let dir = std::env::temp_dir().join(format!("switchyard-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchyard.yaml");
    std::fs::write(
        &config,
        format!(
            "usage:\n  sink: postgres\n  database_url: {}\n  retention_months: 12\n",
            db.url()
        ),
    )
    .unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["migrate", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("applied 0001"), "{stdout}");
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date"));
    let client = db.connect().await;
    let current = Month::now().table();
    assert!(
        partitions_of(&client, "request_logs")
            .await
            .unwrap()
            .contains(&current),
        "this month's partition exists"
    );
    drop(client);
    db.drop_db().await;
}

/// `usage_hourly` holds exactly the totals of `request_logs`, hour by hour: nothing missing, no
/// row counted twice (replays and retries included). Returns the number of rows counted.
pub async fn assert_hourly_totals_match_the_rows(client: &Client) -> i64 {
    let recount = "SELECT date_trunc('hour', created_at, 'UTC') AS hour, coalesce(key_name, '') AS key_name,
                          model_name, coalesce(provider_id, '') AS provider_id, purpose, count(*)::int8 AS requests,
                          sum(input_tokens)::int8 AS input_tokens, sum(output_tokens)::int8 AS output_tokens,
                          sum(cost)::numeric(30,10) AS cost, sum(cached_input_tokens)::int8 AS cached_input_tokens,
                          sum(cache_write_tokens)::int8 AS cache_write_tokens,
                          sum(reasoning_tokens)::int8 AS reasoning_tokens,
                          coalesce(sum(units), 0)::numeric(30,6) AS units
                   FROM request_logs GROUP BY 1, 2, 3, 4, 5";
    let hourly = "SELECT hour, key_name, model_name, provider_id, purpose, requests, input_tokens,
                         output_tokens, cost, cached_input_tokens, cache_write_tokens, reasoning_tokens, units
                  FROM usage_hourly";
    let differences: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM (({hourly} EXCEPT ALL {recount}) UNION ALL ({recount} EXCEPT ALL {hourly})) d"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        differences, 0,
        "usage_hourly differs from a recount of request_logs"
    );
    client
        .query_one(
            "SELECT coalesce(sum(requests), 0)::int8 FROM usage_hourly",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The writer keeps hourly totals of the rows it really inserts, and `/v1/usage`'s totals read
/// from them equal a recount of the rows for any window: on hours, with unaligned edges, inside
/// one hour, grouped every way.
#[tokio::test]
async fn hourly_totals_answer_usage_exactly_whatever_the_window() {
    use switchyard::usage::record::{Purpose, Status, Unit, UsageRecord, UsageSource};
    use switchyard::usage::totals::{Group, Ledger, Query};
    use switchyard::usage::writer::UsageSink;

    let db = TestDb::create("hourly").await;
    let mut client = db.connect().await;
    migrate(&mut client).await.unwrap();
    // Rows reach five hours back: last month's partitions too, near a month's start.
    maintain(&client, Month::now().minus(1), 2, 12)
        .await
        .unwrap();
    let spill =
        std::env::temp_dir().join(format!("switchyard-hourly-{}.jsonl", std::process::id()));
    let yaml = format!(
        "usage:\n  sink: postgres\n  database_url: {}\n  spill_path: {}\n",
        db.url(),
        spill.display()
    );
    let (config, _) = switchyard::config::parse(&yaml, &|_: &str| None).unwrap();
    let sink = UsageSink::start(&config.usage, None).unwrap().unwrap();

    const HOUR: i64 = 3_600_000_000;
    let now = switchyard::clock::unix_micros();
    let record = |i: i64| UsageRecord {
        request_id: format!("req_hourly_{i:05}"),
        // 400 rows over the last five hours, some on the very start of an hour.
        created_at_us: now - 5 * HOUR + i * (5 * HOUR / 400) - (now % HOUR) * i64::from(i % 7 == 0),
        key_name: [Some("team-a"), Some("team-b"), None][i as usize % 3].map(Into::into),
        session_id: None,
        model_name: ["gpt-4o-mini", "qwen-plus"][i as usize % 2].into(),
        provider_id: [Some("openai"), Some("dashscope"), None][i as usize % 3].map(Into::into),
        upstream_model: None,
        stream: false,
        input_tokens: 10 + i,
        output_tokens: i % 13,
        cached_input_tokens: i % 10,
        cache_write_tokens: i % 3,
        reasoning_tokens: i % 13 / 2,
        // Every eleventh a result-cache hit: counted apart, with what it saved.
        usage_source: if i % 11 == 0 {
            UsageSource::Cache
        } else {
            UsageSource::Upstream
        },
        cost: format!("0.{:010}", 1_000 + i * 37),
        cache_saved_cost: if i % 11 == 0 {
            format!("0.{:010}", 500 + i)
        } else {
            "0".into()
        },
        // Every fifth priced by units too, of its purpose's kind.
        units: (i % 5 == 0).then_some(i as u64 % 4 + 1),
        unit: (i % 5 == 0)
            .then_some([Unit::Seconds, Unit::Characters, Unit::Images][i as usize % 3]),
        latency_ms: 5,
        ttft_ms: None,
        attempts: 1,
        status: Status::Ok,
        http_status: 200,
        error_message: None,
        purpose: match i % 5 == 0 {
            true => [Purpose::Transcription, Purpose::Speech, Purpose::Image][i as usize % 3],
            false => {
                [Purpose::Chat, Purpose::Embedding, Purpose::Responses][i as usize % 3 / 2 * 2 % 3]
            }
        },
        estimate: None,
        journal: 0,
    };
    for i in 0..400 {
        sink.record(record(i));
        // A row written twice (a replay after a lost acknowledgement) is one row.
        if i % 10 == 0 {
            sink.record(record(i));
        }
    }
    sink.shutdown().await;
    assert_eq!(assert_hourly_totals_match_the_rows(&client).await, 400);

    let ledger = Ledger::postgres(&db.url()).unwrap();
    let windows = [
        (now - 6 * HOUR, now + 1),
        (now - 6 * HOUR - now % HOUR, now - HOUR - now % HOUR),
        (now - 4 * HOUR + 123_456, now - HOUR - 77_000_000),
        (now - 3 * HOUR + 5, now - 3 * HOUR + HOUR / 3),
        (now - 2 * HOUR, now - 2 * HOUR),
    ];
    for (from_us, to_us) in windows {
        for group in [
            Group::All,
            Group::Key,
            Group::Model,
            Group::Provider,
            Group::Day,
        ] {
            for key in [None, Some("team-b".to_owned())] {
                let query = Query {
                    group,
                    from_us,
                    to_us,
                    key: key.clone(),
                };
                let answered = ledger.totals(query.clone()).await.unwrap();
                let recounted = recount(&client, &query).await;
                assert_eq!(answered, recounted, "{query:?}");
            }
        }
    }
    drop(client);
    db.drop_db().await;
}

/// The totals of `query` counted from the rows themselves.
async fn recount(
    client: &Client,
    q: &switchyard::usage::totals::Query,
) -> Vec<switchyard::usage::totals::Totals> {
    use switchyard::usage::totals::{Group, Totals};
    let group = match q.group {
        Group::All => "'all'",
        Group::Key => "coalesce(key_name, '')",
        Group::Model => "model_name",
        Group::Provider => "coalesce(provider_id, '')",
        Group::Day => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    };
    let at = |us: i64| UNIX_EPOCH + std::time::Duration::from_micros(us as u64);
    let rows = client
        .query(
            &format!(
                "SELECT {group}, count(*)::int8, sum(input_tokens)::int8, sum(output_tokens)::int8,
                        (sum(cost) * 10000000000)::numeric(40,0)::text, sum(cached_input_tokens)::int8,
                        sum(cache_write_tokens)::int8, sum(reasoning_tokens)::int8,
                        count(*) FILTER (WHERE usage_source = 'cache'),
                        (sum(cache_saved_cost) * 10000000000)::numeric(40,0)::text,
                        coalesce(sum(units) FILTER (WHERE unit = 'seconds'), 0)::int8,
                        coalesce(sum(units) FILTER (WHERE unit = 'characters'), 0)::int8,
                        coalesce(sum(units) FILTER (WHERE unit = 'images'), 0)::int8,
                        coalesce(sum(units) FILTER (WHERE unit = 'searches'), 0)::int8
                 FROM request_logs WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR key_name = $3)
                 GROUP BY 1 ORDER BY 1"
            ),
            &[&at(q.from_us), &at(q.to_us), &q.key],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| Totals {
            group: r.get(0),
            requests: r.get(1),
            input_tokens: r.get(2),
            output_tokens: r.get(3),
            cost: r.get::<_, String>(4).parse().unwrap(),
            cached_input_tokens: r.get(5),
            cache_write_tokens: r.get(6),
            reasoning_tokens: r.get(7),
            cache_hits: r.get(8),
            cache_saved_cost: r.get::<_, String>(9).parse().unwrap(),
            seconds: r.get(10),
            characters: r.get(11),
            images: r.get(12),
            searches: r.get(13),
        })
        .collect()
}

/// A ledger that predates `usage_hourly` and the prompt-cache columns gets both when it is
/// upgraded: migration 0003 makes a partition for each of request_logs' and fills them from the
/// rows already there; 0005 adds the cache and reasoning columns (zeros for the old rows) to
/// every partition of both tables, and the models' cache prices.
#[tokio::test]
async fn upgrading_an_existing_ledger_fills_its_hourly_totals() {
    let db = TestDb::create("upgrade").await;
    let mut client = db.connect().await;
    migrate(&mut client).await.unwrap();
    let nov = Month {
        year: 2026,
        month: 11,
    };
    maintain(&client, nov, 1, 12).await.unwrap();
    // Back to the schema before 0003 (and 0005; 0007's and 0009's hourly columns), with rows in
    // two months.
    client
        .batch_execute(
            "DROP TABLE usage_hourly;
             ALTER TABLE request_logs DROP COLUMN cached_input_tokens, DROP COLUMN cache_write_tokens,
                 DROP COLUMN reasoning_tokens, DROP COLUMN cache_saved_cost;
             ALTER TABLE models DROP COLUMN cached_input_per_1m, DROP COLUMN cache_write_per_1m,
                 DROP COLUMN per_1k_searches, DROP COLUMN per_image, DROP COLUMN per_minute,
                 DROP COLUMN per_1m_chars;
             DELETE FROM schema_migrations WHERE version IN (3, 5, 7, 9);
             INSERT INTO request_logs (request_id, created_at, key_name, model_name, provider_id, input_tokens, output_tokens, cost, status)
             SELECT 'req-' || n, '2026-11-29 22:00:00+00'::timestamptz + n * interval '7 minutes',
                    CASE WHEN n % 2 = 0 THEN 'team-a' END, 'm', 'p', n, 1, n * 0.0000000001, 'ok'
             FROM generate_series(1, 500) n;",
        )
        .await
        .unwrap();
    assert_eq!(migrate(&mut client).await.unwrap(), [3, 5, 7, 9]);
    assert_eq!(
        partitions_of(&client, "usage_hourly").await.unwrap(),
        ["usage_hourly_2026_11", "usage_hourly_2026_12"]
    );
    assert_eq!(assert_hourly_totals_match_the_rows(&client).await, 500);
    let zeros: i64 = client
        .query_one(
            "SELECT count(*) FROM request_logs_2026_12
             WHERE cached_input_tokens = 0 AND cache_write_tokens = 0 AND reasoning_tokens = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(zeros > 0, "old rows read as zeros in every partition");
    drop(client);
    db.drop_db().await;
}
