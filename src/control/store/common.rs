//! What the table modules share: the error type and the small conversions of their rows.

use std::fmt;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::config::{BudgetConfig, BudgetPeriod};

/// What a control-plane call can fail with; the admin API maps each to its status.
#[derive(Debug)]
pub enum ControlError {
    /// The database did not answer (or is not migrated): 503.
    Unavailable(String),
    /// No such model, route or key: 404.
    NotFound(String),
    /// The name is taken: 409.
    Conflict(String),
    /// A field's value is refused (an unknown model named by a route, among others): 400.
    Invalid { field: String, message: String },
}

/// Deletes the row `sql` names; `missing` words the 404 when there is none.
pub async fn delete(
    client: &mut Client,
    sql: &str,
    id: &(dyn tokio_postgres::types::ToSql + Sync),
    missing: impl FnOnce() -> String,
) -> Result<i64, ControlError> {
    let tx = client.transaction().await?;
    if tx.execute(sql, &[id]).await? == 0 {
        return Err(ControlError::NotFound(missing()));
    }
    commit(tx).await
}

/// Commits, answering the generation the transaction produced.
pub async fn commit(tx: tokio_postgres::Transaction<'_>) -> Result<i64, ControlError> {
    let generation: i64 = tx
        .query_one("SELECT generation FROM control_state", &[])
        .await?
        .get(0);
    tx.commit().await?;
    Ok(generation)
}

pub fn budget_of(usd: Option<String>, period: Option<&str>) -> Option<BudgetConfig> {
    let period = match period? {
        "day" => BudgetPeriod::Day,
        _ => BudgetPeriod::Month,
    };
    Some(BudgetConfig {
        usd: usd?.parse().ok()?,
        period,
    })
}

pub fn positive(v: Option<i32>) -> Option<u32> {
    v.filter(|v| *v > 0).map(|v| v as u32)
}

pub fn bytes32(v: Option<&[u8]>) -> Option<[u8; 32]> {
    v.and_then(|b| b.try_into().ok())
}

/// A unique violation on insert: the name is taken.
pub fn named(e: tokio_postgres::Error, what: &str, name: &str) -> ControlError {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            ControlError::Conflict(format!("a {what} named {name:?} already exists"))
        }
        _ => e.into(),
    }
}

// === impl ControlError ===

impl From<tokio_postgres::Error> for ControlError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            // A constraint the admin API's own checks should have caught: still the caller's.
            Some(db) if db.code() == &SqlState::CHECK_VIOLATION => ControlError::Invalid {
                field: db.column().unwrap_or("body").to_owned(),
                message: db.message().to_owned(),
            },
            Some(db) => ControlError::Unavailable(format!("postgres: {}", db.message())),
            None => ControlError::Unavailable(format!("postgres: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ControlError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ControlError::Unavailable(format!("control database: {e}"))
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Unavailable(m)
            | ControlError::NotFound(m)
            | ControlError::Conflict(m) => f.write_str(m),
            ControlError::Invalid { field, message } => write!(f, "{field}: {message}"),
        }
    }
}
