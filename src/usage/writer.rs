//! The ledger's writer: records queue up off the request path, a single task batches them into
//! the sink ([`super::file_sink`] or [`super::postgres_sink`]), and nothing is lost when the
//! database is not there.
//!
//! - The queue is bounded and drained on a timer, never awaited per record: a request thread
//!   sending a record never wakes the writer (no cross-thread wakeup per request).
//! - Postgres rows also go to a crash journal before they are queued, so a `kill -9` loses none;
//!   a batch the database does not take is spilled and replayed (see `postgres_sink`).
//! - `shutdown` drains the queue into the sink (or the spill) before it returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::estimate::Estimate;
use super::file_sink::FileSink;
use super::journal::Journal;
use super::postgres_sink::Postgres;
use super::record::UsageRecord;
use crate::config::{UsageConfig, UsageSinkKind};
use crate::trace::{Active, Attr, Tracer, Value};

const QUEUE: usize = 65_536;
/// Rows that find the queue full wait in an overflow of this size for the writer; past both,
/// a row is dropped (and counted): memory stays bounded when the sink cannot keep up.
const OVERFLOW: usize = 65_536;
const BATCH: usize = 2_000;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

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

/// Where batches go.
enum Destination {
    File(FileSink),
    Postgres(Box<Postgres>),
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
            UsageSinkKind::File => Destination::File(FileSink::new(config)),
            UsageSinkKind::Postgres => Destination::Postgres(Box::new(Postgres::new(config)?)),
        };
        crate::metrics::sink_series(destination.name());
        let spill_claim = match &destination {
            Destination::Postgres(pg) => claim(pg.spill())?,
            Destination::File(_) => None,
        };
        let journal = match &destination {
            Destination::Postgres(pg) => match Journal::open(pg.spill()) {
                Ok(journal) => Some(Arc::new(journal)),
                Err(e) => {
                    tracing::error!(error = %e, spill = %pg.spill().display(), "usage journal unavailable: a crash may lose the last rows");
                    None
                }
            },
            Destination::File(_) => None,
        };
        if journal.is_some()
            && let Destination::Postgres(pg) = &mut destination
        {
            pg.recheck_spill();
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
                span.set_int(Attr::UsageRows, batch.len() as i64);
                span.set(Attr::UsageSink, Value::Static(destination.name()));
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
