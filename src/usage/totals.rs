//! Usage totals over a time window, grouped by key, model, provider or day: from PostgreSQL
//! (one `GROUP BY`) or, for the file sink, by reading its JSON lines. Both give the same rows,
//! with exact costs.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::UsageError;
use super::price::{format_cost, parse_cost};
use super::record::UsageRecord;

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
    pub cost: u128,
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

    /// The SQL expression of the group: one of these constants, never built from input.
    fn sql(self) -> &'static str {
        match self {
            Self::All => "'all'",
            Self::Key => "coalesce(key_name, '')",
            Self::Model => "model_name",
            Self::Provider => "coalesce(provider_id, '')",
            Self::Day => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }
    }

    fn of(self, r: &UsageRecord) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::Key => r.key_name.clone().unwrap_or_default(),
            Self::Model => r.model_name.clone(),
            Self::Provider => r.provider_id.clone().unwrap_or_default(),
            Self::Day => crate::clock::utc_date(r.created_at_us),
        }
    }
}

// === impl Ledger ===

impl Ledger {
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

async fn from_postgres(
    pool: &deadpool_postgres::Pool,
    q: &Query,
) -> Result<Vec<Totals>, UsageError> {
    let client = pool
        .get()
        .await
        .map_err(|e| UsageError(format!("usage database unavailable: {e}")))?;
    let at = |us: i64| UNIX_EPOCH + Duration::from_micros(us.max(0) as u64);
    let (from, to): (SystemTime, SystemTime) = (at(q.from_us), at(q.to_us));
    let sql = format!(
        "SELECT {}, count(*)::int8, coalesce(sum(input_tokens), 0)::int8, coalesce(sum(output_tokens), 0)::int8,
                coalesce(sum(cost), 0)::numeric(30,10)::text
         FROM request_logs
         WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR key_name = $3)
         GROUP BY 1 ORDER BY 1",
        q.group.sql()
    );
    let rows = client.query(&sql, &[&from, &to, &q.key]).await?;
    rows.iter()
        .map(|r| {
            let cost: String = r.get(4);
            Ok(Totals {
                group: r.get(0),
                requests: r.get(1),
                input_tokens: r.get(2),
                output_tokens: r.get(3),
                cost: parse_cost(&cost)
                    .ok_or_else(|| UsageError(format!("unexpected cost {cost:?}")))?,
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
                .is_some_and(|k| r.key_name.as_ref() != Some(k))
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
        t.cost += parse_cost(&r.cost).unwrap_or(0);
    }
    Ok(())
}

// === impl Totals ===

impl Totals {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "group": self.group, "requests": self.requests, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "cost": format_cost(self.cost),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(key: &str, model: &str, at_us: i64, input: i64, cost: &str) -> String {
        serde_json::json!({
            "request_id": format!("r{at_us}"), "created_at_us": at_us, "key_name": key, "session_id": null,
            "model_name": model, "provider_id": "p", "upstream_model": "u", "stream": false,
            "input_tokens": input, "output_tokens": 1, "usage_source": "upstream", "cost": cost,
            "latency_ms": 1, "ttft_ms": null, "attempts": 1, "status": "ok", "http_status": 200,
            "error_message": null, "purpose": "chat"
        })
        .to_string()
    }

    #[test]
    fn the_file_sink_totals_by_group_within_the_window() {
        let day = 86_400_000_000;
        let path =
            std::env::temp_dir().join(format!("switchyard-totals-{}.jsonl", std::process::id()));
        let text = [
            line("a", "m1", day, 10, "0.0000000001"),
            line("a", "m2", day + 5, 20, "0.0000000002"),
            line("b", "m1", 2 * day, 30, "1.5"),
            line("a", "m1", 3 * day, 40, "9"), // outside the window
            "{\"torn".to_owned(),
        ]
        .join("\n");
        std::fs::write(&path, text).unwrap();
        let query = |group, key: Option<&str>| Query {
            group,
            from_us: day,
            to_us: 3 * day,
            key: key.map(str::to_owned),
        };
        let by_day = from_files(std::slice::from_ref(&path), &query(Group::Day, None)).unwrap();
        let summary: Vec<_> = by_day
            .iter()
            .map(|t| {
                (
                    t.group.as_str(),
                    t.requests,
                    t.input_tokens,
                    format_cost(t.cost),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("1970-01-02", 2, 30, "0.0000000003".to_owned()),
                ("1970-01-03", 1, 30, "1.5000000000".to_owned())
            ]
        );
        let key_a =
            from_files(std::slice::from_ref(&path), &query(Group::Model, Some("a"))).unwrap();
        let models: Vec<_> = key_a
            .iter()
            .map(|t| (t.group.as_str(), t.requests))
            .collect();
        assert_eq!(models, [("m1", 1), ("m2", 1)]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            from_files(std::slice::from_ref(&path), &query(Group::All, None)).unwrap(),
            []
        );
    }
}
