//! A stored answer streamed: the chunks a stream request gets on a hit, from the whole answer
//! the entry holds (stored from a non-stream answer or assembled from a stream). Per choice: the
//! role, the reasoning, the text, the tool calls (each whole, with its index), the finish; then
//! the usage chunk when the client asked for it, and `[DONE]`. Every frame is one `data:` line.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};

/// The stream of `answer` (a `chat.completion` or `text_completion`); `include_usage`: the
/// client's `stream_options.include_usage`. `None` if the entry is not a completion.
pub fn stream(answer: &[u8], include_usage: bool) -> Option<Bytes> {
    let Value::Object(mut answer) = serde_json::from_slice::<Value>(answer).ok()? else {
        return None;
    };
    let legacy = answer.get("object").and_then(Value::as_str) == Some("text_completion");
    let Some(Value::Array(choices)) = answer.remove("choices") else {
        return None;
    };
    let usage = answer.remove("usage");
    let object = if legacy {
        "text_completion"
    } else {
        "chat.completion.chunk"
    };
    answer.insert("object".into(), json!(object));
    let mut out = BytesMut::new();
    let mut frame = |choices: Value, usage: Option<&Value>| {
        let mut chunk = answer.clone();
        chunk.insert("choices".into(), choices);
        if let Some(usage) = usage {
            chunk.insert("usage".into(), usage.clone());
        }
        out.put_slice(b"data: ");
        // Writing into memory cannot fail.
        let _ = serde_json::to_writer((&mut out).writer(), &Value::Object(chunk));
        out.put_slice(b"\n\n");
    };
    for choice in &choices {
        let index = choice.get("index").cloned().unwrap_or(json!(0));
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        if legacy {
            let text = choice.get("text").cloned().unwrap_or(json!(""));
            frame(
                json!([{"text": text, "index": index, "logprobs": null, "finish_reason": null}]),
                None,
            );
            frame(
                json!([{"text": "", "index": index, "logprobs": null, "finish_reason": finish}]),
                None,
            );
            continue;
        }
        let empty = Map::new();
        let message = choice
            .get("message")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let delta = |delta: Value| json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": null}]);
        let role = message.get("role").cloned().unwrap_or(json!("assistant"));
        // As OpenAI streams them: `""` first for text, `null` for an answer of tool calls only.
        let opening = match message.get("content") {
            Some(Value::String(_)) => json!(""),
            _ => Value::Null,
        };
        frame(delta(json!({"role": role, "content": opening})), None);
        for field in ["reasoning_content", "content", "refusal"] {
            if let Some(text) = message
                .get(field)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                frame(delta(json!({ field: text })), None);
            }
        }
        let calls = message.get("tool_calls").and_then(Value::as_array);
        for (i, call) in calls.into_iter().flatten().enumerate() {
            let mut call = call.clone();
            call["index"] = json!(i);
            frame(delta(json!({"tool_calls": [call]})), None);
        }
        frame(
            json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}]),
            None,
        );
    }
    if include_usage && let Some(usage) = usage.as_ref() {
        frame(json!([]), Some(usage));
    }
    out.put_slice(b"data: [DONE]\n\n");
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use super::stream;
    use crate::cache::assemble::completion;

    #[test]
    fn a_replayed_answer_assembles_back_to_itself() {
        for answer in [
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello \"you\"",
                                "reasoning_content": "think"}, "logprobs": null, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
            json!({"id": "chatcmpl-2", "object": "chat.completion", "created": 7, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                                "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                                               {"id": "b", "type": "function", "function": {"name": "g", "arguments": "[1]"}}]},
                                "logprobs": null, "finish_reason": "tool_calls"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
            json!({"id": "cmpl-1", "object": "text_completion", "created": 7, "model": "m",
                   "choices": [{"text": "abc", "index": 0, "logprobs": null, "finish_reason": "length"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}}),
        ] {
            let sse = stream(answer.to_string().as_bytes(), true).unwrap();
            let text = std::str::from_utf8(&sse).unwrap();
            assert!(text.ends_with("data: [DONE]\n\n"));
            assert!(
                text.split("\n\n")
                    .filter(|f| !f.is_empty())
                    .all(|f| f.starts_with("data: ") && !f.contains('\n'))
            );
            let back: Value =
                serde_json::from_slice(&completion(std::slice::from_ref(&sse), None).unwrap())
                    .unwrap();
            assert_eq!(back, answer, "{text}");
            let without_usage = stream(answer.to_string().as_bytes(), false).unwrap();
            assert!(
                !std::str::from_utf8(&without_usage)
                    .unwrap()
                    .contains("\"usage\"")
            );
        }
        assert!(stream(b"[1]", false).is_none());
        assert_eq!(
            stream(br#"{"object":"chat.completion","choices":[]}"#, false),
            Some(Bytes::from_static(b"data: [DONE]\n\n"))
        );
    }
}
