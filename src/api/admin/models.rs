//! `/admin/v1/models`: list, get, create, patch (`null` clears a field) and delete (with its routes).

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, Answer, list, nullable, ok, parse, refused};
use crate::config::{ModelType, PriceConfig, Tokenizer};
use crate::control::store::{self, ModelRow};
use crate::error::GatewayError;
use crate::request::invalid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelPatch {
    #[serde(rename = "type", default)]
    kind: Option<ModelType>,
    #[serde(default, deserialize_with = "nullable")]
    context_window: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    max_output_tokens: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    price: Option<Option<PriceConfig>>,
    #[serde(default, deserialize_with = "nullable")]
    tokenizer: Option<Option<Tokenizer>>,
}

// === impl Admin ===

impl Admin<'_> {
    pub(super) async fn list_models(&self) -> Answer {
        let conn = self.conn().await?;
        let models = store::list_models(&**conn).await.map_err(refused)?;
        Ok(list(&models))
    }

    pub(super) async fn get_model(&self, name: &str) -> Answer {
        let conn = self.conn().await?;
        let model = store::get_model(&conn, name).await.map_err(refused)?;
        Ok(ok(StatusCode::OK, &model))
    }

    pub(super) async fn create_model(&self, body: &[u8]) -> Answer {
        let model: ModelRow = parse(body)?;
        check_model(&model)?;
        let mut conn = self.conn().await?;
        let generation = store::create_model(&mut conn, &model)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::CREATED, &model))
    }

    pub(super) async fn patch_model(&self, name: &str, body: &[u8]) -> Answer {
        let patch: ModelPatch = parse(body)?;
        let mut conn = self.conn().await?;
        let mut model = store::get_model(&conn, name).await.map_err(refused)?;
        if let Some(kind) = patch.kind {
            model.kind = kind;
        }
        if let Some(context_window) = patch.context_window {
            model.context_window = context_window;
        }
        if let Some(max_output_tokens) = patch.max_output_tokens {
            model.max_output_tokens = max_output_tokens;
        }
        if let Some(price) = patch.price {
            model.price = price;
        }
        if let Some(tokenizer) = patch.tokenizer {
            model.tokenizer = tokenizer;
        }
        check_model(&model)?;
        let generation = store::update_model(&mut conn, &model)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &model))
    }

    pub(super) async fn delete_model(&self, name: &str) -> Answer {
        let mut conn = self.conn().await?;
        let generation = store::delete_model(&mut conn, name)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &json!({"name": name, "deleted": true})))
    }
}

fn check_model(m: &ModelRow) -> Result<(), GatewayError> {
    if m.name.is_empty() || m.name.len() > 256 || m.name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "must be 1 to 256 characters, none of them control characters",
        ));
    }
    if m.context_window == Some(0) {
        return Err(invalid("context_window", "must be at least 1 (or null)"));
    }
    if m.max_output_tokens == Some(0) {
        return Err(invalid("max_output_tokens", "must be at least 1 (or null)"));
    }
    if let Some(p) = &m.price {
        for (field, v) in [
            ("price.input_per_1m", Some(p.input_per_1m)),
            ("price.output_per_1m", Some(p.output_per_1m)),
            ("price.cached_input_per_1m", p.cached_input_per_1m),
            ("price.cache_write_per_1m", p.cache_write_per_1m),
            ("price.per_1k_searches", p.per_1k_searches),
            ("price.per_image", p.per_image),
            ("price.per_minute", p.per_minute),
            ("price.per_1m_chars", p.per_1m_chars),
        ] {
            let Some(v) = v else { continue };
            if !(v.is_finite() && (0.0..1e9).contains(&v)) {
                return Err(invalid(field, "must be a price in dollars, 0 or more"));
            }
        }
    }
    Ok(())
}
