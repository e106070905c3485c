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
use std::time::Duration;

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

/// A small Postgres pool whose connections are made on first use (a database that is down at
/// start-up does not stop the gateway), each call bounded on both sides: a 10 s statement
/// timeout on the server, 3 s to connect, wait or recycle on the client.
pub fn pool(url: &str, size: usize) -> Result<deadpool_postgres::Pool, String> {
    let mut config = deadpool_postgres::Config::new();
    config.url = Some(url.to_owned());
    config.connect_timeout = Some(Duration::from_secs(3));
    config.options = Some("-c statement_timeout=10000".into());
    let mut pool = deadpool_postgres::PoolConfig::new(size);
    pool.timeouts = deadpool_postgres::Timeouts {
        wait: Some(Duration::from_secs(3)),
        create: Some(Duration::from_secs(3)),
        recycle: Some(Duration::from_secs(3)),
    };
    config.pool = Some(pool);
    config
        .create_pool(
            Some(deadpool_postgres::Runtime::Tokio1),
            tokio_postgres::NoTls,
        )
        .map_err(|e| e.to_string())
}
