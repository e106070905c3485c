//! The gateway's Redis client (fred), shared by the session store and the rate limits: a small
//! pool that connects in the background and reconnects for ever, Lua scripts run by hash, and
//! every call under a timeout, so a Redis that is down or slow fails its callers fast and never
//! hangs a request.
//!
//! One node, a Cluster (`redis-cluster://`) or a Sentinel-managed master (`redis-sentinel://`),
//! each over TLS (`rediss…`, with `redis.tls`'s private CA and client certificate). Every script
//! keeps its keys in one hash slot (`{…}` tags); the key-less scans (counts, the cache's clear)
//! run on every primary of a cluster.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use fred::prelude::{
    Builder, ClientLike, ClusterInterface, Config, Expiration, KeysInterface, LuaInterface, Pool,
    ReconnectPolicy, Server,
};
use fred::types::FromValue;
use fred::types::config::{Options, TlsConnector};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};

use crate::config::{RedisTarget, RedisTls};

const POOL_SIZE: usize = 4;

/// ARGV: a MATCH pattern, a suffix to leave out ('' for none), the most keys to visit.
const COUNT_KEYS: &str = r"
local cursor, n, seen = '0', 0, 0
local except = ARGV[2]
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    seen = seen + 1
    if except == '' or string.sub(k, -#except) ~= except then n = n + 1 end
  end
until cursor == '0' or seen >= tonumber(ARGV[3])
if cursor == '0' then return {n, 1} end
return {n, 0}
";

pub struct Redis {
    pool: Pool,
    timeout: Duration,
}

/// A failed or timed-out call, or an error a script raised (its message as the script gave it).
#[derive(Debug)]
pub struct RedisError(pub String);

/// What an outage's errors start with (Redis unreachable, slow, failing over; not a script's
/// or a command's own error): what trips a [`Breaker`].
const OUTAGE: &str = "unavailable: ";

// === impl Redis ===

impl Redis {
    /// Errors name the config key the URL came from (`redis.url`, `limits.redis_url`, …) or
    /// the TLS file that cannot be used (`redis.tls.ca_file`).
    pub fn connect(target: &RedisTarget, timeout: Duration) -> Result<Self, String> {
        let field = target.field;
        let mut config = Config::from_url(&target.url).map_err(|e| format!("{field}: {e}"))?;
        if config.uses_tls() {
            // Ours, not fred's default (the system's roots): the public roots compiled in, or
            // the private CA alone, and the client certificate for mutual TLS.
            let tls = tls_config(target.tls.as_ref())?;
            config.tls = Some(TlsConnector::from(tls).into());
        }
        let pool = Builder::from_config(config)
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .with_connection_config(|c| {
                // Connecting may take longer than one call is allowed to wait; calls meanwhile fail.
                c.connection_timeout = timeout.max(Duration::from_secs(2));
                c.internal_command_timeout = timeout.max(Duration::from_secs(2));
                // Never resent: a script that ran but whose reply was lost would apply twice.
                c.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(POOL_SIZE)
            .map_err(|e| format!("{field}: {e}"))?;
        // The trait's `connect` spawns the connection tasks and returns at once (the inherent
        // async one would wait); the handle is not needed: fred reconnects by itself.
        drop(ClientLike::connect(&pool));
        Ok(Self { pool, timeout })
    }

    /// Runs a script by its hash, sending its text only if this Redis has not seen it yet.
    pub async fn script<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<R, RedisError> {
        let by_hash = self
            .pool
            .evalsha(script.sha1().clone(), keys.clone(), args.clone());
        match self.bounded(by_hash).await {
            Err(RedisError(e)) if e.contains("NOSCRIPT") => {
                let lua = script.lua().cloned().unwrap_or_default();
                self.bounded(self.pool.eval(lua, keys, args)).await
            }
            other => other,
        }
    }

    /// How many keys match `pattern` (leaving out those ending in `except`), visiting at most
    /// `cap` keys: `(count, complete)`. For the dashboard, cached by its caller; SCAN in steps
    /// of 1,000 keys, so Redis is never blocked for long.
    pub async fn count_keys(
        &self,
        pattern: &str,
        except: &str,
        cap: u64,
    ) -> Result<(u64, bool), RedisError> {
        static COUNT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let script = COUNT.get_or_init(|| Script::from_lua(COUNT_KEYS));
        let args = vec![pattern.to_owned(), except.to_owned(), cap.to_string()];
        let replies: Vec<Vec<i64>> = self.script_on_every_primary(script, args).await?;
        let count = replies
            .iter()
            .map(|r| r.first().copied().unwrap_or(0).max(0) as u64)
            .sum();
        Ok((count, replies.iter().all(|r| r.get(1) == Some(&1))))
    }

    /// Runs a key-less script (a SCAN step) on every node that holds keys: each primary of a
    /// cluster (a SCAN sees one node's keys), or the one server. One reply per node.
    pub async fn script_on_every_primary<R: FromValue>(
        &self,
        script: &Script,
        args: Vec<String>,
    ) -> Result<Vec<R>, RedisError> {
        let mut replies = Vec::new();
        for node in self.primaries()? {
            replies.push(self.script_on(node.as_ref(), script, args.clone()).await?);
        }
        Ok(replies)
    }

    /// The primaries to scan: `[None]` (the pool's one server) unless this is a cluster.
    pub fn primaries(&self) -> Result<Vec<Option<Server>>, RedisError> {
        let client = self.pool.next();
        if !client.client_config().server.is_clustered() {
            return Ok(vec![None]);
        }
        let state = client
            .cached_cluster_state()
            .ok_or_else(|| RedisError("the cluster's layout is not known yet".into()))?;
        Ok(state.unique_primary_nodes().into_iter().map(Some).collect())
    }

    /// A key-less script on one node (`None`: wherever the pool sends it).
    pub async fn script_on<R: FromValue>(
        &self,
        node: Option<&Server>,
        script: &Script,
        args: Vec<String>,
    ) -> Result<R, RedisError> {
        let Some(node) = node else {
            return self.script(script, vec![], args).await;
        };
        // Through `custom`, which goes by the options' node: fred's Lua commands on a client
        // with options are its inner client's, which ignore them.
        let client = self.pool.next().with_options(&Options {
            cluster_node: Some(node.clone()),
            ..Options::default()
        });
        let call = |command: &'static str, first: String| {
            let mut argv = vec![first, "0".to_owned()];
            argv.extend(args.iter().cloned());
            let command = CustomCommand::new_static(command, ClusterHash::Random, false);
            client.custom::<R, String>(command, argv)
        };
        match self
            .bounded(call("EVALSHA", script.sha1().to_string()))
            .await
        {
            Err(RedisError(e)) if e.contains("NOSCRIPT") => {
                let lua = script.lua().map(ToString::to_string).unwrap_or_default();
                self.bounded(call("EVAL", lua)).await
            }
            other => other,
        }
    }

    /// One round trip that changes nothing (a health probe).
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.bounded(self.pool.ping::<String>(None)).await.map(drop)
    }

    pub async fn del(&self, keys: Vec<String>) -> Result<i64, RedisError> {
        self.bounded(self.pool.del(keys)).await
    }

    /// A value as its bytes (`None`: no such key).
    pub async fn get_bytes(&self, key: String) -> Result<Option<Bytes>, RedisError> {
        self.bounded(self.pool.get(key)).await
    }

    /// Sets a value that expires after `ttl` (whole milliseconds, at least one).
    pub async fn set_px(&self, key: String, value: Bytes, ttl: Duration) -> Result<(), RedisError> {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.bounded(
            self.pool
                .set::<(), _, _>(key, value, Some(Expiration::PX(ms)), None, false),
        )
        .await
    }

    /// One call under the timeout (on top of fred's own, which a reconnecting client may not
    /// reach).
    async fn bounded<R>(
        &self,
        call: impl Future<Output = Result<R, fred::error::Error>>,
    ) -> Result<R, RedisError> {
        use fred::error::ErrorKind;
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => match e.kind() {
                ErrorKind::IO
                | ErrorKind::Timeout
                | ErrorKind::Canceled
                | ErrorKind::Tls
                | ErrorKind::Routing
                | ErrorKind::Cluster
                | ErrorKind::Sentinel
                | ErrorKind::Backpressure => Err(RedisError(format!("{OUTAGE}{e}"))),
                // A loading replica, a read-only ex-master, a busy script: down for now too.
                _ if ["LOADING", "READONLY", "MASTERDOWN", "BUSY"]
                    .iter()
                    .any(|code| e.details().starts_with(code)) =>
                {
                    Err(RedisError(format!("{OUTAGE}{e}")))
                }
                _ => Err(RedisError(e.to_string())),
            },
            Err(_) => Err(RedisError(format!(
                "{OUTAGE}redis did not answer within {:?}",
                self.timeout
            ))),
        }
    }
}

// === impl RedisError ===

impl RedisError {
    /// Redis could not be reached or answer (as opposed to refusing the command itself).
    pub fn is_outage(&self) -> bool {
        self.0.starts_with(OUTAGE)
    }
}

/// A Redis its feature can go on without (sessions and stored responses answer 503 while it is
/// away): every call skips it at once while its breaker is open, and an outage opens it.
pub struct Guarded {
    pub redis: Arc<Redis>,
    breaker: Arc<Breaker>,
}

// === impl Guarded ===

impl Guarded {
    pub fn new(redis: Redis, what: &'static str) -> Self {
        Self {
            redis: Arc::new(redis),
            breaker: Arc::new(Breaker::new(what)),
        }
    }

    /// `call` on this Redis, unless it is known to be down.
    pub async fn call<R>(
        &self,
        call: impl Future<Output = Result<R, RedisError>>,
    ) -> Result<R, RedisError> {
        if self.breaker.is_open() {
            return Err(RedisError(format!(
                "{OUTAGE}redis is down (retried in the background)"
            )));
        }
        let result = call.await;
        if let Err(e) = &result
            && e.is_outage()
        {
            self.breaker.trip(&self.redis, e);
        }
        result
    }
}

/// Trips on a failed call to one Redis, so that its callers skip it at once (and do what their
/// feature does without it) instead of each waiting out the timeout; one background probe
/// closes it when Redis answers again. One per feature that can go on without Redis.
pub struct Breaker {
    open: AtomicBool,
    probing: AtomicBool,
    /// The feature, for its log lines ("rate limits", "result cache").
    what: &'static str,
}

// === impl Breaker ===

impl Breaker {
    pub fn new(what: &'static str) -> Self {
        Self {
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            what,
        }
    }

    /// Whether Redis is known to be down (a probe will say when it is back).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens the breaker and starts the one probe that closes it when `redis` answers again.
    pub fn trip(self: &Arc<Self>, redis: &Arc<Redis>, error: &RedisError) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(error = %error, "{}: redis unavailable; not asking it again until a background probe gets an answer", self.what);
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (redis, breaker) = (redis.clone(), self.clone());
        // The probe ends when Redis answers; it holds nothing that needs flushing at shutdown.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                every.tick().await;
                if redis.ping().await.is_ok() {
                    breaker.open.store(false, Ordering::Release);
                    breaker.probing.store(false, Ordering::Release);
                    tracing::info!("{}: redis answers again", breaker.what);
                    return;
                }
            }
        });
    }
}

/// The TLS client configuration for Redis: the private CA of `tls.ca_file` (else the public
/// roots compiled in), and `cert_file`/`key_file` for mutual TLS. Files are read now, at start:
/// one that cannot be used refuses start naming its field.
fn tls_config(tls: Option<&RedisTls>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;

    let ca = tls.and_then(|t| t.ca_file.as_deref());
    let builder = crate::tls::client("redis.tls", ca.map(|path| ("redis.tls.ca_file", path)))?;
    let cert = tls.and_then(|t| t.cert_file.as_deref());
    let key = tls.and_then(|t| t.key_file.as_deref());
    match (cert, key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = crate::tls::certificates("redis.tls.cert_file", cert)?;
            let private = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| crate::tls::unusable("redis.tls.key_file", key, &e))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| format!("redis.tls.key_file: {e}"))
        }
        _ => Err("redis.tls: cert_file and key_file go together (mutual TLS)".into()),
    }
}

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis: {}", self.0)
    }
}
