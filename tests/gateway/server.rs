//! The server itself: health, metrics, timeouts, the connection cap and graceful shutdown.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Gateway, client, config_for, get_status, get_text, post, sse_data};
use crate::mock_openai::MockOpenAi;

const SLOW_MOCK: &str = "providers:\n  - { id: slow, kind: mock, mock: { latency: 0ms, chunk_interval: 100ms } }\n  - { id: late, kind: mock, mock: { latency: 2s } }\nmodels:\n  - { name: slow, routes: [{ provider: slow, model: slow }] }\n  - { name: late, routes: [{ provider: late, model: late }] }\n";

#[tokio::test]
async fn health_ready_and_metrics() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    assert_eq!(get_status(&gw, "/health").await, 200);
    assert_eq!(get_status(&gw, "/ready").await, 200);
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    // Generated when the client sends none: `req_`, the process's 16 hex digits, a counter's 12.
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let first = id(&r);
    let next = id(&post(&gw, "/v1/models", &json!({})).await);
    for id in [&first, &next] {
        assert!(
            id.len() == 4 + 16 + 12
                && id.starts_with("req_")
                && id[4..].bytes().all(|b| b"0123456789abcdef".contains(&b)),
            "{id}"
        );
    }
    assert_eq!(first[..20], next[..20], "one prefix per process");
    let counter = |id: &str| u64::from_str_radix(&id[20..], 16).unwrap();
    assert_eq!(counter(&next), counter(&first) + 1);
    let r = post(&gw, "/v1/chat/completions", &json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "x"}]})).await;
    r.text().await.unwrap();
    let metrics = get_text(&gw, "/metrics").await;
    for needle in [
        "gateway_requests_total{provider=\"a\",model=\"gpt-4o-mini\",status=\"2xx\"}",
        "gateway_request_duration_seconds_bucket{provider=\"a\",model=\"gpt-4o-mini\"",
        "gateway_ttft_seconds_bucket{provider=\"a\",model=\"gpt-4o-mini\"",
        "gateway_tokens_used_total{provider=\"a\",model=\"gpt-4o-mini\",type=\"input\"}",
        "gateway_tokens_used_total{provider=\"a\",model=\"gpt-4o-mini\",type=\"output\"}",
        "gateway_upstream_healthy{provider=\"a\"} 1",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    assert!(!metrics.contains("sk-upstream"), "no key in metrics");
}

#[tokio::test]
async fn request_timeout_is_504() {
    let gw = Gateway::start(&format!("server:\n  request_timeout: 300ms\n{SLOW_MOCK}")).await;
    let started = std::time::Instant::now();
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "late", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_timeout");
}

#[tokio::test]
async fn a_slow_client_cannot_hold_a_connection_with_a_partial_head() {
    let gw = Gateway::start_with(SLOW_MOCK, Duration::from_millis(300)).await;
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), conn.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the gateway must close a connection whose head never completes"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let gw = Gateway::start(&format!("server:\n  max_connections: 2\n{SLOW_MOCK}")).await;
    let idle1 = TcpStream::connect(gw.addr).await.unwrap();
    let _idle2 = TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quick = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    assert!(
        quick.get(gw.url("/health")).send().await.is_err(),
        "a third connection is not served while two are open"
    );
    drop(idle1);
    let r = client().get(gw.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200, "served once a slot frees up");
}

#[tokio::test]
async fn shutdown_lets_an_open_stream_finish_and_fails_readiness() {
    let gw = Gateway::start(SLOW_MOCK).await;
    let url = gw.url("/v1/chat/completions");
    let ready_url = gw.url("/ready");
    let app = gw.app.clone();
    let mut stream = client()
        .post(&url)
        .json(&json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "one two three"}]}))
        .send()
        .await
        .unwrap();
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    let stopping = tokio::spawn(gw.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(app.is_draining(), "readiness fails at once");
    assert!(
        client().get(&ready_url).send().await.is_err(),
        "the listener is closed"
    );
    let mut rest = first.to_vec();
    while let Some(chunk) = stream.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(rest).unwrap();
    assert_eq!(
        sse_data(&text).last().unwrap(),
        "[DONE]",
        "the in-flight stream completes: {text}"
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_client_leaving_mid_stream_cancels_it_and_the_gateway_carries_on() {
    let gw = Gateway::start(SLOW_MOCK).await;
    let body = json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "a b c d e f g h"}]});
    let mut stream = post(&gw, "/v1/chat/completions", &body).await;
    assert!(stream.chunk().await.unwrap().is_some());
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = get_text(&gw, "/metrics").await;
    assert!(
        metrics.contains("gateway_streams_ended_total{provider=\"slow\",outcome=\"cancelled\"}"),
        "a stream whose client left is recorded as cancelled:\n{metrics}"
    );
    let text = post(&gw, "/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        sse_data(&text).last().unwrap(),
        "[DONE]",
        "the next stream is unaffected"
    );
}

#[tokio::test]
async fn reload_swaps_routes_while_an_open_stream_finishes_on_the_old_ones() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let yaml = format!(
        "providers:\n  - {{ id: slow, kind: mock, mock: {{ chunk_interval: 100ms }} }}\n  - {{ id: a, kind: openai, base_url: \"{}\", health_check: {{ enabled: false }} }}\nmodels:\n  - {{ name: slow, routes: [{{ provider: slow, model: slow }}] }}\n  - {{ name: gpt-4o-mini, routes: [{{ provider: a, model: upstream-a }}] }}\n",
        a.base_url()
    );
    let gw = Gateway::start(&yaml).await;
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]});
    let mut open = post(&gw, "/v1/chat/completions", &json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "a b c d e"}]})).await;
    assert!(open.chunk().await.unwrap().is_some());
    assert_eq!(
        post(&gw, "/v1/chat/completions", &chat).await.headers()["x-switchyard-provider"],
        "a"
    );

    let (new_config, _) = switchyard::config::parse(
        &config_for(&[("b", &b.base_url(), 1, 1)], ""),
        &|_: &str| None,
    )
    .unwrap();
    gw.app.reload(&new_config).unwrap();
    assert_eq!(
        post(&gw, "/v1/chat/completions", &chat).await.headers()["x-switchyard-provider"],
        "b"
    );
    let slow = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "slow", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(slow.status(), 404, "models removed by the reload are gone");

    let mut rest = Vec::new();
    while let Some(chunk) = open.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert!(
        String::from_utf8(rest)
            .unwrap()
            .ends_with("data: [DONE]\n\n"),
        "the stream opened before the reload completes"
    );
}

#[tokio::test]
async fn a_request_head_over_max_header_bytes_gets_431_and_bounded_memory() {
    let gw = Gateway::start(&format!("server:\n  max_header_bytes: 16384\n{SLOW_MOCK}")).await;
    let with_header = |bytes: usize| {
        client()
            .get(gw.url("/health"))
            .header("x-padding", "a".repeat(bytes))
            .send()
    };
    assert_eq!(with_header(8_000).await.unwrap().status(), 200);
    assert_eq!(with_header(40_000).await.unwrap().status(), 431);
    // A 400 KB head sent by hand is cut off as soon as it passes the bound, not buffered whole.
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nx-padding: {}\r\n\r\n",
        "a".repeat(400_000)
    );
    let _ = conn.write_all(head.as_bytes()).await; // the gateway may close before it is all sent
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn sockets_that_send_nothing_are_closed_and_free_their_slots() {
    let gw = Gateway::start_with(
        &format!("server:\n  max_connections: 5\n{SLOW_MOCK}"),
        Duration::from_millis(300),
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // Every slot is held by a silent socket now; each is closed after header_read_timeout.
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client().get(gw.url("/health")).send(),
    )
    .await
    .expect("the silent sockets give their slots back")
    .unwrap();
    assert_eq!(r.status(), 200);
    let mut buf = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(3), silent[0].read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "a socket that sent nothing is closed");
}

#[tokio::test]
async fn a_body_that_stalls_gets_408() {
    let gw = Gateway::start(&format!("server:\n  body_read_timeout: 300ms\n{SLOW_MOCK}")).await;
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn streams_longer_than_the_grace_end_with_an_error_event_and_an_error_row() {
    let ledger = std::env::temp_dir().join(format!("{}.jsonl", crate::harness::unique("grace")));
    let gw = Gateway::start(&format!(
        "server:\n  shutdown_grace: 300ms\nusage:\n  sink: file\n  path: {}\n{SLOW_MOCK}",
        ledger.display()
    ))
    .await;
    // About forty 100 ms chunks: far longer than the grace.
    let words = "word ".repeat(40);
    let mut stream = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": words}]}))
        .send()
        .await
        .unwrap();
    let mut body = stream.chunk().await.unwrap().unwrap().to_vec();
    let stopping = tokio::spawn(gw.shutdown());
    // The body ends cleanly (no cut chunked encoding: every read is Ok).
    while let Some(chunk) = stream.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).unwrap();
    let data = sse_data(&text);
    assert!(!data.contains(&"[DONE]".to_owned()), "{text}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "shutting_down", "{text}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
    let rows = std::fs::read_to_string(&ledger).unwrap();
    let _ = std::fs::remove_file(&ledger);
    let row: Value = serde_json::from_str(rows.lines().last().unwrap()).unwrap();
    assert_eq!(
        (row["status"].as_str(), row["http_status"].as_i64()),
        (Some("error"), Some(200))
    );
}

#[tokio::test]
async fn a_client_that_writes_its_whole_oversize_body_first_still_reads_the_413() {
    let gw = Gateway::start(&format!("server:\n  max_body_bytes: 65536\n{SLOW_MOCK}")).await;
    let conn = TcpStream::connect(gw.addr).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    let body = vec![b'x'; 24 * 1024 * 1024];
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // Like a naive client: the whole request first, the answer after.
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        write.write_all(&body).await
    });
    let written = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .unwrap()
        .unwrap();
    assert!(
        written.is_ok(),
        "the whole body is accepted (read and discarded): {written:?}"
    );
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), read.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_chunked_oversize_body_written_whole_first_still_reads_the_413_every_time() {
    // As urllib sends it: 64 KiB chunks against a 1 MiB limit, the whole request before the
    // answer is read; more than the sockets' buffers hold, so the client is still writing when
    // the 413 goes out. The refusal must never reach it as a reset instead.
    let gw = Gateway::start(&format!("server:\n  max_body_bytes: 1048576\n{SLOW_MOCK}")).await;
    let chunk = vec![b'x'; 64 * 1024];
    let mut request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..256 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let request = std::sync::Arc::new(request);
    let mut failures = Vec::new();
    for attempt in 0..20 {
        let conn = TcpStream::connect(gw.addr).await.unwrap();
        let (mut read, mut write) = conn.into_split();
        let body = request.clone();
        let writer = tokio::spawn(async move {
            for piece in body.chunks(64 * 1024) {
                write.write_all(piece).await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let written = tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .unwrap()
            .unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), read.read(&mut answer)).await;
        let answer = match n {
            Ok(Ok(n)) => String::from_utf8_lossy(&answer[..n]).into_owned(),
            other => format!("{other:?}"),
        };
        if written.is_err() || !answer.starts_with("HTTP/1.1 413") {
            failures.push(format!("{attempt}: write {written:?}, read {answer:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 60: {failures:#?}",
        failures.len()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_header_read_timeout() {
    let gw = Gateway::start_with(SLOW_MOCK, Duration::from_millis(300)).await;
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then nothing: the kept-alive connection must not hold its slot for ever.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), conn.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "an idle keep-alive connection is closed");
}

/// An h2c client that sends the preface and its SETTINGS, acknowledges the server's SETTINGS and
/// answers every PING, and never opens a stream. Returns whether the server ended the connection
/// (GOAWAY or close) within `within`.
async fn idle_h2c(addr: std::net::SocketAddr, within: Duration) -> bool {
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const GOAWAY: u8 = 0x7;
    const ACK: u8 = 0x1;
    let frame = |kind: u8, flags: u8, payload: &[u8]| {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    };
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(SETTINGS, 0, &[]));
    conn.write_all(&hello).await.unwrap();
    let run = async {
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                let payload = buf[9..9 + len].to_vec();
                buf.drain(..9 + len);
                match kind {
                    GOAWAY => return,
                    SETTINGS if flags & ACK == 0 => {
                        conn.write_all(&frame(SETTINGS, ACK, &[])).await.unwrap()
                    }
                    PING if flags & ACK == 0 => {
                        conn.write_all(&frame(PING, ACK, &payload)).await.unwrap()
                    }
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(within, run).await.is_ok()
}

#[tokio::test]
async fn idle_h2c_connections_are_closed_and_give_their_slots_back() {
    let gw = Gateway::start_with(
        &format!("server:\n  max_connections: 4\n{SLOW_MOCK}"),
        Duration::from_millis(300),
    )
    .await;
    // Four connections hold the four slots, each answering PINGs and opening no stream.
    let idle: Vec<_> = (0..4)
        .map(|_| tokio::spawn(idle_h2c(gw.addr, Duration::from_secs(10))))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client().get(gw.url("/health")).send(),
    )
    .await
    .expect("the idle h2c connections give their slots back")
    .unwrap();
    assert_eq!(r.status(), 200);
    for conn in idle {
        assert!(conn.await.unwrap(), "an idle h2c connection is ended");
    }
    // A stream that stays open longer than the bound keeps its h2 connection.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "slow", "stream": true, "max_tokens": 12,
                      "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}
