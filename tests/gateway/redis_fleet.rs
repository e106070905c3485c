//! Shared state on the Redis that fleets run (DESIGN §5 "Fleet state"): two replicas on a real
//! three-master Redis Cluster share limits, budgets, sessions, stored responses and the cache
//! (every script's keys in one slot, key-less scans on every primary); a TLS-only Redis is
//! reached through `redis.tls`'s private CA, and a wrong CA is a clear outage, never a hang.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, client, json_of};
use crate::mock_openai::MockOpenAi;
use crate::redis_servers::Servers;

fn config(a: &MockOpenAi, redis: &str) -> String {
    format!(
        r#"providers:
  - {{ id: a, kind: openai, base_url: "{}", api_key: sk-a, timeout: 2s, health_check: {{ enabled: false }} }}
models:
  - name: chat
    price: {{ input_per_1m: 1.0, output_per_1m: 2.0 }}
    routes: [ {{ provider: a, model: up-chat }} ]
auth:
  keys:
    - {{ name: capped, key: sk-capped, rpm: 3 }}
    - {{ name: busy, key: sk-busy, rpm: 100000 }}
    - {{ name: team, key: sk-team }}
    - {{ name: ops, key: sk-ops, admin: true }}
{redis}
sessions: {{ store: redis, timeout: 500ms }}
cache: {{ store: redis, timeout: 500ms }}
usage: {{ sink: none }}
"#,
        a.base_url()
    )
}

async fn chat(gw: &Gateway, key: &str, body: Value) -> (u16, Value, String) {
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cache = r
        .headers()
        .get("x-switchyard-cache")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, r.json().await.unwrap_or(Value::Null), cache)
}

fn ask(text: &str) -> Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn replicas_share_every_store_on_a_redis_cluster() {
    let cluster = tokio::task::spawn_blocking(Servers::cluster).await.unwrap();
    let a = MockOpenAi::start("a").await;
    let yaml = config(
        &a,
        &format!("redis: {{ url: \"{}\" }}", cluster.cluster_url()),
    );
    let (one, two) = (Gateway::start(&yaml).await, Gateway::start(&yaml).await);

    // Rate limits: three a minute for the key, across both replicas.
    let mut statuses = Vec::new();
    for (i, gw) in [&one, &two, &one, &two].into_iter().enumerate() {
        statuses.push(chat(gw, "sk-capped", ask(&format!("rpm {i}"))).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);

    // Sessions: a turn on one replica, the next on the other sees it.
    let first = json!({"model": "chat", "session_id": "s-cluster", "messages": [{"role": "user", "content": "my name is Ada"}]});
    assert_eq!(chat(&one, "sk-team", first).await.0, 200);
    let next = json!({"model": "chat", "session_id": "s-cluster", "messages": [{"role": "user", "content": "what is my name?"}]});
    assert_eq!(chat(&two, "sk-team", next).await.0, 200);
    let sent = a.requests().last().unwrap().body.clone();
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3, "{sent}");

    // Stored responses: made on one, continued and read on the other.
    let made = json_of(
        client()
            .post(one.url("/v1/responses"))
            .bearer_auth("sk-team")
            .json(&json!({"model": "chat", "input": "remember 42"})),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_owned();
    let read = client()
        .get(two.url(&format!("/v1/responses/{id}")))
        .bearer_auth("sk-team")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let continued = client()
        .post(two.url("/v1/responses"))
        .bearer_auth("sk-team")
        .json(&json!({"model": "chat", "input": "and?", "previous_response_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        continued.status(),
        200,
        "{}",
        continued.text().await.unwrap()
    );

    // The cache: entries written by one replica, hit by the other, spread over the shards, and
    // emptied from every shard by one admin call.
    // (The requests above were cached too.)
    let before: usize = cluster.keys_per_node("switchyard:cache:*").iter().sum();
    let asks: Vec<Value> = (0..24).map(|i| ask(&format!("cache me {i}"))).collect();
    for body in &asks {
        assert_eq!(chat(&one, "sk-team", body.clone()).await.2, "miss");
    }
    crate::harness::eventually(Duration::from_secs(3), "entries stored", || {
        let per_node = cluster.keys_per_node("switchyard:cache:*");
        async move { per_node.iter().sum::<usize>() == before + 24 }
    })
    .await;
    let per_node = cluster.keys_per_node("switchyard:cache:*");
    assert!(
        per_node.iter().all(|n| *n > 0),
        "spread over every shard: {per_node:?}"
    );
    assert_eq!(chat(&two, "sk-team", asks[0].clone()).await.2, "hit");
    let cleared = json_of(
        client()
            .delete(one.url("/admin/v1/cache"))
            .bearer_auth("sk-ops"),
    )
    .await;
    assert_eq!(cleared["deleted"], before + 24, "{cleared}");
    assert_eq!(cluster.keys_per_node("switchyard:cache:*"), [0, 0, 0]);

    // The dashboard's store counts add up every shard.
    let stats = json_of(
        client()
            .get(two.url("/admin/v1/stats"))
            .bearer_auth("sk-ops"),
    )
    .await;
    assert_eq!(stats["sessions"]["count"], 1, "{stats}");
    assert_eq!(stats["responses"]["count"], 2, "{stats}");
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test]
async fn a_sentinel_failover_loses_no_request_to_a_hang() {
    let mut redis = tokio::task::spawn_blocking(Servers::sentinel)
        .await
        .unwrap();
    let a = MockOpenAi::start("a").await;
    let yaml = config(
        &a,
        &format!("redis: {{ url: \"{}\" }}", redis.sentinel_url()),
    );
    let gw = Gateway::start(&yaml).await;
    let turn = |text: &str| json!({"model": "chat", "session_id": "s-failover", "messages": [{"role": "user", "content": text}]});
    assert_eq!(chat(&gw, "sk-team", turn("my name is Ada")).await.0, 200);
    // The turn is on the replica before the master goes (replication is asynchronous: a write
    // from the master's last moments could be lost, see the README).
    let replica = redis.ports[1].to_string();
    tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            let out = std::process::Command::new("redis-cli")
                .args([
                    "-p",
                    &replica,
                    "--scan",
                    "--pattern",
                    "switchyard:session:*",
                ])
                .output()
                .unwrap();
            if !out.stdout.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the session never reached the replica");
    })
    .await
    .unwrap();
    let old_master = redis.ports[0];
    redis.kill(0);

    // Requests go on through the failover: limited ones as limits fail open, session ones
    // 503 while there is no master; none waits past the Redis bounds.
    let started = std::time::Instant::now();
    let mut outage = 0;
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "no new master");
        let asked = std::time::Instant::now();
        let (status, _, _) = chat(&gw, "sk-busy", ask("during")).await;
        assert_eq!(status, 200);
        let (status, _, _) = chat(&gw, "sk-team", turn("what is my name?")).await;
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "a request waited {:?}",
            asked.elapsed()
        );
        match status {
            200 => break,
            503 => outage += 1,
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        redis.current_master(),
        Some(old_master),
        "the sentinels moved the master"
    );
    assert!(outage > 0, "the master was gone for a while");
    // The session came through the switch.
    let sent = a.requests().last().unwrap().body.clone();
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3, "{sent}");
    // Limits are shared through the new master again, once their breaker (tripped during the
    // outage) has heard the new master: its probe asks every 500 ms. Asked sooner, the first
    // capped requests were this replica's alone and the later ones Redis's, and the fourth got
    // through (seen once under the whole suite's load).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(chat(&gw, "sk-capped", ask(&format!("after {i}"))).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_tls_redis_is_reached_through_its_private_ca_and_a_wrong_ca_is_an_outage() {
    let tls = tokio::task::spawn_blocking(|| Servers::tls(false))
        .await
        .unwrap();
    let a = MockOpenAi::start("a").await;
    let url = format!("rediss://127.0.0.1:{}", tls.ports[0]);
    let with_ca = |ca: &str| {
        config(
            &a,
            &format!(
                "redis: {{ url: \"{url}\", tls: {{ ca_file: \"{}\" }} }}",
                tls.dir.join(ca).display()
            ),
        )
    };
    let gw = Gateway::start(&with_ca("ca.pem")).await;
    let statuses: Vec<u16> = futures_util::future::join_all((0..4).map(|i| {
        let gw = &gw;
        async move { chat(gw, "sk-capped", ask(&format!("tls {i}"))).await.0 }
    }))
    .await;
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 200, 200, 429], "limits kept in the TLS Redis");
    gw.shutdown().await;

    // Another CA: the handshake fails, which is an outage the features ride out (limits fail
    // open, the cache bypasses) within their bounds, and sessions answer 503; never a hang.
    let gw = Gateway::start(&with_ca("other-ca.pem")).await;
    let started = std::time::Instant::now();
    let (status, _, cache) = chat(&gw, "sk-team", ask("wrong ca")).await;
    assert_eq!((status, cache.as_str()), (200, "bypass"));
    let session = json!({"model": "chat", "session_id": "s-tls", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body, _) = chat(&gw, "sk-team", session).await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    gw.shutdown().await;
}

/// Four requests of the key allowed three a minute.
async fn limited(gw: &Gateway) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(chat(gw, "sk-capped", ask(&format!("limited {i}"))).await.0);
    }
    statuses
}

#[tokio::test]
async fn mutual_tls_shows_the_client_certificate() {
    let tls = tokio::task::spawn_blocking(|| Servers::tls(true))
        .await
        .unwrap();
    let a = MockOpenAi::start("a").await;
    let url = format!("rediss://127.0.0.1:{}", tls.ports[0]);
    let file = |name: &str| tls.dir.join(name).display().to_string();
    // With the client certificate the limits are in Redis (the fourth is refused)...
    let yaml = config(
        &a,
        &format!(
            "redis: {{ url: \"{url}\", tls: {{ ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\" }} }}",
            file("ca.pem"),
            file("client.pem"),
            file("client.key")
        ),
    );
    let gw = Gateway::start(&yaml).await;
    assert_eq!(limited(&gw).await, [200, 200, 200, 429]);
    gw.shutdown().await;
    // ...without it the server refuses the handshake: an outage the cache rides out.
    let yaml = config(
        &a,
        &format!(
            "redis: {{ url: \"{url}\", tls: {{ ca_file: \"{}\" }} }}",
            file("ca.pem")
        ),
    );
    let gw = Gateway::start(&yaml).await;
    let (status, _, cache) = chat(&gw, "sk-team", ask("no client certificate")).await;
    assert_eq!((status, cache.as_str()), (200, "bypass"));
    gw.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_ca_file_refuses_start_naming_the_field() {
    let yaml = "providers: [ { id: m, kind: mock } ]\nmodels: [ { name: m, routes: [ { provider: m, model: m } ] } ]\nredis: { url: \"rediss://127.0.0.1:1\", tls: { ca_file: /nonexistent/ca.pem } }\nusage: { sink: none }\n";
    let (config, _) = switchyard::config::parse(yaml, &|_: &str| None).expect("parses");
    let error = match switchyard::state::App::new(&config) {
        Ok(_) => panic!("started with an unreadable CA file"),
        Err(e) => e,
    };
    assert!(error.contains("redis.tls.ca_file"), "{error}");
    // A URL fred cannot read, and a client certificate without its key, name theirs too.
    for (redis, field) in [
        ("{ url: \"redis-sentinel://127.0.0.1:1/0\" }", "redis.url"),
        (
            "{ url: \"rediss://127.0.0.1:1\", tls: { cert_file: /tmp/c.pem } }",
            "redis.tls",
        ),
    ] {
        let yaml = yaml.replace(
            "redis: { url: \"rediss://127.0.0.1:1\", tls: { ca_file: /nonexistent/ca.pem } }",
            &format!("redis: {redis}"),
        );
        let (config, _) = switchyard::config::parse(&yaml, &|_: &str| None).expect("parses");
        let error = match switchyard::state::App::new(&config) {
            Ok(_) => panic!("started with {redis}"),
            Err(e) => e,
        };
        assert!(error.starts_with(field), "{error}");
    }
}
