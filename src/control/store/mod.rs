//! The control plane's tables (migration 0004): one consistent read of the catalog, the seeding
//! from the config file (once), and the admin writes, one file per table. Every write commits
//! with the generation it produced (the tables' trigger bumps it and notifies
//! `switchyard_control`), so the replica that made it can wait until it serves it.

mod common;
mod keys;
mod models;
mod routes;
mod seed;

use tokio_postgres::Client;

pub use common::ControlError;
pub use keys::*;
pub use models::*;
pub use routes::*;
pub use seed::*;

use super::catalog::{Catalog, ModelSpec, RouteSpec};
use crate::limits::budget::Budget;
use crate::limits::keys::KeySpec;
use common::{budget_of, bytes32, positive};

// === reading ===

/// The current generation: a cheap check for the periodic resync.
pub async fn generation(client: &Client) -> Result<i64, ControlError> {
    let row = client
        .query_one("SELECT generation FROM control_state", &[])
        .await?;
    Ok(row.get(0))
}

/// The whole catalog and its generation, read in one snapshot. Revoked keys and disabled routes
/// are left out: a replica serves what this returns.
pub async fn load(client: &mut Client) -> Result<(i64, Catalog), ControlError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let generation: i64 = tx
        .query_one("SELECT generation FROM control_state", &[])
        .await?
        .get(0);
    let mut models: Vec<ModelSpec> = list_models(&tx)
        .await?
        .into_iter()
        .map(|m| ModelSpec {
            name: m.name,
            kind: m.kind,
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            price: m.price,
            tokenizer: m.tokenizer,
            cache: crate::config::ModelCache::Inherit,
            created: Some(m.created),
            routes: Vec::new(),
        })
        .collect();
    for RouteRow { id, fields: r } in list_routes(&tx)
        .await?
        .into_iter()
        .filter(|r| r.fields.enabled)
    {
        if let Some(m) = models.iter_mut().find(|m| m.name == r.model) {
            m.routes.push(RouteSpec {
                id: Some(id),
                provider: r.provider,
                upstream_model: r.upstream_model,
                weight: r.weight,
                priority: r.priority,
                max_rps: r.max_rps,
            });
        }
    }
    let rows = tx
        .query(
            "SELECT name, key_sha256, previous_sha256,
                    floor(extract(epoch FROM previous_valid_until))::bigint,
                    floor(extract(epoch FROM expires_at))::bigint,
                    is_admin, models, rpm, tpm, budget_usd::text, budget_period
             FROM api_keys WHERE revoked_at IS NULL ORDER BY name",
            &[],
        )
        .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(digest) = bytes32(row.get(1)) else {
            continue;
        };
        let previous = match (bytes32(row.get(2)), row.get::<_, Option<i64>>(3)) {
            (Some(d), Some(until)) => Some((d, until.max(0) as u64)),
            _ => None,
        };
        keys.push(KeySpec {
            name: row.get(0),
            digest,
            previous,
            expires_at: row.get::<_, Option<i64>>(4).map(|t| t.max(0) as u64),
            admin: row.get(5),
            models: row.get(6),
            rpm: positive(row.get(7)),
            tpm: positive(row.get(8)),
            budget: budget_of(row.get(9), row.get(10))
                .as_ref()
                .map(Budget::from_config),
        });
    }
    tx.commit().await?;
    Ok((generation, Catalog { models, keys }))
}
