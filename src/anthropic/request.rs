//! A Messages request as a chat request (PROTOCOLS.md §12.7.1). Unknown fields and beta
//! features are ignored, never refused (Claude Code adds new ones every release, §12.8); a 400
//! names the field only for what a chat route cannot carry or a malformed required field.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::GatewayError;
use crate::request::invalid;

/// What the pipeline needs from a Messages request besides the chat body.
#[derive(Debug)]
pub struct MessagesRequest {
    pub model: String,
    pub stream: bool,
    /// The client enabled thinking: `reasoning_content` becomes thinking blocks (otherwise it is
    /// dropped from the answer and still counted).
    pub thinking: bool,
    /// The chat request the Messages request is, as JSON.
    pub chat_body: Vec<u8>,
}

/// Whether `max_tokens` is required: yes for `/v1/messages`, no for `count_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    CountTokens,
}

// === impl MessagesRequest ===

impl MessagesRequest {
    pub fn parse(body: &[u8], purpose: Purpose) -> Result<Self, GatewayError> {
        crate::request::check_tree(body)?;
        let fields: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
            GatewayError::invalid_request(format!("invalid JSON body: {e}"))
                .with_code("invalid_json")
        })?;
        let model = match fields.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(_) => return Err(invalid("model", "must be a non-empty string")),
            None => return Err(invalid("model", "Field required")),
        };
        let max_tokens = match fields.get("max_tokens") {
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| invalid("max_tokens", "must be a non-negative integer"))?,
            ),
            None if purpose == Purpose::CountTokens => None,
            None => return Err(invalid("max_tokens", "Field required")),
        };
        let stream = purpose == Purpose::Create && fields.get("stream") == Some(&json!(true));
        let thinking = matches!(
            fields
                .get("thinking")
                .and_then(|t| t.get("type"))
                .and_then(Value::as_str),
            Some("enabled" | "adaptive")
        );

        let mut messages = Vec::new();
        if let Some(system) = fields.get("system") {
            let text = text_of(system, "system")?;
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        let Some(Value::Array(turns)) = fields.get("messages") else {
            return Err(invalid("messages", "Field required: an array of messages"));
        };
        for (i, turn) in turns.iter().enumerate() {
            translate_turn(i, turn, &mut messages)?;
        }

        let mut chat = Map::new();
        chat.insert("model".into(), Value::String(model.clone()));
        chat.insert("messages".into(), Value::Array(messages));
        if let Some(max) = max_tokens {
            chat.insert("max_tokens".into(), json!(max));
        }
        if stream {
            chat.insert("stream".into(), json!(true));
            chat.insert("stream_options".into(), json!({"include_usage": true}));
        }
        for name in ["temperature", "top_p"] {
            if let Some(v) = fields.get(name).filter(|v| v.is_number()) {
                chat.insert(name.into(), v.clone());
            }
        }
        if let Some(Value::Array(stops)) = fields.get("stop_sequences")
            && !stops.is_empty()
        {
            chat.insert("stop".into(), Value::Array(stops.clone()));
        }
        if let Some(user) = fields
            .get("metadata")
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
        {
            // Claude Code's user_id runs past OpenAI's 64 characters: a digest keeps it stable.
            let digest = Sha256::digest(user.as_bytes());
            let mut hex = String::with_capacity(64);
            crate::hex::push(&mut hex, &digest);
            chat.insert("user".into(), Value::String(hex));
        }
        let tools = tools(&fields)?;
        let has_tools = !tools.is_empty();
        if has_tools {
            chat.insert("tools".into(), Value::Array(tools));
        }
        if let Some(choice) = fields.get("tool_choice") {
            tool_choice(choice, has_tools, &mut chat)?;
        }
        if let Some(format) = fields
            .get("output_config")
            .and_then(|c| c.get("format"))
            .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        {
            chat.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {"name": "structured_output",
                       "schema": format.get("schema").cloned().unwrap_or(json!({})), "strict": true}}),
            );
        }
        let chat_body = serde_json::to_vec(&Value::Object(chat))
            .map_err(|e| GatewayError::invalid_request(format!("invalid request: {e}")))?;
        Ok(Self {
            model,
            stream,
            thinking,
            chat_body,
        })
    }
}

/// One Messages turn as chat messages: a user turn's `tool_result`s become `tool` messages
/// first (chat wants them right after the assistant's `tool_calls`), then the rest of the turn.
fn translate_turn(i: usize, turn: &Value, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let field = |what: &str| format!("messages.{i}.{what}");
    let role = turn.get("role").and_then(Value::as_str).unwrap_or_default();
    let content = turn.get("content").unwrap_or(&Value::Null);
    match role {
        // A mid-conversation system message (Claude Code ≥ 2.1.154) stays in place.
        "system" => {
            let text = text_of(content, &field("content"))?;
            if !text.is_empty() {
                out.push(json!({"role": "system", "content": text}));
            }
            Ok(())
        }
        "assistant" => {
            let message = assistant_message(content, &field("content"))?;
            out.push(message);
            Ok(())
        }
        "user" => user_messages(content, &field("content"), out),
        _ => Err(invalid(
            field("role"),
            "must be \"user\", \"assistant\" or \"system\"",
        )),
    }
}

fn user_messages(content: &Value, field: &str, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let blocks = match content {
        Value::String(text) => {
            out.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(invalid(
                field,
                "must be a string or an array of content blocks",
            ));
        }
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{field}.{j}");
        match block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "tool_result" => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{at}.tool_use_id"), "Field required"))?;
                let mut text = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(c) => text_of(c, &format!("{at}.content"))?,
                };
                if block.get("is_error") == Some(&json!(true)) {
                    text.insert_str(0, "Error: ");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            "text" => {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // An empty block (it happens in long Claude Code histories) carries nothing.
                if !text.trim().is_empty() {
                    parts.push(json!({"type": "text", "text": text}));
                }
            }
            "image" => parts.push(image_part(block, &at)?),
            "document" => parts.push(document_part(block, &at)?),
            // Replays of server tools and thinking carry nothing a chat route can read.
            "thinking" | "redacted_thinking" | "server_tool_use" | "search_result" => {}
            other => {
                return Err(invalid(
                    format!("{at}.type"),
                    format!("content block type {other:?} cannot be sent to this model's route"),
                ));
            }
        }
    }
    match parts.as_slice() {
        [] => {}
        [only] if only["type"] == "text" => {
            out.push(json!({"role": "user", "content": only["text"]}));
        }
        _ => out.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

fn assistant_message(content: &Value, field: &str) -> Result<Value, GatewayError> {
    let blocks = match content {
        Value::String(text) => return Ok(json!({"role": "assistant", "content": text})),
        Value::Array(blocks) => blocks,
        _ => {
            return Err(invalid(
                field,
                "must be a string or an array of content blocks",
            ));
        }
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "text" => text.push_str(
                block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            "tool_use" => {
                let input = block.get("input").cloned().unwrap_or(json!({}));
                calls.push(json!({
                    "id": block.get("id").and_then(Value::as_str).unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": block.get("name").and_then(Value::as_str).unwrap_or_default(),
                        "arguments": input.to_string(),
                    },
                }));
            }
            // Thinking (and its signature) belongs to the model that wrote it: dropped.
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

/// A text, or text blocks joined (`system`, a tool result, a system turn).
fn text_of(value: &Value, field: &str) -> Result<String, GatewayError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => Ok(blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b.get("text").and_then(Value::as_str).map(str::to_owned),
                Some("tool_reference") => b
                    .get("tool_name")
                    .or_else(|| b.get("name"))
                    .and_then(Value::as_str)
                    .map(|name| format!("tool {name} loaded")),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")),
        Value::Null => Ok(String::new()),
        _ => Err(invalid(
            field,
            "must be a string or an array of text blocks",
        )),
    }
}

fn image_part(block: &Value, at: &str) -> Result<Value, GatewayError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png"),
            source
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        Some("url") => source
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => {
            return Err(invalid(
                format!("{at}.source"),
                "must be a base64 or url image",
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn document_part(block: &Value, at: &str) -> Result<Value, GatewayError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    match (
        source.get("type").and_then(Value::as_str),
        source.get("media_type").and_then(Value::as_str),
    ) {
        (Some("text"), _) => Ok(json!({"type": "text",
            "text": source.get("data").and_then(Value::as_str).unwrap_or_default()})),
        (Some("base64"), Some("application/pdf")) => Ok(json!({"type": "file", "file": {
            "filename": block.get("title").and_then(Value::as_str).unwrap_or("document.pdf"),
            "file_data": format!("data:application/pdf;base64,{}",
                source.get("data").and_then(Value::as_str).unwrap_or_default()),
        }})),
        _ => Err(invalid(
            format!("{at}.source"),
            "only text and base64 PDF documents can be sent to this model's route",
        )),
    }
}

/// Custom tools as functions; server tools (web search, code execution, …) have no chat form
/// and are left out.
fn tools(fields: &Map<String, Value>) -> Result<Vec<Value>, GatewayError> {
    let Some(tools) = fields.get("tools") else {
        return Ok(Vec::new());
    };
    let Value::Array(tools) = tools else {
        return Err(invalid("tools", "must be an array"));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let custom = matches!(
            tool.get("type").and_then(Value::as_str),
            None | Some("custom")
        );
        let Some(schema) = tool.get("input_schema").filter(|_| custom) else {
            continue;
        };
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("tools.{i}.name"), "Field required"))?;
        let mut function = json!({"name": name, "parameters": schema});
        if let Some(d) = tool.get("description").and_then(Value::as_str) {
            function["description"] = Value::String(d.to_owned());
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

fn tool_choice(
    choice: &Value,
    has_tools: bool,
    chat: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "Field required"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice.type",
                "must be auto, any, tool or none",
            ));
        }
    };
    if !has_tools {
        return Ok(());
    }
    chat.insert("tool_choice".into(), mapped);
    if choice.get("disable_parallel_tool_use") == Some(&json!(true)) {
        chat.insert("parallel_tool_calls".into(), json!(false));
    }
    Ok(())
}
