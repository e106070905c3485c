//! A fleet: two `switchyard serve` processes sharing one PostgreSQL (control plane and ledger)
//! and one Redis (limits and budgets), bootstrapped with `switchyard keys create` and changed
//! live through either one, then the database cut mid-run.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{BIN, free_port, scratch_dir, serve_until_ready, signal, write_config};
use crate::harness::{eventually, unique};
use crate::mock_openai::MockOpenAi;
use crate::tcp_proxy::TcpProxy;
use crate::usage_schema::{TestDb, assert_hourly_totals_match_the_rows};

struct Replica {
    child: tokio::process::Child,
    client: reqwest::Client,
    base: String,
}

impl Replica {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn chat(&self, key: &str, model: &str) -> u16 {
        let body = json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        self.call(
            reqwest::Method::POST,
            "/v1/chat/completions",
            key,
            Some(body),
        )
        .await
        .0
    }
}

/// The replica's config: no keys (the first admin comes from the CLI), the control plane and
/// the ledger on `database_url`, limits in Redis, its own listen port and spill file.
fn replica_config(
    a: &MockOpenAi,
    b: &MockOpenAi,
    database_url: &str,
    port: u16,
    spill: &std::path::Path,
) -> String {
    format!(
        "server:
  listen: 127.0.0.1:{port}
  workers: 1
providers:
  - {{ id: a, kind: openai, base_url: \"{}\", api_key: sk-upstream-a, timeout: 2s, health_check: {{ enabled: false }} }}
  - {{ id: b, kind: openai, base_url: \"{}\", api_key: sk-upstream-b, timeout: 2s, health_check: {{ enabled: false }} }}
models:
  - {{ name: chat, price: {{ input_per_1m: 1000000, output_per_1m: 1000000 }}, routes: [{{ provider: a, model: up-a }}] }}
limits:
  redis_url: redis://127.0.0.1:6379
control:
  database_url: {database_url}
  resync: 1s
usage:
  sink: postgres
  database_url: {database_url}
  spill_path: {}
",
        a.base_url(),
        b.base_url(),
        spill.display()
    )
}

/// The CLI, awaited: the database is reached through this test's proxy, which runs on the
/// test's own runtime.
async fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn two_processes_share_keys_routes_models_and_budgets_and_survive_a_database_cut() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("fleet").await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = db.url_via(proxy.port);
    let dir = scratch_dir(&unique("fleet"));
    let ports = [free_port(), free_port()];
    let configs: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let spill = dir.join(format!("spill-{i}.jsonl"));
            write_config(
                &dir,
                &format!("replica-{i}.yaml"),
                &replica_config(&a, &b, &url, *port, &spill),
            )
        })
        .collect();

    // A fresh deployment's first admin key, from the command line: no config edit.
    let (ok, ops, stderr) = cli(&configs[0], &["keys", "create", "--name", "ops", "--admin"]).await;
    assert!(ok, "{stderr}");
    let ops = ops.trim().to_owned();
    assert!(ops.starts_with("sk-sy-") && ops.len() == 46, "{ops}");
    assert!(stderr.contains("shown only now"), "{stderr}");

    let mut replicas = Vec::new();
    for (config, port) in configs.iter().zip(ports) {
        let (child, client, base) = serve_until_ready(config, port).await;
        replicas.push(Replica {
            child,
            client,
            base,
        });
    }
    let (one, two) = (&replicas[0], &replicas[1]);
    use reqwest::Method as M;
    assert_eq!(one.call(M::GET, "/admin/v1/keys", &ops, None).await.0, 200);
    let (ok, listed, _) = cli(&configs[1], &["keys", "list"]).await;
    assert!(
        ok && listed.contains("ops") && listed.contains(&ops[..10]),
        "{listed}"
    );
    assert!(!listed.contains(&ops[10..]));

    // Every field a key has, from the command line; a rotation with a grace keeps the old secret.
    let flags = [
        "keys",
        "create",
        "--name",
        "capped",
        "--models",
        "chat,late",
        "--rpm",
        "5",
        "--tpm",
        "9000",
        "--budget-usd",
        "12.5",
        "--budget-period",
        "month",
    ];
    let (ok, capped, stderr) = cli(&configs[0], &flags).await;
    assert!(ok, "{stderr}");
    let (_, shown) = one.call(M::GET, "/admin/v1/keys/capped", &ops, None).await;
    assert_eq!(
        (
            &shown["models"],
            &shown["rpm"],
            &shown["tpm"],
            &shown["budget"]
        ),
        (
            &json!(["chat", "late"]),
            &json!(5),
            &json!(9000),
            &json!({"usd": 12.5, "period": "month"})
        ),
        "{shown}"
    );
    assert!(capped.trim().starts_with("sk-sy-"));
    let (ok, before, stderr) = cli(&configs[0], &["keys", "create", "--name", "rotating"]).await;
    assert!(ok, "{stderr}");
    let (ok, after, stderr) = cli(
        &configs[0],
        &["keys", "rotate", "rotating", "--grace", "1h"],
    )
    .await;
    assert!(ok && stderr.contains("works for"), "{stderr}");
    eventually(Duration::from_secs(2), "both secrets work", || async {
        one.chat(after.trim(), "chat").await == 200 && one.chat(before.trim(), "chat").await == 200
    })
    .await;
    let (ok, _, stderr) = cli(
        &configs[0],
        &["keys", "create", "--name", "x", "--rpm", "0"],
    )
    .await;
    assert!(!ok && stderr.contains("--rpm"), "{stderr}");

    // A key made on one works on the other within a second.
    let (status, made) = one
        .call(
            M::POST,
            "/admin/v1/keys",
            &ops,
            Some(json!({"name": "team"})),
        )
        .await;
    assert_eq!(status, 201);
    let team = made["key"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(1),
        "replica two accepts the new key",
        || async { two.chat(&team, "chat").await == 200 },
    )
    .await;

    // A model added at run time on two is served and listed by one.
    two.call(
        M::POST,
        "/admin/v1/models",
        &ops,
        Some(json!({"name": "late", "price": {"input_per_1m": 1, "output_per_1m": 1}})),
    )
    .await;
    two.call(
        M::POST,
        "/admin/v1/routes",
        &ops,
        Some(json!({"model": "late", "provider": "b", "upstream_model": "up-b"})),
    )
    .await;
    eventually(
        Duration::from_secs(1),
        "replica one serves the new model",
        || async { one.chat(&team, "late").await == 200 },
    )
    .await;
    let (_, models) = one.call(M::GET, "/v1/models", &team, None).await;
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "late")
    );

    // A route added on one routes by weight on both: b at 3 against a's 1, exactly 2:6 of 8.
    let (status, _) = one
        .call(
            M::POST,
            "/admin/v1/routes",
            &ops,
            Some(json!({"model": "chat", "provider": "b", "upstream_model": "up-b", "weight": 3})),
        )
        .await;
    assert_eq!(status, 201);
    for replica in [one, two] {
        eventually(Duration::from_secs(1), "both routes are served", || async {
            let (_, model) = replica.call(M::GET, "/v1/models/chat", &team, None).await;
            model["providers"] == json!(["a", "b"])
        })
        .await;
    }
    for replica in [one, two] {
        let (a0, b0) = (a.count(), b.count());
        for _ in 0..8 {
            assert_eq!(replica.chat(&team, "chat").await, 200);
        }
        assert_eq!((a.count() - a0, b.count() - b0), (2, 6), "{}", replica.base);
    }

    // A budget holds across both: $100 a day at $29 a request admits four.
    let name = unique("capped");
    let (_, made) = one
        .call(
            M::POST,
            "/admin/v1/keys",
            &ops,
            Some(json!({"name": name, "budget": {"usd": 100, "period": "day"}})),
        )
        .await;
    let capped = made["key"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(1),
        "replica two knows the budgeted key",
        || async { two.call(M::GET, "/v1/models", &capped, None).await.0 == 200 },
    )
    .await;
    let mut admitted = 0;
    for i in 0..8 {
        let replica = if i % 2 == 0 { one } else { two };
        match replica.chat(&capped, "chat").await {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 4);

    // Revoked from the command line: refused by both within a second.
    let (ok, _, stderr) = cli(&configs[0], &["keys", "revoke", "team"]).await;
    assert!(ok, "{stderr}");
    for replica in [one, two] {
        eventually(
            Duration::from_secs(1),
            "the revoked key is refused",
            || async { replica.chat(&team, "chat").await == 401 },
        )
        .await;
    }

    // The database cut mid-run: both keep serving on the last table (rows spill), admin
    // writes answer 503; after it is back, rows are replayed and changes flow again.
    // Model `late` has answered one request so far (the first 200 of the wait above; the 503s
    // before its route arrived have rows of status error, not counted here).
    let served_before = 1;
    proxy.cut();
    let mut answered = 0;
    for _ in 0..10 {
        for replica in [one, two] {
            assert_eq!(replica.chat(&ops, "late").await, 200);
            answered += 1;
        }
    }
    let (status, _) = two
        .call(
            M::POST,
            "/admin/v1/keys",
            &ops,
            Some(json!({"name": "during"})),
        )
        .await;
    assert_eq!(status, 503);
    proxy.restore().await;
    let (status, _) = one
        .call(
            M::POST,
            "/admin/v1/keys",
            &ops,
            Some(json!({"name": "after"})),
        )
        .await;
    assert_eq!(status, 201);

    // The rows spilled during the cut are replayed into the database.
    let expected = served_before + answered;
    eventually(
        Duration::from_secs(20),
        "the spilled rows are replayed",
        || async { count_rows(&db).await >= expected },
    )
    .await;
    for replica in &replicas {
        signal(replica.child.id().unwrap(), "TERM");
    }
    for mut replica in replicas {
        let status = tokio::time::timeout(Duration::from_secs(20), replica.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
    }
    let client = db.connect().await;
    // Every request answered during the cut has its row once, and the hourly totals equal a
    // recount of the rows.
    assert_eq!(count_rows(&db).await, expected);
    assert_hourly_totals_match_the_rows(&client).await;
    drop(client);
    db.drop_db().await;
}

async fn count_rows(db: &TestDb) -> i64 {
    db.connect()
        .await
        .query_one(
            "SELECT count(*) FROM request_logs WHERE model_name = 'late' AND status = 'ok'",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(0)
}
