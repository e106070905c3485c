//! Admission: who is asking (the gateway key), whether the key may use the model, and whether
//! its rpm/tpm limits let the request through now. Budgets will join here.

use std::sync::Arc;

use http::HeaderMap;

use super::context::RequestCtx;
use crate::config::ModelType;
use crate::error::GatewayError;
use crate::limits::keys::{ApiKey, not_allowed};
use crate::limits::rate::Admission;
use crate::request::ChatRequest;
use crate::routing::ModelEntry;
use crate::tokens::Encoding;

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

/// Admits a request under its key's rpm/tpm limits. `tokens` (the reservation: prompt plus
/// `max_tokens`, counted with `encoding`) is only computed for a key with a tpm limit: counting
/// costs CPU, and the encoding's table is made ready first, off the runtime thread.
pub async fn limits(
    ctx: &RequestCtx,
    key: Option<&ApiKey>,
    encoding: Encoding,
    tokens: impl FnOnce(Encoding) -> u64,
) -> Result<Admission, GatewayError> {
    match key {
        Some(k) if k.rpm.is_some() || k.tpm.is_some() => {
            let tokens = match k.tpm {
                Some(_) => {
                    encoding.ready().await;
                    tokens(encoding)
                }
                None => 0,
            };
            // Boxed: the shared store's future is ~10 KB, and every request's future would
            // carry (and move) that space whether or not its key has limits.
            Box::pin(ctx.app.limits.admit(k, tokens)).await
        }
        _ => Ok(Admission::default()),
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
    encoding: Encoding,
    chat: &ChatRequest,
) -> Result<Admission, GatewayError> {
    limits(ctx, key, encoding, |encoding| {
        let prompt = encoding.count_chat_prompt(&chat.body).unwrap_or(0);
        let completion = chat
            .max_tokens
            .unwrap_or(u64::from(ctx.app.limits.default_max_tokens));
        prompt + completion
    })
    .await
}
