//! The usage ledger: schema migrations and monthly partitions of `request_logs` (this module so
//! far), then the batched writer, spill file and `/v1/usage` (issue #4, in progress).

pub mod estimate;
pub mod migrations;
pub mod partitions;
pub mod record;
pub mod writer;

use std::fmt;

/// A database problem at start-up or in maintenance; never on the request path.
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
