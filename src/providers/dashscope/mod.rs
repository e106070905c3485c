//! DashScope's native API (PROTOCOLS.md §5–§6): clients speak OpenAI, the upstream speaks
//! `/services/aigc/text-generation/generation` and `/services/embeddings/text-embedding/text-embedding`.
//! Pure translation, no I/O; `stream.rs` turns native events into OpenAI chunks.
//!
//! Where PROTOCOLS.md marks behaviour unconfirmed ([U]) the translation is tolerant and says so.

pub mod stream;
pub mod types;

use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::types::{ResponseContext, Usage};
use crate::error::{ErrorKind, GatewayError};
use crate::request::EmbeddingInput;
use crate::routing::transport::{Auth, Endpoint, HttpSpec};
use types::{
    DashScopeEmbeddingResponse, DashScopeGenerationResponse, DashScopeMessage, DashScopeUsage,
};

/// Chat and legacy completions alike (`input.messages` or `input.prompt`).
pub const CHAT_PATH: &str = "services/aigc/text-generation/generation";
pub const EMBEDDINGS_PATH: &str = "services/embeddings/text-embedding/text-embedding";
/// Native text-rerank (PROTOCOLS.md §13.5.4).
pub const RERANK_PATH: &str = "services/rerank/text-rerank/text-rerank";
/// Streams are asked for with this header as well as `accept: text/event-stream`.
pub const STREAM_HEADERS: &[(&str, &str)] = &[("x-dashscope-sse", "enable")];

/// Where DashScope's native endpoints are (legacy completions use the generation endpoint too).
/// Its probe: the native API has no cheap read, so the OpenAI-compatible models list on the same
/// host, `/compatible-mode/v1/models` (a metadata list with the same key, not billed).
pub fn http_spec(base_url: String) -> HttpSpec {
    let base = base_url.trim_end_matches('/');
    let origin = base
        .find("://")
        .and_then(|s| base[s + 3..].find('/').map(|p| &base[..s + 3 + p]))
        .unwrap_or(base);
    HttpSpec {
        probe_url: format!("{origin}/compatible-mode/v1/models"),
        base_url,
        paths: &[
            (Endpoint::Chat, CHAT_PATH),
            // Legacy completions are chat requests with a prompt, natively.
            (Endpoint::Completions, CHAT_PATH),
            (Endpoint::Embeddings, EMBEDDINGS_PATH),
            (Endpoint::Rerank, RERANK_PATH),
        ],
        stream_headers: STREAM_HEADERS,
        auth: Auth::Bearer,
        headers: &[],
    }
}

/// OpenAI request fields with the same name and meaning under native `parameters`.
const SAME_NAME: &[&str] = &[
    "temperature",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "tools",
    "tool_choice", // "required" is [U]: passed on, the upstream decides
    "parallel_tool_calls",
    "response_format", // json_object confirmed; json_schema [U]: passed on
    "logprobs",
    "top_logprobs",
];

/// DashScope-only parameters a client sends through `extra_body`; passed on as they are.
const VENDOR_EXTRAS: &[&str] = &[
    "enable_thinking",
    "thinking_budget",
    "enable_search",
    "search_options",
    "top_k",
    "repetition_penalty",
    "vl_high_resolution_images",
    "translation_options",
];

/// Per-call text limit of v3/v4 embedding models; v1/v2 take 25 (PROTOCOLS.md §5.7).
const EMBEDDING_BATCH: usize = 10;
const EMBEDDING_BATCH_V1_V2: usize = 25;

/// An OpenAI chat request body as a native generation request.
pub fn build_chat(body: &[u8], upstream_model: &str, stream: bool) -> Result<Bytes, GatewayError> {
    crate::request::check_tree(body)?;
    let request: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| GatewayError::invalid_request(e.to_string()))?;
    let messages = match request.get("messages") {
        Some(Value::Array(messages)) => hoist_system(
            messages
                .iter()
                .enumerate()
                .map(|(i, m)| native_message(i, m))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => {
            return Err(
                GatewayError::invalid_request("'messages' must be an array").with_param("messages")
            );
        }
    };
    let mut parameters = Map::new();
    parameters.insert("result_format".into(), json!("message"));
    if stream {
        // Always incremental: cumulative streams repeat the whole text in every event.
        parameters.insert("incremental_output".into(), json!(true));
    }
    let present = |name: &str| request.get(name).filter(|v| !v.is_null());
    if let Some(max) = present("max_completion_tokens").or_else(|| present("max_tokens")) {
        parameters.insert("max_tokens".into(), max.clone());
    }
    if let Some(top_p) = present("top_p").and_then(Value::as_f64) {
        // The native range is open (0, 1); clamp like the reference adapters do.
        parameters.insert("top_p".into(), json!(top_p.clamp(0.001, 0.999)));
    }
    for name in SAME_NAME.iter().chain(VENDOR_EXTRAS) {
        if let Some(v) = present(name) {
            parameters.insert((*name).into(), v.clone());
        }
    }
    let native =
        json!({"model": upstream_model, "input": {"messages": messages}, "parameters": parameters});
    Ok(Bytes::from(native.to_string()))
}

/// A legacy completion as a native text-mode request: `input.prompt`, `result_format: text`.
/// One prompt string only; `max_tokens` defaults to OpenAI's 16. What the native API cannot do
/// (several prompts, `suffix`, `echo`, `best_of`, `logprobs`) is a 400 naming the field.
pub fn build_completion(
    body: &[u8],
    upstream_model: &str,
    stream: bool,
) -> Result<Bytes, GatewayError> {
    crate::request::check_tree(body)?;
    let request: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| GatewayError::invalid_request(e.to_string()))?;
    let present = |name: &str| request.get(name).filter(|v| !v.is_null());
    let Some(Value::String(prompt)) = present("prompt") else {
        return Err(GatewayError::invalid_request(
            "this model's route takes one prompt string (arrays and token ids need an OpenAI-kind route)",
        )
        .with_param("prompt"));
    };
    let unsupported = |field: &'static str| {
        GatewayError::invalid_request(format!("'{field}' is not supported on this model's route"))
            .with_param(field)
            .with_code("unsupported_value")
    };
    for field in ["suffix", "logprobs"] {
        if present(field).is_some() {
            return Err(unsupported(field));
        }
    }
    if present("echo").is_some_and(|v| v == true) {
        return Err(unsupported("echo"));
    }
    if present("best_of")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err(unsupported("best_of"));
    }
    let mut parameters = Map::new();
    parameters.insert("result_format".into(), json!("text"));
    if stream {
        parameters.insert("incremental_output".into(), json!(true));
    }
    let max_tokens = present("max_tokens").cloned().unwrap_or(json!(16));
    parameters.insert("max_tokens".into(), max_tokens);
    if let Some(top_p) = present("top_p").and_then(Value::as_f64) {
        parameters.insert("top_p".into(), json!(top_p.clamp(0.001, 0.999)));
    }
    for name in ["temperature", "seed", "stop", "presence_penalty", "n"] {
        if let Some(v) = present(name) {
            parameters.insert(name.into(), v.clone());
        }
    }
    let native =
        json!({"model": upstream_model, "input": {"prompt": prompt}, "parameters": parameters});
    Ok(Bytes::from(native.to_string()))
}

/// One message: string content (text parts flattened), `developer` as `system`, tool calls and
/// tool results kept.
/// System messages after the conversation has begun (Claude Code sends them, and OpenAI takes
/// them in place) joined onto the leading system message: DashScope refuses a system message
/// anywhere but first (PROTOCOLS.md §12.7.1, QwenLM/Qwen#2244).
fn hoist_system(messages: Vec<Value>) -> Vec<Value> {
    let is_system = |m: &Value| m["role"] == "system";
    let leading = messages.iter().take_while(|m| is_system(m)).count();
    if messages[leading..].iter().all(|m| !is_system(m)) {
        return messages;
    }
    let (mut head, rest): (Vec<Value>, Vec<Value>) = {
        let mut all = messages;
        let rest = all.split_off(leading);
        (all, rest)
    };
    let mut later = Vec::new();
    let mut out = Vec::with_capacity(head.len() + rest.len() + 1);
    for m in rest {
        match is_system(&m) {
            true => later.push(m["content"].as_str().unwrap_or_default().to_owned()),
            false => out.push(m),
        }
    }
    let joined = later.join("\n\n");
    match head.last_mut() {
        Some(last) => {
            let text = format!(
                "{}\n\n{joined}",
                last["content"].as_str().unwrap_or_default()
            );
            last["content"] = Value::String(text);
        }
        None => head.push(json!({"role": "system", "content": joined})),
    }
    head.extend(out);
    head
}

fn native_message(i: usize, message: &Value) -> Result<Value, GatewayError> {
    let role = match message["role"].as_str() {
        Some("developer") => "system",
        Some(role) => role,
        None => {
            return Err(
                GatewayError::invalid_request(format!("messages[{i}].role is required"))
                    .with_param("messages"),
            );
        }
    };
    let content = match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(parts) => {
            let mut text = Vec::with_capacity(parts.len());
            for part in parts {
                match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text") | None, Some(t)) => text.push(t),
                    (kind, _) => {
                        return Err(GatewayError::invalid_request(format!(
                            "messages[{i}] has a {} content part; this model's route takes text only",
                            kind.unwrap_or("non-text")
                        ))
                        .with_param("messages"));
                    }
                }
            }
            text.join("\n")
        }
        _ => {
            return Err(GatewayError::invalid_request(format!(
                "messages[{i}].content must be a string or an array of parts"
            ))
            .with_param("messages"));
        }
    };
    let mut out = json!({"role": role, "content": content});
    for key in ["name", "tool_calls", "tool_call_id"] {
        if let Some(v) = message.get(key).filter(|v| !v.is_null()) {
            out[key] = v.clone();
        }
    }
    Ok(out)
}

/// A native non-stream answer as an OpenAI `chat.completion`.
pub fn parse_chat_response(
    body: &[u8],
    ctx: &ResponseContext,
) -> Result<(Bytes, Option<Usage>), GatewayError> {
    let native: DashScopeGenerationResponse = serde_json::from_slice(body).map_err(|e| {
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            format!("DashScope returned a malformed response: {e}"),
        )
    })?;
    let output = native.output.ok_or_else(|| {
        let message = native
            .message
            .unwrap_or_else(|| "DashScope returned no output".into());
        GatewayError::new(ErrorKind::UpstreamFailed, message)
    })?;
    let choices: Vec<Value> = match output.choices {
        Some(choices) => choices
            .into_iter()
            .enumerate()
            .map(|(position, c)| {
                let message = c
                    .message
                    .as_ref()
                    .map(openai_message)
                    .unwrap_or_else(|| json!({"role": "assistant", "content": ""}));
                let has_tools = message.get("tool_calls").is_some();
                json!({
                    "index": c.index.unwrap_or(position as u32),
                    "message": message,
                    "logprobs": c.logprobs.unwrap_or(Value::Null),
                    "finish_reason": finish_reason(c.finish_reason.as_deref(), has_tools),
                })
            })
            .collect(),
        // result_format "text" (legacy)
        None => vec![json!({
            "index": 0,
            "message": {"role": "assistant", "content": output.text.unwrap_or_default(), "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason(output.finish_reason.as_deref(), false),
        })],
    };
    let usage = native.usage.as_ref().map(to_usage);
    let completion = json!({
        "id": completion_id(native.request_id.as_deref()),
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.client_model,
        "choices": choices,
        "usage": native.usage.as_ref().map(usage_json),
    });
    Ok((Bytes::from(completion.to_string()), usage))
}

fn openai_message(m: &DashScopeMessage) -> Value {
    let text = m.text();
    let tool_calls: Vec<Value> = m
        .tool_calls
        .iter()
        .flatten()
        .map(|t| {
            let f = t.function.as_ref();
            json!({
                "id": t.id.clone().unwrap_or_default(),
                "type": t.kind.clone().unwrap_or_else(|| "function".into()),
                "function": {"name": f.and_then(|f| f.name.clone()).unwrap_or_default(), "arguments": f.and_then(|f| f.arguments.clone()).unwrap_or_default()},
            })
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if !tool_calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if let Some(reasoning) = m.reasoning_content.as_ref().filter(|r| !r.is_empty()) {
        message["reasoning_content"] = json!(reasoning);
    }
    message
}

/// The string `"null"` is JSON null; `stop` with tool calls is `tool_calls` (a forced
/// `tool_choice` answers `stop`); anything unknown is `stop`, since strict clients reject
/// values outside the OpenAI enum.
pub fn finish_reason(raw: Option<&str>, has_tool_calls: bool) -> Value {
    match raw {
        None | Some("null" | "") => Value::Null,
        Some("stop" | "tool_calls") if has_tool_calls => json!("tool_calls"),
        Some(r @ ("stop" | "length" | "tool_calls" | "content_filter")) => json!(r),
        Some(_) => json!("stop"),
    }
}

pub fn completion_id(request_id: Option<&str>) -> String {
    format!("chatcmpl-{}", request_id.unwrap_or("dashscope"))
}

/// Native usage: `input_tokens` includes the context cache's `cached_tokens` (PROTOCOLS §5.4).
pub fn to_usage(u: &DashScopeUsage) -> Usage {
    let input = u.input_tokens.unwrap_or(0);
    let output = u.output_tokens.unwrap_or(0);
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(input),
        cache_write_tokens: 0,
        reasoning_tokens: u
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
            .min(output),
    }
}

/// Native usage in OpenAI's shape (total computed when absent).
pub fn usage_json(u: &DashScopeUsage) -> Value {
    let prompt = u.input_tokens.unwrap_or(0);
    let completion = u.output_tokens.unwrap_or(0);
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": u.total_tokens.unwrap_or(prompt + completion)});
    if let Some(cached) = u
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
    {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    if let Some(reasoning) = u
        .output_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens)
    {
        usage["completion_tokens_details"] = json!({"reasoning_tokens": reasoning});
    }
    usage
}

/// A native error (`{code, message, request_id}`, as a body or an in-stream `event:error`) as
/// the error the client or the retry loop sees. `status` is the HTTP status, or the one in the
/// event's `:HTTP_STATUS/…` comment.
pub fn parse_error(
    provider: &str,
    status: StatusCode,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
) -> GatewayError {
    let native: Option<DashScopeGenerationResponse> = serde_json::from_slice(body).ok();
    let code = native
        .as_ref()
        .and_then(|n| n.code.clone())
        .unwrap_or_default();
    let message = native
        .and_then(|n| n.message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    map_error(provider, status, &code, message).with_retry_after(retry_after)
}

fn map_error(provider: &str, status: StatusCode, code: &str, message: String) -> GatewayError {
    let rejected = |status: StatusCode, code: String| {
        GatewayError::upstream_rejected(status, "invalid_request_error".into(), message.clone())
            .with_code(code)
    };
    match code {
        // The gateway's own credentials or account: an operator problem, failed over, and never
        // described to the client as its own key being wrong.
        "InvalidApiKey" | "invalid_api_key" | "Arrearage" => GatewayError::new(
            ErrorKind::UpstreamAuth,
            format!("provider {provider:?} refused the gateway's credentials ({code})"),
        ),
        c if c.starts_with("AccessDenied") || c == "access_denied" => GatewayError::new(
            ErrorKind::UpstreamAuth,
            format!("provider {provider:?} denied access ({code})"),
        ),
        c if c.starts_with("Throttling") || c == "insufficient_quota" => GatewayError::new(
            ErrorKind::UpstreamRateLimited,
            format!("provider {provider:?} is rate limiting ({code}): {message}"),
        ),
        "DataInspectionFailed" | "data_inspection_failed" => {
            rejected(StatusCode::BAD_REQUEST, "content_filter".into())
        }
        "ModelNotFound" | "NotFound" => rejected(StatusCode::NOT_FOUND, "model_not_found".into()),
        c if c == "InvalidParameter" || c.starts_with("BadRequest") || c == "InvalidURL" => {
            rejected(StatusCode::BAD_REQUEST, snake_case(c))
        }
        c if c.starts_with("InternalError") => GatewayError::new(
            ErrorKind::UpstreamFailed,
            format!("provider {provider:?} failed ({code}): {message}"),
        ),
        _ => match status.as_u16() {
            401 | 403 => GatewayError::new(
                ErrorKind::UpstreamAuth,
                format!("provider {provider:?} refused the gateway's credentials (HTTP {status})"),
            ),
            408 => GatewayError::new(
                ErrorKind::UpstreamTimeout,
                format!("provider {provider:?} timed out"),
            ),
            429 => GatewayError::new(
                ErrorKind::UpstreamRateLimited,
                format!("provider {provider:?} is rate limiting: {message}"),
            ),
            400..=499 => rejected(
                status,
                if code.is_empty() {
                    "invalid_request".into()
                } else {
                    snake_case(code)
                },
            ),
            _ => GatewayError::new(
                ErrorKind::UpstreamFailed,
                format!(
                    "provider {provider:?} failed (HTTP {}): {message}",
                    status.as_u16()
                ),
            ),
        },
    }
}

/// `BadRequest.EmptyInput` → `bad_request_empty_input`.
fn snake_case(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + 4);
    for (i, c) in code.chars().enumerate() {
        match c {
            '.' | '-' => out.push('_'),
            c if c.is_ascii_uppercase() => {
                if i > 0 && !out.ends_with('_') {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            }
            c => out.push(c),
        }
    }
    out
}

/// Texts per upstream call for this embedding model.
pub fn embedding_batch(upstream_model: &str) -> usize {
    match upstream_model.contains("-v1") || upstream_model.contains("-v2") {
        true => EMBEDDING_BATCH_V1_V2,
        false => EMBEDDING_BATCH,
    }
}

/// Most texts one request may send through a DashScope route: OpenAI's own limit for an
/// embeddings input, here 205 native calls of 10.
const MAX_TEXTS: usize = 2048;

/// An OpenAI embeddings request (its body and the shape of its input) as native calls of at
/// most `embedding_batch` texts each.
pub fn build_embeddings(
    body: &[u8],
    input: &EmbeddingInput,
    upstream_model: &str,
    dimensions: Option<u32>,
) -> Result<Vec<Bytes>, GatewayError> {
    match input {
        EmbeddingInput::Text | EmbeddingInput::Texts(..=MAX_TEXTS) => {}
        EmbeddingInput::Texts(_) => {
            return Err(GatewayError::invalid_request(format!(
                "this model's DashScope route takes at most {MAX_TEXTS} texts in one request"
            ))
            .with_param("input"));
        }
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
            return Err(GatewayError::invalid_request(
                "token-id input is not supported by this model's DashScope route; send text",
            )
            .with_param("input"));
        }
    }
    let texts = crate::request::texts(body)?;
    let parameters = match dimensions {
        Some(d) => json!({"dimension": d}),
        None => json!({}),
    };
    Ok(texts
        .chunks(embedding_batch(upstream_model))
        .map(|batch| Bytes::from(json!({"model": upstream_model, "input": {"texts": batch}, "parameters": parameters}).to_string()))
        .collect())
}

/// Native embedding answers (one per batch, in order) as one OpenAI list, indices restored and
/// vectors base64-encoded (float32 little-endian) when the client asked for base64.
pub fn parse_embeddings(
    bodies: &[Bytes],
    batch: usize,
    client_model: &str,
    base64: bool,
) -> Result<(Bytes, Option<Usage>), GatewayError> {
    let mut data = Vec::new();
    let mut tokens = 0;
    for (b, body) in bodies.iter().enumerate() {
        let native: DashScopeEmbeddingResponse = serde_json::from_slice(body).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamFailed,
                format!("DashScope returned a malformed embeddings response: {e}"),
            )
        })?;
        let output = native.output.ok_or_else(|| {
            GatewayError::new(
                ErrorKind::UpstreamFailed,
                "DashScope returned no embeddings",
            )
        })?;
        tokens += native
            .usage
            .and_then(|u| u.total_tokens.or(u.input_tokens))
            .unwrap_or(0);
        for e in output.embeddings {
            let embedding = match base64 {
                true => Value::String(
                    base64::engine::general_purpose::STANDARD.encode(
                        e.embedding
                            .iter()
                            .flat_map(|f| f.to_le_bytes())
                            .collect::<Vec<u8>>(),
                    ),
                ),
                false => json!(e.embedding),
            };
            data.push((b * batch + e.text_index, embedding));
        }
    }
    if data.is_empty() {
        return Err(GatewayError::new(
            ErrorKind::UpstreamFailed,
            "DashScope returned no embeddings",
        ));
    }
    data.sort_by_key(|(index, _)| *index);
    let data: Vec<Value> = data.into_iter().map(|(index, embedding)| json!({"object": "embedding", "index": index, "embedding": embedding})).collect();
    let list = json!({"object": "list", "data": data, "model": client_model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    Ok((
        Bytes::from(list.to_string()),
        Some(Usage::tokens(tokens, 0)),
    ))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
