//! Seeding the tables from the config file, once per database.

use tokio_postgres::Client;

use super::common::ControlError;
use super::keys::{NewKey, SHOWN_CHARS, insert_key};
use super::models::{ModelRow, insert_model};
use super::routes::{RouteFields, insert_route};
use crate::config::Config;
use crate::limits::keys::KeySpec;

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
                    max_output_tokens: m.max_output_tokens,
                    price: m.price.clone(),
                    tokenizer: m.tokenizer,
                    created: 0,
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
