//! The control plane's tables (migration 0004): one consistent read of the catalog, the seeding
//! from the config file (once), and the admin writes. Every write commits with the generation it
//! produced (the tables' trigger bumps it and notifies `switchyard_control`), so the replica that
//! made it can wait until it serves it.

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, Row};

use super::catalog::{Catalog, ModelSpec, RouteSpec};
use crate::config::{BudgetConfig, BudgetPeriod, Config, ModelType, PriceConfig, Tokenizer};
use crate::limits::budget::Budget;
use crate::limits::keys::{KeySpec, digest};

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

/// A model as the admin API shows and takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRow {
    pub name: String,
    #[serde(rename = "type", default = "chat")]
    pub kind: ModelType,
    #[serde(default)]
    pub context_window: Option<u32>,
    #[serde(default)]
    pub price: Option<PriceConfig>,
    #[serde(default)]
    pub tokenizer: Option<Tokenizer>,
}

/// A routing rule as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteRow {
    pub id: i64,
    pub model: String,
    pub provider: String,
    pub upstream_model: String,
    pub priority: u32,
    pub weight: u32,
    pub max_rps: Option<u32>,
    pub enabled: bool,
}

/// A gateway key as the admin API shows it: never the key, nor its digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRow {
    pub name: String,
    pub prefix: String,
    pub admin: bool,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget: Option<BudgetConfig>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

/// A new key's fields (POST /admin/v1/keys).
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub admin: bool,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget: Option<BudgetConfig>,
    pub expires_at: Option<i64>,
}

/// A change to a key: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub admin: Option<bool>,
    pub models: Option<Option<Vec<String>>>,
    pub rpm: Option<Option<u32>>,
    pub tpm: Option<Option<u32>>,
    pub budget: Option<Option<BudgetConfig>>,
    pub expires_at: Option<Option<i64>>,
    pub revoked: Option<bool>,
}

/// A new route's fields (POST /admin/v1/routes), or a route's fields after a PATCH.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteFields {
    pub model: String,
    pub provider: String,
    pub upstream_model: String,
    pub priority: u32,
    pub weight: u32,
    pub max_rps: Option<u32>,
    pub enabled: bool,
}

/// Keys the gateway makes: this prefix and 40 random alphanumerics (238 bits).
pub const KEY_PREFIX: &str = "sk-sy-";
const KEY_RANDOM_CHARS: usize = 40;
/// How much of a key is kept in clear, for humans: `sk-sy-` and 4 characters.
const SHOWN_CHARS: usize = 10;

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
            price: m.price,
            tokenizer: m.tokenizer,
            routes: Vec::new(),
        })
        .collect();
    for r in list_routes(&tx).await?.into_iter().filter(|r| r.enabled) {
        if let Some(m) = models.iter_mut().find(|m| m.name == r.model) {
            m.routes.push(RouteSpec {
                id: Some(r.id),
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

pub async fn list_models(client: &impl GenericClient) -> Result<Vec<ModelRow>, ControlError> {
    let rows = client
        .query(
            "SELECT name, type, context_window, input_per_1m::text, output_per_1m::text, tokenizer
             FROM models ORDER BY created_at, name",
            &[],
        )
        .await?;
    Ok(rows.iter().map(model_row).collect())
}

pub async fn list_routes(client: &impl GenericClient) -> Result<Vec<RouteRow>, ControlError> {
    let rows = client
        .query(&format!("{SELECT_ROUTES} ORDER BY id"), &[])
        .await?;
    Ok(rows.iter().map(route_row).collect())
}

pub async fn list_keys(client: &Client) -> Result<Vec<KeyRow>, ControlError> {
    let rows = client
        .query(&format!("{SELECT_KEYS} ORDER BY name"), &[])
        .await?;
    Ok(rows.iter().map(key_row).collect())
}

pub async fn get_key(client: &Client, name: &str) -> Result<KeyRow, ControlError> {
    client
        .query_opt(&format!("{SELECT_KEYS} WHERE name = $1"), &[&name])
        .await?
        .map(|r| key_row(&r))
        .ok_or_else(|| ControlError::NotFound(format!("no key named {name:?}")))
}

const SELECT_ROUTES: &str = "SELECT id, model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled FROM routing_rules";
const SELECT_KEYS: &str = "SELECT name, prefix, is_admin, models, rpm, tpm, budget_usd::text, budget_period, floor(extract(epoch FROM expires_at))::bigint, revoked_at IS NOT NULL FROM api_keys";

// === seeding ===

/// What the config file seeds the tables with.
#[derive(Debug, Default)]
pub struct Seed {
    models: Vec<(ModelRow, Vec<RouteFields>)>,
    keys: Vec<(NewKey, [u8; 32], String)>,
}

impl Seed {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let models = config
            .models
            .iter()
            .map(|m| {
                let row = ModelRow {
                    name: m.name.clone(),
                    kind: m.kind,
                    context_window: m.context_window,
                    price: m.price.clone(),
                    tokenizer: m.tokenizer,
                };
                let routes = m
                    .routes
                    .iter()
                    .map(|r| RouteFields {
                        model: m.name.clone(),
                        provider: r.provider.clone(),
                        upstream_model: r.model.clone(),
                        priority: r.priority,
                        weight: r.weight,
                        max_rps: r.max_rps,
                        enabled: true,
                    })
                    .collect();
                (row, routes)
            })
            .collect();
        let mut keys = Vec::with_capacity(config.auth.keys.len());
        for (i, k) in config.auth.keys.iter().enumerate() {
            let spec = KeySpec::from_config(i, k)?;
            // What a human may see of a key given in clear; of a hashed one, nothing.
            let prefix = match &k.key {
                Some(key) => {
                    let key = key.expose();
                    key.chars().take(SHOWN_CHARS.min(key.len() / 3)).collect()
                }
                None => String::new(),
            };
            let fields = NewKey {
                name: k.name.clone(),
                admin: k.admin,
                models: k.models.clone(),
                rpm: k.rpm,
                tpm: k.tpm,
                budget: k.budget.clone(),
                expires_at: None,
            };
            keys.push((fields, spec.digest, prefix));
        }
        Ok(Self { models, keys })
    }
}

/// Seeds the tables from the config's models and keys if they never were (once per database,
/// whatever has happened to the tables since). Returns whether it seeded now. Safe when
/// replicas race: the row lock on `control_state` lets one seed and the others see it done.
pub async fn seed(client: &mut Client, seed: &Seed) -> Result<bool, ControlError> {
    let tx = client.transaction().await?;
    let seeded: Option<std::time::SystemTime> = tx
        .query_one("SELECT seeded_at FROM control_state FOR UPDATE", &[])
        .await?
        .get(0);
    if seeded.is_some() {
        return Ok(false);
    }
    for (model, routes) in &seed.models {
        insert_model(&tx, model).await?;
        for r in routes {
            insert_route(&tx, r).await?;
        }
    }
    for (fields, digest, prefix) in &seed.keys {
        insert_key(&tx, fields, digest, prefix, true).await?;
    }
    tx.execute("UPDATE control_state SET seeded_at = now()", &[])
        .await?;
    tx.commit().await?;
    Ok(true)
}

// === models ===

pub async fn create_model(client: &mut Client, m: &ModelRow) -> Result<i64, ControlError> {
    let tx = client.transaction().await?;
    insert_model(&tx, m).await?;
    commit(tx).await
}

/// Replaces a model's fields (its name stays).
pub async fn update_model(client: &mut Client, m: &ModelRow) -> Result<i64, ControlError> {
    let tx = client.transaction().await?;
    let (input, output) = prices(m.price.as_ref());
    let changed = tx
        .execute(
            "UPDATE models SET type = $2, context_window = $3, input_per_1m = $4::text::numeric,
                    output_per_1m = $5::text::numeric, tokenizer = $6, updated_at = clock_timestamp()
             WHERE name = $1",
            &[
                &m.name,
                &kind_name(m.kind),
                &m.context_window.map(|c| c as i32),
                &input,
                &output,
                &m.tokenizer.map(tokenizer_name),
            ],
        )
        .await?;
    if changed == 0 {
        return Err(ControlError::NotFound(format!(
            "no model named {:?}",
            m.name
        )));
    }
    commit(tx).await
}

pub async fn get_model(client: &Client, name: &str) -> Result<ModelRow, ControlError> {
    client
        .query_opt(
            "SELECT name, type, context_window, input_per_1m::text, output_per_1m::text, tokenizer
             FROM models WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|r| model_row(&r))
        .ok_or_else(|| ControlError::NotFound(format!("no model named {name:?}")))
}

/// Deletes a model and its routes.
pub async fn delete_model(client: &mut Client, name: &str) -> Result<i64, ControlError> {
    delete(client, "DELETE FROM models WHERE name = $1", &name, || {
        format!("no model named {name:?}")
    })
    .await
}

async fn insert_model(client: &impl GenericClient, m: &ModelRow) -> Result<(), ControlError> {
    let (input, output) = prices(m.price.as_ref());
    client
        .execute(
            "INSERT INTO models (name, type, context_window, input_per_1m, output_per_1m, tokenizer)
             VALUES ($1, $2, $3, $4::text::numeric, $5::text::numeric, $6)",
            &[
                &m.name,
                &kind_name(m.kind),
                &m.context_window.map(|c| c as i32),
                &input,
                &output,
                &m.tokenizer.map(tokenizer_name),
            ],
        )
        .await
        .map_err(|e| named(e, "model", &m.name))?;
    Ok(())
}

// === routes ===

pub async fn create_route(
    client: &mut Client,
    r: &RouteFields,
) -> Result<(RouteRow, i64), ControlError> {
    let tx = client.transaction().await?;
    let row = insert_route(&tx, r).await?;
    Ok((row, commit(tx).await?))
}

pub async fn get_route(client: &Client, id: i64) -> Result<RouteRow, ControlError> {
    client
        .query_opt(&format!("{SELECT_ROUTES} WHERE id = $1"), &[&id])
        .await?
        .map(|r| route_row(&r))
        .ok_or_else(|| ControlError::NotFound(format!("no route with id {id}")))
}

pub async fn update_route(
    client: &mut Client,
    id: i64,
    r: &RouteFields,
) -> Result<(RouteRow, i64), ControlError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE routing_rules SET model_name = $2, provider_id = $3, upstream_model = $4,
                    priority = $5, weight = $6, max_rps = $7, is_enabled = $8,
                    updated_at = clock_timestamp()
             WHERE id = $1
             RETURNING id, model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled",
            &[
                &id,
                &r.model,
                &r.provider,
                &r.upstream_model,
                &(r.priority as i32),
                &(r.weight as i32),
                &r.max_rps.map(|m| m as i32),
                &r.enabled,
            ],
        )
        .await
        .map_err(unknown_model)?
        .ok_or_else(|| ControlError::NotFound(format!("no route with id {id}")))?;
    Ok((route_row(&row), commit(tx).await?))
}

pub async fn delete_route(client: &mut Client, id: i64) -> Result<i64, ControlError> {
    delete(
        client,
        "DELETE FROM routing_rules WHERE id = $1",
        &id,
        || format!("no route with id {id}"),
    )
    .await
}

async fn insert_route(
    client: &impl GenericClient,
    r: &RouteFields,
) -> Result<RouteRow, ControlError> {
    let row = client
        .query_one(
            "INSERT INTO routing_rules (model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled",
            &[
                &r.model,
                &r.provider,
                &r.upstream_model,
                &(r.priority as i32),
                &(r.weight as i32),
                &r.max_rps.map(|m| m as i32),
                &r.enabled,
            ],
        )
        .await
        .map_err(unknown_model)?;
    Ok(route_row(&row))
}

// === keys ===

/// Creates a key; returns it with its plaintext, which is never stored or shown again.
pub async fn create_key(
    client: &mut Client,
    fields: &NewKey,
) -> Result<(KeyRow, String, i64), ControlError> {
    let plaintext = new_key()?;
    let tx = client.transaction().await?;
    insert_key(
        &tx,
        fields,
        &digest(&plaintext),
        &plaintext[..SHOWN_CHARS],
        false,
    )
    .await?;
    let row = tx
        .query_one(&format!("{SELECT_KEYS} WHERE name = $1"), &[&fields.name])
        .await?;
    let row = key_row(&row);
    Ok((row, plaintext, commit(tx).await?))
}

pub async fn update_key(
    client: &mut Client,
    name: &str,
    patch: &KeyPatch,
) -> Result<(KeyRow, i64), ControlError> {
    let tx = client.transaction().await?;
    let current = tx
        .query_opt(
            &format!("{SELECT_KEYS} WHERE name = $1 FOR UPDATE"),
            &[&name],
        )
        .await?
        .map(|r| key_row(&r))
        .ok_or_else(|| ControlError::NotFound(format!("no key named {name:?}")))?;
    let budget = patch.budget.clone().unwrap_or(current.budget);
    let (budget_usd, budget_period) = budget_columns(budget.as_ref());
    let revoked = patch.revoked.unwrap_or(current.revoked);
    let row = tx
        .query_one(
            &format!(
                "UPDATE api_keys SET is_admin = $2, models = $3, rpm = $4, tpm = $5,
                        budget_usd = $6::text::numeric, budget_period = $7,
                        expires_at = to_timestamp($8::bigint::float8),
                        revoked_at = CASE WHEN $9 THEN coalesce(revoked_at, now()) END,
                        updated_at = clock_timestamp()
                 WHERE name = $1
                 RETURNING {}",
                &SELECT_KEYS["SELECT ".len()..SELECT_KEYS.len() - " FROM api_keys".len()]
            ),
            &[
                &name,
                &patch.admin.unwrap_or(current.admin),
                &patch.models.clone().unwrap_or(current.models),
                &patch.rpm.unwrap_or(current.rpm).map(|v| v as i32),
                &patch.tpm.unwrap_or(current.tpm).map(|v| v as i32),
                &budget_usd,
                &budget_period,
                &patch.expires_at.unwrap_or(current.expires_at),
                &revoked,
            ],
        )
        .await?;
    let row = key_row(&row);
    Ok((row, commit(tx).await?))
}

pub async fn delete_key(client: &mut Client, name: &str) -> Result<i64, ControlError> {
    delete(
        client,
        "DELETE FROM api_keys WHERE name = $1",
        &name,
        || format!("no key named {name:?}"),
    )
    .await
}

/// Gives a key a new secret; the old one keeps working for `grace_secs` more. Returns the new
/// plaintext.
pub async fn rotate_key(
    client: &mut Client,
    name: &str,
    grace_secs: u64,
) -> Result<(KeyRow, String, i64), ControlError> {
    let plaintext = new_key()?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE api_keys SET previous_sha256 = CASE WHEN $2::bigint > 0 THEN key_sha256 END,
                        previous_valid_until = CASE WHEN $2::bigint > 0
                            THEN now() + make_interval(secs => $2::bigint::float8) END,
                        key_sha256 = $3, prefix = $4, updated_at = clock_timestamp()
                 WHERE name = $1 AND revoked_at IS NULL
                 RETURNING {}",
                &SELECT_KEYS["SELECT ".len()..SELECT_KEYS.len() - " FROM api_keys".len()]
            ),
            &[
                &name,
                &(grace_secs.min(i64::MAX as u64) as i64),
                &&digest(&plaintext)[..],
                &&plaintext[..SHOWN_CHARS],
            ],
        )
        .await?
        .map(|r| key_row(&r))
        .ok_or_else(|| ControlError::NotFound(format!("no active key named {name:?}")))?;
    Ok((row, plaintext, commit(tx).await?))
}

async fn insert_key(
    client: &impl GenericClient,
    k: &NewKey,
    digest: &[u8; 32],
    prefix: &str,
    seeding: bool,
) -> Result<(), ControlError> {
    let (budget_usd, budget_period) = budget_columns(k.budget.as_ref());
    // Seeding never overwrites a key made before it (`switchyard keys create` on a fresh
    // database runs before the first gateway does).
    let conflict = match seeding {
        true => " ON CONFLICT DO NOTHING",
        false => "",
    };
    client
        .execute(
            &format!(
                "INSERT INTO api_keys (name, key_sha256, prefix, is_admin, models, rpm, tpm,
                                       budget_usd, budget_period, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::numeric, $9,
                         to_timestamp($10::bigint::float8)){conflict}"
            ),
            &[
                &k.name,
                &&digest[..],
                &prefix,
                &k.admin,
                &k.models,
                &k.rpm.map(|v| v as i32),
                &k.tpm.map(|v| v as i32),
                &budget_usd,
                &budget_period,
                &k.expires_at,
            ],
        )
        .await
        .map_err(|e| named(e, "key", &k.name))?;
    Ok(())
}

/// `sk-sy-` and 40 characters drawn uniformly from [A-Za-z0-9] by the OS's generator.
pub fn new_key() -> Result<String, ControlError> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut key = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS);
    key.push_str(KEY_PREFIX);
    let mut pool = [0u8; 64];
    while key.len() < KEY_PREFIX.len() + KEY_RANDOM_CHARS {
        getrandom::getrandom(&mut pool)
            .map_err(|e| ControlError::Unavailable(format!("no randomness for a key: {e}")))?;
        // Bytes at or past 248 (4 × 62) are dropped: taking them modulo 62 would favour the
        // first characters.
        for b in pool.iter().filter(|b| **b < 248) {
            if key.len() == KEY_PREFIX.len() + KEY_RANDOM_CHARS {
                break;
            }
            key.push(ALPHABET[usize::from(*b % 62)] as char);
        }
    }
    Ok(key)
}

// === helpers ===

/// Deletes the row `sql` names; `missing` words the 404 when there is none.
async fn delete(
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
async fn commit(tx: tokio_postgres::Transaction<'_>) -> Result<i64, ControlError> {
    let generation: i64 = tx
        .query_one("SELECT generation FROM control_state", &[])
        .await?
        .get(0);
    tx.commit().await?;
    Ok(generation)
}

fn model_row(row: &Row) -> ModelRow {
    let price = match (
        row.get::<_, Option<String>>(3),
        row.get::<_, Option<String>>(4),
    ) {
        (Some(i), Some(o)) => Some(PriceConfig {
            input_per_1m: i.parse().unwrap_or(0.0),
            output_per_1m: o.parse().unwrap_or(0.0),
        }),
        _ => None,
    };
    ModelRow {
        name: row.get(0),
        kind: match row.get::<_, &str>(1) {
            "embedding" => ModelType::Embedding,
            _ => ModelType::Chat,
        },
        context_window: positive(row.get(2)),
        price,
        tokenizer: row
            .get::<_, Option<&str>>(5)
            .and_then(|t| serde_json::from_value(serde_json::Value::String(t.into())).ok()),
    }
}

fn route_row(row: &Row) -> RouteRow {
    RouteRow {
        id: row.get(0),
        model: row.get(1),
        provider: row.get(2),
        upstream_model: row.get(3),
        priority: row.get::<_, i32>(4).max(0) as u32,
        weight: row.get::<_, i32>(5).max(1) as u32,
        max_rps: positive(row.get(6)),
        enabled: row.get(7),
    }
}

fn key_row(row: &Row) -> KeyRow {
    KeyRow {
        name: row.get(0),
        prefix: row.get(1),
        admin: row.get(2),
        models: row.get(3),
        rpm: positive(row.get(4)),
        tpm: positive(row.get(5)),
        budget: budget_of(row.get(6), row.get(7)),
        expires_at: row.get(8),
        revoked: row.get(9),
    }
}

fn budget_of(usd: Option<String>, period: Option<&str>) -> Option<BudgetConfig> {
    let period = match period? {
        "day" => BudgetPeriod::Day,
        _ => BudgetPeriod::Month,
    };
    Some(BudgetConfig {
        usd: usd?.parse().ok()?,
        period,
    })
}

fn budget_columns(b: Option<&BudgetConfig>) -> (Option<String>, Option<&'static str>) {
    match b {
        None => (None, None),
        Some(b) => (
            Some(b.usd.to_string()),
            Some(match b.period {
                BudgetPeriod::Day => "day",
                BudgetPeriod::Month => "month",
            }),
        ),
    }
}

fn prices(p: Option<&PriceConfig>) -> (Option<String>, Option<String>) {
    match p {
        None => (None, None),
        Some(p) => (
            Some(p.input_per_1m.to_string()),
            Some(p.output_per_1m.to_string()),
        ),
    }
}

fn kind_name(kind: ModelType) -> &'static str {
    match kind {
        ModelType::Chat => "chat",
        ModelType::Embedding => "embedding",
    }
}

fn tokenizer_name(t: Tokenizer) -> &'static str {
    match t {
        Tokenizer::O200kBase => "o200k_base",
        Tokenizer::Cl100kBase => "cl100k_base",
        Tokenizer::O200kHarmony => "o200k_harmony",
    }
}

fn positive(v: Option<i32>) -> Option<u32> {
    v.filter(|v| *v > 0).map(|v| v as u32)
}

fn bytes32(v: Option<&[u8]>) -> Option<[u8; 32]> {
    v.and_then(|b| b.try_into().ok())
}

fn chat() -> ModelType {
    ModelType::Chat
}

/// A unique violation on insert: the name is taken.
fn named(e: tokio_postgres::Error, what: &str, name: &str) -> ControlError {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            ControlError::Conflict(format!("a {what} named {name:?} already exists"))
        }
        _ => e.into(),
    }
}

/// A route naming a model that does not exist.
fn unknown_model(e: tokio_postgres::Error) -> ControlError {
    match e.code() {
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => ControlError::Invalid {
            field: "model".into(),
            message: "unknown model (create it first: POST /admin/v1/models)".into(),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_forty_random_alphanumerics_after_the_prefix() {
        let a = new_key().unwrap();
        let b = new_key().unwrap();
        assert_ne!(a, b);
        for k in [&a, &b] {
            assert_eq!(k.len(), 46);
            assert!(k.starts_with("sk-sy-"));
            assert!(k[6..].bytes().all(|c| c.is_ascii_alphanumeric()), "{k}");
        }
        // Every character of the alphabet turns up (uniformity is by construction).
        let many: String = (0..200)
            .map(|_| new_key().unwrap()[6..].to_owned())
            .collect();
        let distinct: std::collections::HashSet<char> = many.chars().collect();
        assert_eq!(distinct.len(), 62);
    }
}
