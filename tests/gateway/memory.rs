//! What one request can cost the process: JSON built to amplify memory (`[0,0,0,…]` in every
//! field a parser reads, `[{},{},…]` where a tree is built) costs at most 8 times its body in
//! peak resident memory. Measured on the real binary: its peak (VmHWM) is reset through
//! `/proc/PID/clear_refs` before each request and read after it. Each request must also answer
//! within a minute (one 8 MB word once held a core for minutes in the tokenizer).

use std::time::Duration;

use serde_json::Value;

use crate::cli::{free_port, scratch_dir, serve_until_ready, write_config};
use crate::mock_openai::MockOpenAi;

/// Just under the default `server.max_body_bytes` (8 MiB).
const BODY: usize = 8 * 1000 * 1000;

/// `prefix` + `item,item,…` + `suffix`, `BODY` bytes long at most.
fn dense(prefix: &str, item: &str, suffix: &str) -> Vec<u8> {
    let mut body = prefix.as_bytes().to_vec();
    let room = BODY - prefix.len() - suffix.len();
    let n = room / (item.len() + 1);
    for i in 0..n {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_bytes());
    }
    body.extend_from_slice(suffix.as_bytes());
    body
}

/// A chat or Messages body whose one message is a single word of `BODY` bytes.
fn one_word() -> Vec<u8> {
    let mut body =
        br#"{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":""#.to_vec();
    body.resize(BODY - 8, b'a');
    body.extend_from_slice(br#""}]}"#);
    body
}

/// A field of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn json_built_to_amplify_memory_costs_at_most_8x_its_body() {
    let up = MockOpenAi::start("up").await;
    let port = free_port();
    let dir = scratch_dir("memory");
    let config = write_config(
        &dir,
        "memory.yaml",
        &format!(
            "server: {{ listen: 127.0.0.1:{port}, workers: 1 }}\n\
             providers:\n  - {{ id: up, kind: openai, base_url: \"{}\", health_check: {{ enabled: false }} }}\n\
             models:\n  - {{ name: gpt-4o-mini, routes: [{{ provider: up, model: m }}] }}\n  \
             - {{ name: embed, type: embedding, routes: [{{ provider: up, model: e }}] }}\n\
             auth:\n  keys:\n    - {{ name: metered, key: sk-metered, rpm: 1000000, tpm: 1000000000 }}\n\
             usage: {{ sink: none }}\n",
            up.base_url()
        ),
    );
    let (child, client, base) = serve_until_ready(&config, port).await;
    let pid = child.id().unwrap();
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        (
            "responses: input of numbers",
            "/v1/responses",
            dense(r#"{"model":"gpt-4o-mini","input":["#, "0", "]}"),
            400,
        ),
        (
            "responses: input of well-formed messages",
            "/v1/responses",
            dense(
                r#"{"model":"gpt-4o-mini","input":["#,
                r#"{"role":"user","content":"a"}"#,
                "]}",
            ),
            400,
        ),
        (
            "completions: a token-id prompt",
            "/v1/completions",
            dense(
                r#"{"model":"gpt-4o-mini","max_tokens":1,"prompt":["#,
                "0",
                "]}",
            ),
            200,
        ),
        (
            "completions: token-id arrays",
            "/v1/completions",
            dense(
                r#"{"model":"gpt-4o-mini","max_tokens":1,"prompt":["#,
                "[0]",
                "]}",
            ),
            200,
        ),
        (
            "embeddings: token ids",
            "/v1/embeddings",
            dense(r#"{"model":"embed","input":["#, "0", "]}"),
            200,
        ),
        (
            "chat with a session: numbers in a message",
            "/v1/chat/completions",
            dense(
                r#"{"model":"gpt-4o-mini","session_id":"s1","messages":[{"role":"user","content":["#,
                "0",
                "]}]}",
            ),
            400,
        ),
        (
            "chat with a session: empty objects",
            "/v1/chat/completions",
            dense(
                r#"{"model":"gpt-4o-mini","session_id":"s2","messages":[{"role":"user","content":"x","x":["#,
                "{}",
                "]}]}",
            ),
            400,
        ),
        (
            "messages: text blocks in a turn",
            "/v1/messages",
            dense(
                r#"{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":["#,
                r#"{"type":"text","text":"a"}"#,
                "]}]}",
            ),
            400,
        ),
        (
            "messages: one 8 MB word, answered",
            "/v1/messages",
            one_word(),
            200,
        ),
        (
            // One word of megabytes: BPE is quadratic in a piece's length; counting it for tpm
            // held a core for minutes before such runs were estimated.
            "chat counted for tpm: one 8 MB word",
            "/v1/chat/completions",
            one_word(),
            200,
        ),
        (
            "chat counted for tpm: numbers in a message",
            "/v1/chat/completions",
            dense(
                r#"{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"x","x":["#,
                "0",
                "]}]}",
            ),
            200,
        ),
    ];
    // Warm up: the tokenizer's tables and the first allocations of every path.
    for (_, path, _, _) in &cases {
        let _ = client
            .post(format!("{base}{path}"))
            .bearer_auth("sk-metered")
            .header("content-type", "application/json")
            .body(r#"{"model":"gpt-4o-mini","input":"x","prompt":"x","messages":[{"role":"user","content":"x"}]}"#)
            .send()
            .await;
    }
    // Figures for any build, the old one included: `MEASURE_ONLY=1 cargo nextest run
    // json_built --no-capture` prints them without asserting.
    let measure_only = std::env::var_os("MEASURE_ONLY").is_some();
    let mut report = Vec::new();
    for (what, path, body, status) in cases {
        let len = body.len();
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak");
        let before = status_bytes(pid, "VmRSS:");
        let r = client
            .post(format!("{base}{path}"))
            .bearer_auth("sk-metered")
            .header("content-type", "application/json")
            .timeout(Duration::from_secs(60))
            .body(body)
            .send()
            .await
            .unwrap();
        let got = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert!(measure_only || got == status, "{what}: {answer}");
        if status == 400 && !measure_only {
            assert_eq!(answer["error"]["type"], "invalid_request_error", "{what}");
        }
        let peak = status_bytes(pid, "VmHWM:").saturating_sub(before);
        report.push(format!(
            "{what}: +{:.1} MB for {:.1} MB ({:.1}x)",
            peak as f64 / 1e6,
            len as f64 / 1e6,
            peak as f64 / len as f64
        ));
        assert!(
            measure_only || peak <= 8 * len,
            "{what}: peak +{peak} bytes for a {len}-byte body\n{}",
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
}
