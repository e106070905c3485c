//! A stored answer streamed: the chunks a stream request gets on a hit, from the whole answer
//! the entry holds (stored from a non-stream answer or assembled from a stream). Per choice: the
//! role, the reasoning, the text, the tool calls (each whole, with its index), the finish; then
//! the usage chunk when the client asked for it, and `[DONE]`. Every frame is one `data:` line.

use bytes::{BufMut, Bytes, BytesMut};

use crate::json;

/// The stream of `answer` (a `chat.completion` or `text_completion`); `include_usage`: the
/// client's `stream_options.include_usage`. `None` if the entry is not a completion. Written
/// from the answer's bytes (its strings copied as they are escaped), never a tree: this runs
/// on every stream hit.
pub fn stream(answer: &[u8], include_usage: bool) -> Option<Bytes> {
    // Values are copied into `data:` lines: a line break between an answer's tokens (pretty-
    // printed JSON; inside a valid string there is none) is taken out first, rarely.
    let compacted;
    let answer = match memchr::memchr2(b'\n', b'\r', answer) {
        None => answer,
        Some(_) => {
            let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
            compacted = serde_json::to_vec(&value).ok()?;
            &compacted[..]
        }
    };
    let [id, object, created, model, fingerprint, choices, usage] = json::object(
        answer,
        [
            b"id",
            b"object",
            b"created",
            b"model",
            b"system_fingerprint",
            b"choices",
            b"usage",
        ],
    )?;
    let raw = |span: Option<std::ops::Range<usize>>| span.map(|s| &answer[s]);
    let legacy = raw(object) == Some(&b"\"text_completion\""[..]);
    let (choices, _) = json::elements_at(answer, choices?.start)?;
    // Every chunk repeats the answer's id, object, created and model: written once, each frame
    // then adds its `choices` (and the usage chunk its `usage`).
    let mut head = Vec::with_capacity(160);
    head.extend_from_slice(b"data: {");
    for (name, value) in [
        (&b"id"[..], raw(id)),
        (b"created", raw(created)),
        (b"model", raw(model)),
        (b"system_fingerprint", raw(fingerprint)),
    ] {
        if let Some(value) = value.filter(|v| *v != b"null") {
            member(&mut head, name, value);
            head.push(b',');
        }
    }
    head.extend_from_slice(match legacy {
        true => b"\"object\":\"text_completion\",\"choices\":[".as_slice(),
        false => b"\"object\":\"chat.completion.chunk\",\"choices\":[",
    });
    let mut out = BytesMut::with_capacity(4 * answer.len() + 6 * head.len() + 64);
    let mut frame = |choice: &[&[u8]]| {
        out.put_slice(&head);
        for part in choice {
            out.put_slice(part);
        }
        out.put_slice(b"]}\n\n");
    };
    for choice in choices {
        let part = &answer[choice];
        let [index, message, text, finish] =
            json::object(part, [b"index", b"message", b"text", b"finish_reason"])?;
        let of_part = |span: Option<std::ops::Range<usize>>| span.map(|s| &part[s]);
        let index = of_part(index).unwrap_or(b"0");
        let finish = of_part(finish).unwrap_or(b"null");
        if legacy {
            let text = of_part(text).unwrap_or(b"\"\"");
            frame(&[
                b"{\"text\":",
                text,
                b",\"index\":",
                index,
                b",\"logprobs\":null,\"finish_reason\":null}",
            ]);
            frame(&[
                b"{\"text\":\"\",\"index\":",
                index,
                b",\"logprobs\":null,\"finish_reason\":",
                finish,
                b"}",
            ]);
            continue;
        }
        let message = of_part(message).unwrap_or(b"{}");
        let [role, content, reasoning, refusal, calls] = json::object(
            message,
            [
                b"role",
                b"content",
                b"reasoning_content",
                b"refusal",
                b"tool_calls",
            ],
        )?;
        let of = |span: Option<std::ops::Range<usize>>| span.map(|s| &message[s]);
        let delta_open = [&b"{\"index\":"[..], index, b",\"delta\":{"].concat();
        let delta_close: &[u8] = b"},\"logprobs\":null,\"finish_reason\":null}";
        // As OpenAI streams them: `""` first for text, `null` for an answer of tool calls only.
        let text = of(content).filter(|c| c.first() == Some(&b'"'));
        let opening: &[u8] = if text.is_some() { b"\"\"" } else { b"null" };
        let role = of(role)
            .filter(|r| *r != b"null")
            .unwrap_or(b"\"assistant\"");
        frame(&[
            &delta_open,
            b"\"role\":",
            role,
            b",\"content\":",
            opening,
            delta_close,
        ]);
        for (field, value) in [
            (&b"\"reasoning_content\":"[..], of(reasoning)),
            (b"\"content\":", text),
            (b"\"refusal\":", of(refusal)),
        ] {
            // Strings only, and not empty.
            if let Some(value) = value.filter(|v| v.len() > 2 && v[0] == b'"') {
                frame(&[&delta_open, field, value, delta_close]);
            }
        }
        if let Some(calls) = calls.filter(|c| message[c.start] == b'[') {
            let (calls, _) = json::elements_at(message, calls.start)?;
            for (i, call) in calls.into_iter().enumerate() {
                let call = &message[call];
                // `{"index":i,` then the call's own members.
                let rest = call.strip_prefix(b"{")?.trim_ascii_start();
                let sep: &[u8] = if rest.starts_with(b"}") { b"" } else { b"," };
                let i = itoa::Buffer::new().format(i).as_bytes().to_vec();
                frame(&[
                    &delta_open,
                    b"\"tool_calls\":[{\"index\":",
                    &i,
                    sep,
                    rest,
                    b"]",
                    delta_close,
                ]);
            }
        }
        frame(&[
            b"{\"index\":",
            index,
            b",\"delta\":{},\"logprobs\":null,\"finish_reason\":",
            finish,
            b"}",
        ]);
    }
    if include_usage && let Some(usage) = raw(usage).filter(|u| u.first() == Some(&b'{')) {
        // The usage chunk: no choices.
        out.put_slice(&head);
        out.put_slice(b"],\"usage\":");
        out.put_slice(usage);
        out.put_slice(b"}\n\n");
    }
    out.put_slice(b"data: [DONE]\n\n");
    Some(out.freeze())
}

/// `"name":value` (value as written).
fn member(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(name);
    out.extend_from_slice(b"\":");
    out.extend_from_slice(value);
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
        // A pretty-printed answer streams as compact one-line frames.
        let pretty = serde_json::to_string_pretty(&json!({"object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "a\nb",
            "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}]})).unwrap();
        let sse = stream(pretty.as_bytes(), false).unwrap();
        let text = std::str::from_utf8(&sse).unwrap();
        assert!(
            text.split("\n\n")
                .filter(|f| !f.is_empty())
                .all(|f| f.starts_with("data: ") && !f.contains('\n')),
            "{text}"
        );
        assert_eq!(
            stream(br#"{"object":"chat.completion","choices":[]}"#, false),
            Some(Bytes::from_static(b"data: [DONE]\n\n"))
        );
    }
}
