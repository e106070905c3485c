//! A Messages request as a chat request (PROTOCOLS.md §12.7.1). Unknown fields and beta
//! features are ignored, never refused (Claude Code adds new ones every release, §12.8); a 400
//! names the field only for what a chat route cannot carry or a malformed required field.
//!
//! Every Claude Code turn goes through here, so the body is read into borrowed typed fields and
//! the chat body written from them directly: no `Value` tree either way.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use http::HeaderValue;
use memchr::memmem;

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::json_string;
use crate::error::GatewayError;
use crate::request::{
    ChatRequest, Native, invalid, parse_named, parse_named_at, raw_span, raw_text,
};

/// A Messages request as read: what the pipeline needs from it, and its fields, from which
/// [`MessagesRequest::chat_body`] writes the chat request it is (only when a route needs one:
/// a model whose routes all speak Messages gets the client's body as it is).
pub struct MessagesRequest<'a> {
    pub model: String,
    pub stream: bool,
    /// The client enabled thinking: `reasoning_content` becomes thinking blocks (otherwise it is
    /// dropped from the answer and still counted).
    pub thinking: bool,
    pub max_tokens: Option<u64>,
    fields: Body<'a>,
    turns: Vec<Turn<'a>>,
    body: &'a [u8],
    /// Byte range of the `model` value in the client's body (for a pass-through).
    pub model_span: Range<usize>,
    /// Some thinking block carries the gateway's signature (or none).
    pub foreign_thinking: bool,
    /// Some turn is a `system` turn (mid-conversation).
    pub system_turns: bool,
}

/// Whether `max_tokens` is required: yes for `/v1/messages`, no for `count_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    CountTokens,
}

/// The fields of a Messages body the pipeline and the translation read; the rest is skipped
/// unparsed. Turns are read as their role and raw content (40 bytes for at least 13 of JSON);
/// what could cost many times its JSON (tools, stop sequences, content blocks) stays raw until
/// a translation needs it, after the tree bound is checked: a pass-through never builds it.
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Vec<Turn<'a>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    temperature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    top_p: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stop_sequences: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(borrow, default)]
    thinking: Option<Kind<'a>>,
    #[serde(borrow, default)]
    output_config: Option<OutputConfig<'a>>,
}

#[derive(Deserialize)]
struct Turn<'a> {
    #[serde(borrow, default)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: &'a RawValue,
}

/// One content block; which fields mean something depends on its `type`.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_use_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(default)]
    is_error: Option<bool>,
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct OutputConfig<'a> {
    #[serde(borrow, default)]
    format: Option<Format<'a>>,
}

#[derive(Deserialize)]
struct Format<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
}

/// The chat `messages` array being written: one `,` between messages.
struct Messages {
    out: Vec<u8>,
    count: usize,
}

// === impl MessagesRequest ===

impl<'a> MessagesRequest<'a> {
    pub fn parse(body: &'a [u8], purpose: Purpose) -> Result<Self, GatewayError> {
        let mut fields: Body<'a> = match serde_json::from_slice(body) {
            Ok(fields) => fields,
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                return Err(parse_named::<Body<'_>>(body).err().unwrap_or_else(|| {
                    GatewayError::invalid_request(format!("invalid request: {e}"))
                }));
            }
            Err(e) => {
                return Err(
                    GatewayError::invalid_request(format!("invalid JSON body: {e}"))
                        .with_code("invalid_json"),
                );
            }
        };
        let Some(raw) = fields.model else {
            return Err(invalid("model", "Field required"));
        };
        let (model, model_span) = match (raw_text(raw), raw_span(body, raw)) {
            (Some(m), Some(span)) if !m.is_empty() => (m, span),
            _ => return Err(invalid("model", "must be a non-empty string")),
        };
        let max_tokens = match fields.max_tokens {
            None if purpose == Purpose::Create => {
                return Err(invalid("max_tokens", "Field required"));
            }
            max => max,
        };
        let stream = purpose == Purpose::Create && fields.stream == Some(true);
        let thinking = fields
            .thinking
            .as_ref()
            .is_some_and(|t| matches!(&*t.kind, "enabled" | "adaptive"));
        let Some(turns) = fields.messages.take() else {
            return Err(invalid("messages", "Field required: an array of messages"));
        };
        if turns.is_empty() {
            return Err(invalid("messages", "must contain at least one message"));
        }
        Ok(Self {
            model,
            stream,
            thinking,
            max_tokens,
            system_turns: turns.iter().any(|t| t.role == "system"),
            fields,
            turns,
            body,
            model_span,
            foreign_thinking: foreign_signature(body),
        })
    }

    /// The chat request this Messages request is, for the pipeline. The gateway wrote it, so
    /// its fields are known and it is not parsed again.
    pub fn into_chat(self) -> Result<ChatRequest, GatewayError> {
        let (model, stream, max_tokens) = (self.model.clone(), self.stream, self.max_tokens);
        let body = self.chat_body()?;
        // `{"model":` then the name, as `chat_body` writes it.
        let start = b"{\"model\":".len();
        let end = start + serde_json::to_string(&model).map_or(0, |m| m.len());
        Ok(ChatRequest::written(
            Bytes::from(body),
            model,
            start..end,
            stream,
            max_tokens,
        ))
    }

    /// The chat request this Messages request is, as JSON: written from the borrowed fields,
    /// a 400 naming the field for a block a chat route cannot carry.
    pub fn chat_body(self) -> Result<Vec<u8>, GatewayError> {
        let Self {
            model,
            stream,
            max_tokens,
            fields,
            turns,
            body,
            ..
        } = self;
        // Blocks, tools and stop sequences are read into vectors: held to the same bound as a
        // tree.
        crate::request::check_tree(body)?;
        let stops: Vec<Cow<'_, str>> = match fields.stop_sequences {
            Some(raw) if raw.get() != "null" => {
                parse_named_at(raw.get().as_bytes(), "stop_sequences")?
            }
            _ => Vec::new(),
        };
        let tool_list: Vec<Tool<'_>> = match fields.tools {
            Some(raw) if raw.get() != "null" => parse_named_at(raw.get().as_bytes(), "tools")?,
            _ => Vec::new(),
        };
        let mut messages = Messages {
            out: Vec::with_capacity(body.len() + 128),
            count: 0,
        };
        messages.out.extend_from_slice(b"{\"model\":");
        json_string(&mut messages.out, &model);
        messages.out.extend_from_slice(b",\"messages\":[");
        if let Some(system) = fields.system {
            let text = text_of(system, "system")?;
            if !text.is_empty() {
                messages.text("system", &text);
            }
        }
        for (i, turn) in turns.iter().enumerate() {
            translate_turn(i, turn, &mut messages)?;
        }
        let mut out = messages.out;
        out.push(b']');

        if let Some(max) = max_tokens {
            out.extend_from_slice(b",\"max_tokens\":");
            out.extend_from_slice(itoa::Buffer::new().format(max).as_bytes());
        }
        if stream {
            out.extend_from_slice(b",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
        }
        for (name, value) in [("temperature", fields.temperature), ("top_p", fields.top_p)] {
            if let Some(v) = value.filter(|v| is_number(v.get())) {
                raw_field(&mut out, name, v.get());
            }
        }
        if !stops.is_empty() {
            out.extend_from_slice(b",\"stop\":[");
            for (i, stop) in stops.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(&mut out, stop);
            }
            out.push(b']');
        }
        if let Some(user) = fields.metadata.and_then(|m| m.user_id) {
            // Claude Code's user_id runs past OpenAI's 64 characters: a digest keeps it stable.
            let mut hex = String::with_capacity(64);
            crate::hex::push(&mut hex, &Sha256::digest(user.as_bytes()));
            out.extend_from_slice(b",\"user\":");
            json_string(&mut out, &hex);
        }
        let has_tools = tools(&tool_list, &mut out)?;
        if let Some(choice) = fields.tool_choice {
            tool_choice(&choice, has_tools, &mut out)?;
        }
        if let Some(format) = fields
            .output_config
            .and_then(|c| c.format)
            .filter(|f| f.kind == "json_schema")
        {
            out.extend_from_slice(
                b",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"structured_output\",\"schema\":",
            );
            out.extend_from_slice(format.schema.map_or("{}", RawValue::get).as_bytes());
            out.extend_from_slice(b",\"strict\":true}}");
        }
        out.push(b'}');
        Ok(out)
    }

    /// The client's body for a pass-through, with what it needs to know about it, and `id`
    /// for its answer.
    pub fn native(&self, body: Bytes, beta: Option<HeaderValue>, id: String) -> Native {
        Native {
            body,
            model_span: self.model_span.clone(),
            beta,
            system_turns: self.system_turns,
            foreign_thinking: self.foreign_thinking,
            message_id: id,
            thinking: self.thinking,
        }
    }
}

/// Whether a `"signature"` key holds an empty string or the gateway's marker: a thinking block
/// another model's reasoning became, which an Anthropic upstream refuses. (Inside a string the
/// key's quotes would be escaped, so only keys match.)
fn foreign_signature(body: &[u8]) -> bool {
    static KEY: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(b"\"signature\""));
    KEY.find_iter(body).any(|at| {
        let rest = body[at + b"\"signature\"".len()..].trim_ascii_start();
        let Some(value) = rest.strip_prefix(b":") else {
            return false;
        };
        let value = value.trim_ascii_start();
        value.starts_with(b"\"\"")
            || value
                .strip_prefix(b"\"")
                .is_some_and(|v| v.starts_with(super::SIGNATURE.as_bytes()))
    })
}

// === impl Messages ===

impl Messages {
    fn open(&mut self, role: &str) {
        if self.count > 0 {
            self.out.push(b',');
        }
        self.count += 1;
        self.out.extend_from_slice(b"{\"role\":\"");
        self.out.extend_from_slice(role.as_bytes());
        self.out.extend_from_slice(b"\"");
    }

    /// `{"role":role,"content":text}`.
    fn text(&mut self, role: &str, text: &str) {
        self.open(role);
        self.out.extend_from_slice(b",\"content\":");
        json_string(&mut self.out, text);
        self.out.push(b'}');
    }
}

/// One Messages turn as chat messages: a user turn's `tool_result`s become `tool` messages
/// first (chat wants them right after the assistant's `tool_calls`), then the rest of the turn.
fn translate_turn(i: usize, turn: &Turn<'_>, out: &mut Messages) -> Result<(), GatewayError> {
    let field = |what: &str| format!("messages.{i}.{what}");
    match &*turn.role {
        // A mid-conversation system message (Claude Code ≥ 2.1.154) stays in place.
        "system" => {
            let text = text_of(turn.content, &field("content"))?;
            if !text.is_empty() {
                out.text("system", &text);
            }
            Ok(())
        }
        "assistant" => assistant_message(turn.content, &field("content"), out),
        "user" => user_messages(turn.content, &field("content"), out),
        _ => Err(invalid(
            field("role"),
            "must be \"user\", \"assistant\" or \"system\"",
        )),
    }
}

/// A turn's content: a string, or its blocks.
enum Content<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

fn content<'a>(raw: &'a RawValue, field: &str) -> Result<Content<'a>, GatewayError> {
    let bad = || invalid(field, "must be a string or an array of content blocks");
    match raw.get().as_bytes().first() {
        Some(b'"') => serde_json::from_str(raw.get())
            .map(Content::Text)
            .map_err(|_| bad()),
        Some(b'[') => serde_json::from_str(raw.get())
            .map(Content::Blocks)
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn user_messages(raw: &RawValue, field: &str, out: &mut Messages) -> Result<(), GatewayError> {
    let blocks = match content(raw, field)? {
        Content::Text(text) => {
            out.text("user", &text);
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    // The turn's other parts, written after its tool results.
    let mut parts = Vec::new();
    let mut only_text: Option<&str> = None;
    let mut count = 0;
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{field}.{j}");
        match &*block.kind {
            "tool_result" => {
                let id = block
                    .tool_use_id
                    .as_deref()
                    .ok_or_else(|| invalid(format!("{at}.tool_use_id"), "Field required"))?;
                let mut text = match block.content {
                    None => String::new(),
                    Some(c) => text_of(c, &format!("{at}.content"))?,
                };
                if block.is_error == Some(true) {
                    text.insert_str(0, "Error: ");
                }
                out.open("tool");
                out.out.extend_from_slice(b",\"tool_call_id\":");
                json_string(&mut out.out, id);
                out.out.extend_from_slice(b",\"content\":");
                json_string(&mut out.out, &text);
                out.out.push(b'}');
            }
            "text" => {
                let text = block.text.as_deref().unwrap_or_default();
                // An empty block (it happens in long Claude Code histories) carries nothing.
                if !text.trim().is_empty() {
                    count += 1;
                    only_text = Some(text);
                    part_sep(&mut parts);
                    parts.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                    json_string(&mut parts, text);
                    parts.push(b'}');
                }
            }
            "image" => {
                count += 1;
                only_text = None;
                part_sep(&mut parts);
                image_part(block, &at, &mut parts)?;
            }
            "document" => {
                count += 1;
                only_text = None;
                part_sep(&mut parts);
                document_part(block, &at, &mut parts)?;
            }
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
    match (count, only_text) {
        (0, _) => {}
        (1, Some(text)) => out.text("user", text),
        _ => {
            out.open("user");
            out.out.extend_from_slice(b",\"content\":[");
            out.out.extend_from_slice(&parts);
            out.out.extend_from_slice(b"]}");
        }
    }
    Ok(())
}

fn part_sep(parts: &mut Vec<u8>) {
    if !parts.is_empty() {
        parts.push(b',');
    }
}

fn assistant_message(raw: &RawValue, field: &str, out: &mut Messages) -> Result<(), GatewayError> {
    let blocks = match content(raw, field)? {
        Content::Text(text) => {
            out.text("assistant", &text);
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in &blocks {
        match &*block.kind {
            "text" => text.push_str(block.text.as_deref().unwrap_or_default()),
            "tool_use" => {
                part_sep(&mut calls);
                calls.extend_from_slice(b"{\"id\":");
                json_string(&mut calls, block.id.as_deref().unwrap_or_default());
                calls.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                json_string(&mut calls, block.name.as_deref().unwrap_or_default());
                calls.extend_from_slice(b",\"arguments\":");
                // The input object as a JSON string, compact as serde_json writes it.
                let input = block.input.map_or("{}", RawValue::get);
                let compact = serde_json::from_str::<serde_json::Value>(input)
                    .map_or_else(|_| "{}".to_owned(), |v| v.to_string());
                json_string(&mut calls, &compact);
                calls.extend_from_slice(b"}}");
            }
            // Thinking (and its signature) belongs to the model that wrote it: dropped.
            _ => {}
        }
    }
    out.open("assistant");
    out.out.extend_from_slice(b",\"content\":");
    match (text.is_empty(), calls.is_empty()) {
        (true, false) => out.out.extend_from_slice(b"null"),
        _ => json_string(&mut out.out, &text),
    }
    if !calls.is_empty() {
        out.out.extend_from_slice(b",\"tool_calls\":[");
        out.out.extend_from_slice(&calls);
        out.out.push(b']');
    }
    out.out.push(b'}');
    Ok(())
}

/// A text, or text blocks joined (`system`, a tool result, a system turn).
fn text_of(raw: &RawValue, field: &str) -> Result<String, GatewayError> {
    match raw.get().as_bytes().first() {
        Some(b'n') => Ok(String::new()),
        _ => match content(raw, field)
            .map_err(|_| invalid(field, "must be a string or an array of text blocks"))?
        {
            Content::Text(text) => Ok(text.into_owned()),
            Content::Blocks(blocks) => Ok(blocks
                .iter()
                .filter_map(|b| match &*b.kind {
                    "text" => b.text.as_deref().map(str::to_owned),
                    "tool_reference" => b
                        .tool_name
                        .as_deref()
                        .or(b.name.as_deref())
                        .map(|name| format!("tool {name} loaded")),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")),
        },
    }
}

fn image_part(block: &Block<'_>, at: &str, out: &mut Vec<u8>) -> Result<(), GatewayError> {
    let source = block.source.as_ref();
    let url = match source.map(|s| &*s.kind) {
        Some("base64") => format!(
            "data:{};base64,{}",
            source
                .and_then(|s| s.media_type.as_deref())
                .unwrap_or("image/png"),
            source.and_then(|s| s.data.as_deref()).unwrap_or_default()
        ),
        Some("url") => source
            .and_then(|s| s.url.as_deref())
            .unwrap_or_default()
            .to_owned(),
        _ => {
            return Err(invalid(
                format!("{at}.source"),
                "must be a base64 or url image",
            ));
        }
    };
    out.extend_from_slice(b"{\"type\":\"image_url\",\"image_url\":{\"url\":");
    json_string(out, &url);
    out.extend_from_slice(b"}}");
    Ok(())
}

fn document_part(block: &Block<'_>, at: &str, out: &mut Vec<u8>) -> Result<(), GatewayError> {
    let source = block.source.as_ref();
    let data = source.and_then(|s| s.data.as_deref()).unwrap_or_default();
    match (
        source.map(|s| &*s.kind),
        source.and_then(|s| s.media_type.as_deref()),
    ) {
        (Some("text"), _) => {
            out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
            json_string(out, data);
            out.push(b'}');
        }
        (Some("base64"), Some("application/pdf")) => {
            out.extend_from_slice(b"{\"type\":\"file\",\"file\":{\"filename\":");
            json_string(out, block.title.as_deref().unwrap_or("document.pdf"));
            out.extend_from_slice(b",\"file_data\":");
            json_string(out, &format!("data:application/pdf;base64,{data}"));
            out.extend_from_slice(b"}}");
        }
        _ => {
            return Err(invalid(
                format!("{at}.source"),
                "only text and base64 PDF documents can be sent to this model's route",
            ));
        }
    }
    Ok(())
}

/// Custom tools as functions; server tools (web search, code execution, …) have no chat form
/// and are left out. Whether any tool was written.
fn tools(tools: &[Tool<'_>], out: &mut Vec<u8>) -> Result<bool, GatewayError> {
    let mut written = 0;
    for (i, tool) in tools.iter().enumerate() {
        let custom = matches!(tool.kind.as_deref(), None | Some("custom"));
        let Some(schema) = tool.input_schema.filter(|_| custom) else {
            continue;
        };
        let name = tool
            .name
            .as_deref()
            .ok_or_else(|| invalid(format!("tools.{i}.name"), "Field required"))?;
        out.extend_from_slice(if written == 0 { b",\"tools\":[" } else { b"," });
        written += 1;
        out.extend_from_slice(b"{\"type\":\"function\",\"function\":{\"name\":");
        json_string(out, name);
        if let Some(description) = tool.description.as_deref() {
            out.extend_from_slice(b",\"description\":");
            json_string(out, description);
        }
        raw_field(out, "parameters", schema.get());
        out.extend_from_slice(b"}}");
    }
    if written > 0 {
        out.push(b']');
    }
    Ok(written > 0)
}

fn tool_choice(
    choice: &ToolChoice<'_>,
    has_tools: bool,
    out: &mut Vec<u8>,
) -> Result<(), GatewayError> {
    let mut mapped = Vec::new();
    match &*choice.kind {
        "auto" => mapped.extend_from_slice(b"\"auto\""),
        "any" => mapped.extend_from_slice(b"\"required\""),
        "none" => mapped.extend_from_slice(b"\"none\""),
        "tool" => {
            let name = choice
                .name
                .as_deref()
                .ok_or_else(|| invalid("tool_choice.name", "Field required"))?;
            mapped.extend_from_slice(b"{\"type\":\"function\",\"function\":{\"name\":");
            json_string(&mut mapped, name);
            mapped.extend_from_slice(b"}}");
        }
        _ => {
            return Err(invalid(
                "tool_choice.type",
                "must be auto, any, tool or none",
            ));
        }
    }
    if !has_tools {
        return Ok(());
    }
    out.extend_from_slice(b",\"tool_choice\":");
    out.extend_from_slice(&mapped);
    if choice.disable_parallel_tool_use == Some(true) {
        out.extend_from_slice(b",\"parallel_tool_calls\":false");
    }
    Ok(())
}

/// `,"name":<raw JSON>`.
fn raw_field(out: &mut Vec<u8>, name: &str, raw: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(raw.as_bytes());
}

fn is_number(raw: &str) -> bool {
    raw.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'-')
}
