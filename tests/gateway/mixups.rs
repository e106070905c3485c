//! Cross-talk through the upstream connection pool: concurrent clients, each with its own tag,
//! against a raw-socket upstream that echoes the tag and misframes some answers the ways a
//! broken or hostile server does (a bodiless status announcing a body it then sends, an HTTP/1.0
//! chunked answer, bytes after a well-framed answer, closing idle connections). No client may
//! ever read an answer carrying another client's tag, and the well-framed answers of an
//! upstream that closes idle connections never fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Gateway, client};

/// How the upstream answers, chosen by the client per request.
const MODES: [&str; 6] = [
    "ok",
    "no_content_with_body",
    "early_hints_with_body",
    "http10_chunked",
    "trailing_bytes",
    "ok_then_close",
];

/// A well-formed chat completion whose text is `text`.
fn completion(text: &str) -> Vec<u8> {
    let body = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    .to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The request's `MODE=… TAG=…` text, read from its body.
fn mode_and_tag(request: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(request);
    let field = |name: &str| {
        text.split(name)
            .nth(1)
            .and_then(|rest| rest.split([' ', '"']).next())
            .unwrap_or_default()
            .to_owned()
    };
    (field("MODE="), field("TAG="))
}

/// Serves one connection: each request answered by its mode.
async fn serve(mut io: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let Some(len) = read_request(&mut io, &mut buf).await else {
            return;
        };
        let request: Vec<u8> = buf.drain(..len).collect();
        if request.starts_with(b"GET") {
            let body = r#"{"object":"list","data":[]}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if io.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let (mode, tag) = mode_and_tag(&request);
        let stale = completion(&format!("STALE TAG={tag}"));
        let answer = completion(&format!("TAG={tag}"));
        let (first, later): (Vec<u8>, Option<Vec<u8>>) = match mode.as_str() {
            "no_content_with_body" => (
                format!(
                    "HTTP/1.1 204 No Content\r\ncontent-length: {}\r\n\r\n",
                    stale.len()
                )
                .into_bytes(),
                Some(stale),
            ),
            "early_hints_with_body" => {
                let mut first = format!(
                    "HTTP/1.1 103 Early Hints\r\ncontent-length: {}\r\n\r\n",
                    stale.len()
                )
                .into_bytes();
                first.extend_from_slice(&stale);
                (first, None)
            }
            "http10_chunked" => {
                let body = &answer[answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
                let mut first = b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                first.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                first.extend_from_slice(body);
                first.extend_from_slice(b"\r\n0\r\n\r\n");
                (first, Some(stale))
            }
            "trailing_bytes" => {
                let mut first = answer;
                first.extend_from_slice(&stale);
                (first, None)
            }
            _ => (answer, None),
        };
        if io.write_all(&first).await.is_err() {
            return;
        }
        if let Some(later) = later {
            tokio::time::sleep(Duration::from_millis(30)).await;
            if io.write_all(&later).await.is_err() {
                return;
            }
        }
        if mode == "ok_then_close" {
            // As a server closing an idle keep-alive connection: just after the answer, with
            // whatever request may be arriving on it unread.
            tokio::time::sleep(Duration::from_millis(2)).await;
            return;
        }
    }
}

/// One whole request (head and content-length body) from `io`; its length in `buf`.
async fn read_request(io: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            if buf.len() >= end + 4 + length {
                return Some(end + 4 + length);
            }
        }
        let mut chunk = [0u8; 8192];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn concurrent_clients_never_read_each_others_answers_through_a_misframing_upstream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            tokio::spawn(serve(io));
        }
    });
    let gw = Gateway::start(&format!(
        "server: {{ workers: 2 }}\n\
         providers:\n  - {{ id: up, kind: openai, base_url: \"http://{upstream}/v1\", timeout: 5s, health_check: {{ enabled: false }} }}\n\
         models:\n  - {{ name: m, routes: [{{ provider: up, model: m }}] }}\n\
         routing: {{ max_attempts: 1, unhealthy_after: 1000000 }}\n"
    ))
    .await;
    const CLIENTS: usize = 8;
    const REQUESTS: usize = 60;
    let mixups = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let failed_ok = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, mixups, answered, failed_ok) = (
            gw.url("/v1/chat/completions"),
            mixups.clone(),
            answered.clone(),
            failed_ok.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = client();
            for i in 0..REQUESTS {
                let mode = MODES[(c + i) % MODES.len()];
                let tag = format!("c{c}r{i}");
                let r = http
                    .post(&url)
                    .json(&json!({"model": "m", "messages": [{"role": "user",
                        "content": format!("MODE={mode} TAG={tag} ")}]}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let text = body["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if status == 200 {
                    answered.fetch_add(1, Ordering::SeqCst);
                    // Read as RFC 9112 says, a misframed answer may be the upstream's `STALE`
                    // text for this very request; never for another.
                    let read = text.split("TAG=").nth(1).unwrap_or_default();
                    if read != tag {
                        mixups.fetch_add(1, Ordering::SeqCst);
                        eprintln!("{tag} ({mode}) read {text:?}");
                    }
                }
                if matches!(
                    mode,
                    "ok" | "ok_then_close" | "trailing_bytes" | "http10_chunked"
                ) && status != 200
                {
                    failed_ok.fetch_add(1, Ordering::SeqCst);
                    eprintln!("{tag} ({mode}) failed: {status} {body}");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        mixups.load(Ordering::SeqCst),
        0,
        "answers read by the wrong client"
    );
    assert_eq!(
        failed_ok.load(Ordering::SeqCst),
        0,
        "well-framed answers that failed"
    );
    // Every well-framed mode answered (4 of 6 modes).
    assert!(answered.load(Ordering::SeqCst) >= CLIENTS * REQUESTS * 4 / 6);
}
