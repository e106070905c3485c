//! Budgets per key on the real PostgreSQL and Redis: the maximum cost reserved at admission and
//! settled to the ledger's exact cost, a spent budget refused with 429 `insufficient_quota` on
//! every replica sharing Redis, and the spend rebuilt from the ledger's hourly totals after a
//! restart.

use serde_json::{Value, json};

use crate::control::{OPS, admin, config};
use crate::harness::{Gateway, post_as, unique};
use crate::mock_openai::MockOpenAi;
use crate::usage_schema::TestDb;

use reqwest::Method as M;

/// $1 per token in and out: the mock's answer (19 prompt + 10 completion tokens) costs $29.
fn priced(yaml: String) -> String {
    yaml.replace(
        "price: { input_per_1m: 1, output_per_1m: 2 }",
        "price: { input_per_1m: 1000000, output_per_1m: 1000000 }",
    )
}

async fn ask(gw: &Gateway, key: &str) -> (u16, Value, Option<String>) {
    let response = post_as(gw, "/v1/chat/completions", key, &json!({"model": "chat", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})).await;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("x-should-retry")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap_or(Value::Null), retry)
}

async fn budgeted_key(gw: &Gateway, name: &str, usd: f64) -> String {
    let (status, made) = admin(
        gw,
        M::POST,
        "/admin/v1/keys",
        Some(OPS),
        Some(json!({"name": name, "budget": {"usd": usd, "period": "day"}})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["spend"]["usd"], "0");
    made["key"].as_str().unwrap().to_owned()
}

/// Two replicas sharing Redis: $100 a day at $29 a request admits exactly four requests,
/// alternating between the replicas (the fourth starts at $87, under the budget), and then both
/// refuse.
#[tokio::test]
async fn a_budget_holds_across_replicas_sharing_redis() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("budget_redis").await;
    let yaml = priced(config(&a, &b, &db.url())) + "limits:\n  redis_url: redis://127.0.0.1:6379\n";
    let one = Gateway::start(&yaml).await;
    let two = Gateway::start(&yaml).await;
    let name = unique("budget");
    let key = budgeted_key(&one, &name, 100.0).await;
    crate::harness::eventually(
        std::time::Duration::from_secs(1),
        "replica two knows the key",
        || async { ask(&two, &key).await.0 == 200 },
    )
    .await;
    // One request is in; three more fit.
    for gw in [&one, &two, &one] {
        assert_eq!(ask(gw, &key).await.0, 200);
    }
    for gw in [&two, &one] {
        let (status, body, retry) = ask(gw, &key).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["type"], "insufficient_quota");
        assert_eq!(body["error"]["code"], "insufficient_quota");
        assert_eq!(retry.as_deref(), Some("false"));
    }
    assert_eq!(a.count(), 4, "a refused request never reaches the upstream");
    // The settled spend is the four requests' exact cost.
    let (_, shown) = admin(
        &two,
        M::GET,
        &format!("/admin/v1/keys/{name}"),
        Some(OPS),
        None,
    )
    .await;
    assert_eq!(shown["spend"]["usd"], "116", "{shown}");
    assert_eq!(shown["budget"], json!({"usd": 100.0, "period": "day"}));
    // Raising the budget lets it through again, on both.
    admin(
        &one,
        M::PATCH,
        &format!("/admin/v1/keys/{name}"),
        Some(OPS),
        Some(json!({"budget": {"usd": 200, "period": "day"}})),
    )
    .await;
    crate::harness::eventually(
        std::time::Duration::from_secs(1),
        "replica two applies the new budget",
        || async { ask(&two, &key).await.0 == 200 },
    )
    .await;
    one.shutdown().await;
    two.shutdown().await;
    db.drop_db().await;
}

/// Without Redis the spend is this process's; after a restart it is rebuilt from the ledger's
/// hourly totals, so a restart never forgets what a key spent.
#[tokio::test]
async fn a_restart_rebuilds_the_spend_from_the_ledger() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("budget_rebuild").await;
    let yaml = priced(config(&a, &b, &db.url()))
        + &format!(
            "usage:\n  sink: postgres\n  database_url: {}\n  spill_path: {}\n",
            db.url(),
            std::env::temp_dir().join(unique("budget-spill")).display()
        );
    let gw = Gateway::start(&yaml).await;
    let key = budgeted_key(&gw, "capped", 60.0).await;
    assert_eq!(ask(&gw, &key).await.0, 200);
    assert_eq!(ask(&gw, &key).await.0, 200);
    assert_eq!(ask(&gw, &key).await.0, 200); // starts at $58
    assert_eq!(ask(&gw, &key).await.0, 429);
    gw.shutdown().await;

    let again = Gateway::start(&yaml).await;
    let (status, body, _) = ask(&again, &key).await;
    assert_eq!(status, 429, "the spend survived the restart: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("$87 of $60"),
        "{body}"
    );
    let (_, shown) = admin(&again, M::GET, "/admin/v1/keys/capped", Some(OPS), None).await;
    assert_eq!(shown["spend"]["usd"], "87");
    again.shutdown().await;
    db.drop_db().await;
}
