//! A chat completion as an Anthropic `message` (PROTOCOLS.md §12.7.2): thinking, then text,
//! then one `tool_use` block per tool call, in that order. Read into borrowed typed fields and
//! written from fixed pieces, as the stream is (a `Value` round trip cost more than the rest of
//! the request).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{SIGNATURE, json_string, stop_reason, tool_id, write_usage};
use crate::error::{ErrorKind, GatewayError};
use crate::usage::counts::Usage;

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Function<'a>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Cow<'a, str>,
}

/// The `message` (JSON) `id` is for a chat completion `body`; `model` is the name the client
/// asked for.
pub fn from_completion(
    body: &[u8],
    id: String,
    model: &str,
    thinking: bool,
    usage: Option<Usage>,
) -> Result<Vec<u8>, GatewayError> {
    // Only `choices` is read, found by walking the members before it; nothing else is parsed.
    let not_a_completion = || {
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            "upstream returned a response that is not a chat completion",
        )
    };
    // The members after `choices` (usage) are never walked, nor `choices` itself: the
    // deserializer reads it from where it starts and stops at its end.
    let choices: Vec<Choice<'_>> = match crate::json::member_start(body, b"choices") {
        Some(start) => {
            let mut value = serde_json::Deserializer::from_slice(&body[start..]);
            Vec::deserialize(&mut value).map_err(|_| not_a_completion())?
        }
        None if body.trim_ascii_start().starts_with(b"{") => Vec::new(),
        None => return Err(not_a_completion()),
    };
    let choice = choices.into_iter().next();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.as_deref());
    let message = choice.as_ref().and_then(|c| c.message.as_ref());
    let calls = message.map_or(&[][..], |m| m.tool_calls.as_slice());
    let reason = stop_reason(finish, !calls.is_empty());

    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(b"{\"id\":");
    json_string(&mut out, &id);
    out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    json_string(&mut out, model);
    out.extend_from_slice(b",\"content\":[");
    let mut blocks = 0;
    let mut next = |out: &mut Vec<u8>| {
        if blocks > 0 {
            out.push(b',');
        }
        blocks += 1;
    };
    if let Some(reasoning) = message
        .and_then(|m| m.reasoning_content.as_deref())
        .filter(|r| thinking && !r.is_empty())
    {
        next(&mut out);
        out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
        json_string(&mut out, reasoning);
        out.extend_from_slice(b",\"signature\":");
        json_string(&mut out, SIGNATURE);
        out.push(b'}');
    }
    if let Some(text) = message
        .and_then(|m| m.content.as_deref())
        .filter(|t| !t.is_empty())
    {
        next(&mut out);
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        json_string(&mut out, text);
        out.push(b'}');
    }
    for call in calls {
        next(&mut out);
        out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
        json_string(&mut out, &tool_id(call.id.as_deref()));
        out.extend_from_slice(b",\"name\":");
        json_string(&mut out, &call.function.name);
        out.extend_from_slice(b",\"input\":");
        // The arguments as they came when they are a JSON object; `{}` otherwise.
        match serde_json::from_str::<&RawValue>(&call.function.arguments) {
            Ok(raw) if raw.get().trim_start().starts_with('{') => {
                out.extend_from_slice(raw.get().as_bytes());
            }
            _ => out.extend_from_slice(b"{}"),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"stop_reason\":\"");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\",\"stop_sequence\":null,\"usage\":");
    write_usage(&mut out, &usage.unwrap_or_default());
    out.push(b'}');
    Ok(out)
}
