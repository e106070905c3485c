//! Audio and image edits (PROTOCOLS.md §13.1–§13.3): multipart uploads routed by their `model`
//! field and streamed upstream as they arrive with only that field rewritten, refused before any
//! upstream call when malformed, retried only while the whole body is in hand; answers relayed
//! with the upstream's type, speech as it is made, a late cut never passed off as a clean end;
//! the ledger counts seconds and characters.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::{Gateway, client, ledger_rows, unique};
use crate::mock_media::{Behavior, MockMedia, PIECE, SPEECH_PIECES};

const BOUNDARY: &str = "b0undary7f3a";
const KEY: &str = "sk-team";

fn config(a: &MockMedia, b: &MockMedia, ledger: &str, max_upload: usize) -> String {
    format!(
        r#"server: {{ max_upload_bytes: {max_upload} }}
providers:
  - {{ id: a, kind: openai, base_url: "{}", api_key: sk-a, timeout: 5s, health_check: {{ enabled: false }} }}
  - {{ id: b, kind: openai, base_url: "{}", api_key: sk-b, timeout: 5s, health_check: {{ enabled: false }} }}
models:
  - name: chat
    routes: [ {{ provider: a, model: up-chat }} ]
  - name: ears
    type: transcription
    price: {{ per_minute: 0.006 }}
    routes: [ {{ provider: a, model: whisper-1, priority: 1 }}, {{ provider: b, model: whisper-1, priority: 2 }} ]
  - name: voice
    type: speech
    price: {{ per_1m_chars: 15.0 }}
    routes: [ {{ provider: a, model: tts-1 }} ]
  - name: painter
    type: image
    price: {{ per_image: 0.04 }}
    routes: [ {{ provider: a, model: gpt-image-1 }} ]
auth:
  keys: [ {{ name: team, key: {KEY} }} ]
{ledger}"#,
        a.base_url(),
        b.base_url()
    )
}

fn file_ledger() -> (std::path::PathBuf, String) {
    let path = std::env::temp_dir().join(format!("{}.jsonl", unique("audio-ledger")));
    let yaml = format!("usage: {{ sink: file, path: \"{}\" }}", path.display());
    (path, yaml)
}

/// A form as openai-python sends it (fields, then the file), or with the file first (curl's
/// `-F file=@… -F model=…`).
fn form(fields: &[(&str, &str)], file: &[u8], file_first: bool) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in fields {
        head.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let mut part = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    part.extend_from_slice(file);
    part.extend_from_slice(b"\r\n");
    let mut out = match file_first {
        true => [part, head].concat(),
        false => [head, part].concat(),
    };
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn multipart() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A WAV of `seconds` of 16 kHz 16-bit mono silence.
fn wav(seconds: u32) -> Vec<u8> {
    let data = seconds * 32_000;
    let mut wav = switchyard::upload::wav::header(16_000, data);
    wav.resize(44 + data as usize, 0);
    wav
}

async fn upload(gw: &Gateway, path: &str, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .header("content-type", multipart())
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The client's form with its model field's value replaced: what the upstream must receive.
fn rewritten(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = unsafe_latin1(body);
    let marker = format!("name=\"model\"\r\n\r\n{from}\r\n");
    let replaced = text.replacen(&marker, &format!("name=\"model\"\r\n\r\n{to}\r\n"), 1);
    assert_ne!(text, replaced, "the form has the model field");
    replaced.chars().map(|c| c as u8).collect()
}

/// Bytes as one char each, so any body can be searched and replaced as text.
fn unsafe_latin1(body: &[u8]) -> String {
    body.iter().map(|&b| b as char).collect()
}

#[tokio::test]
async fn uploads_reach_the_route_with_only_the_model_rewritten_in_every_format() {
    let (a, b) = (MockMedia::start().await, MockMedia::start().await);
    let (ledger, yaml) = file_ledger();
    let gw = Gateway::start(&config(&a, &b, &yaml, 25 << 20)).await;

    // openai-python's order, the whisper JSON answer: seconds from its usage.
    let body = form(
        &[("model", "ears"), ("response_format", "json")],
        &wav(3),
        false,
    );
    let answer = upload(&gw, "/v1/audio/transcriptions", body.clone()).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let json: Value = answer.json().await.unwrap();
    assert_eq!(json["text"], "the quick brown fox");
    let sent = &a.uploads()[0];
    assert_eq!(sent.path, "/v1/audio/transcriptions");
    assert_eq!(sent.content_type, multipart(), "the client's boundary");
    assert_eq!(sent.body, rewritten(&body, "ears", "whisper-1"));
    assert_eq!(sent.content_length, Some(sent.body.len()));

    // Text formats relayed as text with the upstream's type; seconds from the WAV's header.
    let body = form(
        &[("model", "ears"), ("response_format", "srt")],
        &wav(5),
        false,
    );
    let answer = upload(&gw, "/v1/audio/transcriptions", body).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .starts_with("1\n00:00:00,000 --> ")
    );

    // A translation's verbose answer: its duration, rounded up.
    let body = form(
        &[("model", "ears"), ("response_format", "verbose_json")],
        b"ID3 mp3",
        false,
    );
    let answer = upload(&gw, "/v1/audio/translations", body).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(a.uploads()[2].path, "/v1/audio/translations");

    // stream=true: the transcript events as they come, usage from the done event.
    let body = form(&[("model", "ears"), ("stream", "true")], &wav(1), false);
    let answer = upload(&gw, "/v1/audio/transcriptions", body).await;
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    let events = answer.text().await.unwrap();
    assert!(events.contains("transcript.text.delta") && events.contains("transcript.text.done"));

    // An image edit without a model: the first image model serves, its name written in.
    let mut body = form(&[("prompt", "add a hat")], b"\x89PNG...", false);
    let text = unsafe_latin1(&body).replace("name=\"file\"", "name=\"image[]\"");
    body = text.chars().map(|c| c as u8).collect();
    let answer = upload(&gw, "/v1/images/edits", body.clone()).await;
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let sent = &a.uploads()[4];
    assert_eq!(sent.path, "/v1/images/edits");
    let expected = [
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-image-1\r\n"
        )
        .into_bytes(),
        body,
    ]
    .concat();
    assert_eq!(sent.body, expected);

    // /v1/usage adds up the units: 9 + 5 + 1 (the streamed one's WAV) seconds transcribed and 9
    // translated by `ears`; two images by `painter`.
    let usage = || {
        crate::harness::json_of(
            client()
                .get(gw.url("/v1/usage?group_by=model"))
                .bearer_auth(KEY),
        )
    };
    crate::harness::eventually(
        Duration::from_secs(5),
        "five rows in the ledger",
        || async {
            let totals = usage().await;
            let rows = totals["data"].as_array().cloned().unwrap_or_default();
            rows.iter()
                .map(|r| r["requests"].as_i64().unwrap_or(0))
                .sum::<i64>()
                == 5
        },
    )
    .await;
    let totals = usage().await;
    let model = |name: &str| {
        totals["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(model("ears")["units"]["seconds"], 24, "{totals}");
    assert_eq!(model("painter")["units"]["images"], 2, "{totals}");

    gw.shutdown().await;
    let rows = ledger_rows(&ledger);
    let by_purpose =
        |p: &str| -> Vec<&Value> { rows.iter().filter(|r| r["purpose"] == p).collect() };
    let t = by_purpose("transcription");
    assert_eq!(t.len(), 3);
    assert_eq!(
        (t[0]["units"].as_f64(), t[0]["unit"].as_str()),
        (Some(9.0), Some("seconds"))
    );
    // 9 s at $0.006 a minute.
    assert_eq!(t[0]["cost"], "0.0009000000");
    assert_eq!(
        t[1]["units"].as_f64(),
        Some(5.0),
        "the WAV header's seconds"
    );
    assert_eq!(
        (
            t[2]["input_tokens"].as_i64(),
            t[2]["output_tokens"].as_i64()
        ),
        (Some(14), Some(45))
    );
    let tr = by_purpose("translation");
    assert_eq!(tr[0]["units"].as_f64(), Some(9.0), "8.47 s rounded up");
    let image = by_purpose("image");
    assert_eq!(
        (image[0]["units"].as_f64(), image[0]["cost"].as_str()),
        (Some(2.0), Some("0.0800000000"))
    );
}

#[tokio::test]
async fn bad_forms_are_refused_before_any_upstream_call() {
    let (a, b) = (MockMedia::start().await, MockMedia::start().await);
    let gw = Gateway::start(&config(&a, &b, "usage: { sink: none }", 64 * 1024)).await;
    let good = form(&[("model", "ears")], &wav(1), false);
    let multipart = multipart();
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            b"{\"model\":\"ears\"}".to_vec(),
            "application/json",
            400,
            "multipart/form-data",
        ),
        (good.clone(), "multipart/form-data", 400, "no boundary"),
        (
            good[..good.len() - 8].to_vec(),
            &multipart,
            400,
            "closing boundary",
        ),
        (form(&[], &wav(1), false), &multipart, 400, "model"),
        (
            without_file(form(&[("model", "ears")], b"", false)),
            &multipart,
            400,
            "'file'",
        ),
        (
            form(&[("model", "chat")], &wav(1), false),
            &multipart,
            400,
            "chat model",
        ),
        (
            form(&[("model", "nope")], &wav(1), false),
            &multipart,
            404,
            "does not exist",
        ),
        (
            form(&[("model", "ears")], &wav(3), false),
            &multipart,
            413,
            "max_upload_bytes",
        ),
    ];
    for (body, content_type, status, says) in cases {
        let answer = client()
            .post(gw.url("/v1/audio/transcriptions"))
            .bearer_auth(KEY)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{says}");
        let error: Value = answer.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message:?} should say {says:?}");
    }
    // Over the limit without a length announced: refused as it passes the limit.
    let body = form(&[("model", "ears")], &wav(3), false);
    let stream = futures_util::stream::iter(
        body.chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let answer = client()
        .post(gw.url("/v1/audio/transcriptions"))
        .bearer_auth(KEY)
        .header("content-type", &multipart)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    // A chunked upload far over the limit, written whole before the answer is read (more than
    // the sockets hold): the client reads the 413, never a reset.
    let mut request = format!(
        "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: {multipart}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let body = form(&[("model", "ears")], &vec![0u8; 16 << 20], false);
    for piece in body.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    for _ in 0..5 {
        let (mut read, mut write) = tokio::net::TcpStream::connect(gw.addr)
            .await
            .unwrap()
            .into_split();
        let request = request.clone();
        let written =
            tokio::spawn(
                async move { tokio::io::AsyncWriteExt::write_all(&mut write, &request).await },
            );
        let written = tokio::time::timeout(Duration::from_secs(10), written)
            .await
            .unwrap()
            .unwrap();
        let mut answer = vec![0u8; 1024];
        let n = tokio::io::AsyncReadExt::read(&mut read, &mut answer)
            .await
            .unwrap();
        assert!(written.is_ok(), "{written:?}");
        assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"));
    }
    assert!(
        a.uploads().is_empty() && b.uploads().is_empty(),
        "no upstream was called"
    );
}

/// A form with its file part's name changed, so it has no `file`.
fn without_file(body: Vec<u8>) -> Vec<u8> {
    unsafe_latin1(&body)
        .replace("name=\"file\"", "name=\"attachment\"")
        .chars()
        .map(|c| c as u8)
        .collect()
}

#[tokio::test]
async fn a_long_upload_streams_to_the_route_before_the_client_has_sent_it_all() {
    let (a, b) = (MockMedia::start().await, MockMedia::start().await);
    let gw = Gateway::start(&config(&a, &b, "usage: { sink: none }", 25 << 20)).await;
    // 4 MiB of audio: the first 3 MiB sent, then the client waits until the upstream has more
    // than the gateway keeps (1 MiB) before sending the rest. A gateway that buffered the whole
    // upload would never get there: the test would time out.
    let body = form(&[("model", "ears")], &vec![7u8; 4 << 20], false);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = tokio_stream_from(rx);
    let request = client()
        .post(gw.url("/v1/audio/transcriptions"))
        .bearer_auth(KEY)
        .header("content-type", multipart())
        .header("content-length", body.len())
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let sender = {
        let body = body.clone();
        let a = a.state.clone();
        async move {
            let split = 3 << 20;
            for piece in body[..split].chunks(64 * 1024) {
                tx.send(Ok(Bytes::copy_from_slice(piece))).await.unwrap();
            }
            let waited = tokio::time::timeout(Duration::from_secs(10), async {
                while a.receiving.load(std::sync::atomic::Ordering::SeqCst) <= 2 << 20 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            assert!(
                waited.is_ok(),
                "the upstream got under 2 MiB of a 3 MiB start"
            );
            for piece in body[split..].chunks(64 * 1024) {
                tx.send(Ok(Bytes::copy_from_slice(piece))).await.unwrap();
            }
        }
    };
    let (answer, ()) = tokio::join!(request, sender);
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200);
    let sent = &a.uploads()[0];
    assert_eq!(sent.body, rewritten(&body, "ears", "whisper-1"));
    assert_eq!(
        sent.content_length,
        Some(sent.body.len()),
        "the length recomputed"
    );

    // A long upload that failed upstream after it was sent is not sent again: the failure is
    // the answer.
    a.next(&[Behavior::Status(500)]);
    let answer = upload(&gw, "/v1/audio/transcriptions", body.clone()).await;
    assert_eq!(answer.status(), 502, "{}", answer.text().await.unwrap());
    assert!(b.uploads().is_empty(), "not retried on b");

    // A short one is: the whole body is in hand.
    a.next(&[Behavior::Status(500)]);
    let short = form(&[("model", "ears")], &wav(1), false);
    let answer = upload(&gw, "/v1/audio/transcriptions", short.clone()).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(b.uploads()[0].body, rewritten(&short, "ears", "whisper-1"));

    // A long file sent before its model (curl's order): spooled, then sent whole, retryable.
    a.next(&[Behavior::Status(500)]);
    let late = form(&[("model", "ears")], &vec![9u8; 3 << 20], true);
    let answer = upload(&gw, "/v1/audio/transcriptions", late.clone()).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(b.uploads()[1].body, rewritten(&late, "ears", "whisper-1"));
}

/// A channel's receiver as a stream.
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[tokio::test]
async fn speech_reaches_the_client_as_it_is_made_and_a_cut_is_not_an_end() {
    let (a, b) = (MockMedia::start().await, MockMedia::start().await);
    let (ledger, yaml) = file_ledger();
    let gw = Gateway::start(&config(&a, &b, &yaml, 25 << 20)).await;
    let ask = json!({"model": "voice", "input": "héllo wörld", "voice": "alloy", "response_format": "flac"});
    let speak = || {
        client()
            .post(gw.url("/v1/audio/speech"))
            .bearer_auth(KEY)
            .json(&ask)
            .send()
    };
    // Each piece is released only once the client holds the one before: a gateway that waited
    // for the whole answer would never deliver the first.
    a.release(1);
    let answer = speak().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "audio/flac",
        "the upstream's type"
    );
    let mut body = answer.bytes_stream();
    let mut got = Vec::new();
    let mut released = 1;
    while got.len() < SPEECH_PIECES * PIECE {
        let piece = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .unwrap_or_else(|_| panic!("piece {released} never came"))
            .unwrap()
            .unwrap();
        got.extend_from_slice(&piece);
        // A whole piece in hand: let the upstream make the next.
        if got.len() == released * PIECE && released < SPEECH_PIECES {
            a.release(1);
            released += 1;
        }
    }
    assert!(body.next().await.is_none());
    assert_eq!(got.len(), SPEECH_PIECES * PIECE);
    let sent: Value = serde_json::from_slice(&a.uploads()[0].body).unwrap();
    assert_eq!(sent["model"], "tts-1");

    // Cut after one piece: the client's body fails instead of ending as if whole.
    a.next(&[Behavior::CutAfter(1)]);
    a.release(1);
    let answer = speak().await.unwrap();
    let status = answer.status();
    if status != 200 {
        panic!("{status}: {}", answer.text().await.unwrap());
    }
    assert!(
        answer.bytes().await.is_err(),
        "a cut answer must not end cleanly"
    );

    gw.shutdown().await;
    let rows = ledger_rows(&ledger);
    assert_eq!(rows[0]["purpose"], "speech");
    assert_eq!(
        (rows[0]["units"].as_f64(), rows[0]["unit"].as_str()),
        (Some(11.0), Some("characters"))
    );
    // 11 characters at $15 per million.
    assert_eq!(rows[0]["cost"], "0.0001650000");
    assert_eq!(rows[0]["status"], "ok");
    assert_eq!(rows[1]["status"], "error");
}

#[tokio::test]
async fn a_budget_reserves_what_is_known_before_the_answer() {
    let (a, b) = (MockMedia::start().await, MockMedia::start().await);
    let yaml = config(&a, &b, "usage: { sink: none }", 25 << 20).replace(
        &format!("{{ name: team, key: {KEY} }}"),
        &format!("{{ name: team, key: {KEY}, budget: {{ usd: 0.01, period: day }} }}"),
    );
    let gw = Gateway::start(&yaml).await;
    let speak = |input: String| {
        client()
            .post(gw.url("/v1/audio/speech"))
            .bearer_auth(KEY)
            .json(&json!({"model": "voice", "input": input, "voice": "alloy"}))
            .send()
    };
    // 1,000 characters at $15 a million: $0.015 reserved at admission, while the upstream has
    // not yet made a sound (the mock holds its first piece).
    let first = tokio::spawn(speak("x".repeat(1000)));
    crate::harness::eventually(
        Duration::from_secs(5),
        "the first speech is upstream",
        || {
            let seen = a.uploads().len();
            async move { seen == 1 }
        },
    )
    .await;
    // The budget is spent by what the first will cost: the next is refused before any upstream.
    let answer = speak("y".repeat(10)).await.unwrap();
    assert_eq!(answer.status(), 429);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["error"]["code"], "insufficient_quota");
    assert_eq!(a.uploads().len(), 1);
    a.release(SPEECH_PIECES);
    let answer = first.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    answer.bytes().await.unwrap();
}
