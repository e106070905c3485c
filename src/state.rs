//! The live state: the process-wide [`App`] (stores, usage sink, limits, background work) and,
//! behind an `ArcSwap`, the [`Runtime`] built from a validated `Config` and the control plane's
//! catalog, so a reload or a table change builds a new one and swaps it in while requests in
//! flight finish on the old one.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, RedisUser, TracingConfig};
use crate::control::catalog::Catalog;
use crate::control::store::Seed;
use crate::control::{Control, follower};
use crate::limits::rate::Limiter;
use crate::responses::store::ResponseStore;
use crate::runtime::Runtime;
use crate::sessions::Sessions;
use crate::trace::otlp::Resource;
use crate::trace::{Tracer, export};
use crate::usage::record::UsageRecord;
use crate::usage::totals::Ledger;
use crate::usage::writer::UsageSink;

/// Process-wide state: what outlives a config reload.
pub struct App {
    runtime: ArcSwap<Runtime>,
    pub metrics: PrometheusHandle,
    /// The usage ledger's writer; `None` for `usage.sink: none`. Outlives reloads.
    pub usage: Option<Arc<UsageSink>>,
    /// Connections for `GET /v1/usage` (with `usage.sink: postgres`).
    /// Where `/v1/usage` reads totals: the Postgres ledger or the file sink.
    pub ledger: Option<Ledger>,
    /// Server-side conversations; the store lives as long as the process (a reload keeps it).
    pub sessions: Sessions,
    /// Stored Responses, for `previous_response_id` chains and `GET /v1/responses/{id}`.
    pub responses: ResponseStore,
    /// The result cache (`cache:`); made at start, so a reload keeps its entries (a changed
    /// `cache` section applies at the next start).
    pub cache: Option<crate::cache::Cache>,
    /// Per-key rpm/tpm buckets (limits come from the keys, so a reload changes them).
    pub limits: Limiter,
    /// Where work that outlives its request runs (session compressions, limit settlements).
    pub background: Background,
    /// The control plane, when models, routes and keys live in PostgreSQL.
    pub control: Option<Arc<Control>>,
    /// OpenTelemetry traces (`tracing.otlp_endpoint`); the exporter runs beside the app.
    pub tracer: Option<Arc<Tracer>>,
    /// Serialises runtime swaps (config reloads, control-plane changes): each builds on the
    /// runtime it replaces.
    swapping: Mutex<()>,
    /// Drains the metrics recorder's histogram samples, and follows the control plane; both
    /// stopped at shutdown.
    upkeep: AbortHandle,
    follower: Mutex<Option<AbortHandle>>,
    /// Cancelled when the shutdown grace runs out: open streams end with an error event instead
    /// of being cut mid-body.
    pub closing: CancellationToken,
    draining: AtomicBool,
    ids: RequestIds,
    /// For uptime.
    pub started: tokio::time::Instant,
    /// The dashboard's slow figures (ledger totals, store counts), reused for a few seconds.
    pub figures: Figures,
}

/// A value reused while it is fresh.
#[derive(Default)]
pub struct Figures(Mutex<Option<(tokio::time::Instant, serde_json::Value)>>);

/// Work that outlives its request, run on the runtime that built the app (which outlives the
/// workers) and tracked, so shutdown can wait for it.
pub struct Background {
    runtime: tokio::runtime::Handle,
    tasks: TaskTracker,
}

/// Request ids: a random per-process prefix and a counter; unique without a syscall.
struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

// === impl App ===

impl App {
    pub fn new(config: &Config) -> Result<Arc<Self>, String> {
        let metrics = crate::metrics::install()?;
        // Histogram samples wait in the recorder until drained: a render (a /metrics scrape)
        // does it, but without a scraper they would pile up for ever (a leak of ~24 bytes per
        // request, seen as RSS growing under load). Drain them on a timer too.
        let recorder = metrics.clone();
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                recorder.run_upkeep();
            }
        })
        .abort_handle();
        // Name the TLS backend explicitly: rustls refuses to guess when more than one is linked.
        // An error means one is already installed for the process, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Until the control tables are read (and whenever they cannot be), the config file's
        // own models and keys serve; `/ready` waits for the tables.
        let mut runtime = Runtime::build(config, &Catalog::from_config(config)?)?;
        runtime.start_probes();
        let control = match &config.control {
            Some(c) => Some(Control::new(c, config.usage.migrate_on_start)?),
            None => None,
        };
        let tracer = match &config.tracing {
            Some(t) => Some(start_tracing(t)?),
            None => None,
        };
        let app = Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            control,
            tracer: tracer.clone(),
            swapping: Mutex::new(()),
            follower: Mutex::new(None),
            metrics,
            usage: UsageSink::start(&config.usage, tracer.clone())?,
            ledger: ledger(&config.usage)?,
            sessions: Sessions::new(&config.sessions, config.redis_for(RedisUser::Sessions))?,
            responses: ResponseStore::new(
                &config.responses,
                &config.sessions,
                config.redis_for(RedisUser::Responses),
            )?,
            cache: config
                .cache
                .as_ref()
                .map(|c| crate::cache::Cache::from_config(c, config.redis_for(RedisUser::Cache)))
                .transpose()?,
            limits: Limiter::new(&config.limits, config.redis_for(RedisUser::Limits))?,
            background: Background {
                runtime: tokio::runtime::Handle::current(),
                tasks: TaskTracker::new(),
            },
            upkeep,
            closing: CancellationToken::new(),
            draining: AtomicBool::new(false),
            ids: RequestIds {
                prefix: RandomState::new().hash_one(std::process::id()),
                next: AtomicU64::new(1),
            },
            started: tokio::time::Instant::now(),
            figures: Figures::default(),
        });
        if let Some(control) = &app.control {
            let seed = Seed::from_config(config)?;
            let weak = Arc::downgrade(&app);
            let follower = tokio::spawn(follower::follow(control.clone(), seed, move |catalog| {
                weak.upgrade()
                    .map_or(Ok(()), |app| app.apply_catalog(catalog))
            }));
            *app.follower.lock().unwrap_or_else(|p| p.into_inner()) = Some(follower.abort_handle());
        }
        Ok(app)
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Builds a runtime from a new config and swaps it in; the old one keeps serving the
    /// requests that hold it.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        // With a control plane the tables keep deciding models and keys; the file still decides
        // everything else (providers, settings).
        let catalog = match self.control.as_ref().and_then(|c| c.latest()) {
            Some(catalog) => catalog,
            None => Arc::new(Catalog::from_config(config)?),
        };
        let _swapping = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        let mut runtime = Runtime::build(config, &catalog)?;
        runtime.start_probes();
        self.runtime.store(Arc::new(runtime));
        Ok(())
    }

    /// Serves a catalog read from the control tables, on the running providers and settings.
    /// Requests in flight finish on the table they started with.
    pub fn apply_catalog(&self, catalog: Arc<Catalog>) -> Result<(), String> {
        let Some(control) = &self.control else {
            return Ok(());
        };
        let _swapping = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.runtime.load();
        let unchanged = control.latest().is_some_and(|l| *l == *catalog);
        if unchanged {
            return Ok(());
        }
        let mut runtime = current.with_catalog(&catalog)?;
        runtime.start_probes();
        self.runtime.store(Arc::new(runtime));
        control.replace_latest(&catalog);
        tracing::info!(
            models = catalog.models.len(),
            keys = catalog.keys.len(),
            "control-plane table applied"
        );
        Ok(())
    }

    /// Queues a request's ledger row (there is none with `usage.sink: none`).
    pub fn record_usage(&self, record: Option<UsageRecord>) {
        if let (Some(sink), Some(record)) = (&self.usage, record) {
            sink.record(record);
        }
    }

    /// After the server stopped: lets background work in flight finish (within `grace`), then
    /// writes every queued ledger row, theirs included, and stops the metrics upkeep.
    pub async fn finish_background(&self, grace: Duration) {
        if !self.background.wait(grace).await {
            tracing::warn!(
                running = self.background.tasks.len(),
                "background work still running at shutdown; not waiting for it"
            );
        }
        if let Some(sink) = &self.usage {
            sink.shutdown().await;
        }
        // The last spans (the ledger's last batches' included), within a bounded wait.
        if let Some(tracer) = &self.tracer {
            tracer.flush(Duration::from_secs(2)).await;
        }
        self.upkeep.abort();
        if let Some(follower) = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            follower.abort();
        }
    }

    /// Readiness fails from now on; the accept loop is told separately.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// `req_` + the process prefix (16 hex digits) + the counter (12): written by hand, since
    /// `format!` cost ~1,500 instructions of every request.
    pub fn next_request_id(&self) -> HeaderValue {
        let n = self.ids.next.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 4 + 16 + 12];
        id[..4].copy_from_slice(b"req_");
        crate::hex::write(&mut id[4..20], &self.ids.prefix.to_be_bytes());
        // The counter's low six bytes: twelve digits.
        crate::hex::write(&mut id[20..], &n.to_be_bytes()[2..]);
        HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("req_unknown"))
    }
}

// === impl Figures ===

impl Figures {
    pub fn fresh(&self, within: Duration) -> Option<serde_json::Value> {
        let cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < within)
            .map(|(_, v)| v.clone())
    }

    pub fn store(&self, value: serde_json::Value) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((tokio::time::Instant::now(), value));
    }
}

// === impl Background ===

impl Background {
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn_on(work, &self.runtime);
    }

    /// Takes no new work and waits for what is running, up to `grace`; true if it all ended.
    async fn wait(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// The tracer, and its exporter task posting batches to `{otlp_endpoint}/v1/traces` with the
/// gateway's own hyper-util client (the one https upstreams use: no second HTTP stack).
fn start_tracing(config: &TracingConfig) -> Result<Arc<Tracer>, String> {
    let endpoint = format!("{}/v1/traces", config.otlp_endpoint.trim_end_matches('/'));
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| format!("tracing.otlp_endpoint: {e}"))?;
    let tracer = Tracer::new(config.sample_ratio, config.max_queue);
    let post: export::Post = Arc::new(move |body| {
        let uri = uri.clone();
        Box::pin(crate::routing::transport::post(
            uri,
            "application/x-protobuf",
            body,
        ))
    });
    let resource = Resource {
        service_name: config.service_name.clone(),
        service_version: env!("CARGO_PKG_VERSION"),
    };
    tokio::spawn(export::run(
        resource,
        post,
        tracer.clone(),
        config.batch_delay.0,
    ));
    Ok(tracer)
}

/// The ledger `/v1/usage` reads. For Postgres, a small pool whose connections are made on first
/// use, so a database that is down at start-up does not stop the gateway.
fn ledger(usage: &crate::config::UsageConfig) -> Result<Option<Ledger>, String> {
    use crate::config::UsageSinkKind;
    let url = match (&usage.sink, &usage.database_url) {
        (UsageSinkKind::Postgres, Some(url)) => url,
        (UsageSinkKind::File, _) => {
            let path = usage.path.clone().into();
            return Ok(Some(Ledger::File(path, usage.keep_files)));
        }
        _ => return Ok(None),
    };
    Ledger::postgres(url)
        .map(Some)
        .map_err(|e| format!("usage.database_url: {e}"))
}
