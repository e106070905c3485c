//! Monthly partitions of `request_logs` and of its hourly totals `usage_hourly`, named
//! `request_logs_YYYY_MM` and `usage_hourly_YYYY_MM`, bounded at UTC month starts. [`maintain`]
//! premakes the current month and `ahead` more, and drops partitions older than
//! `retention_months` full months before the current one (12 keeps the current month and the 12
//! before it). It runs under the migrations' advisory lock, so replicas never race on DDL.

use tokio_postgres::Client;

use super::UsageError;
use super::migrations::{lock, unlock};
use crate::clock::{civil_from_days, days_from_civil};

/// A calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u32,
}

/// What one maintenance pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
}

// === impl Month ===

impl Month {
    /// The UTC month of a Unix timestamp.
    pub fn of_unix(secs: i64) -> Self {
        let (year, month, _) = civil_from_days(secs.div_euclid(86_400));
        Self {
            year: year as i32,
            month,
        }
    }

    pub fn now() -> Self {
        Self::of_unix(crate::clock::unix_now() as i64)
    }

    pub fn next(self) -> Self {
        match self.month {
            12 => Self {
                year: self.year + 1,
                month: 1,
            },
            m => Self {
                year: self.year,
                month: m + 1,
            },
        }
    }

    pub fn minus(self, months: u32) -> Self {
        let index = self.year as i64 * 12 + (self.month as i64 - 1) - months as i64;
        Self {
            year: index.div_euclid(12) as i32,
            month: index.rem_euclid(12) as u32 + 1,
        }
    }

    pub fn table(self) -> String {
        self.table_of("request_logs")
    }

    /// The month's partition of `parent`: `usage_hourly_2026_11`.
    pub fn table_of(self, parent: &str) -> String {
        format!("{parent}_{:04}_{:02}", self.year, self.month)
    }

    /// `request_logs_2026_11` → November 2026.
    pub fn from_table(name: &str) -> Option<Self> {
        Self::from_table_of("request_logs", name)
    }

    /// `usage_hourly_2026_11` → November 2026 (for `parent` `usage_hourly`).
    pub fn from_table_of(parent: &str, name: &str) -> Option<Self> {
        let rest = name.strip_prefix(parent)?.strip_prefix('_')?;
        let (year, month) = rest.split_once('_')?;
        let (year, month) = (year.parse().ok()?, month.parse().ok()?);
        (rest.len() == 7 && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    /// The month's first instant, in microseconds since the epoch.
    pub fn start_micros(self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, 1) * 86_400_000_000
    }

    fn start(self) -> String {
        format!("{:04}-{:02}-01 00:00:00+00", self.year, self.month)
    }
}

/// Premakes partitions for `now` and `ahead` months after it; drops those older than retention.
pub async fn maintain(
    client: &Client,
    now: Month,
    ahead: u32,
    retention_months: u32,
) -> Result<Maintenance, UsageError> {
    lock(client).await?;
    let result = maintain_locked(client, now, ahead, retention_months).await;
    let unlocked = unlock(client).await;
    let done = result?;
    unlocked?;
    Ok(done)
}

async fn maintain_locked(
    client: &Client,
    now: Month,
    ahead: u32,
    retention_months: u32,
) -> Result<Maintenance, UsageError> {
    let mut done = Maintenance::default();
    for parent in PARENTS {
        let existing = partitions_of(client, parent).await?;
        let mut month = now;
        for _ in 0..=ahead {
            let table = month.table_of(parent);
            if !existing.contains(&table) {
                // Names and bounds are generated from numbers above: nothing user-supplied
                // reaches the DDL.
                let ddl = format!(
                    "CREATE TABLE IF NOT EXISTS {table} PARTITION OF {parent} FOR VALUES FROM ('{}') TO ('{}')",
                    month.start(),
                    month.next().start()
                );
                client.batch_execute(&ddl).await?;
                done.created.push(table);
            }
            month = month.next();
        }
        let oldest_kept = now.minus(retention_months);
        for table in existing {
            if Month::from_table_of(parent, &table).is_some_and(|m| m < oldest_kept) {
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                    .await?;
                done.dropped.push(table);
            }
        }
    }
    Ok(done)
}

/// The partitioned tables kept month by month: the ledger and its hourly totals.
const PARENTS: [&str; 2] = ["request_logs", "usage_hourly"];

/// The partitions of `parent` (one of [`PARENTS`]) in the current schema.
pub async fn partitions_of(client: &Client, parent: &str) -> Result<Vec<String>, UsageError> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::text::regclass ORDER BY 1",
            &[&parent],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_of_timestamps_are_utc() {
        assert_eq!(
            Month::of_unix(0),
            Month {
                year: 1970,
                month: 1
            }
        );
        // 2026-11-30T23:59:59Z and one second later.
        assert_eq!(
            Month::of_unix(1_796_083_199),
            Month {
                year: 2026,
                month: 11
            }
        );
        assert_eq!(
            Month::of_unix(1_796_083_200),
            Month {
                year: 2026,
                month: 12
            }
        );
        // 2024-02-29T12:00:00Z (leap day), 1969-12-31T23:00:00Z.
        assert_eq!(
            Month::of_unix(1_709_208_000),
            Month {
                year: 2024,
                month: 2
            }
        );
        assert_eq!(
            Month::of_unix(-3_600),
            Month {
                year: 1969,
                month: 12
            }
        );
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn month_arithmetic_and_names() {
        let nov = Month {
            year: 2026,
            month: 11,
        };
        assert_eq!(
            nov.next().next(),
            Month {
                year: 2027,
                month: 1
            }
        );
        assert_eq!(
            nov.minus(12),
            Month {
                year: 2025,
                month: 11
            }
        );
        assert_eq!(
            nov.minus(11 + 12),
            Month {
                year: 2024,
                month: 12
            }
        );
        assert_eq!(nov.table(), "request_logs_2026_11");
        assert_eq!(Month::from_table("request_logs_2026_11"), Some(nov));
        assert_eq!(Month::from_table("request_logs_2026_13"), None);
        assert_eq!(Month::from_table("request_logs_default"), None);
        assert_eq!(nov.table_of("usage_hourly"), "usage_hourly_2026_11");
        assert_eq!(
            Month::from_table_of("usage_hourly", "usage_hourly_2026_11"),
            Some(nov)
        );
        assert_eq!(
            Month::from_table_of("usage_hourly", "request_logs_2026_11"),
            None
        );
        assert_eq!(nov.start(), "2026-11-01 00:00:00+00");
    }
}
