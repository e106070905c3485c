//! Rerank (PROTOCOLS.md §13.5): the Cohere/Jina shape clients send and read, passed to
//! OpenAI-kind servers (vLLM, Jina, Infinity: `{base_url}/rerank`) with only `model` replaced,
//! and translated both ways for DashScope's native text-rerank. Pure, no I/O.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::types::Usage;
use crate::error::{ErrorKind, GatewayError};
use crate::request::RerankRequest;

/// An answer as the client gets it, the tokens the upstream counted and the searches it billed.
pub struct Reranked {
    pub body: Bytes,
    pub usage: Option<Usage>,
    /// `meta.billed_units.search_units` (Cohere), if the upstream reported it.
    pub searches: Option<u64>,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    results: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    usage: Option<TokenUsage>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct TokenUsage {
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    billed_units: Option<Billed>,
}

#[derive(Deserialize)]
struct Billed {
    #[serde(default)]
    search_units: Option<f64>,
    #[serde(default)]
    input_tokens: Option<u64>,
}

/// An OpenAI-kind server's answer: passed on as it came, except Infinity's bare-string
/// `document`, which becomes `{"text": …}` as every client reads it.
pub fn from_openai_kind(body: Bytes) -> Result<Reranked, GatewayError> {
    let answer: Answer<'_> = serde_json::from_slice(&body).map_err(|e| not_rerank(&e))?;
    let results = answer.results.as_deref().unwrap_or_default();
    let bare = results.iter().any(|r| r.get().contains("\"document\":\""));
    let tokens = answer
        .usage
        .as_ref()
        .and_then(|u| u.total_tokens.or(u.prompt_tokens))
        .or_else(|| answer.meta.as_ref()?.billed_units.as_ref()?.input_tokens);
    let searches = answer
        .meta
        .as_ref()
        .and_then(|m| m.billed_units.as_ref()?.search_units)
        .map(|s| s.ceil().max(0.0) as u64);
    let usage = tokens.map(|t| Usage::tokens(t, 0));
    if !bare {
        return Ok(Reranked {
            body,
            usage,
            searches,
        });
    }
    let mut tree: Value = serde_json::from_slice(&body).map_err(|e| not_rerank(&e))?;
    for result in tree["results"].as_array_mut().into_iter().flatten() {
        if let Some(text) = result.get("document").and_then(Value::as_str) {
            result["document"] = json!({"text": text});
        }
    }
    Ok(Reranked {
        body: Bytes::from(tree.to_string()),
        usage,
        searches,
    })
}

/// The client's request as DashScope's native text-rerank takes it: `query` and `documents`
/// under `input`, `top_n`, `return_documents` and `instruct` under `parameters`; fields no
/// DashScope model reads (`max_tokens_per_doc`, `rank_fields`, …) dropped.
pub fn to_dashscope(req: &RerankRequest, upstream_model: &str) -> Result<Bytes, GatewayError> {
    let mut body: Map<String, Value> = serde_json::from_slice(&req.body)
        .map_err(|e| GatewayError::invalid_request(format!("invalid JSON body: {e}")))?;
    let documents: Vec<Value> = match body.remove("documents") {
        Some(Value::Array(docs)) => docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| match d {
                Value::String(_) => Ok(d),
                Value::Object(mut o) => match o.remove("text") {
                    Some(text @ Value::String(_)) => Ok(text),
                    _ => Err(GatewayError::invalid_request(format!(
                        "documents[{i}]: this model's route (DashScope) takes text documents: strings or {{\"text\": …}}"
                    ))
                    .with_param(format!("documents[{i}]"))),
                },
                _ => Err(GatewayError::invalid_request("'documents' must be strings")
                    .with_param(format!("documents[{i}]"))),
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let mut parameters = Map::new();
    for field in ["top_n", "return_documents", "instruct"] {
        if let Some(value) = body.remove(field).filter(|v| !v.is_null()) {
            parameters.insert(field.into(), value);
        }
    }
    let out = json!({
        "model": upstream_model,
        "input": {"query": body.remove("query").unwrap_or(Value::Null), "documents": documents},
        "parameters": parameters,
    });
    Ok(Bytes::from(out.to_string()))
}

#[derive(Deserialize)]
struct Native<'a> {
    #[serde(borrow, default)]
    output: Option<NativeOutput<'a>>,
    #[serde(default)]
    usage: Option<TokenUsage>,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct NativeOutput<'a> {
    #[serde(borrow, default)]
    results: Option<&'a RawValue>,
}

/// DashScope's answer in the Cohere/Jina shape: `output.results` (already best first) as
/// `results`, `usage.total_tokens` kept, `request_id` as `id`.
pub fn from_dashscope(body: &[u8], client_model: &str) -> Result<Reranked, GatewayError> {
    let native: Native<'_> = serde_json::from_slice(body).map_err(|e| not_rerank(&e))?;
    let results = native.output.and_then(|o| o.results).ok_or_else(|| {
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            "the upstream's rerank answer has no output.results",
        )
    })?;
    let tokens = native.usage.and_then(|u| u.total_tokens);
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(b"{\"id\":");
    let _ = serde_json::to_writer(&mut out, &native.request_id.unwrap_or_default());
    out.extend_from_slice(b",\"model\":");
    let _ = serde_json::to_writer(&mut out, client_model);
    out.extend_from_slice(b",\"results\":");
    out.extend_from_slice(results.get().as_bytes());
    if let Some(t) = tokens {
        out.extend_from_slice(b",\"usage\":{\"total_tokens\":");
        out.extend_from_slice(itoa::Buffer::new().format(t).as_bytes());
        out.push(b'}');
    }
    out.push(b'}');
    Ok(Reranked {
        body: Bytes::from(out),
        usage: tokens.map(|t| Usage::tokens(t, 0)),
        searches: None,
    })
}

fn not_rerank(e: &serde_json::Error) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamFailed,
        format!("the upstream's rerank answer is not one: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use super::*;

    fn request(body: Value) -> RerankRequest {
        RerankRequest::parse(Bytes::from(body.to_string())).unwrap()
    }

    #[test]
    fn a_cohere_request_becomes_dashscopes_and_its_answer_comes_back() {
        let req = request(json!({"model": "rr", "query": "what is rerank", "top_n": 2,
            "documents": ["a", {"text": "b"}, "c"], "return_documents": true, "max_tokens_per_doc": 512}));
        let native: Value =
            serde_json::from_slice(&to_dashscope(&req, "gte-rerank-v2").unwrap()).unwrap();
        assert_eq!(
            native,
            json!({"model": "gte-rerank-v2", "input": {"query": "what is rerank", "documents": ["a", "b", "c"]},
                   "parameters": {"top_n": 2, "return_documents": true}})
        );
        let answer = json!({"output": {"results": [{"index": 2, "relevance_score": 0.93, "document": {"text": "c"}},
                                                   {"index": 0, "relevance_score": 0.34, "document": {"text": "a"}}]},
                            "usage": {"total_tokens": 79}, "request_id": "req-1"});
        let out = from_dashscope(answer.to_string().as_bytes(), "rr").unwrap();
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["id"], "req-1");
        assert_eq!(body["results"][0]["index"], 2);
        assert_eq!(body["results"][1]["document"]["text"], "a");
        assert_eq!(body["usage"]["total_tokens"], 79);
        assert_eq!(out.usage.map(|u| u.input_tokens), Some(79));
        let odd =
            request(json!({"model": "rr", "query": "q", "documents": [{"title": "no text"}]}));
        let e = to_dashscope(&odd, "m").unwrap_err();
        assert!(e.message().contains("documents[0]"), "{}", e.message());
    }

    #[test]
    fn openai_kind_answers_pass_with_their_units_and_infinity_documents_are_objects() {
        let cohere = json!({"id": "x", "results": [{"index": 0, "relevance_score": 0.1}],
                            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}});
        let bytes = Bytes::from(cohere.to_string());
        let out = from_openai_kind(bytes.clone()).unwrap();
        assert_eq!(out.body, bytes, "as it came");
        assert_eq!((out.searches, out.usage), (Some(1), None));
        let infinity = json!({"object": "rerank", "results": [{"relevance_score": 0.5, "index": 1, "document": "text b"}],
                              "usage": {"prompt_tokens": 12, "total_tokens": 12}});
        let out = from_openai_kind(Bytes::from(infinity.to_string())).unwrap();
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["results"][0]["document"], json!({"text": "text b"}));
        assert_eq!(out.usage.map(|u| u.input_tokens), Some(12));
        assert!(from_openai_kind(Bytes::from_static(b"<html>")).is_err());
    }
}
