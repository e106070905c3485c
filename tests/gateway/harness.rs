//! A real gateway on 127.0.0.1:0, built from YAML text, shut down on drop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard::config;
use switchyard::server::{ServerOptions, serve};
use switchyard::state::App;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct Gateway {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    pub async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, Duration::from_secs(5)).await
    }

    pub async fn start_with(yaml: &str, header_read_timeout: Duration) -> Self {
        // Tests that do not test the ledger do not write one into the checkout.
        let yaml = match yaml.contains("usage:") {
            true => yaml.to_owned(),
            false => format!("{yaml}usage:\n  sink: none\n"),
        };
        let yaml = yaml.as_str();
        let (config, _warnings) =
            config::parse(yaml, &|_: &str| None).expect("test config is valid");
        let app = App::new(&config).expect("gateway builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServerOptions {
            connection_permits: Arc::new(tokio::sync::Semaphore::new(
                config.server.max_connections,
            )),
            header_read_timeout,
            shutdown_grace: config.server.shutdown_grace.0,
            max_header_bytes: config.server.max_header_bytes,
        };
        let task = tokio::spawn(serve(listener, app.clone(), options, async move {
            let _ = stopped.await;
        }));
        // As an orchestrator waits for /ready: the ledger's schema is migrated first.
        let started = std::time::Instant::now();
        while app.usage.as_ref().is_some_and(|sink| !sink.is_started()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "usage sink starts"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // …and the control plane's tables read once.
        while app.control.as_ref().is_some_and(|c| !c.is_loaded()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "control plane loads"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Triggers shutdown and waits for the server to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.app.finish_background(Duration::from_secs(10)).await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// GETs a path and returns the status.
pub async fn get_status(gw: &Gateway, path: &str) -> u16 {
    client()
        .get(gw.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// GETs a path and returns the body as text.
pub async fn get_text(gw: &Gateway, path: &str) -> String {
    client()
        .get(gw.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sends a request and reads its JSON answer (`Null` if it has none).
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(serde_json::Value::Null)
}

/// The rows of a file-sink ledger, and the file removed.
pub fn ledger_rows(path: &std::path::Path) -> Vec<serde_json::Value> {
    let rows = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_file(path);
    rows
}

/// The value of one series in the gateway's /metrics (`name{labels}` exactly as exported), 0 when
/// it is not exported yet.
pub async fn metric(gw: &Gateway, series: &str) -> f64 {
    get_text(gw, "/metrics")
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// POSTs JSON to the gateway without a key.
pub async fn post(gw: &Gateway, path: &str, body: &serde_json::Value) -> reqwest::Response {
    client().post(gw.url(path)).json(body).send().await.unwrap()
}

/// POSTs JSON to the gateway with `key` as the bearer.
pub async fn post_as(
    gw: &Gateway,
    path: &str,
    key: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// POSTs JSON with `key` as the bearer: the status and the JSON answer (`Null` if none).
pub async fn post_json(
    gw: &Gateway,
    path: &str,
    key: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = post_as(gw, path, key, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The embedded default (its in-process mock serves every endpoint), ledger off, one key:
/// `sk-dropin`.
pub fn offline_default() -> String {
    embedded_default().replace(
        "  keys: []",
        "  keys:\n    - { name: dropin, key: sk-dropin }",
    )
}

/// The embedded default, with its file ledger turned off so tests write nothing into the checkout.
pub fn embedded_default() -> String {
    switchyard::config::EMBEDDED_DEFAULT.replace("sink: file", "sink: none")
}

/// A client per test thread (each test has its own thread and runtime): building one loads TLS
/// roots, which costs milliseconds per request if done for every request.
pub fn client() -> reqwest::Client {
    thread_local! {
        static CLIENT: reqwest::Client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
    }
    CLIENT.with(Clone::clone)
}

/// A config with one OpenAI-kind provider per (id, base_url), all serving model `gpt-4o-mini`
/// as `upstream-<id>` with the given weight and priority.
pub fn config_for(routes: &[(&str, &str, u32, u32)], extra: &str) -> String {
    let mut yaml = String::from("providers:\n");
    for (id, url, _, _) in routes {
        yaml += &format!(
            "  - {{ id: {id}, kind: openai, base_url: \"{url}\", api_key: sk-upstream-{id}, timeout: 1s, health_check: {{ enabled: false }} }}\n"
        );
    }
    yaml += "models:\n  - name: gpt-4o-mini\n    routes:\n";
    for (id, _, weight, priority) in routes {
        yaml += &format!(
            "      - {{ provider: {id}, model: upstream-{id}, weight: {weight}, priority: {priority} }}\n"
        );
    }
    yaml += "  - name: text-embedding-3-small\n    type: embedding\n    routes:\n";
    for (id, _, weight, priority) in routes {
        yaml += &format!(
            "      - {{ provider: {id}, model: embed-{id}, weight: {weight}, priority: {priority} }}\n"
        );
    }
    yaml + extra
}

/// Splits an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// A name no other test or run shares (Redis and PostgreSQL are shared by every run).
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Polls `check` until it holds, failing after `within`: waits exactly as long as the gateway
/// needs instead of a guessed sleep.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
