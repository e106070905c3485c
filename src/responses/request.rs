//! `POST /v1/responses` requests (PROTOCOLS.md §10.1): checked, normalised, and turned into the
//! chat request the pipeline routes (§10.6). Pure: item references and `previous_response_id`
//! chains are resolved by the caller, which owns the store.

use serde_json::{Map, Value, json};

use super::ids;
use crate::error::GatewayError;

/// The smallest `max_output_tokens` OpenAI accepts.
const MIN_OUTPUT_TOKENS: u64 = 16;

/// A Responses request, checked and normalised.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    pub model: String,
    pub stream: bool,
    /// Whether the response is kept for `previous_response_id`, `item_reference` and `GET`.
    pub store: bool,
    pub instructions: Option<String>,
    pub previous_response_id: Option<String>,
    /// This request's input items, each with an id (the gateway's when the client gave none);
    /// `item_reference`s are still references here.
    pub input: Vec<Value>,
    pub max_output_tokens: Option<u64>,
    /// What the response object echoes (PROTOCOLS.md §10.6, "echo").
    pub echo: Map<String, Value>,
    /// Chat fields other than `model`, `messages` and `stream`.
    chat: Map<String, Value>,
}

// === impl ResponsesRequest ===

impl ResponsesRequest {
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        crate::request::check_tree(body)?;
        let mut fields: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| GatewayError::invalid_request(format!("invalid JSON body: {e}")))?;
        // Every optional field may be `null` (= unset).
        fields.retain(|_, v| !v.is_null());
        refuse_unsupported(&fields)?;

        let model = match fields.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(_) => return Err(bad("'model' must be a non-empty string", "model")),
            None => return Err(bad("you must provide a model parameter", "model")),
        };
        let stream = flag(&fields, "stream", false)?;
        let store = flag(&fields, "store", true)?;
        let instructions = match fields.get("instructions") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("'instructions' must be a string", "instructions")),
        };
        let previous_response_id = match fields.get("previous_response_id") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                return Err(bad(
                    "'previous_response_id' must be a string",
                    "previous_response_id",
                ));
            }
        };
        // Taken, not cloned: the input is most of a large request.
        let input = match fields.remove("input") {
            None if previous_response_id.is_some() => Vec::new(),
            None => return Err(bad("'input' is required", "input")),
            Some(Value::String(text)) => vec![json!({
                "type": "message", "role": "user", "content": text,
            })],
            Some(Value::Array(items)) => items,
            Some(_) => return Err(bad("'input' must be a string or an array", "input")),
        };
        let input = input
            .into_iter()
            .enumerate()
            .map(|(i, item)| normalise_item(i, item))
            .collect::<Result<Vec<_>, _>>()?;
        let max_output_tokens = match fields.get("max_output_tokens") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= MIN_OUTPUT_TOKENS => Some(n),
                _ => {
                    return Err(bad(
                        format!(
                            "'max_output_tokens' must be an integer of at least {MIN_OUTPUT_TOKENS}"
                        ),
                        "max_output_tokens",
                    ));
                }
            },
        };
        let (tools, chat_tools) = tools(&fields)?;
        let mut chat = Map::new();
        let mut echo = Map::new();
        if !chat_tools.is_empty() {
            chat.insert("tools".into(), Value::Array(chat_tools));
            if let Some(parallel) = fields.get("parallel_tool_calls") {
                chat.insert("parallel_tool_calls".into(), parallel.clone());
            }
            if let Some(choice) = fields.get("tool_choice") {
                tool_choice(choice, &mut chat)?;
            }
        }
        if let Some(format) = fields.get("text").and_then(|t| t.get("format"))
            && let Some(response_format) = response_format(format)?
        {
            chat.insert("response_format".into(), response_format);
        }
        if let Some(effort) = fields.get("reasoning").and_then(|r| r.get("effort"))
            && !effort.is_null()
        {
            chat.insert("reasoning_effort".into(), effort.clone());
        }
        if let Some(max) = max_output_tokens {
            chat.insert("max_tokens".into(), json!(max));
        }
        for (from, to) in [
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("user", "user"),
            ("safety_identifier", "safety_identifier"),
            ("prompt_cache_key", "prompt_cache_key"),
            ("service_tier", "service_tier"),
        ] {
            if let Some(v) = fields.get(from) {
                chat.insert(to.into(), v.clone());
            }
        }
        if let Some(k) = fields.get("top_logprobs").and_then(Value::as_u64) {
            let wanted = fields
                .get("include")
                .and_then(Value::as_array)
                .is_some_and(|i| i.iter().any(|v| v == "message.output_text.logprobs"));
            if wanted {
                chat.insert("logprobs".into(), Value::Bool(true));
                chat.insert("top_logprobs".into(), json!(k));
            }
        }

        echo.insert("instructions".into(), json!(instructions));
        echo.insert("tools".into(), Value::Array(tools));
        echo.insert(
            "tool_choice".into(),
            fields.get("tool_choice").cloned().unwrap_or(json!("auto")),
        );
        echo.insert(
            "parallel_tool_calls".into(),
            fields
                .get("parallel_tool_calls")
                .cloned()
                .unwrap_or(json!(true)),
        );
        for (key, default) in [("temperature", json!(1.0)), ("top_p", json!(1.0))] {
            echo.insert(key.into(), fields.get(key).cloned().unwrap_or(default));
        }
        let text = fields
            .get("text")
            .cloned()
            .unwrap_or_else(|| json!({"format": {"type": "text"}}));
        echo.insert("text".into(), text);
        let reasoning = fields.get("reasoning");
        let part = |k: &str| {
            reasoning
                .and_then(|r| r.get(k))
                .cloned()
                .unwrap_or(Value::Null)
        };
        echo.insert(
            "reasoning".into(),
            json!({"effort": part("effort"), "summary": part("summary")}),
        );
        echo.insert("truncation".into(), json!("disabled"));
        echo.insert("store".into(), json!(store));
        echo.insert(
            "metadata".into(),
            fields.get("metadata").cloned().unwrap_or_else(|| json!({})),
        );
        echo.insert("previous_response_id".into(), json!(previous_response_id));
        echo.insert("max_output_tokens".into(), json!(max_output_tokens));
        echo.insert(
            "user".into(),
            fields.get("user").cloned().unwrap_or(Value::Null),
        );
        echo.insert("background".into(), json!(false));
        if let Some(metadata) = fields.get("metadata") {
            check_metadata(metadata)?;
        }
        Ok(Self {
            model,
            stream,
            store,
            instructions,
            previous_response_id,
            input,
            max_output_tokens,
            echo,
            chat,
        })
    }

    /// The chat request body for `messages` (the whole context: instructions, the chain, this
    /// request's input), as the pipeline routes it. Streams always ask for the usage chunk:
    /// `response.completed` must carry usage.
    pub fn chat_body(&self, messages: Vec<Value>) -> Vec<u8> {
        let mut body = Map::with_capacity(self.chat.len() + 4);
        body.insert("model".into(), Value::String(self.model.clone()));
        body.insert("messages".into(), Value::Array(messages));
        for (k, v) in &self.chat {
            body.insert(k.clone(), v.clone());
        }
        if self.stream {
            body.insert("stream".into(), Value::Bool(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
    }
}

/// Appends the chat messages of Responses `items` (references already resolved) to `messages`
/// (what comes before them: instructions, the chain): consecutive function calls fold into one
/// assistant message, joined to the text before them; a call's output needs its call before it.
pub fn to_messages(mut messages: Vec<Value>, items: &[Value]) -> Result<Vec<Value>, GatewayError> {
    messages.reserve(items.len());
    for (i, item) in items.iter().enumerate() {
        match item_type(item) {
            "message" => messages.push(message(i, item)?),
            "function_call" => {
                let call = json!({
                    "id": str_field(item, "call_id").unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": str_field(item, "name").unwrap_or_default(),
                        "arguments": str_field(item, "arguments").unwrap_or("{}"),
                    },
                });
                // One assistant message for consecutive calls, joined to the text before them.
                let open = messages.last_mut().filter(|m| {
                    m["role"] == "assistant" && m.get("tool_calls").is_none_or(Value::is_array)
                });
                match open {
                    Some(Value::Object(m)) => match m.get_mut("tool_calls") {
                        Some(Value::Array(calls)) => calls.push(call),
                        _ => {
                            m.insert("tool_calls".into(), json!([call]));
                        }
                    },
                    _ => messages
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let call_id = str_field(item, "call_id").unwrap_or_default();
                let called = messages.iter().any(|m| {
                    m["tool_calls"]
                        .as_array()
                        .is_some_and(|calls| calls.iter().any(|c| c["id"] == call_id))
                });
                if !called {
                    return Err(bad(
                        format!(
                            "No tool call found for function call output with call_id {call_id}."
                        ),
                        "input",
                    ));
                }
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(""),
                    _ => String::new(),
                };
                messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
            }
            // Reasoning items cannot be replayed to a chat upstream (PROTOCOLS.md §10.6).
            "reasoning" => {}
            "item_reference" => {
                return Err(bad(
                    format!(
                        "Item with id '{}' not found.",
                        str_field(item, "id").unwrap_or("")
                    ),
                    "input",
                ));
            }
            other => {
                return Err(bad(
                    format!("Input items of type '{other}' are not supported."),
                    format!("input[{i}].type"),
                )
                .with_code("unsupported_value"));
            }
        }
    }
    Ok(messages)
}

/// An item's type: messages may omit it (the AI SDK, pydantic-ai and the Agents SDK do).
pub fn item_type(item: &Value) -> &str {
    match item.get("type").and_then(Value::as_str) {
        Some(t) => t,
        None if item.get("role").is_some() => "message",
        None if item.get("id").is_some() => "item_reference",
        None => "",
    }
}

fn message(i: usize, item: &Value) -> Result<Value, GatewayError> {
    let role = match str_field(item, "role") {
        Some(r @ ("user" | "system" | "developer" | "assistant")) => r,
        _ => {
            return Err(bad(
                "a message's role must be user, system, developer or assistant",
                format!("input[{i}].role"),
            ));
        }
    };
    let content = match item.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) if role == "assistant" => Value::String(
            parts
                .iter()
                .filter_map(|p| p.get("text").or_else(|| p.get("refusal")))
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(""),
        ),
        // A lone text part goes upstream as a plain string: every chat server takes that.
        Some(Value::Array(parts)) if parts.len() == 1 && is_text_part(&parts[0]) => {
            content_part(i, 0, &parts[0])?["text"].take()
        }
        Some(Value::Array(parts)) => Value::Array(
            parts
                .iter()
                .enumerate()
                .map(|(j, part)| content_part(i, j, part))
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err(bad(
                "a message's content must be a string or an array of parts",
                format!("input[{i}].content"),
            ));
        }
    };
    Ok(json!({"role": role, "content": content}))
}

fn is_text_part(part: &Value) -> bool {
    matches!(
        part.get("type").and_then(Value::as_str),
        Some("input_text" | "output_text" | "text")
    )
}

fn content_part(i: usize, j: usize, part: &Value) -> Result<Value, GatewayError> {
    let param = || format!("input[{i}].content[{j}]");
    let no_files = || {
        bad(
            "file_id inputs are not supported: the gateway has no Files API; send the data inline",
            param(),
        )
        .with_code("unsupported_value")
    };
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => Ok(json!({
            "type": "text", "text": str_field(part, "text").unwrap_or_default(),
        })),
        Some("input_image") => {
            let Some(url) = str_field(part, "image_url") else {
                return Err(no_files());
            };
            let mut image = json!({"url": url});
            if let Some(detail) = str_field(part, "detail") {
                image["detail"] = json!(detail);
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some("input_file") => match part.get("file_data") {
            Some(data) => Ok(json!({"type": "file", "file": {
                "file_data": data, "filename": part.get("filename").cloned().unwrap_or(Value::Null),
            }})),
            None => Err(no_files()),
        },
        other => Err(bad(
            format!("content parts of type {other:?} are not supported"),
            param(),
        )
        .with_code("unsupported_value")),
    }
}

/// The function tools, as the response echoes them (flattened, `strict` defaulting to true)
/// and as chat takes them (nested, `strict` only if the client set it).
fn tools(fields: &Map<String, Value>) -> Result<(Vec<Value>, Vec<Value>), GatewayError> {
    let Some(list) = fields.get("tools") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let list = list
        .as_array()
        .ok_or_else(|| bad("'tools' must be an array", "tools"))?;
    let (mut echo, mut chat) = (Vec::new(), Vec::new());
    for (i, tool) in list.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(bad(
                    format!("Tool type '{other}' is not supported."),
                    format!("tools[{i}].type"),
                )
                .with_code("unsupported_value"));
            }
            None => return Err(bad("a tool needs a type", format!("tools[{i}].type"))),
        }
        let Some(name) = str_field(tool, "name") else {
            return Err(bad(
                "a function tool needs a name",
                format!("tools[{i}].name"),
            ));
        };
        let mut function = Map::new();
        function.insert("name".into(), json!(name));
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                function.insert(key.into(), v.clone());
            }
        }
        chat.push(json!({"type": "function", "function": function}));
        echo.push(json!({
            "type": "function",
            "name": name,
            "description": tool.get("description").cloned().unwrap_or(Value::Null),
            "parameters": tool.get("parameters").cloned().unwrap_or(Value::Null),
            "strict": tool.get("strict").filter(|v| !v.is_null()).cloned().unwrap_or(json!(true)),
        }));
    }
    Ok((echo, chat))
}

fn tool_choice(choice: &Value, chat: &mut Map<String, Value>) -> Result<(), GatewayError> {
    let chat_choice = match choice {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            json!(mode)
        }
        Value::String(_) => {
            return Err(bad(
                "'tool_choice' must be auto, none or required",
                "tool_choice",
            ));
        }
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                json!({"type": "function", "function": {"name": o.get("name").cloned().unwrap_or(Value::Null)}})
            }
            // Portable everywhere: keep only the allowed tools, then ask in the given mode.
            Some("allowed_tools") => {
                let allowed: Vec<&str> = o
                    .get("tools")
                    .and_then(Value::as_array)
                    .map(|t| t.iter().filter_map(|t| str_field(t, "name")).collect())
                    .unwrap_or_default();
                if let Some(Value::Array(tools)) = chat.get_mut("tools") {
                    tools.retain(|t| {
                        t["function"]["name"]
                            .as_str()
                            .is_some_and(|n| allowed.contains(&n))
                    });
                }
                o.get("mode").cloned().unwrap_or(json!("auto"))
            }
            other => {
                return Err(bad(
                    format!("tool_choice of type {other:?} is not supported"),
                    "tool_choice",
                )
                .with_code("unsupported_value"));
            }
        },
        _ => return Err(bad("invalid 'tool_choice'", "tool_choice")),
    };
    chat.insert("tool_choice".into(), chat_choice);
    Ok(())
}

/// `text.format` as chat's `response_format` (`None` for plain text).
fn response_format(format: &Value) -> Result<Option<Value>, GatewayError> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let name = str_field(format, "name")
                .ok_or_else(|| bad("a json_schema format needs a name", "text.format.name"))?;
            let schema = format
                .get("schema")
                .ok_or_else(|| bad("a json_schema format needs a schema", "text.format.schema"))?;
            let mut inner = json!({"name": name, "schema": schema});
            for key in ["strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    inner[key] = v.clone();
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": inner})))
        }
        Some(other) => Err(bad(
            format!("text.format type '{other}' is not supported"),
            "text.format.type",
        )),
    }
}

/// Fields whose features the gateway does not have: a clear 400 naming the field.
fn refuse_unsupported(fields: &Map<String, Value>) -> Result<(), GatewayError> {
    if fields.get("background").is_some_and(|b| b == true) {
        return Err(unsupported(
            "background responses are not supported",
            "background",
        ));
    }
    if fields.contains_key("conversation") {
        let both = fields.contains_key("previous_response_id");
        return Err(match both {
            true => bad(
                "'conversation' and 'previous_response_id' cannot be used together",
                "conversation",
            ),
            false => unsupported(
                "conversations are not supported; use previous_response_id",
                "conversation",
            ),
        });
    }
    if fields.contains_key("prompt") {
        return Err(unsupported("stored prompts are not supported", "prompt"));
    }
    Ok(())
}

fn check_metadata(metadata: &Value) -> Result<(), GatewayError> {
    let Some(pairs) = metadata.as_object() else {
        return Err(bad("'metadata' must be an object", "metadata"));
    };
    let fits = pairs.len() <= 16
        && pairs.iter().all(|(k, v)| {
            k.chars().count() <= 64 && v.as_str().is_some_and(|v| v.chars().count() <= 512)
        });
    match fits {
        true => Ok(()),
        false => Err(bad(
            "'metadata' holds at most 16 string pairs (keys up to 64, values up to 512 characters)",
            "metadata",
        )),
    }
}

/// Gives an item without an id the gateway's (`msg_…` for messages, `fc_…` for calls), so
/// `input_items` can list it and later requests can reference it.
fn normalise_item(i: usize, item: Value) -> Result<Value, GatewayError> {
    let Value::Object(mut item) = item else {
        return Err(bad("input items must be objects", format!("input[{i}]")));
    };
    item.retain(|_, v| !v.is_null());
    let kind = item_type(&Value::Object(item.clone())).to_owned();
    if kind == "item_reference" {
        if str_field(&Value::Object(item.clone()), "id").is_none() {
            return Err(bad(
                "an item_reference needs an id",
                format!("input[{i}].id"),
            ));
        }
        return Ok(Value::Object(item));
    }
    if kind == "message" {
        item.entry("type").or_insert_with(|| json!("message"));
        // Stored and listed as OpenAI does: content as parts, even when sent as a string.
        if let Some(Value::String(text)) = item.get("content") {
            let part = match item.get("role").and_then(Value::as_str) {
                Some("assistant") => "output_text",
                _ => "input_text",
            };
            let parts = json!([{"type": part, "text": text}]);
            item.insert("content".into(), parts);
        }
    }
    if !item.get("id").is_some_and(Value::is_string) {
        let prefix = match kind.as_str() {
            "function_call" => "fc",
            "function_call_output" => "fco",
            _ => "msg",
        };
        item.insert("id".into(), json!(ids::new(prefix)));
    }
    Ok(Value::Object(item))
}

fn flag(fields: &Map<String, Value>, key: &str, default: bool) -> Result<bool, GatewayError> {
    match fields.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("'{key}' must be a boolean"), key)),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn bad(message: impl Into<String>, param: impl Into<String>) -> GatewayError {
    GatewayError::invalid_request(message.into()).with_param(param.into())
}

fn unsupported(message: &str, param: &str) -> GatewayError {
    bad(message, param).with_code("unsupported_value")
}
