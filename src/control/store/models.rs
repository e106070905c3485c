//! The `models` table.

use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row};

use super::common::{ControlError, commit, delete, named, positive};
use crate::config::{ModelType, PriceConfig, Tokenizer};

/// A model as the admin API shows and takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRow {
    pub name: String,
    #[serde(rename = "type", default = "chat")]
    pub kind: ModelType,
    #[serde(default)]
    pub context_window: Option<u32>,
    /// `max_tokens` for upstreams that need one when the client sets none (absent: 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub price: Option<PriceConfig>,
    #[serde(default)]
    pub tokenizer: Option<Tokenizer>,
    /// When the row was created (Unix seconds): `/v1/models`' `created`. Read-only.
    #[serde(default, skip_deserializing)]
    pub created: u64,
}

pub async fn list_models(client: &impl GenericClient) -> Result<Vec<ModelRow>, ControlError> {
    let rows = client
        .query(
            "SELECT name, type, context_window, input_per_1m::text, output_per_1m::text, tokenizer,
                    floor(extract(epoch FROM created_at))::int8, cached_input_per_1m::text,
                    cache_write_per_1m::text, max_output_tokens, per_1k_searches::text,
                    per_image::text, per_minute::text, per_1m_chars::text
             FROM models ORDER BY created_at, name",
            &[],
        )
        .await?;
    Ok(rows.iter().map(model_row).collect())
}

pub async fn create_model(client: &mut Client, m: &ModelRow) -> Result<i64, ControlError> {
    let tx = client.transaction().await?;
    insert_model(&tx, m).await?;
    commit(tx).await
}

/// Replaces a model's fields (its name stays).
pub async fn update_model(client: &mut Client, m: &ModelRow) -> Result<i64, ControlError> {
    let tx = client.transaction().await?;
    let changed = tx
        .execute(
            "UPDATE models SET type = $2, context_window = $3, input_per_1m = $4::text::numeric,
                    output_per_1m = $5::text::numeric, tokenizer = $6,
                    cached_input_per_1m = $7::text::numeric, cache_write_per_1m = $8::text::numeric,
                    max_output_tokens = $9, per_1k_searches = $10::text::numeric,
                    per_image = $11::text::numeric, per_minute = $12::text::numeric,
                    per_1m_chars = $13::text::numeric, updated_at = clock_timestamp()
             WHERE name = $1",
            &Columns::of(m).params(),
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
            "SELECT name, type, context_window, input_per_1m::text, output_per_1m::text, tokenizer,
                    floor(extract(epoch FROM created_at))::int8, cached_input_per_1m::text,
                    cache_write_per_1m::text, max_output_tokens, per_1k_searches::text,
                    per_image::text, per_minute::text, per_1m_chars::text
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

pub(super) async fn insert_model(
    client: &impl GenericClient,
    m: &ModelRow,
) -> Result<(), ControlError> {
    client
        .execute(
            "INSERT INTO models (name, type, context_window, input_per_1m, output_per_1m, tokenizer,
                                 cached_input_per_1m, cache_write_per_1m, max_output_tokens,
                                 per_1k_searches, per_image, per_minute, per_1m_chars)
             VALUES ($1, $2, $3, $4::text::numeric, $5::text::numeric, $6, $7::text::numeric,
                     $8::text::numeric, $9, $10::text::numeric, $11::text::numeric,
                     $12::text::numeric, $13::text::numeric)",
            &Columns::of(m).params(),
        )
        .await
        .map_err(|e| named(e, "model", &m.name))?;
    Ok(())
}

pub(super) fn model_row(row: &Row) -> ModelRow {
    let decimal = |i: usize| row.get::<_, Option<String>>(i).and_then(|p| p.parse().ok());
    let price = match (
        row.get::<_, Option<String>>(3),
        row.get::<_, Option<String>>(4),
    ) {
        (Some(i), Some(o)) => Some(PriceConfig {
            input_per_1m: i.parse().unwrap_or(0.0),
            output_per_1m: o.parse().unwrap_or(0.0),
            cached_input_per_1m: decimal(7),
            cache_write_per_1m: decimal(8),
            per_1k_searches: decimal(10),
            per_image: decimal(11),
            per_minute: decimal(12),
            per_1m_chars: decimal(13),
        }),
        _ => None,
    };
    ModelRow {
        name: row.get(0),
        kind: match row.get::<_, &str>(1) {
            "embedding" => ModelType::Embedding,
            "rerank" => ModelType::Rerank,
            "moderation" => ModelType::Moderation,
            "image" => ModelType::Image,
            "transcription" => ModelType::Transcription,
            "speech" => ModelType::Speech,
            _ => ModelType::Chat,
        },
        context_window: positive(row.get(2)),
        max_output_tokens: positive(row.get(9)),
        price,
        tokenizer: row
            .get::<_, Option<&str>>(5)
            .and_then(|t| serde_json::from_value(serde_json::Value::String(t.into())).ok()),
        created: u64::try_from(row.get::<_, i64>(6)).unwrap_or(0),
    }
}

/// A model's fields as the table's columns, in the order both statements bind them: name, type,
/// context_window, input_per_1m, output_per_1m (decimal text, cast by the statement), tokenizer,
/// cached_input_per_1m, cache_write_per_1m, max_output_tokens, then the unit prices
/// (per_1k_searches, per_image, per_minute, per_1m_chars).
struct Columns<'a> {
    name: &'a str,
    kind: &'static str,
    context_window: Option<i32>,
    input: Option<String>,
    output: Option<String>,
    tokenizer: Option<&'static str>,
    cached_input: Option<String>,
    cache_write: Option<String>,
    max_output_tokens: Option<i32>,
    units: [Option<String>; 4],
}

impl<'a> Columns<'a> {
    fn of(m: &'a ModelRow) -> Self {
        let (input, output) = prices(m.price.as_ref());
        let text = |f: fn(&PriceConfig) -> Option<f64>| {
            m.price.as_ref().and_then(f).map(|v| v.to_string())
        };
        Self {
            name: &m.name,
            kind: kind_name(m.kind),
            context_window: m.context_window.map(|c| c.min(i32::MAX as u32) as i32),
            input,
            output,
            tokenizer: m.tokenizer.map(tokenizer_name),
            cached_input: text(|p| p.cached_input_per_1m),
            cache_write: text(|p| p.cache_write_per_1m),
            max_output_tokens: m.max_output_tokens.map(|c| c.min(i32::MAX as u32) as i32),
            units: [
                text(|p| p.per_1k_searches),
                text(|p| p.per_image),
                text(|p| p.per_minute),
                text(|p| p.per_1m_chars),
            ],
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.name,
            &self.kind,
            &self.context_window,
            &self.input,
            &self.output,
            &self.tokenizer,
            &self.cached_input,
            &self.cache_write,
            &self.max_output_tokens,
            &self.units[0],
            &self.units[1],
            &self.units[2],
            &self.units[3],
        ]
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
    kind.name()
}

fn tokenizer_name(t: Tokenizer) -> &'static str {
    match t {
        Tokenizer::O200kBase => "o200k_base",
        Tokenizer::Cl100kBase => "cl100k_base",
        Tokenizer::O200kHarmony => "o200k_harmony",
    }
}

fn chat() -> ModelType {
    ModelType::Chat
}
