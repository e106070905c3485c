//! A hostile upstream that echoes the gateway's `Authorization` header (the provider's key) into
//! every field of every error it can send, and into successful answers: the key must reach no
//! answer, no log line (debug level, both log formats) and no ledger row. The real binary, so its
//! logs are the real ones.

use std::convert::Infallible;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use crate::mock_server::{Body, json_response, spawn, sse_response};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
pub const KEY: &str = "sk-upstream-SECRET-0123456789abcdef";

/// The upstream's answer, chosen by the request's last message.
pub async fn hostile(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if req.method() == http::Method::GET {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": []}),
        ));
    }
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mode = body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let echo = json!({"error": {"message": format!("bad request from {auth}"), "type": auth,
                                "param": auth, "code": auth}});
    Ok(match mode.as_str() {
        "json400" => json_response(StatusCode::BAD_REQUEST, &echo),
        "json500" => json_response(StatusCode::INTERNAL_SERVER_ERROR, &echo),
        "json429" => json_response(StatusCode::TOO_MANY_REQUESTS, &echo),
        "plain400" => {
            // The key straddles the old 2,000-byte cut.
            let text = format!("{}{auth} and more", "x".repeat(1_975));
            let mut r = Response::new(
                http_body_util::Full::new(Bytes::from(text))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r.headers_mut()
                .insert("content-type", "text/plain".parse().unwrap());
            r
        }
        "first_event" => sse(vec![format!("data: {echo}\n\n")]),
        // Successful answers that quote the key: a body, and a stream's chunk.
        "ok200" => json_response(
            StatusCode::OK,
            &json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("your header was {auth}")},
                             "finish_reason": "stop"}]}),
        ),
        "ok_stream" => {
            let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": format!("header {auth}")}, "finish_reason": "stop"}]});
            sse(vec![
                format!("data: {chunk}\n\n"),
                "data: [DONE]\n\n".into(),
            ])
        }
        _ => {
            // mid-stream: one good chunk, then the echoing error event.
            let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": null}]});
            sse(vec![
                format!("data: {chunk}\n\n"),
                format!("data: {echo}\n\n"),
            ])
        }
    })
}

/// The real binary on `port` with debug logs in `format` on its stderr (piped), once it answers.
async fn serve_logging(
    config: &std::path::Path,
    port: u16,
    format: &str,
) -> (tokio::process::Child, reqwest::Client, String) {
    let child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("SWITCHYARD_LOG", "debug")
        .env("SWITCHYARD_LOG_FORMAT", format)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the gateway starts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, client, base)
}

fn sse(frames: Vec<String>) -> Response<Body> {
    let frames = frames
        .into_iter()
        .map(|f| Ok(Frame::data(Bytes::from(f))))
        .collect();
    sse_response(frames, "text/event-stream")
}

#[tokio::test]
async fn an_upstream_echoing_its_key_leaks_it_nowhere() {
    let (upstream, _task) = spawn(hostile).await;
    let dir = std::env::temp_dir().join(format!("switchyard-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ledger = dir.join("usage.jsonl");
    let _ = std::fs::remove_file(&ledger);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("hostile.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{ listen: 127.0.0.1:{port}, workers: 1 }}\n\
             providers:\n  - {{ id: evil, kind: openai, base_url: \"http://{upstream}/v1\", api_key: {KEY}, timeout: 2s, health_check: {{ enabled: false }} }}\n\
             models:\n  - {{ name: m, routes: [{{ provider: evil, model: m }}] }}\n\
             routing: {{ max_attempts: 1 }}\n\
             usage: {{ sink: file, path: {} }}\n",
            ledger.display()
        ),
    )
    .unwrap();
    let mut outputs = Vec::new();
    for format in ["text", "json"] {
        let (child, client, base) = serve_logging(&config, port, format).await;
        let mut answers = String::new();
        for (mode, stream) in [
            ("json400", false),
            ("json500", false),
            ("json429", false),
            ("plain400", false),
            ("first_event", true),
            ("mid_stream", true),
            ("ok200", false),
            ("ok_stream", true),
        ] {
            let r = client
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": mode}]}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            assert!(
                !status.is_success() || stream || mode == "ok200",
                "{mode}: {status} {text}"
            );
            answers += &format!("{mode}: {status} {text}\n");
        }
        assert!(
            answers.contains("bad request from Bearer *****"),
            "{answers}"
        );
        assert!(
            answers.contains("your header was Bearer *****")
                && answers.contains("header Bearer *****"),
            "a 200 body and a stream's chunk are scrubbed: {answers}"
        );
        assert!(
            answers.contains("and more"),
            "the plain body is cut after scrubbing: {answers}"
        );
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let output = child.wait_with_output().await.unwrap();
        outputs.push((
            answers,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let rows = std::fs::read_to_string(&ledger).unwrap();
    assert!(rows.lines().count() >= 12, "{rows}");
    let _ = std::fs::remove_dir_all(&dir);
    // Not the whole key, and no telling piece of it either.
    let piece = &KEY[10..26];
    for (answers, logs) in &outputs {
        for (what, text) in [("answers", answers), ("logs", logs), ("ledger", &rows)] {
            assert!(!text.contains(piece), "{what} leak the key:\n{text}");
        }
        assert!(
            logs.contains("request failed"),
            "the failures were logged:\n{logs}"
        );
    }
}

#[tokio::test]
async fn client_text_cannot_forge_a_log_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::env::temp_dir().join(format!("switchyard-forge-{}.yaml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "server: {{ listen: 127.0.0.1:{port}, workers: 1 }}\nproviders:\n  - {{ id: m, kind: mock }}\n\
             models:\n  - {{ name: demo, routes: [{{ provider: m, model: demo }}] }}\nusage: {{ sink: none }}\n"
        ),
    )
    .unwrap();
    let (child, client, base) = serve_logging(&config, port, "text").await;
    let forged = "x\nFORGED INFO switchyard: admin logged in\r\nFORGED";
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": forged, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "demo", "session_id": forged, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let logs =
        String::from_utf8_lossy(&child.wait_with_output().await.unwrap().stderr).into_owned();
    let _ = std::fs::remove_file(&config);
    assert!(
        logs.contains("x\\nFORGED INFO"),
        "the refusal is logged, escaped:\n{logs}"
    );
    for line in logs.lines() {
        assert!(!line.starts_with("FORGED"), "a forged line:\n{logs}");
    }
}
