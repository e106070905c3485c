//! Usage totals over a time window, grouped by key, model, provider or day: from PostgreSQL or,
//! for the file sink, by reading its JSON lines. Both give the same rows, with exact costs.
//!
//! PostgreSQL answers from `usage_hourly`, the hourly totals the writer keeps with the rows, so
//! the answer's cost grows with the hours in the window, not with the requests in it. An edge of
//! the window that is not on an hour is read from `request_logs` (under an hour of rows at each
//! end); an end at or after now needs no rows, since its hour's totals hold everything written
//! so far. Dates (`2026-11-01`) and the defaults (this month, until now) never read a row.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::UsageError;
use super::price::{format_cost, parse_cost};
use super::record::{Unit, UsageRecord};

/// Where the totals come from.
pub enum Ledger {
    Postgres(deadpool_postgres::Pool),
    /// The file sink: its path and how many rotated files it keeps.
    File(PathBuf, u32),
}

/// Longest `/v1/usage` waits for the database, connection included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(12);

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    All,
    Key,
    Model,
    Provider,
    Day,
}

/// What to total: `[from_us, to_us)` in microseconds since the epoch, optionally one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub group: Group,
    pub from_us: i64,
    pub to_us: i64,
    pub key: Option<String>,
}

/// One group's totals; `cost` in units of 1e-10 dollars.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub group: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Parts of `input_tokens` and `output_tokens`.
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost: u128,
    /// Requests the result cache answered (part of `requests`), and what their answers cost
    /// when they were generated (not part of `cost`), in units of 1e-10 dollars.
    pub cache_hits: i64,
    pub cache_saved_cost: u128,
    /// What requests priced by units counted (DESIGN §5 "Other endpoints"): audio seconds,
    /// speech characters, images, rerank searches.
    pub seconds: i64,
    pub characters: i64,
    pub images: i64,
    pub searches: i64,
}

// === impl Group ===

impl Group {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::All,
            "key" => Self::Key,
            "model" => Self::Model,
            "provider" => Self::Provider,
            "day" => Self::Day,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::All => "none",
            Self::Key => "key",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Day => "day",
        }
    }

    /// The SQL expression of the group over `request_logs`: one of these constants, never built
    /// from input.
    fn row_sql(self) -> &'static str {
        match self {
            Self::All => "'all'",
            Self::Key => "coalesce(key_name, '')",
            Self::Model => "model_name",
            Self::Provider => "coalesce(provider_id, '')",
            Self::Day => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }
    }

    /// The same over `usage_hourly` (where no key or provider is already '').
    fn hourly_sql(self) -> &'static str {
        match self {
            Self::All => "'all'",
            Self::Key => "key_name",
            Self::Model => "model_name",
            Self::Provider => "provider_id",
            Self::Day => "to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }
    }

    fn of(self, r: &UsageRecord) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::Key => r.key_name.as_deref().unwrap_or_default().to_owned(),
            Self::Model => r.model_name.to_string(),
            Self::Provider => r.provider_id.as_deref().unwrap_or_default().to_owned(),
            Self::Day => crate::clock::utc_date(r.created_at_us),
        }
    }
}

// === impl Ledger ===

impl Ledger {
    /// The Postgres ledger at `url`. A dead or blackholed database must fail `/v1/usage` in
    /// seconds, never hang it: bounded waits for a pooled connection, for making one, and for
    /// every statement.
    pub fn postgres(url: &str) -> Result<Self, String> {
        crate::db::Target::parse(url, "usage.database_url")?
            .pool(4)
            .map(Ledger::Postgres)
    }

    pub async fn totals(&self, query: Query) -> Result<Vec<Totals>, UsageError> {
        match self {
            // The statement timeout bounds the query on the server; this bounds the client side
            // too (a blackholed connection never answers at all).
            Ledger::Postgres(pool) => {
                tokio::time::timeout(QUERY_TIMEOUT, from_postgres(pool, &query))
                    .await
                    .map_err(|_| UsageError("the usage database did not answer in time".into()))?
            }
            Ledger::File(path, keep) => {
                let files = super::rotation::files(path, *keep);
                tokio::task::spawn_blocking(move || from_files(&files, &query))
                    .await
                    .map_err(|e| UsageError(format!("reading the usage file failed: {e}")))?
            }
        }
    }
}

/// The units of an hourly total, by its purpose (one purpose has one unit).
const HOURLY_UNITS: &str =
    "CASE WHEN purpose IN ('transcription', 'translation') THEN units END AS us,
                    CASE WHEN purpose = 'speech' THEN units END AS uc,
                    CASE WHEN purpose = 'image' THEN units END AS ui,
                    CASE WHEN purpose = 'rerank' THEN units END AS ur";
/// A row's units, by its `unit`.
const ROW_UNITS: &str = "CASE WHEN unit = 'seconds' THEN units END,
                    CASE WHEN unit = 'characters' THEN units END,
                    CASE WHEN unit = 'images' THEN units END,
                    CASE WHEN unit = 'searches' THEN units END";

async fn from_postgres(
    pool: &deadpool_postgres::Pool,
    q: &Query,
) -> Result<Vec<Totals>, UsageError> {
    let client = pool
        .get()
        .await
        .map_err(|e| UsageError(format!("usage database unavailable: {e}")))?;
    let at = |us: i64| UNIX_EPOCH + Duration::from_micros(us.max(0) as u64);
    let split = Split::of(q.from_us, q.to_us, crate::clock::unix_micros());
    let [(h0, h1), (a0, a1), (b0, b1)] =
        [split.hours, split.before, split.after].map(|(x, y)| (at(x), at(y)));
    let sql = format!(
        "SELECT g, sum(n)::int8, sum(i)::int8, sum(o)::int8, coalesce(sum(c), 0)::numeric(30,10)::text,
                sum(ci)::int8, sum(cw)::int8, sum(r)::int8,
                sum(h)::int8, coalesce(sum(s), 0)::numeric(30,10)::text,
                coalesce(sum(us), 0)::int8, coalesce(sum(uc), 0)::int8, coalesce(sum(ui), 0)::int8,
                coalesce(sum(ur), 0)::int8
         FROM (
             SELECT {hourly} AS g, requests AS n, input_tokens AS i, output_tokens AS o, cost AS c,
                    cached_input_tokens AS ci, cache_write_tokens AS cw, reasoning_tokens AS r,
                    cache_hits AS h, cache_saved_cost AS s,
                    {hourly_units}
             FROM usage_hourly
             WHERE hour >= $1 AND hour < $2 AND ($7::text IS NULL OR key_name = $7)
             UNION ALL
             SELECT {row}, 1, input_tokens, output_tokens, cost, cached_input_tokens,
                    cache_write_tokens, reasoning_tokens, (usage_source = 'cache')::int, cache_saved_cost,
                    {row_units}
             FROM request_logs
             WHERE created_at >= $3 AND created_at < $4 AND ($7::text IS NULL OR key_name = $7)
             UNION ALL
             SELECT {row}, 1, input_tokens, output_tokens, cost, cached_input_tokens,
                    cache_write_tokens, reasoning_tokens, (usage_source = 'cache')::int, cache_saved_cost,
                    {row_units}
             FROM request_logs
             WHERE created_at >= $5 AND created_at < $6 AND ($7::text IS NULL OR key_name = $7)
         ) t
         GROUP BY 1 ORDER BY 1",
        hourly = q.group.hourly_sql(),
        row = q.group.row_sql(),
        hourly_units = HOURLY_UNITS,
        row_units = ROW_UNITS,
    );
    let rows = client
        .query(&sql, &[&h0, &h1, &a0, &a1, &b0, &b1, &q.key])
        .await?;
    rows.iter()
        .map(|r| {
            let cost: String = r.get(4);
            let saved: String = r.get(9);
            Ok(Totals {
                group: r.get(0),
                requests: r.get(1),
                input_tokens: r.get(2),
                output_tokens: r.get(3),
                cached_input_tokens: r.get(5),
                cache_write_tokens: r.get(6),
                reasoning_tokens: r.get(7),
                cost: parse_cost(&cost)
                    .ok_or_else(|| UsageError(format!("unexpected cost {cost:?}")))?,
                cache_hits: r.get(8),
                cache_saved_cost: parse_cost(&saved)
                    .ok_or_else(|| UsageError(format!("unexpected cost {saved:?}")))?,
                seconds: r.get(10),
                characters: r.get(11),
                images: r.get(12),
                searches: r.get(13),
            })
        })
        .collect()
}

/// Reads the file sink line by line (constant memory in the file's size). Lines that are not
/// rows (a torn last line after a crash) are skipped.
/// Totals over the sink's file and its rotated ones (a file rotated away mid-read is skipped).
fn from_files(files: &[PathBuf], q: &Query) -> Result<Vec<Totals>, UsageError> {
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    for path in files {
        add_file(path, q, &mut groups)?;
    }
    Ok(groups.into_values().collect())
}

fn add_file(
    path: &Path,
    q: &Query,
    groups: &mut BTreeMap<String, Totals>,
) -> Result<(), UsageError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(UsageError(format!("{}: {e}", path.display()))),
    };
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
        let Ok(r) = serde_json::from_str::<UsageRecord>(&line) else {
            continue;
        };
        if r.created_at_us < q.from_us
            || r.created_at_us >= q.to_us
            || q.key
                .as_ref()
                .is_some_and(|k| r.key_name.as_deref() != Some(k.as_str()))
        {
            continue;
        }
        let group = q.group.of(&r);
        let t = groups.entry(group.clone()).or_insert_with(|| Totals {
            group,
            ..Totals::default()
        });
        t.requests += 1;
        t.input_tokens += r.input_tokens;
        t.output_tokens += r.output_tokens;
        t.cached_input_tokens += r.cached_input_tokens;
        t.cache_write_tokens += r.cache_write_tokens;
        t.reasoning_tokens += r.reasoning_tokens;
        t.cost += parse_cost(&r.cost).unwrap_or(0);
        let units = i64::try_from(r.units.unwrap_or(0)).unwrap_or(i64::MAX);
        match r.unit {
            Some(Unit::Seconds) => t.seconds += units,
            Some(Unit::Characters) => t.characters += units,
            Some(Unit::Images) => t.images += units,
            Some(Unit::Searches) => t.searches += units,
            None => {}
        }
        if r.usage_source == super::record::UsageSource::Cache {
            t.cache_hits += 1;
            t.cache_saved_cost += parse_cost(&r.cache_saved_cost).unwrap_or(0);
        }
    }
    Ok(())
}

// === impl Totals ===

impl Totals {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "group": self.group, "requests": self.requests, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens, "cost": format_cost(self.cost),
            "cache_hits": self.cache_hits, "cache_hit_ratio": self.cache_hit_ratio(),
            "cache_saved_cost": format_cost(self.cache_saved_cost),
            "units": {"seconds": self.seconds, "characters": self.characters,
                      "images": self.images, "searches": self.searches},
        })
    }

    /// Share of the requests the result cache answered, to four places (0 without requests).
    pub fn cache_hit_ratio(&self) -> f64 {
        match self.requests {
            0 => 0.0,
            n => (self.cache_hits as f64 / n as f64 * 10_000.0).round() / 10_000.0,
        }
    }
}

/// A window `[from, to)` cut into whole hours (read from `usage_hourly`) and the edges before
/// and after them (read from `request_logs`). Empty ranges have equal ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Split {
    hours: (i64, i64),
    before: (i64, i64),
    after: (i64, i64),
}

const HOUR_US: i64 = 3_600_000_000;

// === impl Split ===

impl Split {
    fn of(from: i64, to: i64, now: i64) -> Self {
        let start = ceil_hour(from);
        // Nothing was written after now: the hour holding `to` can be taken whole.
        let end = if to >= now {
            ceil_hour(to)
        } else {
            to.div_euclid(HOUR_US) * HOUR_US
        };
        if start >= end {
            return Self {
                hours: (0, 0),
                before: (from, to.max(from)),
                after: (0, 0),
            };
        }
        Self {
            hours: (start, end),
            before: (from, start),
            after: (end, to.max(end)),
        }
    }
}

fn ceil_hour(us: i64) -> i64 {
    us.div_euclid(HOUR_US) * HOUR_US
        + if us.rem_euclid(HOUR_US) == 0 {
            0
        } else {
            HOUR_US
        }
}

#[cfg(test)]
#[path = "totals_tests.rs"]
mod tests;
