//! Redis deployments the tests start themselves on loopback ports with the installed
//! `redis-server` (never the machine's own Redis): a three-master Cluster, and a TLS node with a
//! CA made by `openssl`. Each lives in its own temporary directory and is stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Redis processes, killed when dropped.
pub struct Servers {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    pub dir: PathBuf,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port free now, whose cluster-bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn redis_server(dir: &Path, args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed")
}

fn cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `check` holds (at most 10 s).
fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting: {what}");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(crate::harness::unique(name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Servers {
    /// Three masters, slots split evenly, no replicas.
    pub fn cluster() -> Self {
        let dir = temp_dir("redis-cluster");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let children = ports
            .iter()
            .map(|port| {
                let args = [
                    "--port".to_owned(),
                    port.to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    format!("nodes-{port}.conf"),
                    "--save".into(),
                    "".into(),
                    "--appendonly".into(),
                    "no".into(),
                ];
                redis_server(&dir, &args)
            })
            .collect();
        let servers = Self {
            children,
            ports,
            dir,
        };
        for port in &servers.ports {
            let port = port.to_string();
            until("a cluster node answers", || {
                cli(&["-p", &port, "ping"]).trim() == "PONG"
            });
        }
        let nodes: Vec<String> = servers
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(nodes.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cli(&args);
        for port in &servers.ports {
            let port = port.to_string();
            until("the cluster is ok", || {
                cli(&["-p", &port, "cluster", "info"]).contains("cluster_state:ok")
            });
        }
        servers
    }

    /// The gateway's URL for the cluster.
    pub fn cluster_url(&self) -> String {
        let (first, rest) = self.ports.split_first().expect("nodes");
        let nodes: Vec<String> = rest.iter().map(|p| format!("node=127.0.0.1:{p}")).collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", nodes.join("&"))
    }

    /// Keys matching `pattern` on each node (a cluster spreads them).
    pub fn keys_per_node(&self, pattern: &str) -> Vec<usize> {
        self.ports
            .iter()
            .map(|p| {
                cli(&["-p", &p.to_string(), "--scan", "--pattern", pattern])
                    .lines()
                    .count()
            })
            .collect()
    }

    /// A master, its replica and three sentinels watching them as `mymaster` (a quorum of two;
    /// the master is thought down after 1 s). `ports`: master, replica, then the sentinels.
    pub fn sentinel() -> Self {
        let dir = temp_dir("redis-sentinel");
        let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        let node = |port: u16, extra: &[String]| {
            let mut args = vec![
                "--port".to_owned(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
            ];
            args.extend(extra.iter().cloned());
            args
        };
        let mut children = vec![redis_server(&dir, &node(ports[0], &[]))];
        let replica_of = [
            "--replicaof".to_owned(),
            "127.0.0.1".into(),
            ports[0].to_string(),
        ];
        children.push(redis_server(&dir, &node(ports[1], &replica_of)));
        for port in &ports[2..] {
            let conf = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds mymaster 1000\n\
                     sentinel failover-timeout mymaster 4000\n\
                     sentinel parallel-syncs mymaster 1\n",
                    ports[0]
                ),
            )
            .expect("sentinel.conf");
            let args = [conf.display().to_string(), "--sentinel".to_owned()];
            children.push(redis_server(&dir, &args));
        }
        let servers = Self {
            children,
            ports,
            dir,
        };
        let replica = servers.ports[1].to_string();
        until("the replica is in sync", || {
            cli(&["-p", &replica, "info", "replication"]).contains("master_link_status:up")
        });
        for port in &servers.ports[2..] {
            let port = port.to_string();
            until(
                "each sentinel sees the replica and the other sentinels",
                || {
                    let master = cli(&["-p", &port, "sentinel", "master", "mymaster"]);
                    let lines: Vec<&str> = master.lines().collect();
                    let field = |name: &str| {
                        lines
                            .iter()
                            .position(|l| *l == name)
                            .and_then(|i| lines.get(i + 1))
                            .map(|v| v.trim().to_owned())
                    };
                    field("num-slaves").as_deref() == Some("1")
                        && field("num-other-sentinels").as_deref() == Some("2")
                },
            );
        }
        servers
    }

    /// The gateway's URL for the sentinels.
    pub fn sentinel_url(&self) -> String {
        let nodes: Vec<String> = self.ports[3..]
            .iter()
            .map(|p| format!("node=127.0.0.1:{p}"))
            .collect();
        format!(
            "redis-sentinel://127.0.0.1:{}/0?{}&sentinelServiceName=mymaster",
            self.ports[2],
            nodes.join("&")
        )
    }

    /// Kills the process serving `ports[i]` at once (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self, i: usize) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
    }

    /// The port of the master the sentinels name now.
    pub fn current_master(&self) -> Option<u16> {
        let reply = cli(&[
            "-p",
            &self.ports[2].to_string(),
            "sentinel",
            "get-master-addr-by-name",
            "mymaster",
        ]);
        reply.lines().nth(1)?.trim().parse().ok()
    }

    /// One node serving only TLS, its certificate signed by a CA made here (`ca.pem`); also a
    /// second CA that signed nothing (`other-ca.pem`). `mutual`: clients must show a
    /// certificate of the CA (`client.pem`).
    pub fn tls(mutual: bool) -> Self {
        let dir = temp_dir("redis-tls");
        crate::certs::make(&dir);
        let port = free_port();
        let args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            if mutual { "yes" } else { "no" },
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let child = redis_server(&dir, &args);
        let servers = Self {
            children: vec![child],
            ports: vec![port],
            dir,
        };
        let file = |name: &str| servers.dir.join(name).display().to_string();
        let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
        until("the TLS node answers", || {
            let port = port.to_string();
            let mut args = vec!["--tls", "--cacert", &ca, "-p", &port];
            if mutual {
                args.extend(["--cert", &cert, "--key", &key]);
            }
            args.push("ping");
            cli(&args).trim() == "PONG"
        });
        servers
    }
}
