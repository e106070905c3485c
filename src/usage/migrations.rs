//! Numbered SQL migrations (`migrations/NNNN_name.sql`, compiled in), applied in order and
//! recorded in `schema_migrations` with a checksum. Safe when several replicas start at once:
//! everything runs under one Postgres advisory lock, and each migration in its own transaction.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::UsageError;

/// `(version, name, sql)`, in order. A migration is never edited once released: add a new one.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "request_logs",
        include_str!("../../migrations/0001_request_logs.sql"),
    ),
    (
        2,
        "leaner_indexes",
        include_str!("../../migrations/0002_leaner_indexes.sql"),
    ),
    (
        3,
        "usage_hourly",
        include_str!("../../migrations/0003_usage_hourly.sql"),
    ),
    (
        4,
        "control_plane",
        include_str!("../../migrations/0004_control_plane.sql"),
    ),
    (
        5,
        "prompt_caching",
        include_str!("../../migrations/0005_prompt_caching.sql"),
    ),
    (
        6,
        "max_output_tokens",
        include_str!("../../migrations/0006_max_output_tokens.sql"),
    ),
    (
        7,
        "result_cache",
        include_str!("../../migrations/0007_result_cache.sql"),
    ),
    (8, "units", include_str!("../../migrations/0008_units.sql")),
    (9, "audio", include_str!("../../migrations/0009_audio.sql")),
];

/// The advisory lock key shared by every replica's migrations and partition maintenance.
pub const LOCK_KEY: i64 = 0x5357_4954_4348_5944; // "SWITCHYD"

/// Applies pending migrations; returns the versions applied now (empty when up to date).
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, UsageError> {
    lock(client).await?;
    let result = apply_pending(client).await;
    let unlocked = unlock(client).await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

/// Waits for the advisory lock that migrations and partition maintenance share.
pub(super) async fn lock(client: &Client) -> Result<(), UsageError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    Ok(())
}

/// Releases it explicitly so a pooled connection does not keep it; closing would release it too.
pub(super) async fn unlock(client: &Client) -> Result<(), UsageError> {
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    Ok(())
}

async fn apply_pending(client: &mut Client) -> Result<Vec<i32>, UsageError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let rows = client
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await?;
    let done: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let checksum = checksum(sql);
        if let Some((_, recorded)) = done.iter().find(|(v, _)| v == version) {
            if *recorded != checksum {
                return Err(UsageError(format!(
                    "migration {version:04}_{name} changed after it was applied (checksum {recorded} in the database, {checksum} now)"
                )));
            }
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await.map_err(|e| {
            UsageError(format!(
                "migration {version:04}_{name} failed: {}",
                UsageError::from(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[version, name, &checksum],
        )
        .await?;
        tx.commit().await?;
        applied.push(*version);
    }
    Ok(applied)
}

fn checksum(sql: &str) -> String {
    let mut hex = String::new();
    crate::hex::push(&mut hex, &Sha256::digest(sql.as_bytes())[..8]);
    hex
}
