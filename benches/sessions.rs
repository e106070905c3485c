//! Sessions: what a turn costs and what compression costs the turn that triggers it.
//! `cargo bench --bench sessions` (memory store; no network beyond 127.0.0.1).
//!
//! 1. CPU per turn: a session-less request's field parse, against a turn on a 200-message
//!    session (load, expand, count the new message, build the upstream body, parse it, append
//!    the reply). Token counts are cached per stored message, so the history is not re-tokenised.
//! 2. Compression latency: an in-process gateway whose summary model takes 200 ms; turns are
//!    sent one after another and compress every few turns. If a compression were on a turn's
//!    path, that turn would take over 200 ms.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use switchyard::config::SessionsConfig;
use switchyard::request::ChatRequest;
use switchyard::sessions::Sessions;
use switchyard::tokens::Encoding;

const ITERATIONS: u32 = 5_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(cpu_per_turn());
    runtime.block_on(compression_latency());
}

fn user(text: &str) -> String {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).to_string()
}

fn assistant(text: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&json!({"role": "assistant", "content": text})).unwrap()
}

async fn cpu_per_turn() {
    let config = SessionsConfig {
        max_tokens: 1_000_000,
        compression_threshold: 1_000_000,
        ..SessionsConfig::default()
    };
    let sessions = Sessions::new(&config, None).unwrap();
    let e = Encoding::O200kBase;
    e.warm();
    let question =
        "Tell me about the history of the transistor, and why silicon won over germanium.";
    let answer = "The first transistor (1947, Bell Labs) was germanium; silicon took over in the 1960s because its oxide passivates the surface and it tolerates heat.";
    for _ in 0..100 {
        let turn = sessions
            .begin("big", None, user(question).as_bytes(), e, || async {})
            .await
            .unwrap();
        sessions.finish(turn, assistant(answer)).await.unwrap();
    }
    let body = Bytes::from(user(question));

    let plain = per_op(|| {
        std::hint::black_box(ChatRequest::parse(body.clone()).unwrap());
    });
    let mut total = Duration::ZERO;
    for i in 0..ITERATIONS {
        let started = Instant::now();
        let turn = sessions
            .begin("big", None, &body, e, || async {})
            .await
            .unwrap();
        std::hint::black_box(ChatRequest::parse(turn.body.clone()).unwrap());
        // Appended to a new session of its own, so "big" stays at 200 messages.
        let mut scratch = sessions
            .begin(&format!("scratch-{i}"), None, &body, e, || async {})
            .await
            .unwrap();
        scratch.body = turn.body;
        sessions.finish(scratch, assistant(answer)).await.unwrap();
        total += started.elapsed();
    }
    let turn = total / ITERATIONS;
    println!("CPU per request (median of runs, {ITERATIONS} iterations each)");
    println!(
        "  session-less parse                         {:>8.1} µs",
        micros(plain)
    );
    println!(
        "  turn on a 200-message session (+ append)   {:>8.1} µs",
        micros(turn)
    );
    println!(
        "  added by the session                      {:>8.1} µs",
        micros(turn.saturating_sub(plain))
    );
}

fn per_op(mut f: impl FnMut()) -> Duration {
    let mut runs: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..ITERATIONS {
                f();
            }
            started.elapsed() / ITERATIONS
        })
        .collect();
    runs.sort();
    runs[2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn compression_latency() {
    let yaml = "providers:\n  - { id: fast, kind: mock }\n  - { id: slow, kind: mock, mock: { latency: 200ms, reply: \"they discussed many topics\" } }\nmodels:\n  - { name: chat, routes: [{ provider: fast, model: chat }] }\n  - { name: summarizer, routes: [{ provider: slow, model: summarizer }] }\nsessions:\n  max_tokens: 20000\n  compression_threshold: 300\n  keep_recent: 4\n  summary_model: summarizer\nusage:\n  sink: none\n";
    let (config, _) = switchyard::config::parse(yaml, &|_: &str| None).unwrap();
    let app = switchyard::state::App::new(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let options = switchyard::server::ServerOptions {
        connection_permits: std::sync::Arc::new(tokio::sync::Semaphore::new(64)),
        header_read_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(1),
        max_header_bytes: 32 * 1024,
    };
    tokio::spawn(switchyard::server::serve(
        listener,
        app,
        options,
        std::future::pending::<()>(),
    ));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut latencies = Vec::new();
    for turn in 0..60 {
        let text = format!(
            "Turn {turn}: tell me about topic {turn}, its history, uses and open problems in detail."
        );
        let started = Instant::now();
        let r = client
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": "chat", "session_id": "bench", "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        latencies.push(started.elapsed());
        // A user types between turns; the compressions run meanwhile.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info: serde_json::Value = client
        .get(format!("{url}/v1/sessions/bench"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    latencies.sort();
    println!("Compression latency (summary model: 200 ms; 60 turns, one at a time)");
    println!(
        "  compressions during the run                {:>8}",
        info["compressions"]
    );
    println!(
        "  turn latency p50                           {:>8.2} ms",
        latencies[30].as_secs_f64() * 1e3
    );
    println!(
        "  turn latency max                           {:>8.2} ms",
        latencies[59].as_secs_f64() * 1e3
    );
}
