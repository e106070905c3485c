//! The assistant's reply as a message to store: from a `chat.completion` body, or assembled
//! from the `chat.completion.chunk` events a stream sent the client (content concatenated, tool
//! calls merged by index). Only what a request may carry back is kept (`role`, `content`,
//! `tool_calls`): response-only fields such as `annotations` would be refused upstream.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::sse::{SseDecoder, SseEvent};

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

/// The first choice assembled from every event of a stream.
pub fn from_chunks(sent: &[Bytes]) -> Option<Box<RawValue>> {
    let mut decoder = SseDecoder::new(usize::MAX);
    let mut content = String::new();
    let mut saw_content = false;
    let mut calls: Vec<Map<String, Value>> = Vec::new();
    for chunk in sent {
        decoder.push(chunk);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let Some(data) = SseEvent::parse(&frame).data else {
                continue;
            };
            let Ok(Choices { choices }) = serde_json::from_slice::<Choices>(&data) else {
                continue;
            };
            let Some(delta) = choices
                .iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
                .and_then(|c| c.get("delta"))
            else {
                continue;
            };
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                content.push_str(text);
                saw_content = true;
            }
            for fragment in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                merge_tool_call(&mut calls, fragment);
            }
        }
    }
    let content = match saw_content || calls.is_empty() {
        true => Value::String(content),
        false => Value::Null,
    };
    let tool_calls = (!calls.is_empty()).then(|| calls.into_iter().map(Value::Object).collect());
    Some(assistant(content, tool_calls))
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

/// Streams send a tool call in fragments: id, type and name on the first, `arguments` in
/// pieces after, all carrying the call's `index`.
fn merge_tool_call(calls: &mut Vec<Map<String, Value>>, fragment: &Value) {
    let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
    while calls.len() <= index {
        let mut call = Map::new();
        call.insert("id".into(), Value::Null);
        call.insert("type".into(), json!("function"));
        call.insert("function".into(), json!({"name": "", "arguments": ""}));
        calls.push(call);
    }
    let call = &mut calls[index];
    for key in ["id", "type"] {
        if let Some(v) = fragment.get(key).filter(|v| !v.is_null()) {
            call.insert(key.into(), v.clone());
        }
    }
    let Some(function) = fragment.get("function") else {
        return;
    };
    if let Some(Value::Object(stored)) = call.get_mut("function") {
        for key in ["name", "arguments"] {
            if let Some(piece) = function.get(key).and_then(Value::as_str) {
                let so_far = stored.get(key).and_then(Value::as_str).unwrap_or("");
                let joined = format!("{so_far}{piece}");
                stored.insert(key.into(), Value::String(joined));
            }
        }
    }
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
