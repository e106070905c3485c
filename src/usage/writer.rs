//! The ledger's writer: records queue up off the request path, a single task batches them into
//! the sink, and nothing is lost when the database is not there.
//!
//! - The queue is bounded and drained on a timer, never awaited per record: a request thread
//!   sending a record never wakes the writer (no cross-thread wakeup per request).
//! - Postgres: one statement per batch (one round trip): `INSERT … SELECT FROM UNNEST(…) ON
//!   CONFLICT DO NOTHING RETURNING …`, idempotent on `(request_id, created_at)`, and the hourly
//!   totals (`usage_hourly`) of exactly the rows it returned, upserted in the same statement.
//! - Any failed batch is appended to the spill file (JSON lines, fsync'd) and the writer keeps
//!   going; after the next successful write (or every `RETRY` while idle) the spill is replayed
//!   and removed. Replays are idempotent, so a crash mid-replay duplicates nothing.
//! - `shutdown` drains the queue into the sink (or the spill) before it returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

use super::UsageError;
use super::estimate::Estimate;
use super::journal::Journal;
use super::line::write_line;
use super::migrations::migrate;
use super::partitions::{Month, maintain};
use super::record::UsageRecord;
use crate::config::{UsageConfig, UsageSinkKind};
use crate::trace::{Active, Tracer, Value};

const QUEUE: usize = 65_536;
/// Rows that find the queue full wait in an overflow of this size for the writer; past both,
/// a row is dropped (and counted): memory stays bounded when the sink cannot keep up.
const OVERFLOW: usize = 65_536;
const BATCH: usize = 2_000;
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often an unreachable database is retried, and partitions maintained.
const RETRY: Duration = Duration::from_secs(2);
const MAINTAIN_EVERY: Duration = Duration::from_secs(3_600);
/// A stalled database must not stall the writer: past these, rows go to the spill.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const PREMADE_MONTHS: u32 = 2;

/// The handle request handlers record into.
pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
    overflow: Arc<Overflow>,
    /// The Postgres sink's crash journal (rows survive a `kill -9`).
    journal: Option<Arc<Journal>>,
    /// The writer's first connection attempt is over (the schema is migrated if it succeeded).
    started: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The Postgres sink's claim on its spill path, held until shutdown has drained the queue.
    spill_claim: std::sync::Mutex<Option<std::fs::File>>,
}

/// Rows that found the queue full, waiting for the writer (who drains them first) instead of in
/// a task each. A `std` mutex: held only to push or swap, never across an await.
#[derive(Default)]
struct Overflow {
    rows: std::sync::Mutex<Vec<UsageRecord>>,
    dropped: std::sync::atomic::AtomicU64,
}

enum Destination {
    File(FileSink),
    Postgres(Box<Postgres>),
}

/// The JSON-lines file sink, rotated by size.
struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
}

struct Postgres {
    url: String,
    spill: PathBuf,
    migrate_on_start: bool,
    retention_months: u32,
    client: Option<Client>,
    last_attempt: Option<Instant>,
    last_maintenance: Option<Instant>,
    spill_pending: bool,
}

// === impl UsageSink ===

impl UsageSink {
    /// Starts the writer task on the current runtime; `None` for `sink: none`. Fails when
    /// another running gateway holds the same spill path: two writers replaying one spill file
    /// (one removing it while the other appends) or recovering each other's live journal would
    /// lose rows, so each gateway must have its own.
    /// `tracer`: each batch write becomes a span of its own trace (`usage.batch`).
    pub fn start(
        config: &UsageConfig,
        tracer: Option<Arc<Tracer>>,
    ) -> Result<Option<Arc<Self>>, String> {
        let mut destination = match config.sink {
            UsageSinkKind::None => return Ok(None),
            UsageSinkKind::File => Destination::File(FileSink {
                path: PathBuf::from(&config.path),
                max_bytes: config.max_file_bytes,
                keep: config.keep_files,
            }),
            UsageSinkKind::Postgres => {
                let spill = PathBuf::from(&config.spill_path);
                Destination::Postgres(Box::new(Postgres {
                    url: config.database_url.clone().unwrap_or_default(),
                    spill_pending: spill.exists(),
                    spill,
                    migrate_on_start: config.migrate_on_start,
                    retention_months: config.retention_months,
                    client: None,
                    last_attempt: None,
                    last_maintenance: None,
                }))
            }
        };
        let spill_claim = match &destination {
            Destination::Postgres(pg) => claim(&pg.spill)?,
            Destination::File(_) => None,
        };
        let journal = match &destination {
            Destination::Postgres(pg) => match Journal::open(&pg.spill) {
                Ok(journal) => Some(Arc::new(journal)),
                Err(e) => {
                    tracing::error!(error = %e, spill = %pg.spill.display(), "usage journal unavailable: a crash may lose the last rows");
                    None
                }
            },
            Destination::File(_) => None,
        };
        if journal.is_some()
            && let Destination::Postgres(pg) = &mut destination
        {
            // The journal may just have recovered a crashed run's rows into the spill.
            pg.spill_pending = pg.spill.exists();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = watch::channel(false);
        let started = Arc::new(AtomicBool::new(false));
        let overflow = Arc::new(Overflow::default());
        let task = tokio::spawn(run(
            rx,
            overflow.clone(),
            journal.clone(),
            destination,
            stopped,
            started.clone(),
            tracer,
        ));
        Ok(Some(Arc::new(Self {
            tx,
            overflow,
            journal,
            started,
            stop,
            task: std::sync::Mutex::new(Some(task)),
            spill_claim: std::sync::Mutex::new(spill_claim),
        })))
    }

    /// Whether the writer made its first attempt to reach the database (and migrate it), so
    /// `/ready` can wait for the schema. A database that is down does not keep the gateway
    /// unready: its rows go to the spill file until it is back.
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Queues a record. Never blocks the request: if the queue is full the record waits in the
    /// overflow, which the writer drains first and shutdown drains too.
    pub fn record(&self, mut record: UsageRecord) {
        if let Some(journal) = &self.journal {
            record.journal = journal.append(&record);
        }
        if let Err(mpsc::error::TrySendError::Full(record)) = self.tx.try_send(record) {
            crate::metrics::usage_queue_full();
            self.overflow.push(record);
        }
    }

    /// Records waiting for the writer (queue and overflow): what a producer that must not
    /// outrun it (the ledger benchmark) watches.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
            + self
                .overflow
                .rows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
    }

    /// Writes everything queued, then stops the writer.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        // Everything is written or spilled: another gateway may take the path over now.
        self.spill_claim
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

async fn run(
    mut rx: mpsc::Receiver<UsageRecord>,
    overflow: Arc<Overflow>,
    journal: Option<Arc<Journal>>,
    mut destination: Destination,
    mut stopped: watch::Receiver<bool>,
    started: Arc<AtomicBool>,
    tracer: Option<Arc<Tracer>>,
) {
    destination.idle().await; // the first connection, and the migrations
    started.store(true, Ordering::Release);
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(BATCH);
    let mut segments = Segments::default();
    loop {
        let stopping = *stopped.borrow();
        if let Some(journal) = &journal {
            segments.rotate(journal);
        }
        overflow.take_into(&mut batch);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        crate::metrics::usage_queue_depth(rx.len());
        let full = batch.len() == BATCH;
        if !batch.is_empty() {
            let span = tracer.as_ref().and_then(|t| Active::root(t, "usage.batch"));
            count_estimated(&mut batch).await;
            let persisted = destination.write(&batch).await;
            if let Some(span) = span {
                span.set_int("switchyard.usage.rows", batch.len() as i64);
                span.set("switchyard.usage.sink", Value::Static(destination.name()));
                span.finish((!persisted).then_some("the batch was neither written nor spilled"));
            }
            if let Some(journal) = &journal
                && persisted
            {
                segments.persisted(journal, &batch);
            }
            batch.clear();
        } else {
            destination.idle().await;
        }
        if full {
            continue;
        }
        if stopping {
            if rx.is_empty() && overflow.is_empty() {
                if let Some(journal) = &journal {
                    segments.rotate(journal);
                    segments.release_done(journal);
                    journal.close();
                }
                return;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(FLUSH_EVERY) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Counts the tokens of rows whose upstream reported none, on the blocking pool (tiktoken is
/// CPU work). If counting fails the rows are still written, with 0 tokens: never lost.
async fn count_estimated(batch: &mut [UsageRecord]) {
    let jobs: Vec<(usize, Box<Estimate>)> = batch
        .iter_mut()
        .enumerate()
        .filter_map(|(i, r)| r.estimate.take().map(|e| (i, e)))
        .collect();
    if jobs.is_empty() {
        return;
    }
    let counted = tokio::task::spawn_blocking(move || {
        jobs.into_iter()
            .map(|(i, e)| (i, e.count()))
            .collect::<Vec<_>>()
    });
    match counted.await {
        Ok(counted) => {
            for (i, c) in counted {
                batch[i].apply(c);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "counting estimated tokens failed; rows kept with 0 tokens")
        }
    }
}

/// Closed journal segments waiting for their rows to be safe, and how many of each row's segment
/// are safe so far (the open segment's too).
#[derive(Default)]
struct Segments {
    /// Closed: number → rows it holds.
    closed: std::collections::BTreeMap<u64, u64>,
    /// Number → rows safe.
    safe: std::collections::HashMap<u64, u64>,
}

// === impl Segments ===

impl Segments {
    fn rotate(&mut self, journal: &Journal) {
        match journal.rotate() {
            Ok(Some((number, rows))) => {
                self.closed.insert(number, rows);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "usage journal rotation failed"),
        }
    }

    fn persisted(&mut self, journal: &Journal, batch: &[UsageRecord]) {
        for record in batch.iter().filter(|r| r.journal != 0) {
            *self.safe.entry(record.journal).or_default() += 1;
        }
        self.release_done(journal);
    }

    /// Deletes every closed segment whose rows are all safe.
    fn release_done(&mut self, journal: &Journal) {
        let safe = &self.safe;
        let done: Vec<u64> = self
            .closed
            .iter()
            .filter(|(n, rows)| safe.get(n).copied().unwrap_or(0) >= **rows)
            .map(|(n, _)| *n)
            .collect();
        for n in done {
            journal.release(n);
            self.closed.remove(&n);
            self.safe.remove(&n);
        }
    }
}

/// Claims `spill` for this process with an exclusive lock on `<spill>.lock` (released when the
/// file is closed, by shutdown or by the process ending, `kill -9` included). A path another
/// gateway holds is an error; a lock file that cannot be made (a read-only directory) only
/// costs the claim, and the spill's own writes will report that directory.
fn claim(spill: &std::path::Path) -> Result<Option<std::fs::File>, String> {
    let path = PathBuf::from(format!("{}.lock", spill.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) => {
            tracing::error!(error = %e, lock = %path.display(), "usage spill path not claimed");
            return Ok(None);
        }
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "usage.spill_path {}: in use by another running gateway (each needs its own spill path)",
            spill.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::error!(error = %e, lock = %path.display(), "usage spill path not claimed");
            Ok(None)
        }
    }
}

// === impl Overflow ===

impl Overflow {
    fn push(&self, record: UsageRecord) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if rows.len() < OVERFLOW {
            rows.push(record);
            return;
        }
        drop(rows);
        crate::metrics::usage_dropped();
        // Logged at the 1st, 2nd, 4th, 8th… drop: loud, but no flood while overloaded.
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::error!(request_id = %record.request_id, dropped, "usage rows dropped: the writer is {QUEUE} + {OVERFLOW} rows behind");
        }
    }

    /// Moves waiting rows into `batch`, up to a full batch.
    fn take_into(&self, batch: &mut Vec<UsageRecord>) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        let n = rows.len().min(BATCH.saturating_sub(batch.len()));
        batch.extend(rows.drain(..n));
    }

    fn is_empty(&self) -> bool {
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

// === impl Destination ===

impl Destination {
    /// Writes a batch; true once the rows are safe (in the sink, or in the spill file).
    async fn write(&mut self, batch: &[UsageRecord]) -> bool {
        let started = Instant::now();
        let persisted = match self {
            Destination::File(file) => match file.write(batch).await {
                Ok(()) => {
                    crate::metrics::usage_written("file", batch.len());
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %file.path.display(), rows = batch.len(), "usage file write failed");
                    false
                }
            },
            Destination::Postgres(pg) => pg.write(batch).await,
        };
        crate::metrics::usage_write_seconds(started.elapsed());
        persisted
    }

    fn name(&self) -> &'static str {
        match self {
            Destination::File(_) => "file",
            Destination::Postgres(_) => "postgres",
        }
    }

    async fn idle(&mut self) {
        if let Destination::Postgres(pg) = self {
            pg.idle().await;
        }
    }
}

// === impl FileSink ===

impl FileSink {
    /// Rotates the file if it is full, then appends the batch.
    async fn write(&self, batch: &[UsageRecord]) -> Result<(), UsageError> {
        let (path, max, keep) = (self.path.clone(), self.max_bytes, self.keep);
        let rotated =
            tokio::task::spawn_blocking(move || super::rotation::rotate_if_full(&path, max, keep))
                .await
                .map_err(|e| UsageError(e.to_string()))?
                .map_err(|e| UsageError(format!("rotating {}: {e}", self.path.display())))?;
        if rotated {
            tracing::info!(path = %self.path.display(), keep = self.keep, "usage file rotated");
        }
        append(self.path.clone(), batch).await
    }
}

// === impl Postgres ===

impl Postgres {
    async fn write(&mut self, batch: &[UsageRecord]) -> bool {
        match self.insert(batch).await {
            Ok(()) => {
                crate::metrics::usage_written("postgres", batch.len());
                if self.spill_pending {
                    self.replay().await;
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = batch.len(), spill = %self.spill.display(), "usage rows spilled: the database is unavailable");
                self.client = None;
                match append(self.spill.clone(), batch).await {
                    Ok(()) => {
                        self.spill_pending = true;
                        crate::metrics::usage_spilled(batch.len());
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, rows = batch.len(), "usage spill failed: the journal keeps them for the next start");
                        false
                    }
                }
            }
        }
    }

    /// No new rows: keep the connection warm, replay a pending spill, maintain partitions.
    async fn idle(&mut self) {
        let due = self.last_attempt.is_none_or(|at| at.elapsed() >= RETRY);
        let needed = self.spill_pending || self.client.is_none();
        if due && needed && self.connect().await.is_ok() && self.spill_pending {
            self.replay().await;
        }
    }

    async fn connect(&mut self) -> Result<&Client, UsageError> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            if self
                .last_maintenance
                .is_some_and(|at| at.elapsed() >= MAINTAIN_EVERY)
            {
                self.maintain().await?;
            }
            return self
                .client
                .as_ref()
                .ok_or_else(|| UsageError("no connection".into()));
        }
        // While the database is away, batches go straight to the spill between attempts.
        if self.last_attempt.is_some_and(|at| at.elapsed() < RETRY) {
            return Err(UsageError(
                "the usage database is unavailable; retrying".into(),
            ));
        }
        self.last_attempt = Some(Instant::now());
        let (mut client, connection) =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(&self.url, NoTls))
                .await
                .map_err(|_| UsageError("connecting to the usage database timed out".into()))??;
        // The connection's task ends when `client` is dropped (or the socket closes).
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "usage database connection ended");
            }
        });
        if self.migrate_on_start && self.last_maintenance.is_none() {
            migrate(&mut client).await?;
        }
        self.client = Some(client);
        self.maintain().await?;
        self.client
            .as_ref()
            .ok_or_else(|| UsageError("no connection".into()))
    }

    async fn maintain(&mut self) -> Result<(), UsageError> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        let done = maintain(client, Month::now(), PREMADE_MONTHS, self.retention_months).await?;
        if !done.created.is_empty() || !done.dropped.is_empty() {
            tracing::info!(created = ?done.created, dropped = ?done.dropped, "usage partitions maintained");
        }
        self.last_maintenance = Some(Instant::now());
        Ok(())
    }

    async fn insert(&mut self, batch: &[UsageRecord]) -> Result<(), UsageError> {
        let client = self.connect().await?;
        tokio::time::timeout(WRITE_TIMEOUT, insert(client, batch))
            .await
            .map_err(|_| UsageError("writing usage rows timed out".into()))?
    }

    /// Inserts the spilled rows (duplicates are ignored) and removes the file.
    async fn replay(&mut self) {
        let path = self.spill.clone();
        let records = match read_spill(path.clone()).await {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, spill = %path.display(), "cannot read the usage spill file");
                return;
            }
        };
        let Ok(client) = self.connect().await else {
            return;
        };
        for chunk in records.chunks(BATCH) {
            if let Err(e) = insert(client, chunk).await {
                tracing::warn!(error = %e, "usage spill replay interrupted; will retry");
                self.client = None;
                return;
            }
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                self.spill_pending = false;
                crate::metrics::usage_replayed(records.len());
                tracing::info!(
                    rows = records.len(),
                    "usage spill replayed into the database"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "usage spill replayed but could not be removed; it will be replayed again (harmlessly)")
            }
        }
    }
}

async fn insert(client: &Client, batch: &[UsageRecord]) -> Result<(), UsageError> {
    let col = |f: fn(&UsageRecord) -> String| batch.iter().map(f).collect::<Vec<String>>();
    let word = |f: fn(&UsageRecord) -> &'static str| batch.iter().map(f).collect::<Vec<&str>>();
    let opt = |f: fn(&UsageRecord) -> Option<String>| {
        batch.iter().map(f).collect::<Vec<Option<String>>>()
    };
    let created: Vec<SystemTime> = batch
        .iter()
        .map(|r| UNIX_EPOCH + Duration::from_micros(r.created_at_us.max(0) as u64))
        .collect();
    client
        .execute(
            // One statement, so one transaction: the rows, and the hourly totals of exactly the
            // rows it inserted (a replayed or retried row conflicts, is not returned, and is not
            // counted again). Totals are upserted in key order so concurrent writers (replicas)
            // lock them in the same order and never deadlock.
            "WITH inserted AS (
                 INSERT INTO request_logs (request_id, created_at, key_name, session_id, model_name, provider_id, upstream_model, stream,
                     input_tokens, output_tokens, usage_source, cost, latency_ms, ttft_ms, attempts, status, http_status, error_message, purpose)
                 SELECT r, c, k, s, m, p, u, st, i, o, us, co::numeric, l, t, a, sta, h, e, pu
                 FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[],
                             $9::int8[], $10::int8[], $11::text[], $12::text[], $13::int4[], $14::int4[], $15::int2[], $16::text[],
                             $17::int2[], $18::text[], $19::text[])
                      AS x(r, c, k, s, m, p, u, st, i, o, us, co, l, t, a, sta, h, e, pu)
                 ON CONFLICT DO NOTHING
                 RETURNING created_at, key_name, model_name, provider_id, purpose, input_tokens, output_tokens, cost
             )
             INSERT INTO usage_hourly AS h (hour, key_name, model_name, provider_id, purpose, requests, input_tokens, output_tokens, cost)
             SELECT date_trunc('hour', created_at, 'UTC'), coalesce(key_name, ''), model_name, coalesce(provider_id, ''), purpose,
                    count(*), sum(input_tokens), sum(output_tokens), sum(cost)
             FROM inserted
             GROUP BY 1, 2, 3, 4, 5
             ORDER BY 1, 2, 3, 4, 5
             ON CONFLICT (hour, key_name, model_name, provider_id, purpose) DO UPDATE SET
                 requests = h.requests + EXCLUDED.requests,
                 input_tokens = h.input_tokens + EXCLUDED.input_tokens,
                 output_tokens = h.output_tokens + EXCLUDED.output_tokens,
                 cost = h.cost + EXCLUDED.cost",
            &[
                &col(|r| r.request_id.clone()),
                &created,
                &opt(|r| r.key_name.clone()),
                &opt(|r| r.session_id.clone()),
                &col(|r| r.model_name.clone()),
                &opt(|r| r.provider_id.clone()),
                &opt(|r| r.upstream_model.clone()),
                &batch.iter().map(|r| r.stream).collect::<Vec<bool>>(),
                &batch.iter().map(|r| r.input_tokens).collect::<Vec<i64>>(),
                &batch.iter().map(|r| r.output_tokens).collect::<Vec<i64>>(),
                &word(|r| r.usage_source.as_str()),
                &col(|r| r.cost.clone()),
                &batch.iter().map(|r| r.latency_ms).collect::<Vec<i32>>(),
                &batch.iter().map(|r| r.ttft_ms).collect::<Vec<Option<i32>>>(),
                &batch.iter().map(|r| r.attempts).collect::<Vec<i16>>(),
                &word(|r| r.status.as_str()),
                &batch.iter().map(|r| r.http_status).collect::<Vec<i16>>(),
                &opt(|r| r.error_message.clone()),
                &word(|r| r.purpose.as_str()),
            ],
        )
        .await?;
    Ok(())
}

/// Appends records as JSON lines and fsyncs: once this returns, they survive a crash.
async fn append(path: PathBuf, batch: &[UsageRecord]) -> Result<(), UsageError> {
    let mut lines = Vec::with_capacity(batch.len() * 320);
    for record in batch {
        write_line(record, &mut lines);
    }
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(&lines)?;
        file.sync_data()
    })
    .await
    .map_err(|e| UsageError(e.to_string()))?
    .map_err(|e| UsageError(format!("{e}")))
}

async fn read_spill(path: PathBuf) -> Result<Vec<UsageRecord>, UsageError> {
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| UsageError(e.to_string()))?;
    // A torn last line (crash mid-append) is skipped; everything before it is whole.
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}
