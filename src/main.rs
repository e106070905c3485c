//! The `switchyard` command: `serve` (default), `check-config`. Start-up errors name the config
//! field and exit non-zero before anything binds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use switchyard::config::{
    self, BudgetConfig, BudgetPeriod, Config, ConfigSource, LoadedConfig, UsageSinkKind,
};
use switchyard::control::store::{self, ControlError, KeyPatch, NewKey, Seed};
use switchyard::server::{self, ServerOptions};
use switchyard::startup;
use switchyard::state::App;
use switchyard::usage::{UsageError, migrations, partitions};
use tokio::net::TcpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};

/// What every command's help ends with.
const ENVIRONMENT: &str = "\
The config path defaults to $SWITCHYARD_CONFIG, else config/switchyard.yaml, else the embedded
default. Logs: SWITCHYARD_LOG (e.g. info, debug), SWITCHYARD_LOG_FORMAT=json for JSON lines.";

/// mimalloc: measured faster than glibc malloc on the request path (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Asks Linux for no transparent huge pages in this process, unless `MIMALLOC_ALLOW_THP` says
/// otherwise. With them, the kernel backs whole 2 MiB regions, so the parts of a connection's
/// buffers that are never written (most of hyper's two 8 KiB buffers per connection) were
/// resident too: 23.1 KB of RSS per open stream with, 16.2 KB without, at 9,000 streams
/// (`benches/slow_streams.sh`, docs/benchmarks.md); the rig could not tell the CPU apart.
fn small_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and touches no memory of
        // ours; a kernel without it fails with EINVAL, which changes nothing.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// An OpenAI-compatible LLM routing gateway.
#[derive(Parser)]
#[command(name = "switchyard", version, after_help = ENVIRONMENT)]
struct Cli {
    /// The config file.
    #[arg(long, short, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Validate the config, print the routing table, exit 0 or 1.
    CheckConfig,
    /// Apply pending migrations (usage ledger, control plane) and create partitions.
    Migrate,
    /// Manage gateway keys in the control plane (control.database_url).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a completion script for a shell (source it, or install it where the shell looks).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it: shown only now, stored as its SHA-256.
    Create {
        /// The key's name ([A-Za-z0-9._:-], 1 to 64 characters).
        #[arg(long)]
        name: String,
        /// May use the admin API.
        #[arg(long)]
        admin: bool,
        /// The models it may use (an allow-list; `*` and `prefix*` patterns).
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        models: Option<Vec<String>>,
        /// Requests a minute.
        #[arg(long)]
        rpm: Option<u32>,
        /// Tokens a minute.
        #[arg(long)]
        tpm: Option<u32>,
        /// A spend ceiling in dollars per --budget-period.
        #[arg(long, requires = "budget_period", value_name = "USD")]
        budget_usd: Option<f64>,
        /// The budget's period (UTC days or months).
        #[arg(long, requires = "budget_usd", value_enum)]
        budget_period: Option<Period>,
    },
    /// List the keys: names, prefixes, admin, state, models.
    List,
    /// Revoke a key: refused by every replica from now on.
    Revoke {
        /// The key's name.
        name: String,
    },
    /// Give a key a new secret, printed once; the old one keeps working for --grace.
    Rotate {
        /// The key's name.
        name: String,
        /// How long the old secret stays valid (e.g. 1h, 30m; 0s: not at all).
        #[arg(long, default_value = "0s", value_parser = grace)]
        grace: Duration,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Period {
    Day,
    Month,
}

fn grace(text: &str) -> Result<Duration, String> {
    config::ConfigDuration::parse(text).map(|d| d.0)
}

fn main() -> ExitCode {
    small_pages();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Completions { shell } = command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "switchyard",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    init_logging();
    let source = config::resolve_source(cli.config.as_deref());
    let loaded = match config::load(source) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("switchyard: config error: {e}");
            return ExitCode::from(1);
        }
    };
    match command {
        Command::CheckConfig => {
            print_routing_table(&loaded);
            ExitCode::SUCCESS
        }
        Command::Serve | Command::Completions { .. } => serve(loaded),
        Command::Migrate => migrate(&loaded.config),
        Command::Keys(keys) => manage_keys(&loaded.config, keys),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(switchyard::logs::stderr);
    match std::env::var("SWITCHYARD_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().flatten_event(true).init(),
        _ => builder.init(),
    }
}

/// A single-threaded runtime: the control thread, each worker, and `migrate` use one.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("switchyard: cannot start the async runtime: {e}");
            None
        }
    }
}

fn serve(loaded: LoadedConfig) -> ExitCode {
    // The control thread: start-up, probes, signals and reloads. Requests are served by the
    // worker threads it starts.
    let Some(control) = runtime() else {
        return ExitCode::from(1);
    };
    control.block_on(run(loaded))
}

async fn run(loaded: LoadedConfig) -> ExitCode {
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = &loaded.config;
    let app = match App::new(config) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return ExitCode::from(1);
        }
    };
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let sockets = match bind(config.server.listen, workers) {
        Ok(sockets) => sockets,
        Err(e) => {
            eprintln!("switchyard: cannot listen on {}: {e}", config.server.listen);
            return ExitCode::from(1);
        }
    };
    let addr = sockets
        .first()
        .and_then(|s| s.local_addr().ok())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let options = ServerOptions {
        connection_permits: Arc::new(Semaphore::new(config.server.max_connections)),
        header_read_timeout: config.server.header_read_timeout.0,
        shutdown_grace: config.server.shutdown_grace.0,
        max_header_bytes: config.server.max_header_bytes,
    };
    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for (i, socket) in sockets.into_iter().enumerate() {
        let worker = Worker {
            app: app.clone(),
            options: options.clone(),
            stopped: stopped.clone(),
        };
        match std::thread::Builder::new()
            .name(format!("switchyard-worker-{i}"))
            .spawn(move || worker.run(socket))
        {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                eprintln!("switchyard: cannot start worker thread {i}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    tracing::info!(listen = %addr, workers, config = %loaded.source, "switchyard is serving");
    print!(
        "{}",
        startup::status(&app, config, &loaded.source, &addr, workers)
    );
    let reloads = tokio::spawn(reload_on_sighup(app.clone(), loaded.source.clone()));
    let watch = tokio::spawn(reload_on_change(app.clone(), loaded.source.clone()));
    shutdown_signal().await;
    // No reload may swap the config under a draining server.
    reloads.abort();
    watch.abort();
    let grace_ends = tokio::time::Instant::now() + options.shutdown_grace;
    // Readiness fails at once; the workers close their listeners and drain.
    app.start_draining();
    let _ = stop.send(true);
    let joined =
        tokio::task::spawn_blocking(move || threads.into_iter().all(|t| t.join().is_ok())).await;
    // Every request has ended: let session compressions finish in what is left of the grace
    // period (at least 2 s: a summary call in flight has been paid for), then write the last
    // ledger rows (to the database or the spill file).
    let left = grace_ends.saturating_duration_since(tokio::time::Instant::now());
    app.finish_background(left.max(Duration::from_secs(2)))
        .await;
    tracing::info!("stopped");
    match joined {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

/// One worker: a single-threaded runtime serving its own listener. Everything a request does,
/// its upstream connection included, stays on this thread.
struct Worker {
    app: Arc<App>,
    options: ServerOptions,
    stopped: watch::Receiver<bool>,
}

// === impl Worker ===

impl Worker {
    fn run(self, socket: TcpSocket) {
        let Some(runtime) = runtime() else { return };
        let Worker {
            app,
            options,
            mut stopped,
        } = self;
        runtime.block_on(async move {
            let listener = match socket.listen(1024) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "worker cannot listen");
                    return;
                }
            };
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            server::serve(listener, app, options, shutdown).await;
        });
    }
}

/// One socket per worker on the same address (SO_REUSEPORT: the kernel spreads connections).
/// Port 0 resolves to one port shared by all.
fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<TcpSocket>> {
    let mut sockets: Vec<TcpSocket> = Vec::with_capacity(workers);
    let mut addr = addr;
    for _ in 0..workers.max(1) {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

/// SIGHUP re-reads the config; a bad one is refused and the running one stays.
async fn reload_on_sighup(app: Arc<App>, source: ConfigSource) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        reload(&app, &source, "SIGHUP");
        // Coalesce a burst of signals.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How often the config file is checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// A change to the config file reloads it, as SIGHUP does. The file is polled (its bytes
/// compared) rather than watched through inotify: a Kubernetes ConfigMap is updated by swapping a
/// symlink, which a watch on the file misses, and reading a small file every 2 s costs nothing.
async fn reload_on_change(app: Arc<App>, source: ConfigSource) {
    let ConfigSource::File(path) = &source else {
        return;
    };
    let mut seen = tokio::fs::read(path).await.ok();
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = tokio::fs::read(path).await.ok();
        // A file that is gone for a moment (an editor's save, a swap) is not a change.
        if now.is_none() || now == seen {
            continue;
        }
        seen = now;
        reload(&app, &source, "the config file changed");
    }
}

fn reload(app: &App, source: &ConfigSource, why: &str) {
    let result = config::load(source.clone())
        .map_err(|e| e.to_string())
        .and_then(|loaded| {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            app.reload(&loaded.config)
        });
    match result {
        Ok(()) => tracing::info!(config = %source, why, "config reloaded"),
        Err(e) => {
            tracing::error!(error = %e, why, "config reload refused; keeping the running config")
        }
    }
}

/// Months of partitions made ahead of the current one.
const PREMADE_MONTHS: u32 = 2;

/// `switchyard migrate`: migrations, then partitions for this month and the next ones, then
/// retention. Several replicas may run it at once (advisory lock).
fn migrate(config: &Config) -> ExitCode {
    let usage = &config.usage;
    let ledger = usage
        .database_url
        .as_deref()
        .filter(|_| usage.sink == UsageSinkKind::Postgres);
    let control = config.control.as_ref().map(|c| c.database_url.as_str());
    if ledger.is_none() && control.is_none() {
        println!(
            "neither usage.sink: postgres nor control.database_url is configured: nothing to migrate"
        );
        return ExitCode::SUCCESS;
    }
    let Some(runtime) = runtime() else {
        return ExitCode::from(1);
    };
    let result = runtime.block_on(async {
        // The control plane's database gets the same numbered migrations (one schema history
        // per database), unless it is the ledger's own.
        if let Some(url) = control.filter(|c| Some(*c) != ledger) {
            let (mut client, connection) = connect(url).await?;
            let applied = migrations::migrate(&mut client).await?;
            print_applied("control plane", &applied);
            drop(client);
            let _ = connection.await;
        }
        if let Some(url) = ledger {
            let (mut client, connection) = connect(url).await?;
            let applied = migrations::migrate(&mut client).await?;
            let maintenance = partitions::maintain(
                &client,
                partitions::Month::now(),
                PREMADE_MONTHS,
                usage.retention_months,
            )
            .await?;
            print_applied("usage ledger", &applied);
            println!(
                "partitions: created {:?}, dropped {:?}",
                maintenance.created, maintenance.dropped
            );
            drop(client);
            let _ = connection.await;
        }
        Ok::<_, UsageError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: migrate failed: {e}");
            ExitCode::from(1)
        }
    }
}

async fn connect(
    url: &str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), UsageError> {
    let target = switchyard::db::Target::parse(url, "database_url").map_err(UsageError)?;
    let (client, connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(UsageError::from)?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, connection))
}

fn print_applied(what: &str, applied: &[i32]) {
    match applied.is_empty() {
        true => println!("migrations ({what}): up to date"),
        false => println!(
            "migrations ({what}): applied {}",
            applied
                .iter()
                .map(|v| format!("{v:04}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `switchyard keys …`: the control plane's keys from the command line, for the first admin key
/// of a fresh deployment (no config edit, no running gateway needed) and for scripts. The
/// database is migrated and seeded first, as a gateway would.
fn manage_keys(config: &Config, command: KeysCommand) -> ExitCode {
    let Some(control) = &config.control else {
        eprintln!(
            "switchyard: keys needs the control plane: set control.database_url in the config"
        );
        return ExitCode::from(1);
    };
    let seed = match Seed::from_config(config) {
        Ok(seed) => seed,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return ExitCode::from(1);
        }
    };
    if let KeysCommand::Create {
        name,
        models,
        rpm,
        tpm,
        budget_usd,
        ..
    } = &command
    {
        let budget = budget_usd.map(|usd| BudgetConfig {
            usd,
            period: BudgetPeriod::Day,
        });
        let checked = store::check_key_name(name)
            .and_then(|()| store::check_key_fields(models.as_ref(), *rpm, *tpm, budget.as_ref()));
        if let Err((field, problem)) = checked {
            let flag = field
                .split('.')
                .collect::<Vec<_>>()
                .join("-")
                .replace('_', "-");
            eprintln!("switchyard: keys create: --{flag} {problem}");
            return ExitCode::from(2);
        }
    }
    let Some(runtime) = runtime() else {
        return ExitCode::from(1);
    };
    let result = runtime.block_on(async {
        let (mut client, connection) = connect(&control.database_url)
            .await
            .map_err(|e| ControlError::Unavailable(e.to_string()))?;
        migrations::migrate(&mut client)
            .await
            .map_err(|e| ControlError::Unavailable(e.to_string()))?;
        store::seed(&mut client, &seed).await?;
        match command {
            KeysCommand::Create {
                name,
                admin,
                models,
                rpm,
                tpm,
                budget_usd,
                budget_period,
            } => {
                let budget = budget_usd
                    .zip(budget_period)
                    .map(|(usd, period)| BudgetConfig {
                        usd,
                        period: match period {
                            Period::Day => BudgetPeriod::Day,
                            Period::Month => BudgetPeriod::Month,
                        },
                    });
                let fields = NewKey {
                    name,
                    admin,
                    models,
                    rpm,
                    tpm,
                    budget,
                    expires_at: None,
                };
                let (key, plaintext, _) = store::create_key(&mut client, &fields).await?;
                println!("{plaintext}");
                eprintln!(
                    "created key {:?}{} (prefix {}): the key above is shown only now",
                    key.name,
                    if key.admin { ", admin" } else { "" },
                    key.prefix
                );
            }
            KeysCommand::List => {
                println!(
                    "{:<32} {:<12} {:<6} {:<8} models",
                    "name", "prefix", "admin", "state"
                );
                for k in store::list_keys(&client).await? {
                    let state = match (k.revoked, k.expires_at) {
                        (true, _) => "revoked",
                        (false, Some(t)) if t <= switchyard::clock::unix_now() as i64 => "expired",
                        _ => "active",
                    };
                    let models = k.models.map_or("*".to_owned(), |m| m.join(","));
                    println!(
                        "{:<32} {:<12} {:<6} {:<8} {models}",
                        k.name, k.prefix, k.admin, state
                    );
                }
            }
            KeysCommand::Rotate { name, grace } => {
                let (key, plaintext, _) =
                    store::rotate_key(&mut client, &name, grace.as_secs()).await?;
                println!("{plaintext}");
                eprintln!(
                    "rotated key {:?} (prefix {}): the key above is shown only now; the old one {}",
                    key.name,
                    key.prefix,
                    match grace.is_zero() {
                        true => "is refused from now on".to_owned(),
                        false => format!("works for {grace:?} more"),
                    }
                );
            }
            KeysCommand::Revoke { name } => {
                let patch = KeyPatch {
                    revoked: Some(true),
                    ..KeyPatch::default()
                };
                store::update_key(&mut client, &name, &patch).await?;
                println!("revoked key {name:?}: refused by every replica from now on");
            }
        }
        drop(client);
        let _ = connection.await;
        Ok::<_, ControlError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: keys: {e}");
            ExitCode::from(1)
        }
    }
}

fn print_routing_table(loaded: &LoadedConfig) {
    let config: &Config = &loaded.config;
    println!("config: {} (valid)", loaded.source);
    for warning in &loaded.warnings {
        println!("warning: {warning}");
    }
    println!("listen: {}", config.server.listen);
    println!("providers:");
    for p in &config.providers {
        let kind = format!("{:?}", p.kind).to_lowercase();
        println!(
            "  {:<16} {kind:<10} {}",
            p.id,
            p.base_url.as_deref().unwrap_or("(in-process)")
        );
    }
    println!("models:");
    for m in &config.models {
        println!("  {} ({})", m.name, format!("{:?}", m.kind).to_lowercase());
        let mut routes: Vec<_> = m.routes.iter().collect();
        routes.sort_by_key(|r| r.priority);
        for r in routes {
            println!(
                "    priority {:<3} weight {:<4} {} -> {}",
                r.priority, r.weight, r.provider, r.model
            );
        }
    }
    println!(
        "auth: {} key(s){}",
        config.auth.keys.len(),
        if config.auth.keys.is_empty() {
            " (open gateway)"
        } else {
            ""
        }
    );
    if config.control.is_some() {
        println!(
            "control: models, routes and keys come from the control database; the ones above seed its empty tables once"
        );
    }
}
