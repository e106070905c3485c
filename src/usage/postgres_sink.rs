//! The Postgres sink: one statement per batch (one round trip): `INSERT … SELECT FROM UNNEST(…)
//! ON CONFLICT DO NOTHING RETURNING …`, idempotent on `(request_id, created_at)`, and the hourly
//! totals (`usage_hourly`) of exactly the rows it returned, upserted in the same statement. A
//! batch the database does not take goes to the spill file (JSON lines, fsync'd); after the next
//! successful write (or every `RETRY` while idle) the spill is replayed and removed. Replays are
//! idempotent, so a crash mid-replay duplicates nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tokio_postgres::Client;

use super::UsageError;
use super::file_sink::append;
use super::migrations::migrate;
use super::partitions::{Month, maintain};
use super::record::UsageRecord;
use crate::config::UsageConfig;

/// How often an unreachable database is retried, and partitions maintained.
const RETRY: Duration = Duration::from_secs(2);
const MAINTAIN_EVERY: Duration = Duration::from_secs(3_600);
/// A stalled database must not stall the writer: past these, rows go to the spill.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const PREMADE_MONTHS: u32 = 2;
/// Rows per statement when a spill is replayed (a live batch's size).
const REPLAY_CHUNK: usize = 2_000;

/// The Postgres sink and its spill file.
pub struct Postgres {
    target: crate::db::Target,
    spill: PathBuf,
    migrate_on_start: bool,
    retention_months: u32,
    client: Option<Client>,
    last_attempt: Option<Instant>,
    last_maintenance: Option<Instant>,
    spill_pending: bool,
}

// === impl Postgres ===

impl Postgres {
    pub fn new(config: &UsageConfig) -> Result<Self, String> {
        let spill = PathBuf::from(&config.spill_path);
        let url = config.database_url.as_deref().unwrap_or_default();
        Ok(Self {
            target: crate::db::Target::parse(url, "usage.database_url")?,
            spill_pending: spill.exists(),
            spill,
            migrate_on_start: config.migrate_on_start,
            retention_months: config.retention_months,
            client: None,
            last_attempt: None,
            last_maintenance: None,
        })
    }

    pub fn spill(&self) -> &Path {
        &self.spill
    }

    /// The crash journal may just have recovered a crashed run's rows into the spill.
    pub fn recheck_spill(&mut self) {
        self.spill_pending = self.spill.exists();
    }

    /// Writes a batch; true once the rows are safe (in the database, or in the spill file).
    pub async fn write(&mut self, batch: &[UsageRecord]) -> bool {
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
    pub async fn idle(&mut self) {
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
        let (mut client, connection) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.target.config.connect(self.target.tls.clone()),
        )
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
        for chunk in records.chunks(REPLAY_CHUNK) {
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
    // Columns borrow the rows' strings: a batch of 2,000 rows is not copied again to be sent.
    let col = |f: fn(&UsageRecord) -> &str| batch.iter().map(f).collect::<Vec<&str>>();
    let opt = |f: fn(&UsageRecord) -> Option<&str>| batch.iter().map(f).collect::<Vec<_>>();
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
                     input_tokens, output_tokens, usage_source, cost, latency_ms, ttft_ms, attempts, status, http_status, error_message, purpose,
                     cached_input_tokens, cache_write_tokens, reasoning_tokens, cache_saved_cost, units, unit)
                 SELECT r, c, k, s, m, p, u, st, i, o, us, co::numeric, l, t, a, sta, h, e, pu, ci, cw, rt, sc::numeric, un, ut
                 FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[],
                             $9::int8[], $10::int8[], $11::text[], $12::text[], $13::int4[], $14::int4[], $15::int2[], $16::text[],
                             $17::int2[], $18::text[], $19::text[], $20::int8[], $21::int8[], $22::int8[], $23::text[],
                             $24::int8[], $25::text[])
                      AS x(r, c, k, s, m, p, u, st, i, o, us, co, l, t, a, sta, h, e, pu, ci, cw, rt, sc, un, ut)
                 ON CONFLICT DO NOTHING
                 RETURNING created_at, key_name, model_name, provider_id, purpose, input_tokens, output_tokens, cost,
                           cached_input_tokens, cache_write_tokens, reasoning_tokens, usage_source, cache_saved_cost, units
             )
             INSERT INTO usage_hourly AS h (hour, key_name, model_name, provider_id, purpose, requests, input_tokens, output_tokens, cost,
                                            cached_input_tokens, cache_write_tokens, reasoning_tokens, cache_hits, cache_saved_cost, units)
             SELECT date_trunc('hour', created_at, 'UTC'), coalesce(key_name, ''), model_name, coalesce(provider_id, ''), purpose,
                    count(*), sum(input_tokens), sum(output_tokens), sum(cost),
                    sum(cached_input_tokens), sum(cache_write_tokens), sum(reasoning_tokens),
                    count(*) FILTER (WHERE usage_source = 'cache'), sum(cache_saved_cost), coalesce(sum(units), 0)
             FROM inserted
             GROUP BY 1, 2, 3, 4, 5
             ORDER BY 1, 2, 3, 4, 5
             ON CONFLICT (hour, key_name, model_name, provider_id, purpose) DO UPDATE SET
                 requests = h.requests + EXCLUDED.requests,
                 input_tokens = h.input_tokens + EXCLUDED.input_tokens,
                 output_tokens = h.output_tokens + EXCLUDED.output_tokens,
                 cost = h.cost + EXCLUDED.cost,
                 cached_input_tokens = h.cached_input_tokens + EXCLUDED.cached_input_tokens,
                 cache_write_tokens = h.cache_write_tokens + EXCLUDED.cache_write_tokens,
                 reasoning_tokens = h.reasoning_tokens + EXCLUDED.reasoning_tokens,
                 cache_hits = h.cache_hits + EXCLUDED.cache_hits,
                 cache_saved_cost = h.cache_saved_cost + EXCLUDED.cache_saved_cost,
                 units = h.units + EXCLUDED.units",
            &[
                &col(|r| &r.request_id),
                &created,
                &opt(|r| r.key_name.as_deref()),
                &opt(|r| r.session_id.as_deref()),
                &col(|r| &r.model_name),
                &opt(|r| r.provider_id.as_deref()),
                &opt(|r| r.upstream_model.as_deref()),
                &batch.iter().map(|r| r.stream).collect::<Vec<bool>>(),
                &batch.iter().map(|r| r.input_tokens).collect::<Vec<i64>>(),
                &batch.iter().map(|r| r.output_tokens).collect::<Vec<i64>>(),
                &col(|r| r.usage_source.as_str()),
                &col(|r| &r.cost),
                &batch.iter().map(|r| r.latency_ms).collect::<Vec<i32>>(),
                &batch.iter().map(|r| r.ttft_ms).collect::<Vec<Option<i32>>>(),
                &batch.iter().map(|r| r.attempts).collect::<Vec<i16>>(),
                &col(|r| r.status.as_str()),
                &batch.iter().map(|r| r.http_status).collect::<Vec<i16>>(),
                &opt(|r| r.error_message.as_deref()),
                &col(|r| r.purpose.as_str()),
                &batch.iter().map(|r| r.cached_input_tokens).collect::<Vec<i64>>(),
                &batch.iter().map(|r| r.cache_write_tokens).collect::<Vec<i64>>(),
                &batch.iter().map(|r| r.reasoning_tokens).collect::<Vec<i64>>(),
                &col(|r| &r.cache_saved_cost),
                &batch
                    .iter()
                    .map(|r| r.units.map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
                    .collect::<Vec<Option<i64>>>(),
                &batch
                    .iter()
                    .map(|r| r.unit.map(|u| u.as_str()))
                    .collect::<Vec<Option<&str>>>(),
            ],
        )
        .await?;
    Ok(())
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
