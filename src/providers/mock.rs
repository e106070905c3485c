//! `kind: mock`: an in-process upstream speaking the OpenAI wire format, so the embedded default
//! config answers offline. Replies are deterministic (they echo the last user message), tools
//! get a tool call, streams are paced by `chunk_interval`, embeddings are derived from a hash of
//! the text. Pure: it returns the bytes to send and the pacing; the transport does the waiting.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::config::MockConfig;
use crate::routing::transport::{Endpoint, LocalAnswer, LocalUpstream, UpstreamRequest};
use crate::sse::{DONE_FRAME, data_frame};

use super::mock_media::{self, Pacing, estimate_tokens};

#[derive(Debug, Clone)]
pub struct MockUpstream {
    latency: Duration,
    chunk_interval: Duration,
    reply: Option<String>,
    embedding_dimensions: usize,
}

// === impl MockUpstream ===

impl MockUpstream {
    pub fn new(config: &MockConfig) -> Self {
        Self {
            latency: config.latency.0,
            chunk_interval: config.chunk_interval.0,
            reply: config.reply.clone(),
            embedding_dimensions: config.embedding_dimensions.max(1),
        }
    }

    fn chat(&self, body: &Value, created: u64) -> LocalAnswer {
        let model = body["model"].as_str().unwrap_or("mock");
        let messages = body["messages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let id = format!("chatcmpl-mock{:016x}", fnv1a(body.to_string().as_bytes()));
        let prompt_tokens = messages
            .iter()
            .map(|m| 3 + estimate_tokens(&content_text(&m["content"])))
            .sum::<u64>()
            + 3;
        let tool = first_tool(body, messages);
        let reply = self.reply.clone().unwrap_or_else(|| {
            let said = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .map(|m| content_text(&m["content"]))
                .unwrap_or_default();
            format!("Mock reply from Switchyard ({model}). You said: {said}")
        });
        let pieces = split_words(&reply);
        let completion_tokens = match tool {
            Some(_) => 8,
            None => pieces.len() as u64,
        };
        let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
        let stream = body["stream"].as_bool().unwrap_or(false);
        if !stream {
            let message = match tool {
                Some(name) => {
                    json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"id": format!("call_mock_{name}"), "type": "function", "function": {"name": name, "arguments": "{}"}}]})
                }
                None => json!({"role": "assistant", "content": reply, "refusal": null}),
            };
            let finish = if tool.is_some() { "tool_calls" } else { "stop" };
            let out = json!({"id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}], "usage": usage});
            return self.json(StatusCode::OK, &out, self.latency);
        }
        let chunk = |delta: Value, finish: Value| {
            data_frame(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}).to_string().as_bytes())
        };
        let mut chunks = Vec::with_capacity(pieces.len() + 4);
        match tool {
            Some(name) => {
                chunks.push(chunk(json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": format!("call_mock_{name}"),
                    "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null));
                for part in ["{", "}"] {
                    chunks.push(chunk(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                        Value::Null,
                    ));
                }
                chunks.push(chunk(json!({}), json!("tool_calls")));
            }
            None => {
                chunks.push(chunk(
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                ));
                chunks.extend(
                    pieces
                        .iter()
                        .map(|p| chunk(json!({"content": p}), Value::Null)),
                );
                chunks.push(chunk(json!({}), json!("stop")));
            }
        }
        if body["stream_options"]["include_usage"].as_bool() == Some(true) {
            chunks.push(data_frame(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [], "usage": usage}).to_string().as_bytes()));
        }
        chunks.push(Bytes::from_static(DONE_FRAME));
        LocalAnswer {
            status: StatusCode::OK,
            content_type: Some(HeaderValue::from_static("text/event-stream")),
            chunks,
            latency: self.latency,
            interval: self.chunk_interval,
        }
    }

    /// A legacy `text_completion`: the prompt continued with the mock's reply.
    fn completion(&self, body: &Value, created: u64) -> LocalAnswer {
        let model = body["model"].as_str().unwrap_or("mock");
        let prompt = match &body["prompt"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let id = format!("cmpl-mock{:016x}", fnv1a(body.to_string().as_bytes()));
        let reply = self
            .reply
            .clone()
            .unwrap_or_else(|| format!(" Mock completion from Switchyard ({model}) of: {prompt}"));
        let pieces = split_words(&reply);
        let prompt_tokens = estimate_tokens(&prompt);
        let completion_tokens = pieces.len() as u64;
        let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
        let text_chunk = |text: &str, finish: Value, usage: Value| {
            json!({"id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}], "usage": usage})
        };
        if !body["stream"].as_bool().unwrap_or(false) {
            let out = text_chunk(&reply, json!("stop"), usage);
            return self.json(StatusCode::OK, &out, self.latency);
        }
        let last = pieces.len().saturating_sub(1);
        let mut chunks: Vec<Bytes> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // As OpenAI does: the last text and the finish reason come in one chunk.
                let finish = if i == last {
                    json!("stop")
                } else {
                    Value::Null
                };
                data_frame(text_chunk(p, finish, Value::Null).to_string().as_bytes())
            })
            .collect();
        if body["stream_options"]["include_usage"].as_bool() == Some(true) {
            chunks.push(data_frame(
                json!({"id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [], "usage": usage})
                .to_string()
                .as_bytes(),
            ));
        }
        chunks.push(Bytes::from_static(DONE_FRAME));
        LocalAnswer {
            status: StatusCode::OK,
            content_type: Some(HeaderValue::from_static("text/event-stream")),
            chunks,
            latency: self.latency,
            interval: self.chunk_interval,
        }
    }

    fn embeddings(&self, body: &Value) -> LocalAnswer {
        let model = body["model"].as_str().unwrap_or("mock");
        let dims = body["dimensions"]
            .as_u64()
            .map(|d| d as usize)
            .unwrap_or(self.embedding_dimensions)
            .clamp(1, 8192);
        let base64 = body["encoding_format"] == "base64";
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) if items.iter().all(Value::is_number) => {
                vec![Value::Array(items.clone()).to_string()]
            }
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| i.to_string())
                })
                .collect(),
            _ => return self.error(StatusCode::BAD_REQUEST, "mock upstream: unsupported input"),
        };
        let tokens: u64 = inputs.iter().map(|t| estimate_tokens(t)).sum();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let vector = embedding_for(text, dims);
                let embedding = match base64 {
                    true => Value::String(
                        base64::engine::general_purpose::STANDARD.encode(
                            vector
                                .iter()
                                .flat_map(|f| f.to_le_bytes())
                                .collect::<Vec<u8>>(),
                        ),
                    ),
                    false => json!(vector),
                };
                json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        let out = json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
        self.json(StatusCode::OK, &out, self.latency)
    }

    /// Cohere/Jina's shape: each document scored by the share of the query's words it holds
    /// (deterministic, so a demo's order makes sense), best first, `top_n` of them.
    fn rerank(&self, body: &Value) -> LocalAnswer {
        let query = body["query"].as_str().unwrap_or_default().to_lowercase();
        let words: Vec<&str> = query.split_whitespace().collect();
        let Some(documents) = body["documents"].as_array() else {
            return self.error(StatusCode::BAD_REQUEST, "mock upstream: documents required");
        };
        let text = |d: &Value| {
            d.as_str()
                .or_else(|| d["text"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let mut results: Vec<(usize, f64, String)> = documents
            .iter()
            .enumerate()
            .map(|(index, d)| {
                let doc = text(d);
                let lower = doc.to_lowercase();
                let hits = words.iter().filter(|w| lower.contains(**w)).count();
                let score = (hits as f64 + 0.5) / (words.len() as f64 + 1.0);
                (index, (score * 1e6).round() / 1e6, doc)
            })
            .collect();
        results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top_n = body["top_n"].as_u64().map_or(results.len(), |n| n as usize);
        let with_documents = body["return_documents"] == true;
        let results: Vec<Value> = results
            .into_iter()
            .take(top_n.max(1))
            .map(|(index, score, doc)| {
                let mut r = json!({"index": index, "relevance_score": score});
                if with_documents {
                    r["document"] = json!({"text": doc});
                }
                r
            })
            .collect();
        let tokens: u64 = estimate_tokens(&query) * documents.len() as u64
            + documents
                .iter()
                .map(|d| estimate_tokens(&text(d)))
                .sum::<u64>();
        let out = json!({"id": format!("rerank-{:016x}", fnv1a(body.to_string().as_bytes())),
            "model": body["model"], "results": results, "usage": {"total_tokens": tokens},
            "meta": {"billed_units": {"search_units": 1}}});
        self.json(StatusCode::OK, &out, self.latency)
    }

    /// OpenAI's moderation shape, one result per input: flagged only for text that names
    /// violence (so a demo can show both), every category present.
    fn moderations(&self, body: &Value) -> LocalAnswer {
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            // Texts, or multimodal parts (one result for all of them, as OpenAI answers).
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .map(|i| i.as_str().unwrap_or_default().to_owned())
                .collect(),
            Value::Array(parts) => vec![
                parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ],
            _ => return self.error(StatusCode::BAD_REQUEST, "mock upstream: input required"),
        };
        const CATEGORIES: [&str; 13] = [
            "hate",
            "hate/threatening",
            "harassment",
            "harassment/threatening",
            "illicit",
            "illicit/violent",
            "self-harm",
            "self-harm/intent",
            "self-harm/instructions",
            "sexual",
            "sexual/minors",
            "violence",
            "violence/graphic",
        ];
        let results: Vec<Value> = inputs
            .iter()
            .map(|text| {
                let violent = ["kill", "attack", "violence"]
                    .iter()
                    .any(|w| text.to_lowercase().contains(w));
                let flag = |c: &str| violent && c == "violence";
                let categories: serde_json::Map<String, Value> = CATEGORIES
                    .iter()
                    .map(|c| ((*c).into(), json!(flag(c))))
                    .collect();
                let scores: serde_json::Map<String, Value> = CATEGORIES
                    .iter()
                    .map(|c| ((*c).into(), json!(if flag(c) { 0.91 } else { 0.0001 })))
                    .collect();
                let applied: serde_json::Map<String, Value> = CATEGORIES
                    .iter()
                    .map(|c| ((*c).into(), json!(["text"])))
                    .collect();
                json!({"flagged": violent, "categories": categories, "category_scores": scores,
                       "category_applied_input_types": applied})
            })
            .collect();
        let model = body["model"].as_str().unwrap_or("omni-moderation-latest");
        let out = json!({"id": format!("modr-{:016x}", fnv1a(body.to_string().as_bytes())),
                         "model": model, "results": results});
        self.json(StatusCode::OK, &out, self.latency)
    }

    /// `n` images (a 1×1 PNG, as base64 or a data URL), with GPT image models' token usage.
    fn images(&self, body: &Value, created: u64) -> LocalAnswer {
        if !body["prompt"].is_string() {
            return self.error(StatusCode::BAD_REQUEST, "mock upstream: prompt required");
        }
        const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let n = body["n"].as_u64().unwrap_or(1).clamp(1, 10);
        let url = body["response_format"] == "url";
        let data: Vec<Value> = (0..n)
            .map(|_| match url {
                true => json!({"url": format!("data:image/png;base64,{PNG}")}),
                false => json!({"b64_json": PNG}),
            })
            .collect();
        let prompt_tokens = estimate_tokens(body["prompt"].as_str().unwrap_or_default());
        let out = json!({"created": created, "data": data, "output_format": "png", "size": "1x1",
            "usage": {"input_tokens": prompt_tokens, "output_tokens": 16 * n,
                      "total_tokens": prompt_tokens + 16 * n,
                      "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0}}});
        self.json(StatusCode::OK, &out, self.latency)
    }

    fn error(&self, status: StatusCode, message: &str) -> LocalAnswer {
        let out = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
        self.json(status, &out, Duration::ZERO)
    }

    fn json(&self, status: StatusCode, value: &Value, latency: Duration) -> LocalAnswer {
        LocalAnswer {
            status,
            content_type: Some(HeaderValue::from_static("application/json")),
            chunks: vec![Bytes::from(value.to_string())],
            latency,
            interval: Duration::ZERO,
        }
    }
}

/// The first tool's name, when the model should call it: tools offered, `tool_choice` not
/// `none`, and the conversation not already answering a tool call.
fn first_tool<'a>(body: &'a Value, messages: &[Value]) -> Option<&'a str> {
    if body["tool_choice"] == "none" || messages.last().is_some_and(|m| m["role"] == "tool") {
        return None;
    }
    body["tools"].as_array()?.first()?["function"]["name"].as_str()
}

/// Text of a message's content: a string, or the text parts of a content-part array.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Words with their following space, so the pieces concatenate back to the text.
fn split_words(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_owned).collect()
}

fn embedding_for(text: &str, dims: usize) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes()) | 1;
    let raw: Vec<f32> = (0..dims)
        .map(|_| {
            // xorshift64: a deterministic sequence seeded by the text.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// === impl LocalUpstream for MockUpstream ===

impl LocalUpstream for MockUpstream {
    fn answer(&self, req: &UpstreamRequest, created: u64) -> LocalAnswer {
        // The mock reads requests as a tree, in the gateway's own process: held to the same
        // bound as the translating paths, as a real upstream would refuse a body it cannot hold.
        let pacing = Pacing {
            latency: self.latency,
            interval: self.chunk_interval,
        };
        let refused = |why| self.error(StatusCode::BAD_REQUEST, why);
        match req.endpoint {
            Endpoint::Transcriptions => {
                return mock_media::transcription(req, false, pacing).unwrap_or_else(refused);
            }
            Endpoint::Translations => {
                return mock_media::transcription(req, true, pacing).unwrap_or_else(refused);
            }
            Endpoint::ImageEdits => {
                return match mock_media::edit_request(req) {
                    Ok(body) => self.images(&body, created),
                    Err(why) => refused(why),
                };
            }
            _ => {}
        }
        if let Err(e) = crate::request::check_tree(&req.body) {
            return self.error(StatusCode::BAD_REQUEST, e.message());
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return self.error(StatusCode::BAD_REQUEST, "mock upstream: body is not JSON");
        };
        match req.endpoint {
            Endpoint::Chat => self.chat(&body, created),
            Endpoint::Completions => self.completion(&body, created),
            Endpoint::Embeddings => self.embeddings(&body),
            Endpoint::Rerank => self.rerank(&body),
            Endpoint::Moderations => self.moderations(&body),
            Endpoint::ImageGenerations => self.images(&body, created),
            Endpoint::Speech => mock_media::speech(&body, pacing).unwrap_or_else(refused),
            Endpoint::Transcriptions | Endpoint::Translations | Endpoint::ImageEdits => {
                self.error(StatusCode::BAD_REQUEST, "mock upstream: expected a form")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MockConfig;

    fn answer(body: Value, endpoint: Endpoint) -> LocalAnswer {
        let req = UpstreamRequest::new(endpoint, Bytes::from(body.to_string()), false);
        MockUpstream::new(&MockConfig::default()).answer(&req, 1_700_000_000)
    }

    #[test]
    fn chat_is_deterministic_and_echoes() {
        let body =
            json!({"model": "demo", "messages": [{"role": "user", "content": "hello there"}]});
        let a = answer(body.clone(), Endpoint::Chat);
        let b = answer(body, Endpoint::Chat);
        assert_eq!(a.chunks, b.chunks);
        let v: Value = serde_json::from_slice(&a.chunks[0]).unwrap();
        assert!(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .ends_with("You said: hello there")
        );
        assert_eq!(
            v["usage"]["total_tokens"],
            v["usage"]["prompt_tokens"].as_u64().unwrap()
                + v["usage"]["completion_tokens"].as_u64().unwrap()
        );
    }

    #[test]
    fn stream_ends_with_usage_then_done() {
        let body = json!({"model": "demo", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]});
        let a = answer(body, Endpoint::Chat);
        assert_eq!(a.chunks.last().unwrap(), &Bytes::from_static(DONE_FRAME));
        assert!(
            std::str::from_utf8(&a.chunks[a.chunks.len() - 2])
                .unwrap()
                .contains("\"usage\":{")
        );
    }

    #[test]
    fn embeddings_base64_is_float32_le_of_the_float_answer() {
        let f = answer(
            json!({"model": "e", "input": ["a", "b"], "dimensions": 4}),
            Endpoint::Embeddings,
        );
        let b = answer(
            json!({"model": "e", "input": ["a", "b"], "dimensions": 4, "encoding_format": "base64"}),
            Endpoint::Embeddings,
        );
        let f: Value = serde_json::from_slice(&f.chunks[0]).unwrap();
        let b: Value = serde_json::from_slice(&b.chunks[0]).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b["data"][1]["embedding"].as_str().unwrap())
            .unwrap();
        let decoded: Vec<f64> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect();
        let floats: Vec<f64> = f["data"][1]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(decoded.len(), 4);
        for (x, y) in decoded.iter().zip(&floats) {
            assert!((x - y).abs() < 1e-6);
        }
    }
}
