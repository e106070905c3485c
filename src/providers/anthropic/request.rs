//! A chat request (or a legacy completion) as a Messages request (PROTOCOLS.md §12.7.4). Runs
//! once per attempt on a `kind: anthropic` route; what Messages cannot carry is a 400 naming the
//! field, what it does not need is dropped.

use serde_json::{Map, Value, json};

use crate::error::GatewayError;
use crate::request::invalid;

/// `max_tokens` when neither the client nor the model's `max_output_tokens` sets one: what
/// peers send (LiteLLM's and one-api's default), enough for a chat turn.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Thinking budgets for `reasoning_effort` on models that take `budget_tokens` (before 4.6).
const BUDGETS: &[(&str, u64)] = &[("low", 1024), ("medium", 4096), ("high", 16384)];

/// What a translation needs to know about the route.
pub struct Target<'a> {
    pub model: &'a str,
    /// The model's `max_output_tokens`, used where the client set no limit.
    pub max_output_tokens: Option<u32>,
    pub stream: bool,
}

/// An OpenAI chat body as a Messages body.
pub fn from_chat(body: &[u8], target: &Target<'_>) -> Result<Vec<u8>, GatewayError> {
    crate::request::check_tree(body)?;
    let request: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| GatewayError::invalid_request(e.to_string()))?;
    let present = |name: &str| request.get(name).filter(|v| !v.is_null());
    for field in ["logit_bias", "audio", "prediction", "top_logprobs"] {
        if present(field).is_some() {
            return Err(unsupported(field));
        }
    }
    if present("logprobs").is_some_and(|v| v == true) {
        return Err(unsupported("logprobs"));
    }
    if present("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(unsupported("n"));
    }
    if present("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|m| m == "audio"))
    {
        return Err(unsupported("modalities"));
    }
    let Some(Value::Array(messages)) = present("messages") else {
        return Err(invalid("messages", "must be an array"));
    };
    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));
    let (mut system, turns) = conversation(messages)?;
    let max_tokens = present("max_completion_tokens")
        .or_else(|| present("max_tokens"))
        .and_then(Value::as_u64)
        .or(target.max_output_tokens.map(u64::from))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    match present("response_format").and_then(|f| f["type"].as_str()) {
        Some("json_schema") => {
            let schema = present("response_format")
                .map(|f| f["json_schema"]["schema"].clone())
                .filter(|s| s.is_object())
                .ok_or_else(|| invalid("response_format.json_schema.schema", "Field required"))?;
            out.insert(
                "output_config".into(),
                json!({"format": {"type": "json_schema", "schema": schema}}),
            );
        }
        // Messages has no JSON mode: the instruction the model follows instead.
        Some("json_object") => system.push(json!({
            "type": "text",
            "text": "Respond with one JSON object and nothing else.",
        })),
        _ => {}
    }
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(turns));
    let thinking = thinking(
        present("reasoning_effort").and_then(Value::as_str),
        target.model,
        max_tokens,
    );
    if let Some((thinking, effort)) = thinking {
        out.insert("thinking".into(), thinking);
        if let Some(effort) = effort {
            let config = out.entry("output_config").or_insert_with(|| json!({}));
            config["effort"] = json!(effort);
        }
    } else {
        // With thinking on, sampling must stay at its defaults (§12.9).
        for name in ["temperature", "top_p", "top_k"] {
            if let Some(v) = present(name) {
                out.insert(name.into(), v.clone());
            }
        }
    }
    match present("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(stops)) if !stops.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(stops.clone()));
        }
        _ => {}
    }
    if let Some(tools) = present("tools") {
        out.insert("tools".into(), self::tools(tools)?);
        let parallel = present("parallel_tool_calls") != Some(&Value::Bool(false));
        if let Some(choice) = tool_choice(present("tool_choice"), parallel)? {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(user) = present("safety_identifier")
        .or_else(|| present("user"))
        .and_then(Value::as_str)
    {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if target.stream {
        out.insert("stream".into(), json!(true));
    }
    serde_json::to_vec(&out).map_err(|e| GatewayError::invalid_request(e.to_string()))
}

/// A legacy completion as a Messages request: the prompt as one user turn, `max_tokens`
/// defaulting to OpenAI's 16. What Messages cannot do is a 400 naming the field.
pub fn from_completion(body: &[u8], target: &Target<'_>) -> Result<Vec<u8>, GatewayError> {
    crate::request::check_tree(body)?;
    let mut request: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| GatewayError::invalid_request(e.to_string()))?;
    let Some(Value::String(prompt)) = request.remove("prompt") else {
        return Err(invalid(
            "prompt",
            "this model's route takes one prompt string (arrays and token ids need an OpenAI-kind route)",
        ));
    };
    for field in ["suffix", "logprobs"] {
        if request.get(field).is_some_and(|v| !v.is_null()) {
            return Err(unsupported(field));
        }
    }
    if request.get("echo") == Some(&Value::Bool(true)) {
        return Err(unsupported("echo"));
    }
    if request
        .get("best_of")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err(unsupported("best_of"));
    }
    request.remove("best_of");
    request.remove("echo");
    if request.get("max_tokens").is_none_or(Value::is_null) {
        request.insert("max_tokens".into(), json!(16));
    }
    request.insert(
        "messages".into(),
        json!([{"role": "user", "content": prompt}]),
    );
    let chat =
        serde_json::to_vec(&request).map_err(|e| GatewayError::invalid_request(e.to_string()))?;
    from_chat(&chat, target)
}

fn unsupported(field: &'static str) -> GatewayError {
    GatewayError::invalid_request(format!(
        "'{field}' is not supported on this model's route (Anthropic Messages API)"
    ))
    .with_param(field)
    .with_code("unsupported_value")
}

/// The system blocks and the turns. System and developer messages become top-level `system`
/// blocks in order, wherever they were; consecutive tool results and the user text after them
/// become one user turn with the results first (Anthropic's rule).
fn conversation(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), GatewayError> {
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::with_capacity(messages.len());
    // Blocks of the user turn being built from tool results (and what follows them).
    let mut pending: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = |what: &str| format!("messages[{i}].{what}");
        let role = m["role"].as_str().unwrap_or_default();
        match role {
            "system" | "developer" => {
                for text in texts(&m["content"], &at("content"))? {
                    system.push(json!({"type": "text", "text": text}));
                }
            }
            "tool" => {
                let id = m["tool_call_id"]
                    .as_str()
                    .ok_or_else(|| invalid(at("tool_call_id"), "Field required"))?;
                let text = texts(&m["content"], &at("content"))?.join("\n");
                pending.push(json!({
                    "type": "tool_result",
                    "tool_use_id": crate::anthropic::tool_id(Some(id)),
                    "content": text,
                }));
            }
            "user" => {
                let mut blocks = std::mem::take(&mut pending);
                blocks.extend(user_blocks(&m["content"], &at("content"))?);
                if !blocks.is_empty() {
                    turns.push(json!({"role": "user", "content": blocks}));
                }
            }
            "assistant" => {
                if !pending.is_empty() {
                    let blocks = std::mem::take(&mut pending);
                    turns.push(json!({"role": "user", "content": blocks}));
                }
                let blocks = assistant_blocks(m, i)?;
                if !blocks.is_empty() {
                    turns.push(json!({"role": "assistant", "content": blocks}));
                }
            }
            _ => {
                return Err(invalid(
                    at("role"),
                    "must be system, developer, user, assistant or tool",
                ));
            }
        }
    }
    if !pending.is_empty() {
        turns.push(json!({"role": "user", "content": pending}));
    }
    Ok((system, turns))
}

/// The text of a content value (a string, or text parts), empty texts dropped.
fn texts(content: &Value, field: &str) -> Result<Vec<String>, GatewayError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(parts) => Ok(parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned)
            .collect()),
        _ => Err(invalid(field, "must be a string or an array of parts")),
    }
}

/// A user message's parts as blocks: text, images (data URLs as base64, http(s) by URL), PDFs.
fn user_blocks(content: &Value, field: &str) -> Result<Vec<Value>, GatewayError> {
    let parts = match content {
        Value::String(_) | Value::Null => {
            return Ok(texts(content, field)?
                .into_iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect());
        }
        Value::Array(parts) => parts,
        _ => return Err(invalid(field, "must be a string or an array of parts")),
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = |what: &str| format!("{field}[{j}].{what}");
        match part["type"].as_str().unwrap_or_default() {
            "text" => {
                let text = part["text"].as_str().unwrap_or_default();
                if !text.trim().is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
            }
            "image_url" => {
                let url = part["image_url"]["url"]
                    .as_str()
                    .or_else(|| part["image_url"].as_str())
                    .ok_or_else(|| invalid(at("image_url.url"), "Field required"))?;
                blocks.push(
                    json!({"type": "image", "source": image_source(url, &at("image_url.url"))?}),
                );
            }
            "file" => {
                let data = part["file"]["file_data"]
                    .as_str()
                    .ok_or_else(|| invalid(at("file.file_data"), "a file is sent as file_data"))?;
                let (media_type, data) = data_url(data)
                    .filter(|(media, _)| *media == "application/pdf")
                    .ok_or_else(|| {
                        invalid(
                            at("file.file_data"),
                            "must be a data:application/pdf;base64 URL",
                        )
                    })?;
                blocks.push(json!({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}));
            }
            "input_audio" => {
                return Err(invalid(
                    at("type"),
                    "audio input is not supported on this model's route",
                ));
            }
            other => {
                return Err(invalid(
                    at("type"),
                    format!("unknown content part type {other:?}"),
                ));
            }
        }
    }
    Ok(blocks)
}

/// An image URL as an image source.
fn image_source(url: &str, field: &str) -> Result<Value, GatewayError> {
    if let Some((media_type, data)) = data_url(url) {
        return Ok(json!({"type": "base64", "media_type": media_type, "data": data}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "url", "url": url}));
    }
    Err(invalid(
        field,
        "must be an http(s) URL or a data:<type>;base64 URL",
    ))
}

/// `data:<media type>;base64,<data>` → (media type, data).
fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (head, data) = rest.split_once(',')?;
    let media_type = head.strip_suffix(";base64")?;
    (!media_type.is_empty()).then_some((media_type, data))
}

/// An assistant message as blocks: its text, then a `tool_use` per call (arguments parsed:
/// Messages takes the input as an object). Reasoning is dropped: it has no valid signature.
fn assistant_blocks(m: &Value, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut blocks: Vec<Value> = texts(&m["content"], &format!("messages[{i}].content"))?
        .into_iter()
        .map(|text| json!({"type": "text", "text": text.trim_end()}))
        .collect();
    for (j, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let at = |what: &str| format!("messages[{i}].tool_calls[{j}].{what}");
        let name = call["function"]["name"]
            .as_str()
            .ok_or_else(|| invalid(at("function.name"), "Field required"))?;
        let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
        let input: Value = match arguments.trim() {
            "" => json!({}),
            text => serde_json::from_str(text)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| invalid(at("function.arguments"), "must be a JSON object"))?,
        };
        blocks.push(json!({
            "type": "tool_use",
            "id": crate::anthropic::tool_id(call["id"].as_str()),
            "name": name,
            "input": input,
        }));
    }
    Ok(blocks)
}

/// Function tools as custom tools.
fn tools(tools: &Value) -> Result<Value, GatewayError> {
    let Value::Array(tools) = tools else {
        return Err(invalid("tools", "must be an array"));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool["type"] != "function" {
            return Err(invalid(
                format!("tools[{i}].type"),
                "only function tools can be sent to this model's route",
            ));
        }
        let function = &tool["function"];
        let name = function["name"]
            .as_str()
            .ok_or_else(|| invalid(format!("tools[{i}].function.name"), "Field required"))?;
        let mut custom = json!({
            "name": name,
            "input_schema": match &function["parameters"] {
                Value::Object(schema) => Value::Object(schema.clone()),
                _ => json!({"type": "object", "properties": {}}),
            },
        });
        if let Some(description) = function["description"].as_str() {
            custom["description"] = json!(description);
        }
        out.push(custom);
    }
    Ok(Value::Array(out))
}

/// `tool_choice` as Anthropic's; `parallel_tool_calls: false` as `disable_parallel_tool_use`.
fn tool_choice(choice: Option<&Value>, parallel: bool) -> Result<Option<Value>, GatewayError> {
    let mut out = match choice {
        None => json!({"type": "auto"}),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => return Ok(Some(json!({"type": "none"}))),
            "required" => json!({"type": "any"}),
            _ => {
                return Err(invalid(
                    "tool_choice",
                    "must be auto, none, required or a function",
                ));
            }
        },
        Some(named) => match named["function"]["name"].as_str() {
            Some(name) => json!({"type": "tool", "name": name}),
            None => return Err(invalid("tool_choice.function.name", "Field required")),
        },
    };
    if !parallel {
        out["disable_parallel_tool_use"] = json!(true);
    } else if choice.is_none() {
        // Anthropic's default: nothing to send.
        return Ok(None);
    }
    Ok(Some(out))
}

/// `reasoning_effort` as `thinking`: adaptive with an effort on models from 4.6 on, which
/// refuse budgets; a budget below `max_tokens` on older ones. `none`/`minimal` (or no room
/// for the smallest budget) is no thinking.
fn thinking(
    effort: Option<&str>,
    model: &str,
    max_tokens: u64,
) -> Option<(Value, Option<&'static str>)> {
    let effort = match effort? {
        "low" => "low",
        "medium" => "medium",
        "high" | "xhigh" => "high",
        _ => return None,
    };
    if adaptive(model) {
        return Some((json!({"type": "adaptive"}), Some(effort)));
    }
    let budget = BUDGETS
        .iter()
        .find(|(e, _)| *e == effort)
        .map_or(1024, |b| b.1);
    let budget = budget.min(max_tokens.saturating_sub(1));
    (budget >= 1024).then(|| (json!({"type": "enabled", "budget_tokens": budget}), None))
}

/// Whether a Claude model id is 4.6 or later (`claude-opus-4-6`, `claude-sonnet-5`, dated or
/// not): those take adaptive thinking and refuse `budget_tokens`.
fn adaptive(model: &str) -> bool {
    let Some(rest) = model.strip_prefix("claude-") else {
        return false;
    };
    let mut numbers = rest
        .split(['-', '.', '@'])
        .skip_while(|part| part.parse::<u32>().is_err())
        .map_while(|part| part.parse::<u32>().ok().filter(|n| *n < 100));
    match (numbers.next(), numbers.next()) {
        (Some(major), minor) => (major, minor.unwrap_or(0)) >= (4, 6),
        _ => false,
    }
}

#[cfg(test)]
pub(super) fn is_adaptive(model: &str) -> bool {
    adaptive(model)
}
