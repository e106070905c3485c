//! The usage ledger: one row per request ([`record`]) priced exactly ([`price`]), tokens counted locally where the upstream
//! reported none ([`estimate`]), the batched writer ([`writer`]) into the file sink ([`file_sink`]) or PostgreSQL with a spill
//! file ([`postgres_sink`]), the schema
//! ([`migrations`], [`partitions`]) and the totals behind `/v1/usage` ([`totals`]).

pub mod counts;
pub mod estimate;
pub mod file_sink;
pub mod journal;
pub mod line;
pub mod migrations;
pub mod partitions;
pub mod postgres_sink;
pub mod price;
pub mod record;
pub mod rotation;
pub mod totals;
pub mod writer;

use std::fmt;

/// A ledger problem (database, spill or sink file); never on the request path.
#[derive(Debug)]
pub struct UsageError(pub String);

// === impl UsageError ===

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl From<tokio_postgres::Error> for UsageError {
    fn from(e: tokio_postgres::Error) -> Self {
        UsageError(match e.as_db_error() {
            Some(db) => format!("postgres: {}", db.message()),
            None => format!("postgres: {e}"),
        })
    }
}
