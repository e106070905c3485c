//! The whole answer a stream adds up to: the `chat.completion` (or `text_completion`) a
//! non-stream request would have got, assembled from the chunks the client was sent. What a
//! streamed miss stores (no second upstream call), and what a session keeps of a streamed turn.
//! Runs after the stream, off the request path: chunks are read as trees.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::sse::{SseDecoder, SseEvent};
use crate::usage::counts::Usage;

/// One choice as its chunks build it.
#[derive(Default)]
struct Choice {
    role: Option<Value>,
    content: String,
    saw_content: bool,
    reasoning: Option<String>,
    refusal: Option<String>,
    calls: Vec<Map<String, Value>>,
    logprobs: Option<Vec<Value>>,
    finish_reason: Value,
    /// A legacy completion's text.
    text: String,
}

/// The answer `sent` (SSE bytes as relayed, frames split anywhere) adds up to, with `usage`
/// where the stream carried none (the relay reads it even when the client did not ask for its
/// chunk). `None` when the stream is not a completion's or carried an error.
pub fn completion(sent: &[Bytes], usage: Option<Usage>) -> Option<Bytes> {
    let mut decoder = SseDecoder::new(usize::MAX);
    let mut head: Option<Map<String, Value>> = None;
    let mut legacy = false;
    let mut choices: Vec<(u64, Choice)> = Vec::new();
    let mut stream_usage: Option<Value> = None;
    for bytes in sent {
        decoder.push(bytes);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let Some(data) = SseEvent::parse(&frame).data else {
                continue;
            };
            if data.trim_ascii() == b"[DONE]" {
                continue;
            }
            let Ok(Value::Object(mut chunk)) = serde_json::from_slice::<Value>(&data) else {
                return None;
            };
            if chunk.contains_key("error") {
                return None;
            }
            if let Some(u) = chunk.remove("usage").filter(Value::is_object) {
                stream_usage = Some(u);
            }
            let Some(Value::Array(parts)) = chunk.remove("choices") else {
                continue;
            };
            if head.is_none() {
                legacy = chunk.get("object").and_then(Value::as_str) == Some("text_completion");
                head = Some(chunk);
            }
            for part in parts {
                let index = part.get("index").and_then(Value::as_u64).unwrap_or(0);
                let at = match choices.iter().position(|(i, _)| *i == index) {
                    Some(at) => at,
                    None => {
                        choices.push((index, Choice::default()));
                        choices.len() - 1
                    }
                };
                choices[at].1.add(&part);
            }
        }
    }
    let head = head?;
    choices.sort_by_key(|(index, _)| *index);
    let mut answer = Map::new();
    for key in ["id", "object", "created", "model", "system_fingerprint"] {
        if let Some(value) = head.get(key).filter(|v| !v.is_null()) {
            answer.insert(key.into(), value.clone());
        }
    }
    let object = if legacy {
        "text_completion"
    } else {
        "chat.completion"
    };
    answer.insert("object".into(), json!(object));
    let choices = choices
        .into_iter()
        .map(|(index, c)| match legacy {
            true => c.into_text(index),
            false => c.into_message(index),
        })
        .collect();
    answer.insert("choices".into(), Value::Array(choices));
    if let Some(u) = stream_usage.or_else(|| usage.map(|u| usage_json(&u))) {
        answer.insert("usage".into(), u);
    }
    serde_json::to_vec(&Value::Object(answer))
        .ok()
        .map(Bytes::from)
}

/// OpenAI's usage object for counts the relay read (any adapter's).
pub fn usage_json(u: &Usage) -> Value {
    let mut usage = json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    });
    if u.cached_input_tokens > 0 {
        usage["prompt_tokens_details"] = json!({"cached_tokens": u.cached_input_tokens});
    }
    if u.reasoning_tokens > 0 {
        usage["completion_tokens_details"] = json!({"reasoning_tokens": u.reasoning_tokens});
    }
    usage
}

// === impl Choice ===

impl Choice {
    fn add(&mut self, part: &Value) {
        if let Some(reason) = part.get("finish_reason").filter(|r| !r.is_null()) {
            self.finish_reason = reason.clone();
        }
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            self.text.push_str(text);
        }
        if let Some(content) = part
            .get("logprobs")
            .and_then(|l| l.get("content"))
            .and_then(Value::as_array)
        {
            self.logprobs
                .get_or_insert_with(Vec::new)
                .extend(content.iter().cloned());
        }
        let Some(delta) = part.get("delta") else {
            return;
        };
        if let Some(role) = delta.get("role").filter(|r| !r.is_null()) {
            self.role = Some(role.clone());
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            self.content.push_str(text);
            self.saw_content = true;
        }
        if let Some(text) = delta.get("reasoning_content").and_then(Value::as_str) {
            self.reasoning
                .get_or_insert_with(String::new)
                .push_str(text);
        }
        if let Some(text) = delta.get("refusal").and_then(Value::as_str) {
            self.refusal.get_or_insert_with(String::new).push_str(text);
        }
        for fragment in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            merge_tool_call(&mut self.calls, fragment);
        }
    }

    fn into_message(self, index: u64) -> Value {
        // Text, or `null` for an answer that is only tool calls (as a non-stream answer has it).
        let content = match self.saw_content || self.calls.is_empty() {
            true => Value::String(self.content),
            false => Value::Null,
        };
        let mut message = json!({
            "role": self.role.unwrap_or_else(|| json!("assistant")),
            "content": content,
        });
        if let Some(reasoning) = self.reasoning {
            message["reasoning_content"] = json!(reasoning);
        }
        if let Some(refusal) = self.refusal {
            message["refusal"] = json!(refusal);
        }
        if !self.calls.is_empty() {
            message["tool_calls"] =
                Value::Array(self.calls.into_iter().map(Value::Object).collect());
        }
        json!({
            "index": index,
            "message": message,
            "logprobs": self.logprobs.map(|content| json!({"content": content})),
            "finish_reason": self.finish_reason,
        })
    }

    fn into_text(self, index: u64) -> Value {
        json!({
            "text": self.text,
            "index": index,
            "logprobs": null,
            "finish_reason": self.finish_reason,
        })
    }
}

/// Streams send a tool call in fragments: id, type and name on the first, `arguments` in
/// pieces after, all carrying the call's `index`.
fn merge_tool_call(calls: &mut Vec<Map<String, Value>>, fragment: &Value) {
    let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
    // A call index is a small count; a hostile one must not allocate a huge vector.
    if index > 1024 {
        return;
    }
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
                let mut joined = stored
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                joined.push_str(piece);
                stored.insert(key.into(), Value::String(joined));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use super::completion;
    use crate::usage::counts::Usage;

    fn sse(chunks: &[Value]) -> Vec<Bytes> {
        chunks
            .iter()
            .map(|c| Bytes::from(format!("data: {c}\n\n")))
            .chain([Bytes::from_static(b"data: [DONE]\n\n")])
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m",
               "system_fingerprint": "fp", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn text_tool_calls_and_usage_add_up_to_the_non_stream_answer() {
        let sent = sse(&[
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), Value::Null),
            chunk(json!({}), json!("stop")),
        ]);
        let joined: Vec<u8> = sent.iter().flat_map(|b| b.to_vec()).collect();
        let split = vec![
            Bytes::copy_from_slice(&joined[..50]),
            Bytes::copy_from_slice(&joined[50..]),
        ];
        let answer: Value =
            serde_json::from_slice(&completion(&split, Some(Usage::tokens(3, 2))).unwrap())
                .unwrap();
        assert_eq!(
            answer,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
                   "system_fingerprint": "fp",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                                "logprobs": null, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
        );

        let calls = sse(&[
            chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                json!("tool_calls"),
            ),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
                   "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
        ]);
        let answer: Value = serde_json::from_slice(&completion(&calls, None).unwrap()).unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            answer["choices"][0]["message"]["tool_calls"][0]["function"],
            json!({"name": "f", "arguments": "{\"a\":1}"})
        );
        assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            answer["usage"]["total_tokens"], 13,
            "the stream's own usage chunk"
        );
    }

    #[test]
    fn a_legacy_completion_and_an_error_stream() {
        let text = sse(&[
            json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [{"text": "a", "index": 0, "logprobs": null, "finish_reason": null}]}),
            json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [{"text": "b", "index": 0, "logprobs": null, "finish_reason": "length"}]}),
        ]);
        let answer: Value = serde_json::from_slice(&completion(&text, None).unwrap()).unwrap();
        assert_eq!(answer["object"], "text_completion");
        assert_eq!(answer["choices"][0]["text"], "ab");
        assert_eq!(answer["choices"][0]["finish_reason"], "length");
        let failed = sse(&[
            chunk(json!({"content": "a"}), Value::Null),
            json!({"error": {"message": "upstream failed", "type": "api_error"}}),
        ]);
        assert!(completion(&failed, None).is_none());
    }
}
