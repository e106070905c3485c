//! `/admin/v1/keys`: gateway keys, shown in plaintext once (at creation or rotation) and stored
//! as their SHA-256; each answer carries the key's budget spend.

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, Answer, list, nullable, ok, parse, refused};
use crate::body::Body;
use crate::call::admit;
use crate::clock::{parse_timestamp, unix_now};
use crate::config::{BudgetConfig, ConfigDuration};
use crate::control::store::{self, KeyPatch, NewKey};
use crate::error::GatewayError;
use crate::limits::budget::{format_usd, period_start};
use crate::request::invalid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    rpm: Option<u32>,
    #[serde(default)]
    tpm: Option<u32>,
    #[serde(default)]
    budget: Option<BudgetConfig>,
    #[serde(default)]
    expires_at: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPatchBody {
    #[serde(default)]
    admin: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    tpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    budget: Option<Option<BudgetConfig>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<Timestamp>>,
    #[serde(default)]
    revoked: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    grace: Option<ConfigDuration>,
}

/// Unix seconds, a date or RFC 3339.
#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Seconds(i64),
    Text(String),
}

// === impl Admin ===

impl Admin<'_> {
    pub(super) async fn list_keys(&self) -> Answer {
        let conn = self.conn().await?;
        let keys = store::list_keys(&conn).await.map_err(refused)?;
        let mut shown = Vec::with_capacity(keys.len());
        for key in keys {
            shown.push(self.with_spend(&key).await);
        }
        Ok(list(&shown))
    }

    pub(super) async fn get_key(&self, name: &str) -> Answer {
        let conn = self.conn().await?;
        let key = store::get_key(&conn, name).await.map_err(refused)?;
        Ok(ok(StatusCode::OK, &self.with_spend(&key).await))
    }

    /// A key as shown, with what it spent this budget period (`null` without a budget): the
    /// budget store's count (reservations in flight included), else the ledger's.
    async fn with_spend(&self, key: &store::KeyRow) -> Value {
        let mut value = serde_json::to_value(key).unwrap_or(Value::Null);
        let spend = match &key.budget {
            None => Value::Null,
            Some(b) => {
                let start = period_start(b.period, unix_now());
                let units = match self.ctx.app.limits.budgets.spent(&key.name, b.period).await {
                    Some(units) => units,
                    None => admit::spent_before(self.ctx, key.name.as_str().into())(start)
                        .await
                        .unwrap_or(0),
                };
                json!({"period_start": start, "usd": format_usd(units)})
            }
        };
        if let Value::Object(map) = &mut value {
            map.insert("spend".into(), spend);
        }
        value
    }

    pub(super) async fn create_key(&self, body: &[u8]) -> Answer {
        let b: KeyBody = parse(body)?;
        let fields = NewKey {
            name: b.name,
            admin: b.admin,
            models: b.models,
            rpm: b.rpm,
            tpm: b.tpm,
            budget: b.budget,
            expires_at: b.expires_at.map(|t| t.seconds("expires_at")).transpose()?,
        };
        check_key_name(&fields.name)?;
        check_key_fields(
            fields.models.as_ref(),
            fields.rpm,
            fields.tpm,
            fields.budget.as_ref(),
        )?;
        let mut conn = self.conn().await?;
        let (key, plaintext, generation) = store::create_key(&mut conn, &fields)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(with_plaintext(
            StatusCode::CREATED,
            self.with_spend(&key).await,
            &plaintext,
        ))
    }

    pub(super) async fn patch_key(&self, name: &str, body: &[u8]) -> Answer {
        let b: KeyPatchBody = parse(body)?;
        let patch = KeyPatch {
            admin: b.admin,
            models: b.models,
            rpm: b.rpm,
            tpm: b.tpm,
            budget: b.budget,
            expires_at: match b.expires_at {
                None => None,
                Some(None) => Some(None),
                Some(Some(t)) => Some(Some(t.seconds("expires_at")?)),
            },
            revoked: b.revoked,
        };
        check_key_fields(
            patch.models.as_ref().and_then(Option::as_ref),
            patch.rpm.flatten(),
            patch.tpm.flatten(),
            patch.budget.as_ref().and_then(Option::as_ref),
        )?;
        let mut conn = self.conn().await?;
        let (key, generation) = store::update_key(&mut conn, name, &patch)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &self.with_spend(&key).await))
    }

    pub(super) async fn delete_key(&self, name: &str) -> Answer {
        let mut conn = self.conn().await?;
        let generation = store::delete_key(&mut conn, name).await.map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &json!({"name": name, "deleted": true})))
    }

    pub(super) async fn rotate_key(&self, name: &str, body: &[u8]) -> Answer {
        let b: RotateBody = match body.iter().all(u8::is_ascii_whitespace) {
            true => RotateBody::default(),
            false => parse(body)?,
        };
        let grace = b.grace.map_or(0, |g| g.0.as_secs());
        let mut conn = self.conn().await?;
        let (key, plaintext, generation) = store::rotate_key(&mut conn, name, grace)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(with_plaintext(
            StatusCode::OK,
            self.with_spend(&key).await,
            &plaintext,
        ))
    }
}

// === impl Timestamp ===

impl Timestamp {
    fn seconds(self, field: &'static str) -> Result<i64, GatewayError> {
        match self {
            Timestamp::Seconds(s) => Ok(s),
            Timestamp::Text(t) => parse_timestamp(&t)
                .map(|us| us.div_euclid(1_000_000))
                .ok_or_else(|| invalid(field, "use Unix seconds, a date or RFC 3339")),
        }
    }
}

/// Key names show up in logs, metrics and ledger rows: kept plain.
fn check_key_name(name: &str) -> Result<(), GatewayError> {
    store::check_key_name(name).map_err(|(field, problem)| invalid(field, problem))
}

fn check_key_fields(
    models: Option<&Vec<String>>,
    rpm: Option<u32>,
    tpm: Option<u32>,
    budget: Option<&BudgetConfig>,
) -> Result<(), GatewayError> {
    store::check_key_fields(models, rpm, tpm, budget)
        .map_err(|(field, problem)| invalid(field, problem))
}

/// A key's answer with its plaintext: the only time it is ever shown.
fn with_plaintext(status: StatusCode, mut value: Value, plaintext: &str) -> Response<Body> {
    if let Value::Object(map) = &mut value {
        map.insert("key".into(), Value::String(plaintext.to_owned()));
    }
    ok(status, &value)
}
