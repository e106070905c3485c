//! The assistant's reply as a message to store: from a `chat.completion` body, or from the one
//! the `chat.completion.chunk` events a stream sent the client add up to (content
//! concatenated, tool calls merged by index). Only what a request may carry back is kept (`role`, `content`,
//! `tool_calls`): response-only fields such as `annotations` would be refused upstream.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Choices {
    #[serde(default)]
    choices: Vec<Value>,
}

/// The first choice's message of a non-stream answer.
pub fn from_completion(body: &[u8]) -> Option<Box<RawValue>> {
    let Choices { choices } = serde_json::from_slice(body).ok()?;
    let message = choices.first()?.get("message")?;
    let content = message.get("content").cloned().unwrap_or(Value::Null);
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .filter(|calls| !calls.is_empty())
        .map(|calls| calls.iter().map(clean_tool_call).collect());
    Some(assistant(content, tool_calls))
}

/// The first choice of the answer a stream adds up to (`cache::assemble`).
pub fn from_chunks(sent: &[Bytes]) -> Option<Box<RawValue>> {
    from_completion(&crate::cache::assemble::completion(sent, None)?)
}

fn assistant(content: Value, tool_calls: Option<Vec<Value>>) -> Box<RawValue> {
    let mut message = json!({"role": "assistant", "content": content});
    if let Some(calls) = tool_calls {
        message["tool_calls"] = Value::Array(calls);
    }
    serde_json::value::to_raw_value(&message).unwrap_or_default()
}

/// `{id, type, function: {name, arguments}}` of a complete tool call.
fn clean_tool_call(call: &Value) -> Value {
    let function = call.get("function").cloned().unwrap_or(Value::Null);
    json!({
        "id": call.get("id").cloned().unwrap_or(Value::Null),
        "type": call.get("type").cloned().unwrap_or_else(|| json!("function")),
        "function": {
            "name": function.get("name").cloned().unwrap_or(Value::Null),
            "arguments": function.get("arguments").cloned().unwrap_or_else(|| json!("")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(deltas: &[Value]) -> Vec<Bytes> {
        deltas
            .iter()
            .map(|d| {
                let chunk = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": null}]});
                Bytes::from(format!("data: {chunk}\n\n"))
            })
            .chain([Bytes::from_static(b"data: [DONE]\n\n")])
            .collect()
    }

    fn parsed(raw: Option<Box<RawValue>>) -> Value {
        serde_json::from_str(raw.unwrap().get()).unwrap()
    }

    #[test]
    fn a_streamed_text_reply_is_concatenated() {
        let sent = chunks(&[
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Hello"}),
            json!({"content": " there"}),
            json!({}),
        ]);
        // One coalesced write holding several frames, split mid-frame, decodes the same.
        let joined: Vec<u8> = sent.iter().flat_map(|b| b.to_vec()).collect();
        let halves = vec![
            Bytes::copy_from_slice(&joined[..37]),
            Bytes::copy_from_slice(&joined[37..]),
        ];
        let want = json!({"role": "assistant", "content": "Hello there"});
        assert_eq!(parsed(from_chunks(&sent)), want);
        assert_eq!(parsed(from_chunks(&halves)), want);
    }

    #[test]
    fn streamed_tool_call_fragments_are_merged() {
        let sent = chunks(&[
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
        ]);
        assert_eq!(
            parsed(from_chunks(&sent)),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]})
        );
    }

    #[test]
    fn a_completion_keeps_only_request_fields() {
        let body = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": null, "annotations": []}}]});
        assert_eq!(
            parsed(from_completion(body.to_string().as_bytes())),
            json!({"role": "assistant", "content": "Hi"})
        );
        assert!(from_completion(b"{}").is_none());
    }
}
