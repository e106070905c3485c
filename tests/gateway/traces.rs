//! OpenTelemetry traces: an OTLP/HTTP receiver in the test decodes what the gateway exports with
//! the official generated protobuf types (opentelemetry-proto). A client's `traceparent` is
//! continued; a fallback from A to B shows two attempt spans under the server span; each
//! upstream request carries its attempt's `traceparent`; a collector that is down slows nothing
//! and its dropped spans are counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::harness::{Gateway, client, post_as};
use crate::mock_openai::{Behavior, MockOpenAi};
use crate::mock_server::{self, Body};

/// An OTLP/HTTP collector: every span of every batch it was sent, and the service name.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    async fn start(&self) -> std::net::SocketAddr {
        let me = self.clone();
        let (addr, _task) = mock_server::spawn(move |req: Request<Incoming>| {
            let me = me.clone();
            async move {
                assert_eq!(req.uri().path(), "/v1/traces");
                assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                let export = ExportTraceServiceRequest::decode(bytes).expect("valid OTLP protobuf");
                for rs in export.resource_spans {
                    for kv in rs.resource.map(|r| r.attributes).unwrap_or_default() {
                        if kv.key == "service.name" {
                            me.services.lock().unwrap().push(string_of(&kv.value));
                        }
                    }
                    for ss in rs.scope_spans {
                        me.spans.lock().unwrap().extend(ss.spans);
                    }
                }
                Ok::<Response<Body>, std::convert::Infallible>(mock_server::json_response(
                    StatusCode::OK,
                    &json!({}),
                ))
            }
        })
        .await;
        addr
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

fn string_of(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| string_of(&kv.value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn config(a: &MockOpenAi, b: &MockOpenAi, collector: &str) -> String {
    format!(
        "providers:
  - {{ id: a, kind: openai, base_url: \"{}\", api_key: sk-a, health_check: {{ enabled: false }} }}
  - {{ id: b, kind: openai, base_url: \"{}\", api_key: sk-b, health_check: {{ enabled: false }} }}
models:
  - name: chat
    routes: [{{ provider: a, model: up-a, priority: 1 }}, {{ provider: b, model: up-b, priority: 2 }}]
auth:
  keys: [ {{ name: team, key: sk-team }} ]
tracing:
  otlp_endpoint: {collector}
  service_name: switchyard-test
",
        a.base_url(),
        b.base_url()
    )
}

/// A gateway exporting to a fresh collector (`extra`: more config lines).
async fn traced_gateway(a: &MockOpenAi, b: &MockOpenAi, extra: &str) -> (Gateway, Collector) {
    let collector = Collector::default();
    let addr = collector.start().await;
    let gw = Gateway::start(&(config(a, b, &format!("http://{addr}")) + extra)).await;
    (gw, collector)
}

/// A chat request as key `team`, with a client `traceparent` if given.
async fn ask(
    gw: &Gateway,
    body: serde_json::Value,
    traceparent: Option<String>,
) -> reqwest::Response {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-team")
        .json(&body);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.send().await.unwrap()
}

fn hi() -> serde_json::Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_fallback_shows_two_attempt_spans_under_the_server_span_in_the_clients_trace() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let (gw, collector) = traced_gateway(&a, &b, "").await;
    a.next(1, Behavior::Status(500, vec![]));
    let response = ask(
        &gw,
        hi(),
        Some(format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-01")),
    )
    .await;
    assert_eq!(response.status(), 200);

    // Exported within the exporter's linger (1 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    let spans = loop {
        let spans = collector.spans();
        if spans
            .iter()
            .filter(|s| hex(&s.trace_id) == CLIENT_TRACE)
            .count()
            >= 3
        {
            break spans;
        }
        assert!(Instant::now() < deadline, "spans exported: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(collector.services.lock().unwrap()[0], "switchyard-test");
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == CLIENT_TRACE)
        .collect();
    let server = in_trace
        .iter()
        .find(|s| s.kind == 2)
        .expect("a server span");
    assert_eq!(
        hex(&server.parent_span_id),
        CLIENT_PARENT,
        "continues the client's span"
    );
    assert_eq!(server.name, "POST /v1/chat/completions");
    for (key, value) in [
        ("http.request.method", "POST"),
        ("http.route", "/v1/chat/completions"),
        ("url.path", "/v1/chat/completions"),
        ("http.response.status_code", "200"),
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.system", "openai"),
        ("gen_ai.request.model", "chat"),
        ("gen_ai.response.model", "up-b"),
        ("gen_ai.usage.input_tokens", "19"),
        ("gen_ai.usage.output_tokens", "10"),
        ("switchyard.key", "team"),
        ("switchyard.attempts", "2"),
    ] {
        assert_eq!(
            attr(server, key).as_deref(),
            Some(value),
            "{key}: {server:#?}"
        );
    }
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    let mut attempts: Vec<&&Span> = in_trace
        .iter()
        .filter(|s| s.kind == 3 && s.parent_span_id == server.span_id)
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 2, "{in_trace:#?}");
    assert_eq!(
        attr(attempts[0], "switchyard.provider").as_deref(),
        Some("a")
    );
    assert_eq!(
        attempts[0].status.as_ref().map(|s| s.code),
        Some(2),
        "the failed attempt is an error"
    );
    assert_eq!(
        attr(attempts[0], "error.type").as_deref(),
        Some("upstream_failed")
    );
    assert_eq!(
        attr(attempts[1], "switchyard.provider").as_deref(),
        Some("b")
    );
    assert_eq!(
        attr(attempts[1], "gen_ai.request.model").as_deref(),
        Some("up-b")
    );
    assert_ne!(attempts[1].status.as_ref().map(|s| s.code), Some(2));

    // Each upstream request carried its own attempt's span as traceparent.
    for (mock, attempt) in [(&a, attempts[0]), (&b, attempts[1])] {
        let sent = mock.requests().last().unwrap().headers["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            sent,
            format!("00-{CLIENT_TRACE}-{}-01", hex(&attempt.span_id))
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_span_ends_with_the_stream_and_an_unsampled_parent_is_followed() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let (gw, collector) = traced_gateway(&a, &b, "").await;
    let mut stream = hi();
    stream["stream"] = json!(true);
    let response = ask(&gw, stream, None).await;
    let opened = Instant::now();
    let text = response.text().await.unwrap();
    let streamed_for = opened.elapsed();
    assert!(text.contains("[DONE]"));
    // An unsampled client trace is not recorded (nor is anything sent upstream for it).
    ask(
        &gw,
        hi(),
        Some(format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-00")),
    )
    .await;
    assert!(
        a.requests()
            .last()
            .unwrap()
            .headers
            .get("traceparent")
            .is_none()
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    let server = loop {
        if let Some(s) = collector.spans().into_iter().find(|s| s.kind == 2) {
            break s;
        }
        assert!(Instant::now() < deadline, "no server span exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The stream's usage chunk reached the span: it ended with the stream, not at its headers.
    assert_eq!(
        attr(&server, "gen_ai.usage.output_tokens").as_deref(),
        Some("16"),
        "{server:#?}"
    );
    let lasted = Duration::from_nanos(server.end_time_unix_nano - server.start_time_unix_nano);
    assert!(
        lasted >= streamed_for.saturating_sub(Duration::from_millis(5)),
        "{lasted:?} vs {streamed_for:?}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| hex(&s.trace_id) != CLIENT_TRACE),
        "the unsampled trace was not recorded"
    );
    gw.shutdown().await;
}

/// A collector that accepts connections and never answers: requests are as fast as without
/// tracing, and the spans it cannot take are counted as dropped.
#[tokio::test]
async fn a_collector_that_hangs_slows_nothing_and_drops_are_counted() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let gw = Gateway::start(&format!(
        "{}  max_queue: 8\n",
        config(&a, &b, &format!("http://{silent_addr}"))
    ))
    .await;
    // 800 spans: the exporter holds one batch (at most 512) while its POST hangs, the queue holds
    // 8, the rest is dropped.
    let started = Instant::now();
    for _ in 0..400 {
        assert_eq!(ask(&gw, hi(), None).await.status(), 200);
    }
    // 400 requests through a mock take a second or so; a request that waited on the collector
    // would wait out the exporter's 10 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    let dropped = crate::harness::metric(
        &gw,
        "gateway_trace_spans_dropped_total{reason=\"queue_full\"}",
    )
    .await;
    assert!(
        dropped >= 800.0 - 512.0 - 8.0,
        "dropped spans are counted: {dropped}"
    );
    gw.shutdown().await;
}

/// Shutdown sends the spans still queued instead of losing them with the process.
#[tokio::test]
async fn shutdown_flushes_the_last_spans() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    // A batch would wait an hour to fill: only the shutdown's flush can send these spans.
    let (gw, collector) = traced_gateway(&a, &b, "  batch_delay: 1h\n").await;
    assert_eq!(ask(&gw, hi(), None).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        collector.spans().is_empty(),
        "nothing sent before the flush"
    );
    gw.shutdown().await;
    let spans = collector.spans();
    assert!(
        spans.iter().any(|s| s.kind == 2),
        "the server span was flushed: {spans:#?}"
    );
    assert!(
        spans.iter().any(|s| s.kind == 3),
        "the attempt span was flushed"
    );
}

/// Session turns and Responses chains: their expansion is a span under the request's, and a
/// compression after the reply is a span in the same trace with the summary call's attempt
/// under it.
#[tokio::test]
async fn session_and_chain_steps_are_spans_in_the_requests_trace() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let sessions = "sessions:\n  compression_threshold: 40\n  max_tokens: 6000\n  keep_recent: 2\n  summary_model: chat\n";
    let (gw, collector) = traced_gateway(&a, &b, sessions).await;
    let session = crate::harness::unique("traced-session");
    for turn in 0..3 {
        let body = json!({"model": "chat", "session_id": session, "messages": [{"role": "user", "content": format!("turn {turn}: tell me something long enough to count")}]});
        assert_eq!(ask(&gw, body, None).await.status(), 200);
    }
    let first: serde_json::Value = post_as(
        &gw,
        "/v1/responses",
        "sk-team",
        &json!({"model": "chat", "input": "hello"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let next = post_as(
        &gw,
        "/v1/responses",
        "sk-team",
        &json!({"model": "chat", "input": "and then?", "previous_response_id": first["id"]}),
    )
    .await;
    assert_eq!(next.status(), 200);
    let stored = format!("/v1/responses/{}", first["id"].as_str().unwrap());
    let fetched = client()
        .get(gw.url(&stored))
        .bearer_auth("sk-team")
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(5);
    let named = |spans: &[Span], name: &str| {
        spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    loop {
        let spans = collector.spans();
        let ready = !named(&spans, "session.expand").is_empty()
            && !named(&spans, "session.compress").is_empty()
            && !named(&spans, "responses.chain.expand").is_empty()
            && !named(&spans, "GET /v1/responses/{id}").is_empty();
        if ready {
            // A path with an id is named by its route; the span keeps the real path.
            let get = &named(&spans, "GET /v1/responses/{id}")[0];
            assert_eq!(
                attr(get, "http.route").as_deref(),
                Some("/v1/responses/{id}")
            );
            assert_eq!(attr(get, "url.path").as_deref(), Some(stored.as_str()));
            assert_eq!(attr(get, "http.request.method").as_deref(), Some("GET"));
            let expand = &named(&spans, "session.expand")[0];
            let server = spans
                .iter()
                .find(|s| s.span_id == expand.parent_span_id)
                .expect("under a server span");
            assert_eq!(server.kind, 2);
            assert_eq!(
                attr(expand, "switchyard.session_id").as_deref(),
                Some(session.as_str())
            );
            let compress = &named(&spans, "session.compress")[0];
            assert!(
                spans
                    .iter()
                    .any(|s| s.span_id == compress.parent_span_id && s.kind == 2),
                "the compression belongs to the trace of the turn that led to it"
            );
            assert!(
                spans
                    .iter()
                    .any(|s| s.parent_span_id == compress.span_id && s.kind == 3),
                "the summary call's attempt is under the compression"
            );
            let chain = &named(&spans, "responses.chain.expand")[0];
            assert_eq!(
                attr(chain, "switchyard.previous_response_id").as_deref(),
                first["id"].as_str()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{:#?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.shutdown().await;
}

/// An upstream that echoes the provider's key into its errors: the failed attempt's span says
/// what failed, and the key appears in no exported byte.
#[tokio::test]
async fn an_upstream_echoing_its_key_leaks_it_into_no_span() {
    let (hostile, _task) = mock_server::spawn(crate::hostile::hostile).await;
    let b = MockOpenAi::start("b").await;
    let collector = Collector::default();
    let addr = collector.start().await;
    let yaml = format!(
        "providers:
  - {{ id: a, kind: openai, base_url: \"http://{hostile}/v1\", api_key: {}, health_check: {{ enabled: false }} }}
  - {{ id: b, kind: openai, base_url: \"{}\", api_key: sk-b, health_check: {{ enabled: false }} }}
models:
  - name: chat
    routes: [{{ provider: a, model: up-a, priority: 1 }}, {{ provider: b, model: up-b, priority: 2 }}]
routing:
  unhealthy_after: 100
auth:
  keys: [ {{ name: team, key: sk-team }} ]
tracing:
  otlp_endpoint: http://{addr}
",
        crate::hostile::KEY,
        b.base_url()
    );
    let gw = Gateway::start(&yaml).await;
    for mode in ["json500", "json429", "json400", "plain400"] {
        let body = json!({"model": "chat", "messages": [{"role": "user", "content": mode}]});
        ask(&gw, body, None).await;
    }
    // A stream whose error event (echoing the key) comes after the commit point: the server
    // span ends with that error.
    let mid =
        json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "mid"}]});
    ask(&gw, mid, None).await.text().await.unwrap();
    gw.shutdown().await;
    let spans = collector.spans();
    let failed: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == 3 && s.status.as_ref().is_some_and(|st| st.code == 2))
        .collect();
    assert!(failed.len() >= 4, "{spans:#?}");
    assert!(
        spans
            .iter()
            .any(|s| s.kind == 2 && s.status.as_ref().is_some_and(|st| st.code == 2)),
        "the broken stream's server span is an error"
    );
    assert!(
        failed
            .iter()
            .all(|s| !s.status.as_ref().unwrap().message.is_empty())
    );
    let exported = format!("{spans:?}");
    assert!(
        !exported.contains(crate::hostile::KEY),
        "the key reached a span: {exported}"
    );
    assert!(
        !exported.contains("SECRET"),
        "part of the key reached a span"
    );
}

/// The server span says what the result cache did; a hit (non-stream and replayed stream) has no
/// attempt span, and its span ends with the answer.
#[tokio::test]
async fn a_cache_hit_is_a_server_span_without_attempts() {
    let (a, b) = (MockOpenAi::start("a").await, MockOpenAi::start("b").await);
    let (gw, collector) = traced_gateway(&a, &b, "cache: {}\n").await;
    assert_eq!(ask(&gw, hi(), None).await.status(), 200);
    crate::harness::eventually(Duration::from_secs(2), "stored", || async {
        crate::harness::metric(&gw, "gateway_cache_stored_bytes").await > 0.0
    })
    .await;
    assert_eq!(ask(&gw, hi(), None).await.status(), 200);
    let mut stream = hi();
    stream["stream"] = json!(true);
    let streamed = ask(&gw, stream, None).await;
    assert_eq!(streamed.headers()["x-switchyard-cache"], "hit");
    streamed.text().await.unwrap();
    gw.shutdown().await;
    let spans = collector.spans();
    let servers: Vec<&Span> = spans.iter().filter(|s| s.kind == 2).collect();
    let mut verdicts: Vec<Option<String>> = servers
        .iter()
        .map(|s| attr(s, "switchyard.cache"))
        .collect();
    verdicts.sort();
    assert_eq!(
        verdicts,
        [Some("hit".into()), Some("hit".into()), Some("miss".into())],
        "{servers:#?}"
    );
    let attempts = spans.iter().filter(|s| s.kind == 3).count();
    assert_eq!(attempts, 1, "only the miss went upstream");
    assert_eq!(a.count(), 1);
}
