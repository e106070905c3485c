//! The client against a raw TCP upstream whose every byte the test writes.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::*;

/// What the upstream does after answering a request.
#[derive(Clone, Copy)]
enum Then {
    KeepOpen,
    Close,
    /// Resets the connection (SO_LINGER 0) instead of a clean close.
    Reset,
    /// Sends more bytes a moment later, as a body the framing gave no room for.
    Trail(&'static [u8]),
}

/// Answers each request, on whatever connection it comes, with the next scripted response;
/// counts connections and requests.
struct Upstream {
    origin: Origin,
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(script: Vec<(&'static [u8], Then)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (a, r) = (accepted.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut io, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (r, script) = (r.clone(), script.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(len) = read_request(&mut io, &mut buf).await else {
                            return;
                        };
                        buf.drain(..len);
                        let n = r.fetch_add(1, Ordering::SeqCst);
                        let Some((answer, then)) = script.get(n).copied() else {
                            return;
                        };
                        if io.write_all(answer).await.is_err() {
                            return;
                        }
                        match then {
                            Then::KeepOpen => {}
                            Then::Close => return,
                            Then::Reset => {
                                // Deprecated for blocking on drop; a zero linger never blocks.
                                #[allow(deprecated)]
                                let _ = io.set_linger(Some(Duration::ZERO));
                                return;
                            }
                            Then::Trail(more) => {
                                tokio::time::sleep(Duration::from_millis(30)).await;
                                if io.write_all(more).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        let uri: Uri = format!("http://127.0.0.1:{port}/v1").parse().expect("uri");
        Self {
            origin: Origin::of(&uri).expect("origin"),
            accepted,
            requests,
        }
    }

    async fn post(&self, body: &'static str) -> Result<Response, Failure> {
        let head = self.origin.head(
            "POST",
            "/v1/chat/completions",
            &[b"content-type: application/json"],
        );
        self.origin
            .send(&head, b"", Some(&Bytes::from_static(body.as_bytes())))
            .await
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
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
        let mut chunk = [0u8; 4096];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn read_all(mut body: Body) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";

#[tokio::test]
async fn a_connection_is_reused_once_its_answer_is_read() {
    let up = Upstream::start(vec![
        (OK, Then::KeepOpen),
        (CHUNKED, Then::KeepOpen),
        (OK, Then::KeepOpen),
    ])
    .await;
    for expected in [
        &b"{\"ok\":true}"[..],
        b"data: a\n\ndata: [DONE]\n\n",
        b"{\"ok\":true}",
    ] {
        let response = up.post("{}").await.expect("answered");
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(read_all(response.body).await.expect("body"), expected);
    }
    assert_eq!(up.requests(), 3);
    assert_eq!(up.accepted(), 1, "one connection carried all three");
    assert_eq!(pool::idle_count(&up.origin.addr), 1);
}

#[tokio::test]
async fn the_last_piece_returns_the_connection_even_if_the_reader_stops_there() {
    let up = Upstream::start(vec![(CHUNKED, Then::KeepOpen), (OK, Then::KeepOpen)]).await;
    let mut body = up.post("{}").await.expect("answered").body;
    // Read up to the [DONE] event and stop, as a relay that has seen the end would.
    let mut seen = Vec::new();
    while !seen.ends_with(b"[DONE]\n\n") {
        seen.extend_from_slice(&body.next().await.expect("piece").expect("data"));
    }
    drop(body);
    read_all(up.post("{}").await.expect("answered").body)
        .await
        .expect("body");
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn a_body_dropped_midway_closes_its_connection() {
    const SLOW: &[u8] =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n";
    let up = Upstream::start(vec![(SLOW, Then::KeepOpen), (OK, Then::KeepOpen)]).await;
    let mut body = up.post("{}").await.expect("answered").body;
    assert_eq!(
        body.next().await.expect("piece").expect("data"),
        &b"data: a\n\n"[..]
    );
    drop(body);
    assert_eq!(pool::idle_count(&up.origin.addr), 0);
    read_all(up.post("{}").await.expect("answered").body)
        .await
        .expect("body");
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let up = Upstream::start(vec![(OK, Then::Close), (OK, Then::KeepOpen)]).await;
    read_all(up.post("{}").await.expect("answered").body)
        .await
        .expect("body");
    // The upstream's FIN reaches the reactor while the connection sits idle.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = up.post("{}").await.expect("answered on a new connection");
    assert_eq!(
        read_all(response.body).await.expect("body"),
        b"{\"ok\":true}"
    );
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn connection_close_and_close_delimited_bodies_are_not_reused() {
    const CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi";
    const UNTIL_CLOSE: &[u8] =
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\nupstream down";
    let up = Upstream::start(vec![
        (CLOSE, Then::Close),
        (UNTIL_CLOSE, Then::Close),
        (OK, Then::KeepOpen),
    ])
    .await;
    assert_eq!(
        read_all(up.post("{}").await.expect("answered").body)
            .await
            .expect("body"),
        b"hi"
    );
    let response = up.post("{}").await.expect("answered");
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        read_all(response.body).await.expect("body"),
        b"upstream down"
    );
    read_all(up.post("{}").await.expect("answered").body)
        .await
        .expect("body");
    assert_eq!(up.accepted(), 3);
}

#[tokio::test]
async fn an_upstream_that_sends_more_than_its_answer_is_not_reused() {
    const TOO_MUCH: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n";
    let up = Upstream::start(vec![(TOO_MUCH, Then::KeepOpen), (OK, Then::KeepOpen)]).await;
    assert_eq!(
        read_all(up.post("{}").await.expect("answered").body)
            .await
            .expect("body"),
        b"ok"
    );
    assert_eq!(pool::idle_count(&up.origin.addr), 0, "out of step: closed");
    read_all(up.post("{}").await.expect("answered").body)
        .await
        .expect("body");
    assert_eq!(up.accepted(), 2);
}

/// Each head announces a body its status or version cannot have (or frames it two ways); the
/// upstream sends that body a moment later. Reused, the connection would hand those bytes, here a
/// well-formed answer of their own, to the next request as its answer.
#[tokio::test]
async fn a_head_whose_framing_is_suspect_is_never_reused() {
    const STALE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nSTALE";
    const SUSPECT: [&[u8]; 6] = [
        b"HTTP/1.1 204 No Content\r\ncontent-length: 43\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\ncontent-length: 43\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    ];
    for suspect in SUSPECT {
        let up = Upstream::start(vec![(suspect, Then::Trail(STALE)), (OK, Then::KeepOpen)]).await;
        let shown = String::from_utf8_lossy(suspect).into_owned();
        let first = up.post("{}").await.expect("answered");
        read_all(first.body).await.expect("body");
        assert_eq!(pool::idle_count(&up.origin.addr), 0, "{shown}");
        // The trailing bytes arrive while the next request is under way.
        let second = up.post("{}").await.expect("answered");
        assert_eq!(
            read_all(second.body).await.expect("body"),
            b"{\"ok\":true}",
            "{shown}"
        );
        assert_eq!(up.accepted(), 2, "{shown}");
    }
}

#[tokio::test]
async fn a_switch_of_protocols_nobody_asked_for_is_refused() {
    const SWITCH: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n";
    let up = Upstream::start(vec![(SWITCH, Then::KeepOpen)]).await;
    // Taken for an interim answer, the switch would leave the client waiting for another head.
    let answer = tokio::time::timeout(Duration::from_secs(5), up.post("{}")).await;
    assert!(matches!(answer, Ok(Err(Failure::Exchange(_)))));
    assert_eq!(pool::idle_count(&up.origin.addr), 0);
}

/// An upstream closes an idle connection just as the gateway reuses it: the request goes again,
/// once, on a new connection, whether the close was a FIN or a reset.
#[tokio::test]
async fn a_pooled_connection_that_ends_before_any_answer_is_retried_once_on_a_new_one() {
    for close in [Then::Close, Then::Reset] {
        let up = Upstream::start(vec![
            (OK, Then::KeepOpen),
            (b"", close),
            (OK, Then::KeepOpen),
        ])
        .await;
        for _ in 0..2 {
            let response = up.post("{}").await.expect("answered");
            assert_eq!(
                read_all(response.body).await.expect("body"),
                b"{\"ok\":true}"
            );
        }
        assert_eq!((up.accepted(), up.requests()), (2, 3));
    }
    // Once: a new connection that fails too is the route's failure.
    let up = Upstream::start(vec![
        (OK, Then::KeepOpen),
        (b"", Then::Close),
        (b"", Then::Close),
    ])
    .await;
    read_all(up.post("{}").await.expect("answered").body)
        .await
        .expect("body");
    assert!(matches!(up.post("{}").await, Err(Failure::Exchange(_))));
    assert_eq!((up.accepted(), up.requests()), (2, 3));
    // A connection that had begun its answer is not retried.
    const CUT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-le";
    let up = Upstream::start(vec![(OK, Then::KeepOpen), (CUT, Then::Close)]).await;
    read_all(up.post("{}").await.expect("answered").body)
        .await
        .expect("body");
    assert!(matches!(up.post("{}").await, Err(Failure::Exchange(_))));
    assert_eq!((up.accepted(), up.requests()), (1, 2));
}

#[tokio::test]
async fn a_head_past_the_bound_is_refused_even_in_one_write() {
    static BIG: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while head.len() < 2 * framing::MAX_HEAD {
            head.extend_from_slice(format!("x-filler: {}\r\n", "a".repeat(4000)).as_bytes());
        }
        head.extend_from_slice(b"content-length: 2\r\n\r\nhi");
        head
    });
    let up = Upstream::start(vec![(BIG.as_slice(), Then::KeepOpen)]).await;
    assert!(matches!(up.post("{}").await, Err(Failure::Exchange(_))));
}

#[tokio::test]
async fn interim_answers_are_skipped_and_hints_read() {
    const LIMITED: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nretry-after-ms: 1500\r\ncontent-length: 2\r\n\r\n{}";
    let up = Upstream::start(vec![(LIMITED, Then::KeepOpen)]).await;
    let response = up.post("{}").await.expect("answered");
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.retry_after, Some(Duration::from_millis(1500)));
    assert_eq!(read_all(response.body).await.expect("body"), b"{}");
}

#[tokio::test]
async fn failures_say_whether_a_connection_was_made() {
    const CUT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial";
    let up = Upstream::start(vec![(b"", Then::Close), (CUT, Then::Close)]).await;
    assert!(matches!(up.post("{}").await, Err(Failure::Exchange(_))));
    let body = up.post("{}").await.expect("head arrived").body;
    let e = read_all(body).await.expect_err("cut short");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let uri: Uri = format!("http://{}/v1", closed.local_addr().expect("addr"))
        .parse()
        .expect("uri");
    drop(closed);
    let origin = Origin::of(&uri).expect("origin");
    let head = origin.head("GET", "/v1/models", &[]);
    assert!(matches!(
        origin.send(&head, b"", None).await,
        Err(Failure::Connect(_))
    ));
}

#[test]
fn origins_are_plain_http_with_a_port() {
    let origin = Origin::of(&"http://vllm.internal/v1".parse().expect("uri")).expect("origin");
    assert_eq!(&*origin.addr, "vllm.internal:80");
    assert_eq!(origin.port, 80);
    let origin = Origin::of(&"http://[::1]:8000/v1".parse().expect("uri")).expect("origin");
    assert_eq!(
        (&*origin.addr, origin.host.as_str(), origin.port),
        ("[::1]:8000", "::1", 8000)
    );
    assert!(Origin::of(&"https://api.openai.com/v1".parse().expect("uri")).is_err());
    let with_userinfo = Origin::of(
        &"http://user:secret@llm.internal:8080/v1"
            .parse()
            .expect("uri"),
    )
    .expect("origin");
    assert_eq!(
        &*with_userinfo.addr, "llm.internal:8080",
        "no userinfo in the host header"
    );
    let head = origin.head("POST", "/v1/embeddings", &[b"authorization: Bearer k"]);
    assert_eq!(
        head,
        b"POST /v1/embeddings HTTP/1.1\r\nhost: [::1]:8000\r\nauthorization: Bearer k\r\n"
    );
}

/// An upload upstream: reads each request's head and body (content-length or chunked, decoded
/// here as RFC 9112 §7.1 says), answers with the body's length and a digest of it, and reports
/// what it received (`None`: the body never ended).
async fn upload_upstream() -> (
    Origin,
    tokio::sync::mpsc::UnboundedReceiver<Option<(String, Vec<u8>)>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut io, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let got = read_upload(&mut io).await;
                let answer = got.as_ref().map(|(_, body)| {
                    let text = format!("{}:{:x}", body.len(), fnv(body));
                    format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}", text.len())
                });
                let _ = tx.send(got);
                if let Some(answer) = answer {
                    let _ = io.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    let uri: Uri = format!("http://127.0.0.1:{port}/v1").parse().expect("uri");
    (Origin::of(&uri).expect("origin"), rx)
}

/// A request's head and decoded body; `None` if the connection ended first.
async fn read_upload(io: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        read_more(io, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    buf.drain(..end + 4);
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        let length: usize = length.trim().parse().ok()?;
        while buf.len() < length {
            read_more(io, &mut buf).await?;
        }
        return Some((head, buf[..length].to_vec()));
    }
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                break at;
            }
            read_more(io, &mut buf).await?;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).ok()?, 16).ok()?;
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            read_more(io, &mut buf).await?;
        }
        if &buf[size..size + 2] != b"\r\n" {
            return None;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if size == 0 {
            return Some((head, body));
        }
    }
}

async fn read_more(io: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match io.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pieces(seed: u8, sizes: &[usize]) -> Vec<Bytes> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, n)| Bytes::from(vec![seed.wrapping_add(i as u8); *n]))
        .collect()
}

async fn upload(
    origin: &Origin,
    length: Option<u64>,
    body: Vec<Result<Bytes, GatewayError>>,
) -> Result<Response, Failure> {
    let head = origin.head("POST", "/v1/audio/transcriptions", &[]);
    origin
        .send_streamed(
            &head,
            b"",
            b"multipart/form-data; boundary=x",
            length,
            futures_util::stream::iter(body),
        )
        .await
}

#[tokio::test]
async fn an_upload_goes_chunked_without_a_length_and_as_it_is_with_one() {
    let (origin, mut seen) = upload_upstream().await;
    // Sizes around the chunk-size line's digits, and an empty piece (never an early `0` chunk).
    let body = pieces(1, &[1, 15, 16, 255, 0, 4096, 70_000]);
    let whole: Vec<u8> = body.iter().flat_map(|b| b.to_vec()).collect();
    let response = upload(&origin, None, body.iter().cloned().map(Ok).collect())
        .await
        .expect("answered");
    assert_eq!(
        response.content_type.as_ref().map(|v| v.as_bytes()),
        Some(&b"text/plain"[..])
    );
    let answer = read_all(response.body).await.expect("read");
    assert_eq!(
        answer,
        format!("{}:{:x}", whole.len(), fnv(&whole)).into_bytes()
    );
    let (head, got) = seen.recv().await.flatten().expect("a whole body");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(
        head.contains("content-type: multipart/form-data; boundary=x"),
        "{head}"
    );
    assert_eq!(got, whole);

    let length = Some(whole.len() as u64);
    let response = upload(&origin, length, body.into_iter().map(Ok).collect())
        .await
        .expect("answered");
    read_all(response.body).await.expect("read");
    let (head, got) = seen.recv().await.flatten().expect("a whole body");
    assert!(
        head.contains(&format!("content-length: {}", whole.len())),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(got, whole);
}

#[tokio::test]
async fn an_upload_that_breaks_off_abandons_its_connection_with_its_own_error() {
    let (origin, mut seen) = upload_upstream().await;
    let broken = vec![
        Ok(Bytes::from_static(b"--x\r\n")),
        Err(GatewayError::invalid_request("the client's form broke")),
    ];
    match upload(&origin, None, broken).await {
        Err(Failure::Body(e)) => assert_eq!(e.message(), "the client's form broke"),
        other => panic!(
            "expected the body's failure, got {:?}",
            other.map(|r| r.status)
        ),
    }
    // The upstream saw the connection end without the last chunk: no complete request.
    assert_eq!(seen.recv().await, Some(None));
}

#[tokio::test]
async fn concurrent_uploads_each_get_their_own_answer() {
    let (origin, _seen) = upload_upstream().await;
    let uploads = (0..16u8).map(|i| {
        let origin = origin.clone();
        async move {
            let body = pieces(i, &[1000 + usize::from(i) * 7, 30_000, 3]);
            let whole: Vec<u8> = body.iter().flat_map(|b| b.to_vec()).collect();
            let length = (i % 2 == 0).then_some(whole.len() as u64);
            let response = upload(&origin, length, body.into_iter().map(Ok).collect())
                .await
                .expect("answered");
            let answer = read_all(response.body).await.expect("read");
            answer == format!("{}:{:x}", whole.len(), fnv(&whole)).into_bytes()
        }
    });
    let crossed = futures_util::future::join_all(uploads)
        .await
        .into_iter()
        .filter(|own| !own)
        .count();
    assert_eq!(crossed, 0, "answers crossed between uploads");
}
