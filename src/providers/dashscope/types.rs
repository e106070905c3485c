//! DashScope native wire types (PROTOCOLS.md §5). Tolerant on input: every field that a capture
//! shows as sometimes absent is optional, and unknown fields are ignored.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct DashScopeGenerationResponse {
    #[serde(default)]
    pub output: Option<DashScopeOutput>,
    #[serde(default)]
    pub usage: Option<DashScopeUsage>,
    #[serde(default)]
    pub request_id: Option<String>,
    /// Present on error bodies (and in-stream error events).
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DashScopeOutput {
    #[serde(default)]
    pub choices: Option<Vec<DashScopeChoice>>,
    /// `result_format: "text"` answers carry these instead of `choices`.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DashScopeChoice {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub message: Option<DashScopeMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct DashScopeMessage {
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<DashScopeToolCall>>,
}

#[derive(Debug, Deserialize)]
pub struct DashScopeToolCall {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub function: Option<DashScopeFunction>,
}

#[derive(Debug, Deserialize)]
pub struct DashScopeFunction {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DashScopeUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<CachedTokens>,
    #[serde(default)]
    pub output_tokens_details: Option<ReasoningTokens>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CachedTokens {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReasoningTokens {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct DashScopeEmbeddingResponse {
    #[serde(default)]
    pub output: Option<DashScopeEmbeddingOutput>,
    #[serde(default)]
    pub usage: Option<DashScopeUsage>,
}

#[derive(Debug, Deserialize)]
pub struct DashScopeEmbeddingOutput {
    #[serde(default)]
    pub embeddings: Vec<DashScopeEmbedding>,
}

#[derive(Debug, Deserialize)]
pub struct DashScopeEmbedding {
    pub text_index: usize,
    pub embedding: Vec<f32>,
}

// === impl DashScopeMessage ===

impl DashScopeMessage {
    /// Text content: a string, or (multimodal answers) the text items of a list.
    pub fn text(&self) -> String {
        match &self.content {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items.iter().filter_map(|i| i["text"].as_str()).collect(),
            _ => String::new(),
        }
    }
}

// === impl DashScopeOutput ===

impl DashScopeOutput {
    /// The choices, a text-mode answer (`output.text`) read as one choice of an assistant
    /// message, so both result formats are translated by the same code.
    pub fn into_choices(self) -> Vec<DashScopeChoice> {
        match (self.choices, self.text) {
            (Some(choices), _) => choices,
            (None, Some(text)) => vec![DashScopeChoice {
                index: Some(0),
                message: Some(DashScopeMessage {
                    content: Some(Value::String(text)),
                    reasoning_content: None,
                    tool_calls: None,
                }),
                finish_reason: self.finish_reason,
                logprobs: None,
            }],
            (None, None) => Vec::new(),
        }
    }
}
