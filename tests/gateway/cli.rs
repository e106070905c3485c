//! The real binary: `check-config`, start-up errors before binding, SIGHUP reload and SIGTERM
//! drain with the worker threads of `serve`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

pub fn write_config(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
}

/// `switchyard serve` on `port`, once `/ready` answers 200; the process dies with the handle.
pub async fn serve_until_ready(
    config: &std::path::Path,
    port: u16,
) -> (tokio::process::Child, reqwest::Client, String) {
    let child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !client
        .get(format!("{base}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the gateway did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, client, base)
}

fn mock_config(port: u16, model: &str) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:{port}\n  workers: 2\nproviders:\n  - {{ id: m, kind: mock }}\nmodels:\n  - {{ name: {model}, routes: [{{ provider: m, model: {model} }}] }}\n"
    )
}

#[test]
fn check_config_prints_the_table_or_names_the_bad_field() {
    let dir = scratch_dir("check");
    let good = Command::new(BIN)
        .args(["check-config", "--config", "config/switchyard.yaml"])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{stdout}");
    assert!(
        stdout.contains("demo") && stdout.contains("local-mock"),
        "{stdout}"
    );

    let bad = write_config(
        &dir,
        "bad.yaml",
        "providers:\n  - { id: openai, kind: mock }\nmodels:\n  - { name: a, routes: [{ provider: opneai, model: x }] }\n",
    );
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"models[0].routes[0].provider: unknown provider "opneai""#),
        "{stderr}"
    );

    // `serve` refuses the same config before binding anything.
    let port = free_port();
    let bad_serve = write_config(
        &dir,
        "bad-serve.yaml",
        &format!("server:\n  listen: 127.0.0.1:{port}\n  colour: blue\n"),
    );
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad_serve)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.colour"));
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "nothing was bound"
    );
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_drains_then_exits_zero() {
    let dir = scratch_dir("signals");
    let port = free_port();
    let config = write_config(&dir, "switchyard.yaml", &mock_config(port, "first"));
    let (mut child, client, base) = serve_until_ready(&config, port).await;
    let pid = child.id().unwrap();
    let models = async |client: &reqwest::Client| -> Vec<String> {
        let list: Value = client
            .get(format!("{base}/v1/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(models(&client).await, ["first"]);

    std::fs::write(&config, mock_config(port, "second")).unwrap();
    signal(pid, "HUP");
    let started = Instant::now();
    while models(&client).await != ["second"] {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIGHUP did not reload the config"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    std::fs::write(&config, "models: [ this is not valid").unwrap();
    signal(pid, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        models(&client).await,
        ["second"],
        "a bad config is refused and the running one stays"
    );

    signal(pid, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
}

/// A config file that changes is reloaded without a signal; the start-up status block says what
/// the gateway serves, with nothing secret in it.
#[tokio::test]
async fn a_changed_config_file_reloads_itself_and_start_up_prints_a_status_block() {
    use tokio::io::AsyncBufReadExt;
    let dir = scratch_dir("watch");
    let port = free_port();
    let text = mock_config(port, "first")
        + "auth:\n  keys: [ { name: ops, key: sk-very-secret-key, admin: true } ]\nlimits:\n  redis_url: redis://user:hunter2@127.0.0.1:6379\n";
    let config = write_config(&dir, "switchyard.yaml", &text);
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut block = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await
    {
        block += &line;
        block.push('\n');
        if line.trim_start().starts_with("tracing") {
            break;
        }
    }
    for expected in [
        &format!("serving on 127.0.0.1:{port} with 2 workers"),
        "config     ",
        "providers  m (mock, in-process): probes off",
        "models     first (chat, 1 route)",
        "sessions   memory (ttl 1h)",
        "responses  memory (ttl 720h)",
        "limits     redis redis://user:*****@127.0.0.1:6379",
        "control    off",
        "auth       1 key (1 admin)",
        "tracing    off",
    ] {
        assert!(block.contains(expected), "{expected:?} in:\n{block}");
    }
    assert!(
        !block.contains("hunter2") && !block.contains("sk-very-secret-key"),
        "{block}"
    );

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let models = async || -> Value {
        client
            .get(format!("{base}/v1/models"))
            .bearer_auth("sk-very-secret-key")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    assert_eq!(models().await["data"][0]["id"], "first");
    std::fs::write(&config, text.replace("first", "second")).unwrap();
    let started = Instant::now();
    while models().await["data"][0]["id"] != "second" {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "the changed file was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A broken edit is refused; the running config stays.
    std::fs::write(&config, "models: [ this is not valid").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(models().await["data"][0]["id"], "second");
    signal(child.id().unwrap(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// A fresh database, a clean scratch folder and a config for the mock model `m` on a free port
/// with the Postgres ledger (its spill in the folder).
async fn postgres_ledger(
    test: &str,
) -> (
    crate::usage_schema::TestDb,
    std::path::PathBuf,
    u16,
    std::path::PathBuf,
) {
    let db = crate::usage_schema::TestDb::create(test).await;
    let dir = scratch_dir(&format!("{test}-ledger"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let yaml = format!(
        "{}usage:\n  sink: postgres\n  database_url: {}\n  spill_path: {}\n",
        mock_config(port, "m"),
        db.url(),
        dir.join("spill.jsonl").display()
    );
    let config = write_config(&dir, "switchyard.yaml", &yaml);
    (db, dir, port, config)
}

/// SIGTERM in the middle of a burst: every request that got its answer has its row in
/// PostgreSQL by the time the process exits (the queue is drained before exit 0).
#[tokio::test]
async fn sigterm_mid_burst_writes_every_answered_request_before_exit() {
    let (db, dir, port, config) = postgres_ledger("sigterm").await;
    let (mut child, client, base) = serve_until_ready(&config, port).await;
    let pid = child.id().unwrap();

    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders = (0..32).map(|_| {
        let (client, base, answered) = (client.clone(), base.clone(), answered.clone());
        tokio::spawn(async move {
            let body =
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            // Until the gateway stops answering.
            while let Ok(r) = client
                .post(format!("{base}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
            {
                if r.status() != 200 || r.bytes().await.is_err() {
                    break;
                }
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    });
    let senders: Vec<_> = senders.collect();
    while answered.load(std::sync::atomic::Ordering::SeqCst) < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(pid, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    for sender in senders {
        sender.await.unwrap();
    }
    let answered = answered.load(std::sync::atomic::Ordering::SeqCst) as i64;
    let rows: i64 = db
        .connect()
        .await
        .query_one("SELECT count(*) FROM request_logs WHERE status = 'ok'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rows, answered,
        "one row per answered request, written before exit"
    );
    assert!(
        !dir.join("spill.jsonl").exists(),
        "nothing needed the spill"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn kill_9_mid_burst_loses_no_answered_requests_row() {
    let (db, dir, port, config) = postgres_ledger("kill9").await;
    let (mut child, client, base) = serve_until_ready(&config, port).await;
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (client, base, answered) = (client.clone(), base.clone(), answered.clone());
            tokio::spawn(async move {
                let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
                while let Ok(r) = client.post(format!("{base}/v1/chat/completions")).json(&body).send().await {
                    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
                    if r.status() != 200 || r.bytes().await.is_err() {
                        break;
                    }
                    answered.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    while answered.lock().unwrap().len() < 400 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(child.id().unwrap(), "KILL");
    child.wait().await.unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    // The next start recovers the journal into the spill and replays it.
    let (_child, _, _) = serve_until_ready(&config, port).await;
    let client_db = db.connect().await;
    let started = Instant::now();
    let missing = loop {
        let rows = client_db
            .query("SELECT request_id FROM request_logs", &[])
            .await
            .unwrap();
        let stored: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        let missing: Vec<&String> = answered.iter().filter(|id| !stored.contains(*id)).collect();
        if missing.is_empty() || started.elapsed() > Duration::from_secs(15) {
            break missing.len();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        missing,
        0,
        "rows lost for {} answered requests of {}",
        missing,
        answered.len()
    );
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_command_answers_help_and_the_version_and_completions_are_printed() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (command, mentions) in [
        (&[][..], "check-config"),
        (&["serve"][..], "--config"),
        (&["check-config"][..], "--config"),
        (&["migrate"][..], "--config"),
        (&["keys"][..], "rotate"),
        (&["keys", "create"][..], "--budget-period"),
        (&["keys", "list"][..], "--config"),
        (&["keys", "revoke"][..], "<NAME>"),
        (&["keys", "rotate"][..], "--grace"),
        (&["completions"][..], "<SHELL>"),
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let (code, out, _) = run(&args);
        assert_eq!(code, Some(0), "{args:?}");
        assert!(out.contains(mentions), "{args:?}: {out}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (
            Some(0),
            format!("switchyard {}", env!("CARGO_PKG_VERSION")).as_str()
        )
    );
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run(&["completions", shell]);
        assert_eq!(code, Some(0));
        assert!(
            out.contains("keys") && out.contains("check-config"),
            "{shell}"
        );
    }
    // Errors name the flag and exit 2.
    let (code, _, err) = run(&["keys", "create", "--name", "x", "--budget-usd", "5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--budget-period"), "{err}");
    let (code, _, err) = run(&["keys", "create", "--name", "x", "--rpm", "many"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--rpm"), "{err}");
    let (code, _, err) = run(&["serve", "--bogus"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--bogus"), "{err}");
}
