//! Admission: who is asking (the gateway key), whether the key may use the model, and whether
//! its rpm/tpm limits and its budget let the request through now.

use std::future::Future;
use std::sync::Arc;

use http::HeaderMap;

use super::context::RequestCtx;
use crate::clock::unix_micros;
use crate::config::ModelType;
use crate::error::GatewayError;
use crate::limits::keys::{ApiKey, not_allowed};
use crate::limits::rate::Admission;
use crate::providers::Usage;
use crate::request::ChatRequest;
use crate::routing::ModelEntry;
use crate::tokens::Encoding;
use crate::usage::price::Price;
use crate::usage::record::Unit;
use crate::usage::totals::{Group, Query};

/// The caller's key (`None` on an open gateway); a missing or unknown key is a 401.
pub fn authenticate(
    ctx: &RequestCtx,
    headers: &HeaderMap,
) -> Result<Option<Arc<ApiKey>>, GatewayError> {
    ctx.runtime.keys().authenticate(headers)
}

/// The model a client asked for, if it is configured with the right type and the key may use
/// it (404 for an unknown model, 403 for one outside the key's allow-list).
pub fn model<'a>(
    ctx: &'a RequestCtx,
    key: Option<&ApiKey>,
    name: &str,
    kind: ModelType,
) -> Result<&'a Arc<ModelEntry>, GatewayError> {
    let model = ctx.runtime.model(name, kind)?;
    if key.is_some_and(|k| !k.allows(&model.name)) {
        return Err(not_allowed(&model.name));
    }
    Ok(model)
}

/// [`model`] for an endpoint whose clients may leave `model` out (moderations, images): then
/// the first configured model of the type serves.
pub fn model_or_first<'a>(
    ctx: &'a RequestCtx,
    key: Option<&ApiKey>,
    name: Option<&str>,
    kind: ModelType,
) -> Result<&'a Arc<ModelEntry>, GatewayError> {
    let name = match name {
        Some(name) => name,
        None => ctx
            .runtime
            .models()
            .iter()
            .find(|m| m.kind == kind)
            .map(|m| &*m.name)
            .ok_or_else(|| {
                GatewayError::invalid_request(format!(
                    "no {} model is configured: name one in 'model'",
                    kind.name()
                ))
                .with_param("model")
            })?,
    };
    model(ctx, key, name, kind)
}

/// Admits a request under its key's rpm/tpm limits and budget. `tokens` gives the request's
/// reservation as (prompt tokens, most completion tokens), counted with `encoding`; it is only
/// computed for a key with a tpm limit or a budget: counting costs CPU, and the encoding's table
/// is made ready first, off the runtime thread.
pub async fn limits(
    ctx: &RequestCtx,
    key: Option<&ApiKey>,
    model: &ModelEntry,
    encoding: Encoding,
    tokens: impl FnOnce(Encoding) -> (u64, u64),
) -> Result<Admission, GatewayError> {
    reserving(ctx, key, model, encoding, tokens, None).await
}

/// Admits a request priced by what its answer reports (rerank, audio, images, moderations):
/// the key's rpm, and its budget reserving what is known before the answer (`units`: a
/// speech's characters, the images asked for, one search, a WAV's seconds); no tokens.
pub async fn priced_limits(
    ctx: &RequestCtx,
    key: Option<&ApiKey>,
    model: &ModelEntry,
    units: Option<(Unit, u64)>,
) -> Result<Admission, GatewayError> {
    reserving(ctx, key, model, Encoding::O200kBase, |_| (0, 0), units).await
}

async fn reserving(
    ctx: &RequestCtx,
    key: Option<&ApiKey>,
    model: &ModelEntry,
    encoding: Encoding,
    tokens: impl FnOnce(Encoding) -> (u64, u64),
    known_units: Option<(Unit, u64)>,
) -> Result<Admission, GatewayError> {
    let Some(k) = key.filter(|k| k.rpm.is_some() || k.tpm.is_some() || k.budget.is_some()) else {
        return Ok(Admission::default());
    };
    let (prompt, completion) = match k.tpm.is_some() || k.budget.is_some() {
        true => {
            encoding.ready().await;
            tokens(encoding)
        }
        false => (0, 0),
    };
    // Boxed (both): the shared store's futures are ~10 KB, and every request's future would
    // carry (and move) that space whether or not its key has limits.
    let spend = match k.budget {
        Some(budget) => {
            let price = Price::from_config(model.price.as_ref());
            // The most it can cost: every prompt token at the full input price, and the units
            // known now.
            let most = Usage::tokens(prompt, completion);
            let known = known_units.map_or(0, |(unit, n)| price.units_cost(unit, n));
            let units = i64::try_from(price.cost_units(&most) + known).unwrap_or(i64::MAX);
            let rebuild = spent_before(ctx, k.name.clone());
            Some(Box::pin(ctx.app.limits.budgets.reserve(k, budget, units, rebuild)).await?)
        }
        None => None,
    };
    let mut admission = match k.rpm.is_some() || k.tpm.is_some() {
        true => match Box::pin(ctx.app.limits.admit(k, prompt + completion)).await {
            Ok(admission) => admission,
            Err(e) => {
                if let Some(spend) = spend {
                    let app = ctx.app.clone();
                    ctx.app
                        .background
                        .spawn(async move { app.limits.budgets.settle(&spend, 0).await });
                }
                return Err(e);
            }
        },
        false => Admission::default(),
    };
    admission.spend = spend;
    Ok(admission)
}

/// What rebuilds a key's missing budget counter: the ledger's total for the key since the
/// period's start (from the hourly totals), `None` if the ledger cannot answer now. Without a
/// ledger there is nothing to rebuild from: the spend counts from this process's start.
///
/// Made for every budgeted request but called only when its counter is missing: `name` is the
/// key's shared name, turned into the query's string only then.
pub fn spent_before(
    ctx: &RequestCtx,
    name: Arc<str>,
) -> impl FnOnce(u64) -> std::pin::Pin<Box<dyn Future<Output = Option<i64>> + Send>> {
    let app = ctx.app.clone();
    move |since| {
        Box::pin(async move {
            let Some(ledger) = app.ledger.as_ref() else {
                return Some(0);
            };
            let query = Query {
                group: Group::All,
                from_us: since as i64 * 1_000_000,
                to_us: unix_micros(),
                key: Some(name.to_string()),
            };
            match ledger.totals(query).await {
                Ok(totals) => Some(
                    i64::try_from(totals.iter().map(|t| t.cost).sum::<u128>()).unwrap_or(i64::MAX),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "budgets: the ledger cannot say what a key spent; counting from 0 for now");
                    None
                }
            }
        })
    }
}

/// Refuses more choices (`n`) than `limits.max_n`: every choice is generated and paid for.
pub fn choices(ctx: &RequestCtx, chat: &ChatRequest) -> Result<(), GatewayError> {
    match chat.n {
        Some(n) if n > ctx.runtime.max_n => Err(GatewayError::invalid_request(format!(
            "'n' may be at most {} on this gateway",
            ctx.runtime.max_n
        ))
        .with_param("n")),
        _ => Ok(()),
    }
}

/// Admits a text-generation request (chat, legacy completion, responses): reserved, the prompt
/// as it goes upstream plus the completion it may generate (`max_tokens`, else
/// `limits.default_max_tokens`).
pub async fn generation_limits(
    ctx: &RequestCtx,
    key: Option<&ApiKey>,
    model: &ModelEntry,
    encoding: Encoding,
    chat: &ChatRequest,
) -> Result<Admission, GatewayError> {
    limits(ctx, key, model, encoding, |encoding| {
        let prompt = encoding.count_chat_prompt(&chat.body).unwrap_or(0);
        let completion = chat
            .max_tokens
            .unwrap_or(u64::from(ctx.app.limits.default_max_tokens));
        // Each of `n` choices may run to max_tokens.
        (
            prompt,
            completion.saturating_mul(chat.n.unwrap_or(1).max(1)),
        )
    })
    .await
}
