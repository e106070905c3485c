//! The usage ledger's schema on the machine's real PostgreSQL: migrations (once, even when
//! replicas race), monthly partitions at UTC boundaries, retention, and `switchyard migrate`.
//! Every test works in a database of its own, created here and dropped at the end.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use switchyard::usage::migrations::migrate;
use switchyard::usage::partitions::{Month, maintain, partitions};
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
    assert_eq!(
        applied,
        [1, 2],
        "one replica applies, the others find it done"
    );
    let client = db.connect().await;
    let rows = client
        .query("SELECT version, name FROM schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
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
            "request_logs_2027_01"
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
        ["request_logs_2025_01"],
        "older than the current month and the 12 before it"
    );
    assert_eq!(
        partitions(&client).await.unwrap(),
        [
            "request_logs_2025_11",
            "request_logs_2026_11",
            "request_logs_2026_12"
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
        partitions(&client).await.unwrap().contains(&current),
        "this month's partition exists"
    );
    drop(client);
    db.drop_db().await;
}
