//! The `api_keys` table: keys stored as their SHA-256 with a short prefix for humans.

use serde::Serialize;
use tokio_postgres::{Client, GenericClient, Row};

use super::common::{ControlError, budget_of, commit, delete, named, positive};
use crate::config::{BudgetConfig, BudgetPeriod};
use crate::limits::keys::digest;

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

/// A field of a key that cannot be stored, and why: (field, problem). The admin API and the
/// `keys` command check the same way.
pub type Refusal = (&'static str, &'static str);

pub fn check_key_name(name: &str) -> Result<(), Refusal> {
    let plain = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    match plain {
        true => Ok(()),
        false => Err(("name", "must match [A-Za-z0-9._:-]{1,64}")),
    }
}

pub fn check_key_fields(
    models: Option<&Vec<String>>,
    rpm: Option<u32>,
    tpm: Option<u32>,
    budget: Option<&BudgetConfig>,
) -> Result<(), Refusal> {
    if models.is_some_and(|m| m.iter().any(String::is_empty)) {
        return Err(("models", "names must not be empty"));
    }
    for (field, v) in [("rpm", rpm), ("tpm", tpm)] {
        if v == Some(0) || v.is_some_and(|v| v > i32::MAX as u32) {
            return Err((field, "must be at least 1 (or null for no limit)"));
        }
    }
    if budget.is_some_and(|b| !b.is_valid()) {
        return Err(("budget.usd", "must be dollars, from 0 to 100000000"));
    }
    Ok(())
}

/// Keys the gateway makes: this prefix and 40 random alphanumerics (238 bits).
pub const KEY_PREFIX: &str = "sk-sy-";
const KEY_RANDOM_CHARS: usize = 40;
/// How much of a key is kept in clear, for humans: `sk-sy-` and 4 characters.
pub(super) const SHOWN_CHARS: usize = 10;

const SELECT_KEYS: &str = "SELECT name, prefix, is_admin, models, rpm, tpm, budget_usd::text, budget_period, floor(extract(epoch FROM expires_at))::bigint, revoked_at IS NOT NULL FROM api_keys";

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

pub(super) async fn insert_key(
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
