//! The control plane on the machine's real PostgreSQL: the admin API (auth, validation, models,
//! routes, keys with rotation), live application across replicas, route health kept across
//! changes, requests in flight finishing on their table, and a database cut mid-run.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, client, eventually, post_as};
use crate::mock_openai::{Behavior, MockOpenAi};
use crate::tcp_proxy::TcpProxy;
use crate::usage_schema::TestDb;

pub const OPS: &str = "sk-ops-admin-000000000000";
pub const TEAM: &str = "sk-team-0000000000000000";

/// Two OpenAI-kind providers (`a`, `b`), model `chat` routed to `a` only, an admin key and a
/// plain one, and the control plane on `database_url`.
pub fn config(a: &MockOpenAi, b: &MockOpenAi, database_url: &str) -> String {
    format!(
        "providers:
  - {{ id: a, kind: openai, base_url: \"{}\", api_key: sk-upstream-a, timeout: 2s, health_check: {{ enabled: false }} }}
  - {{ id: b, kind: openai, base_url: \"{}\", api_key: sk-upstream-b, timeout: 2s, health_check: {{ enabled: false }} }}
models:
  - {{ name: chat, price: {{ input_per_1m: 1, output_per_1m: 2 }}, routes: [{{ provider: a, model: up-a }}] }}
routing:
  unhealthy_after: 1
  ejection: 60s
auth:
  keys:
    - {{ name: ops, key: {OPS}, admin: true }}
    - {{ name: team, key: {TEAM} }}
control:
  database_url: {database_url}
  resync: 200ms
",
        a.base_url(),
        b.base_url()
    )
}

pub async fn admin(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client().request(method, gw.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn chat(gw: &Gateway, key: &str, model: &str) -> (u16, Value) {
    let response = post_as(
        gw,
        "/v1/chat/completions",
        key,
        &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

use reqwest::Method as M;

#[tokio::test]
async fn the_admin_api_is_for_admin_keys_and_names_bad_fields() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("control_admin").await;
    let gw = Gateway::start(&config(&a, &b, &db.url())).await;

    assert_eq!(
        admin(&gw, M::GET, "/admin/v1/models", None, None).await.0,
        401
    );
    let (status, body) = admin(&gw, M::GET, "/admin/v1/models", Some(TEAM), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("admin_key_required"))
    );
    assert_eq!(
        admin(&gw, M::GET, "/admin/v1/models", Some("sk-nope"), None)
            .await
            .0,
        401
    );

    // Seeded from the config, once.
    let (status, mut models) = admin(&gw, M::GET, "/admin/v1/models", Some(OPS), None).await;
    assert_eq!(status, 200);
    let created = models["data"][0]
        .as_object_mut()
        .unwrap()
        .remove("created")
        .unwrap();
    let now = switchyard::clock::unix_now();
    assert!(
        (now - 60..=now).contains(&created.as_u64().unwrap()),
        "created when seeded: {created}"
    );
    assert_eq!(
        models["data"],
        json!([{"name": "chat", "type": "chat", "context_window": null, "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}, "tokenizer": null}])
    );
    let (_, routes) = admin(&gw, M::GET, "/admin/v1/routes", Some(OPS), None).await;
    assert_eq!(routes["data"][0]["provider"], "a");
    assert_eq!(routes["data"][0]["upstream_model"], "up-a");
    let (_, keys) = admin(&gw, M::GET, "/admin/v1/keys", Some(OPS), None).await;
    let names: Vec<&str> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ops", "team"]);
    assert!(!keys.to_string().contains(OPS) && !keys.to_string().contains(TEAM));

    // Bad bodies: each 400 names its field.
    for (path, body, field) in [
        (
            "/admin/v1/models",
            json!({"name": "x", "price": {"input_per_1m": "cheap", "output_per_1m": 1}}),
            "price.input_per_1m",
        ),
        (
            "/admin/v1/models",
            json!({"name": "x", "colour": "red"}),
            "colour",
        ),
        ("/admin/v1/models", json!({"type": "chat"}), "name"),
        (
            "/admin/v1/models",
            json!({"name": "x", "type": "video"}),
            "type",
        ),
        (
            "/admin/v1/models",
            json!({"name": "x", "price": {"input_per_1m": -1, "output_per_1m": 1}}),
            "price.input_per_1m",
        ),
        (
            "/admin/v1/models",
            json!({"name": "x", "price": {"input_per_1m": 1, "output_per_1m": 1, "cached_input_per_1m": -0.5}}),
            "price.cached_input_per_1m",
        ),
        (
            "/admin/v1/models",
            json!({"name": "x", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (
            "/admin/v1/routes",
            json!({"model": "chat", "provider": "opneai", "upstream_model": "m"}),
            "provider",
        ),
        (
            "/admin/v1/routes",
            json!({"model": "nope", "provider": "a", "upstream_model": "m"}),
            "model",
        ),
        (
            "/admin/v1/routes",
            json!({"model": "chat", "provider": "a", "upstream_model": "m", "weight": 0}),
            "weight",
        ),
        ("/admin/v1/keys", json!({"name": "has space"}), "name"),
        ("/admin/v1/keys", json!({"name": "k", "rpm": -5}), "rpm"),
        (
            "/admin/v1/keys",
            json!({"name": "k", "budget": {"usd": 5, "period": "week"}}),
            "budget.period",
        ),
    ] {
        let (status, answer) = admin(&gw, M::POST, path, Some(OPS), Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["param"], field, "{body} → {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
    }
    let (status, _) = admin(
        &gw,
        M::POST,
        "/admin/v1/models",
        Some(OPS),
        Some(json!({"name": "chat"})),
    )
    .await;
    assert_eq!(status, 409);
    // Prompt-cache prices are kept and read back (absent ones stay absent: the input price).
    let cached = json!({"input_per_1m": 3.0, "output_per_1m": 15.0, "cached_input_per_1m": 0.3,
                        "cache_write_per_1m": 3.75});
    let (status, _) = admin(
        &gw,
        M::POST,
        "/admin/v1/models",
        Some(OPS),
        Some(json!({"name": "claude", "price": cached, "max_output_tokens": 16384})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, model) = admin(&gw, M::GET, "/admin/v1/models/claude", Some(OPS), None).await;
    assert_eq!(model["price"], cached, "{model}");
    assert_eq!(model["max_output_tokens"], 16384, "{model}");
    // The output cap is cleared with null (then Anthropic routes use the 4096 default).
    let (status, model) = admin(
        &gw,
        M::PATCH,
        "/admin/v1/models/claude",
        Some(OPS),
        Some(json!({"max_output_tokens": null})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(model.get("max_output_tokens").is_none(), "{model}");
    assert_eq!(
        admin(&gw, M::DELETE, "/admin/v1/models/claude", Some(OPS), None)
            .await
            .0,
        200
    );
    // Audio models and unit prices, kept and read back; a negative unit price is refused.
    let spoken = json!({"input_per_1m": 0.0, "output_per_1m": 0.0, "per_1m_chars": 15.0});
    let (status, _) = admin(
        &gw,
        M::POST,
        "/admin/v1/models",
        Some(OPS),
        Some(json!({"name": "voice", "type": "speech", "price": spoken})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, model) = admin(&gw, M::GET, "/admin/v1/models/voice", Some(OPS), None).await;
    assert_eq!(
        (&model["type"], &model["price"]),
        (&json!("speech"), &spoken)
    );
    let (status, answer) = admin(
        &gw,
        M::PATCH,
        "/admin/v1/models/voice",
        Some(OPS),
        Some(json!({"type": "transcription", "price": {"per_minute": -1}})),
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["param"]),
        (400, &json!("price.per_minute"))
    );
    let (status, model) = admin(
        &gw,
        M::PATCH,
        "/admin/v1/models/voice",
        Some(OPS),
        Some(json!({"type": "transcription", "price": {"per_minute": 0.006}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(model["price"]["per_minute"], 0.006, "{model}");
    assert_eq!(
        admin(
            &gw,
            M::PATCH,
            "/admin/v1/models/ghost",
            Some(OPS),
            Some(json!({}))
        )
        .await
        .0,
        404
    );
    // A 405 names what the path takes.
    for (method, path, allow) in [
        (M::PUT, "/admin/v1/models", "GET, POST"),
        (M::POST, "/admin/v1/keys/team", "GET, PATCH, DELETE"),
        (M::GET, "/admin/v1/keys/team/rotate", "POST"),
    ] {
        let r = client()
            .request(method.clone(), gw.url(path))
            .bearer_auth(OPS)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
    }
    assert_eq!(
        admin(&gw, M::GET, "/admin/v1/nothing", Some(OPS), None)
            .await
            .0,
        404
    );

    gw.shutdown().await;
    db.drop_db().await;
}

#[tokio::test]
async fn keys_are_created_shown_once_rotated_with_a_grace_and_revoked() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("control_keys").await;
    let gw = Gateway::start(&config(&a, &b, &db.url())).await;

    let (status, created) = admin(
        &gw,
        M::POST,
        "/admin/v1/keys",
        Some(OPS),
        Some(json!({"name": "svc", "models": ["chat"], "rpm": 100})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 46);
    assert!(key.starts_with("sk-sy-"));
    assert_eq!(created["prefix"], key[..10]);
    assert_eq!(
        (created["rpm"].as_u64(), created["admin"].as_bool()),
        (Some(100), Some(false))
    );
    // Works at once on the replica that made it.
    assert_eq!(chat(&gw, &key, "chat").await.0, 200);
    // Never shown again, and only its SHA-256 is stored.
    let (_, shown) = admin(&gw, M::GET, "/admin/v1/keys/svc", Some(OPS), None).await;
    assert!(shown.get("key").is_none() && !shown.to_string().contains(&key[10..]));
    let pg = db.connect().await;
    let row = pg
        .query_one(
            "SELECT key_sha256, prefix FROM api_keys WHERE name = 'svc'",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<u8> = row.get(0);
    assert_eq!(stored, switchyard::limits::keys::digest(&key));
    let dump = pg
        .query_one("SELECT string_agg(t::text, '') FROM api_keys t", &[])
        .await
        .unwrap();
    assert!(!dump.get::<_, String>(0).contains(&key[10..]));

    // Rotation with a grace: both work; without one, the old key stops at once.
    let (status, rotated) = admin(
        &gw,
        M::POST,
        "/admin/v1/keys/svc/rotate",
        Some(OPS),
        Some(json!({"grace": "1h"})),
    )
    .await;
    assert_eq!(status, 200);
    let second = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(second, key);
    assert_eq!(chat(&gw, &second, "chat").await.0, 200);
    assert_eq!(chat(&gw, &key, "chat").await.0, 200);
    let (_, rotated) = admin(
        &gw,
        M::POST,
        "/admin/v1/keys/svc/rotate",
        Some(OPS),
        Some(json!({"grace": "0s"})),
    )
    .await;
    let third = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(chat(&gw, &third, "chat").await.0, 200);
    assert_eq!(chat(&gw, &second, "chat").await.0, 401);
    assert_eq!(chat(&gw, &key, "chat").await.0, 401);

    // Expiry in the past, then revocation, then deletion.
    let (status, _) = admin(
        &gw,
        M::PATCH,
        "/admin/v1/keys/svc",
        Some(OPS),
        Some(json!({"expires_at": "2020-01-01"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(chat(&gw, &third, "chat").await.0, 401);
    let (_, patched) = admin(
        &gw,
        M::PATCH,
        "/admin/v1/keys/svc",
        Some(OPS),
        Some(json!({"expires_at": null})),
    )
    .await;
    assert_eq!(patched["expires_at"], Value::Null);
    assert_eq!(chat(&gw, &third, "chat").await.0, 200);
    let (_, revoked) = admin(
        &gw,
        M::PATCH,
        "/admin/v1/keys/svc",
        Some(OPS),
        Some(json!({"revoked": true})),
    )
    .await;
    assert_eq!(revoked["revoked"], true);
    assert_eq!(chat(&gw, &third, "chat").await.0, 401);
    assert_eq!(
        admin(&gw, M::DELETE, "/admin/v1/keys/svc", Some(OPS), None)
            .await
            .0,
        200
    );
    assert_eq!(
        admin(&gw, M::GET, "/admin/v1/keys/svc", Some(OPS), None)
            .await
            .0,
        404
    );

    // An admin key made over the API can use the API.
    let (_, made) = admin(
        &gw,
        M::POST,
        "/admin/v1/keys",
        Some(OPS),
        Some(json!({"name": "ops2", "admin": true})),
    )
    .await;
    let ops2 = made["key"].as_str().unwrap();
    assert_eq!(
        admin(&gw, M::GET, "/admin/v1/keys", Some(ops2), None)
            .await
            .0,
        200
    );

    gw.shutdown().await;
    db.drop_db().await;
}

/// Two replicas on one database: a change made through either is served by both within a
/// second; a new route splits traffic by weight on each (exact smooth-WRR counts); a route
/// that did not change keeps its health (an ejected route stays ejected).
#[tokio::test]
async fn changes_reach_every_replica_and_unchanged_routes_keep_their_health() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("control_live").await;
    let yaml = config(&a, &b, &db.url());
    let one = Gateway::start(&yaml).await;
    let two = Gateway::start(&yaml).await;

    // A model and a route created on one replica…
    let (status, _) = admin(
        &one,
        M::POST,
        "/admin/v1/models",
        Some(OPS),
        Some(json!({"name": "added", "context_window": 8192})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, route) = admin(
        &one,
        M::POST,
        "/admin/v1/routes",
        Some(OPS),
        Some(json!({"model": "added", "provider": "b", "upstream_model": "up-b"})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(route["id"].as_i64().is_some());
    // …are served and listed by the other within a second.
    eventually(
        Duration::from_secs(1),
        "the other replica serves the new model",
        || async { chat(&two, TEAM, "added").await.0 == 200 },
    )
    .await;
    let listed = client()
        .get(two.url("/v1/models"))
        .bearer_auth(TEAM)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "added" && m["context_window"] == 8192)
    );

    // A second route for `chat` with weight 3 against a's 1: every replica splits 1:3 exactly.
    let (status, _) = admin(
        &two,
        M::POST,
        "/admin/v1/routes",
        Some(OPS),
        Some(json!({"model": "chat", "provider": "b", "upstream_model": "up-b", "weight": 3})),
    )
    .await;
    assert_eq!(status, 201);
    eventually(
        Duration::from_secs(1),
        "replica one routes to b",
        || async {
            one.app
                .runtime()
                .model("chat", switchyard::config::ModelType::Chat)
                .unwrap()
                .routes()
                .count()
                == 2
        },
    )
    .await;
    for gw in [&one, &two] {
        let (a0, b0) = (a.count(), b.count());
        for _ in 0..8 {
            assert_eq!(chat(gw, TEAM, "chat").await.0, 200);
        }
        assert_eq!((a.count() - a0, b.count() - b0), (2, 6));
    }

    // Eject a's route on replica one, then change something unrelated: still the same route,
    // still ejected.
    let before = one.app.runtime();
    let route_a = before
        .model("chat", switchyard::config::ModelType::Chat)
        .unwrap()
        .routes()
        .find(|r| r.provider.id.as_ref() == "a")
        .unwrap()
        .clone();
    a.set(Behavior::Status(500, vec![]));
    for _ in 0..4 {
        chat(&one, TEAM, "chat").await;
    }
    a.set(Behavior::Normal);
    let now = tokio::time::Instant::now();
    assert_eq!(
        route_a.availability(now),
        switchyard::routing::health::Availability::Ejected
    );
    let (status, _) = admin(
        &two,
        M::PATCH,
        "/admin/v1/models/added",
        Some(OPS),
        Some(json!({"context_window": 4096})),
    )
    .await;
    assert_eq!(status, 200);
    eventually(
        Duration::from_secs(1),
        "replica one applies the change",
        || async { !Arc::ptr_eq(&one.app.runtime(), &before) },
    )
    .await;
    let after = one.app.runtime();
    let kept = after
        .model("chat", switchyard::config::ModelType::Chat)
        .unwrap()
        .routes()
        .find(|r| r.provider.id.as_ref() == "a")
        .unwrap()
        .clone();
    assert!(
        Arc::ptr_eq(&kept, &route_a),
        "an unchanged route is the same route"
    );
    assert_eq!(
        kept.availability(tokio::time::Instant::now()),
        switchyard::routing::health::Availability::Ejected
    );
    let a0 = a.count();
    for _ in 0..4 {
        assert_eq!(chat(&one, TEAM, "chat").await.0, 200);
    }
    assert_eq!(
        a.count(),
        a0,
        "the ejected route gets nothing after an unrelated change"
    );

    // A key revoked through one replica is refused by both.
    let (_, made) = admin(
        &one,
        M::POST,
        "/admin/v1/keys",
        Some(OPS),
        Some(json!({"name": "short-lived"})),
    )
    .await;
    let key = made["key"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(1),
        "replica two accepts the new key",
        || async { chat(&two, &key, "added").await.0 == 200 },
    )
    .await;
    admin(
        &two,
        M::PATCH,
        "/admin/v1/keys/short-lived",
        Some(OPS),
        Some(json!({"revoked": true})),
    )
    .await;
    eventually(
        Duration::from_secs(1),
        "replica one refuses the revoked key",
        || async { chat(&one, &key, "added").await.0 == 401 },
    )
    .await;

    one.shutdown().await;
    two.shutdown().await;
    db.drop_db().await;
}

/// A change to the tables swaps the route table, and the probe tasks with it: the new tasks
/// carry on the providers' schedules instead of probing every provider at once. The model
/// listing keeps each model's `created` (clients cache it): the row's creation time.
#[tokio::test]
async fn a_change_sets_off_no_probes_and_moves_no_model_listing() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("control_probes").await;
    let yaml = config(&a, &b, &db.url()).replace(
        "health_check: { enabled: false }",
        "health_check: { enabled: true, interval: 1h }",
    );
    let gw = Gateway::start(&yaml).await;
    eventually(
        Duration::from_secs(2),
        "each provider's first probe",
        || async { a.probes() == 1 && b.probes() == 1 },
    )
    .await;
    let listing = || async {
        let r = client()
            .get(gw.url("/v1/models"))
            .bearer_auth(TEAM)
            .send()
            .await;
        r.unwrap().json::<Value>().await.unwrap()["data"].clone()
    };
    let first = listing().await;
    assert_eq!(first[0]["id"], "chat");
    for n in 0..5 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let before = gw.app.runtime();
        let (status, _) = admin(
            &gw,
            M::POST,
            "/admin/v1/models",
            Some(OPS),
            Some(json!({"name": format!("m{n}")})),
        )
        .await;
        assert_eq!(status, 201);
        assert!(!Arc::ptr_eq(&gw.app.runtime(), &before), "a new table");
    }
    // Give a wrongly scheduled probe task time to run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((a.probes(), b.probes()), (1, 1), "five changes, no probe");
    let last = listing().await;
    assert_eq!(last[0], first[0], "an unchanged model lists the same");
    let (_, row) = admin(&gw, M::GET, "/admin/v1/models/m4", Some(OPS), None).await;
    let m4 = last
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "m4")
        .unwrap();
    assert_eq!(m4["created"], row["created"], "created is the row's");
    assert!(m4["created"].as_u64().unwrap() > first[0]["created"].as_u64().unwrap());
    gw.shutdown().await;
    db.drop_db().await;
}

/// A request in flight finishes on the table it started with; the next one sees the change.
#[tokio::test]
async fn requests_in_flight_finish_on_their_table() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("control_inflight").await;
    // A paced in-process upstream: six words, 100 ms apart.
    let yaml = config(&a, &b, &db.url()).replace(
        "models:\n",
        "  - { id: slow, kind: mock, mock: { reply: \"one two three four five six\", chunk_interval: 100ms } }\nmodels:\n  - { name: paced, routes: [{ provider: slow, model: paced }] }\n",
    );
    let gw = Gateway::start(&yaml).await;
    let mut response = post_as(
        &gw,
        "/v1/chat/completions",
        TEAM,
        &json!({"model": "paced", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut text = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    // Mid-stream the model is deleted, and this replica already refuses new requests for it…
    let (status, _) = admin(&gw, M::DELETE, "/admin/v1/models/paced", Some(OPS), None).await;
    assert_eq!(status, 200);
    assert_eq!(chat(&gw, TEAM, "paced").await.0, 404);
    assert!(
        !text.contains("[DONE]"),
        "the stream was still open: {text}"
    );
    // …while the stream that started on the old table runs to its end.
    while let Some(piece) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&piece));
    }
    assert!(
        text.contains("six") && text.trim_end().ends_with("data: [DONE]"),
        "{text}"
    );
    gw.shutdown().await;
    db.drop_db().await;
}

/// The database cut mid-run: every replica keeps serving the last table; admin calls answer
/// 503; once it is back, changes flow again without a restart.
#[tokio::test]
async fn with_the_database_down_the_last_table_serves_and_admin_writes_get_503() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let db = TestDb::create("control_outage").await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let gw = Gateway::start(&config(&a, &b, &db.url_via(proxy.port))).await;
    let (_, made) = admin(
        &gw,
        M::POST,
        "/admin/v1/keys",
        Some(OPS),
        Some(json!({"name": "made-before"})),
    )
    .await;
    let key = made["key"].as_str().unwrap().to_owned();

    proxy.cut();
    for _ in 0..5 {
        assert_eq!(chat(&gw, &key, "chat").await.0, 200);
        assert_eq!(chat(&gw, TEAM, "chat").await.0, 200);
    }
    let (status, body) = admin(
        &gw,
        M::POST,
        "/admin/v1/keys",
        Some(OPS),
        Some(json!({"name": "during"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("control_plane_unavailable"))
    );
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
    // Readiness stays: the last table is in force.
    assert_eq!(
        client()
            .get(gw.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    proxy.restore().await;
    // A change made straight in the database (an operator's psql) arrives once reconnected.
    db.connect()
        .await
        .batch_execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'made-before'")
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the revocation made during recovery applies",
        || async { chat(&gw, &key, "chat").await.0 == 401 },
    )
    .await;
    let (status, _) = admin(
        &gw,
        M::POST,
        "/admin/v1/keys",
        Some(OPS),
        Some(json!({"name": "after"})),
    )
    .await;
    assert_eq!(status, 201);
    gw.shutdown().await;
    db.drop_db().await;
}
