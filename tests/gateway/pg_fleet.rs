//! The ledger, its totals and the control plane on the PostgreSQL that fleets run: a URL naming
//! several hosts skips a refused one, and `sslmode=verify-full` with a private CA reaches a
//! TLS-only PostgreSQL the test starts itself (its own data directory and port, never the
//! machine's cluster), while a wrong CA is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::harness::{Gateway, client};
use crate::mock_openai::MockOpenAi;
use crate::usage_schema::TestDb;

/// A PostgreSQL of the test's own, TLS only (`hostssl`), run as the `postgres` user from a
/// temporary data directory; stopped when dropped.
struct TlsPostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

fn run(program: &Path, args: &[&str]) {
    let ok = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runuser")
        .success();
    assert!(ok, "{} {args:?}", program.display());
}

impl TlsPostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .max()
            .expect("a PostgreSQL version");
        let dir = std::env::temp_dir().join(crate::harness::unique("pg-tls"));
        std::fs::create_dir_all(&dir).expect("dir");
        crate::certs::make(&dir);
        let chown = |path: &Path| {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .status()
                .expect("chown");
        };
        chown(&dir);
        let data = dir.join("data");
        run(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-U",
                "postgres",
                "--auth=trust",
            ],
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={dir}/server.pem -c ssl_key_file={dir}/server.key",
            dir = dir.display()
        );
        std::fs::set_permissions(
            dir.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("key mode");
        run(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-o",
                &options,
                "-l",
                dir.join("log").to_str().unwrap_or_default(),
                "-w",
                "start",
            ],
        );
        Self { dir, port, bin }
    }

    fn url(&self, ca: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
            self.port,
            self.dir.join(ca).display()
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(a: &MockOpenAi, database_url: &str, spill: &Path) -> String {
    format!(
        r#"providers:
  - {{ id: a, kind: openai, base_url: "{}", api_key: sk-a, timeout: 2s, health_check: {{ enabled: false }} }}
models:
  - name: chat
    price: {{ input_per_1m: 1.0, output_per_1m: 2.0 }}
    routes: [ {{ provider: a, model: up-chat }} ]
auth:
  keys: [ {{ name: team, key: sk-team }} ]
usage:
  sink: postgres
  database_url: "{database_url}"
  spill_path: {}
"#,
        a.base_url(),
        spill.display()
    )
}

async fn one_request_reaches_the_ledger(gw: &Gateway) -> Result<i64, String> {
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-team")
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(r.status(), 200);
    // The usage API reads the ledger through the same URL.
    for _ in 0..100 {
        let usage: serde_json::Value = client()
            .get(gw.url("/v1/usage"))
            .bearer_auth("sk-team")
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if let Some(n) = usage["data"][0]["requests"].as_i64() {
            return Ok(n);
        }
        if usage.get("error").is_some() {
            return Err(usage.to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("no row arrived".into())
}

#[tokio::test]
async fn a_refused_first_host_is_skipped() {
    let db = TestDb::create("multihost").await;
    let a = MockOpenAi::start("a").await;
    // Port 1 refuses; the second host is the machine's PostgreSQL.
    let url = db
        .url()
        .replace("127.0.0.1:5432", "127.0.0.1:1,127.0.0.1:5432")
        + "?target_session_attrs=read-write";
    let spill = std::env::temp_dir().join(crate::harness::unique("multihost-spill"));
    let gw = Gateway::start(&config(&a, &url, &spill)).await;
    assert_eq!(one_request_reaches_the_ledger(&gw).await, Ok(1));
    gw.shutdown().await;
    db.drop_db().await;
}

#[tokio::test]
async fn the_ledger_reaches_a_tls_postgres_through_its_private_ca() {
    let pg = tokio::task::spawn_blocking(TlsPostgres::start)
        .await
        .unwrap();
    let a = MockOpenAi::start("a").await;
    let spill = std::env::temp_dir().join(crate::harness::unique("tls-spill"));
    let gw = Gateway::start(&config(&a, &pg.url("ca.pem"), &spill)).await;
    assert_eq!(one_request_reaches_the_ledger(&gw).await, Ok(1));
    gw.shutdown().await;
    // Without TLS the server refuses (hostssl only); with another CA the gateway refuses.
    let plain = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    let refused = switchyard::db::Target::parse(&plain, "f")
        .unwrap()
        .connect()
        .await;
    assert!(refused.is_err(), "a plain connection is refused");
    let wrong = switchyard::db::Target::parse(&pg.url("other-ca.pem"), "f").unwrap();
    let e = match wrong.connect().await {
        Ok(_) => panic!("an unknown CA is refused"),
        Err(e) => e,
    };
    assert!(e.to_string().to_lowercase().contains("tls"), "{e}");
}
