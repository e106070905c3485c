//! Chat chunks as Responses events (PROTOCOLS.md §10.3, §10.6 "Streaming"). Each chunk becomes
//! its events at once (nothing is held back but the final `response.completed`, which waits for
//! the response to be stored). Items are emitted one after the other with dense `output_index`,
//! `sequence_number` counts from 0, and a delta's `item_id` is its item's id. Pure.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ids;
use super::response::{Ending, Head, Output, ending, function_call, output_text, usage};
use crate::error::GatewayError;

/// One Responses stream being translated.
pub struct EventStream {
    head: Head,
    seq: u64,
    /// Items already closed, in output order.
    items: Vec<Value>,
    /// For each closed item, the chat tool-call index it came from (function calls only).
    call_indices: Vec<Option<u64>>,
    open: Option<Open>,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

/// The parts of a `chat.completion.chunk` a translation reads, borrowed from its bytes.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Delta<'a>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<CallFragment<'a>>>,
}

#[derive(Deserialize)]
struct CallFragment<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionFragment<'a>>,
}

#[derive(Deserialize)]
struct FunctionFragment<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

/// `response.output_text.delta`, the most frequent event, written without a JSON tree.
#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    delta: &'a str,
    logprobs: [u8; 0],
}

/// `response.function_call_arguments.delta`.
#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

/// The item whose deltas are arriving.
enum Open {
    Text {
        id: String,
        text: String,
    },
    Call {
        /// The chat tool-call index it came from.
        index: u64,
        item: Value,
        arguments: String,
    },
}

// === impl EventStream ===

impl EventStream {
    pub fn new(head: Head) -> Self {
        Self {
            head,
            seq: 0,
            items: Vec::new(),
            call_indices: Vec::new(),
            open: None,
            finish_reason: None,
            usage: None,
        }
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        let response = self.head.object("in_progress", &[], None);
        self.event(out, "response.created", json!({"response": response}));
        self.event(out, "response.in_progress", json!({"response": response}));
    }

    /// The events of one `chat.completion.chunk` (its JSON). Read into borrowed types (the text
    /// is not copied) and written back as typed events: no JSON tree is built for a delta.
    pub fn on_chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(chunk) else {
            return;
        };
        if let Some(u) = chunk.usage.filter(|u| u.is_object()) {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            self.text(text, out);
        }
        for call in choice.delta.tool_calls.iter().flatten() {
            self.call_fragment(call, out);
        }
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason.into_owned());
        }
    }

    /// The upstream finished: every item closed. Returns the final output; the caller stores
    /// the response, then sends [`EventStream::completed`].
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Output {
        let ending = ending(self.finish_reason.as_deref());
        let status = match ending {
            Ending::Completed => "completed",
            Ending::Incomplete(_) => "incomplete",
        };
        self.close(status, out);
        Output {
            items: self.items.clone(),
            ending,
            usage: usage(self.usage.as_ref()),
        }
    }

    /// `response.completed` (or `response.incomplete`) with the whole output and its usage.
    pub fn completed(&mut self, output: &Output, out: &mut Vec<u8>) {
        let response = self.head.finished(output);
        let kind = match output.ending {
            Ending::Completed => "response.completed",
            Ending::Incomplete(_) => "response.incomplete",
        };
        self.event(out, kind, json!({"response": response}));
    }

    /// A failure after the stream started: an `error` event in both the shape OpenAI sends and
    /// the documented one (PROTOCOLS.md §10.5), then `response.failed`. Never a silent end.
    pub fn failed(&mut self, error: &GatewayError, out: &mut Vec<u8>) {
        self.close("incomplete", out);
        let code = super::response::response_error_code(error);
        let body = json!({
            "code": code, "message": error.message(), "param": null,
            "error": {"type": code, "code": code, "message": error.message(), "param": null},
        });
        self.event(out, "error", body);
        let response = self.head.failed(&self.items, error);
        self.event(out, "response.failed", json!({"response": response}));
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Text { .. })) {
            self.close("completed", out);
            let id = ids::new("msg");
            let index = self.items.len();
            self.event(out, "response.output_item.added", json!({
                "output_index": index,
                "item": {"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []},
            }));
            self.event(
                out,
                "response.content_part.added",
                json!({
                    "item_id": id, "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "annotations": [], "text": ""},
                }),
            );
            self.open = Some(Open::Text {
                id,
                text: String::new(),
            });
        }
        let output_index = self.items.len();
        if let Some(Open::Text { id, text: all }) = &mut self.open {
            all.push_str(text);
            let delta = TextDelta {
                kind: "response.output_text.delta",
                sequence_number: self.seq,
                item_id: id,
                output_index,
                content_index: 0,
                delta: text,
                logprobs: [],
            };
            self.seq += 1;
            write_event(out, delta.kind, &delta);
        }
    }

    fn call_fragment(&mut self, call: &CallFragment<'_>, out: &mut Vec<u8>) {
        let index = call.index;
        let function = call.function.as_ref();
        let fragment = function
            .and_then(|f| f.arguments.as_deref())
            .unwrap_or_default();
        let continues =
            matches!(&self.open, Some(Open::Call { index: open, .. }) if *open == index);
        if !continues {
            // A later fragment of a call already closed (an upstream interleaving calls) still
            // reaches the final output, though its deltas were sent.
            if let Some(closed) = self.closed_call(index) {
                let args = format!(
                    "{}{fragment}",
                    closed["arguments"].as_str().unwrap_or_default()
                );
                closed["arguments"] = json!(args);
                return;
            }
            self.close("completed", out);
            let item = function_call(
                call.id.as_deref(),
                function.and_then(|f| f.name.as_deref()).unwrap_or_default(),
                "",
                "in_progress",
            );
            self.event(
                out,
                "response.output_item.added",
                json!({
                    "output_index": self.items.len(), "item": item,
                }),
            );
            self.open = Some(Open::Call {
                index,
                item,
                arguments: String::new(),
            });
        }
        if fragment.is_empty() {
            return;
        }
        let output_index = self.items.len();
        if let Some(Open::Call {
            item, arguments, ..
        }) = &mut self.open
        {
            arguments.push_str(fragment);
            let delta = ArgumentsDelta {
                kind: "response.function_call_arguments.delta",
                sequence_number: self.seq,
                item_id: item["id"].as_str().unwrap_or_default(),
                output_index,
                delta: fragment,
            };
            self.seq += 1;
            write_event(out, delta.kind, &delta);
        }
    }

    /// The closed function call that came from chat tool-call `index`, if any.
    fn closed_call(&mut self, index: u64) -> Option<&mut Value> {
        let at = self.call_indices.iter().position(|i| *i == Some(index))?;
        self.items.get_mut(at)
    }

    /// Closes the open item with its `.done` events.
    fn close(&mut self, status: &str, out: &mut Vec<u8>) {
        let output_index = self.items.len();
        let (item, call_index) = match self.open.take() {
            None => return,
            Some(Open::Text { id, text }) => {
                self.event(out, "response.output_text.done", json!({
                    "item_id": id, "output_index": output_index, "content_index": 0, "text": text, "logprobs": [],
                }));
                let part = output_text(&text);
                self.event(out, "response.content_part.done", json!({
                    "item_id": id, "output_index": output_index, "content_index": 0, "part": part,
                }));
                let item = json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": [part]});
                (item, None)
            }
            Some(Open::Call {
                index,
                mut item,
                arguments,
            }) => {
                self.event(
                    out,
                    "response.function_call_arguments.done",
                    json!({
                        "item_id": item["id"], "output_index": output_index,
                        "name": item["name"], "arguments": arguments,
                    }),
                );
                item["arguments"] = json!(arguments);
                item["status"] = json!("completed");
                (item, Some(index))
            }
        };
        self.event(
            out,
            "response.output_item.done",
            json!({
                "output_index": output_index, "item": item,
            }),
        );
        self.items.push(item);
        self.call_indices.push(call_index);
    }

    /// One SSE event: `event: {type}` and the JSON with `type` and `sequence_number` first.
    fn event(&mut self, out: &mut Vec<u8>, kind: &str, fields: Value) {
        let mut body = serde_json::Map::with_capacity(8);
        body.insert("type".into(), json!(kind));
        body.insert("sequence_number".into(), json!(self.seq));
        if let Value::Object(fields) = fields {
            body.extend(fields);
        }
        self.seq += 1;
        write_event(out, kind, &Value::Object(body));
    }
}

/// `event: {kind}\ndata: {json}\n\n`.
fn write_event(out: &mut Vec<u8>, kind: &str, body: &impl Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut *out, body);
    out.extend_from_slice(b"\n\n");
}
