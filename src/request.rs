//! The few fields the gateway reads from a client request, parsed without copying the body.
//!
//! Everything else stays in the client's bytes, which OpenAI-kind upstreams receive untouched
//! apart from `model` (spliced in place, see `providers::openai::splice`). serde_json's own
//! recursion limit (128) turns 10,000-deep nesting into a 400, and invalid UTF-8 inside a string
//! is a parse error, so neither reaches a route.

use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{ErrorKind, GatewayError};

/// Deepest nesting accepted, as serde_json's own limit for the fields it reads. Fields the
/// gateway skips are skipped without a limit, so the depth of the whole body is checked
/// separately: an upstream must never receive what we would have refused.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// Chat (`messages`) or a legacy completion (`prompt`): routed the same way.
    pub form: Form,
    pub body: Bytes,
    pub model: String,
    /// Byte range of the `model` value (quotes included) inside `body`.
    pub model_span: Range<usize>,
    pub stream: bool,
    pub include_usage: bool,
    /// Whether the body has a `stream_options` field at all (then it is merged, not inserted).
    pub has_stream_options: bool,
    /// The gateway's own `session_id` field (never forwarded), if present.
    pub session_id: Option<String>,
    /// `max_completion_tokens` (or the older `max_tokens`), for token-limit reservations.
    pub max_tokens: Option<u64>,
    /// Choices asked for (`n`), capped by `limits.max_n`.
    pub n: Option<u64>,
    /// A Messages client's own body, which a `kind: anthropic` route gets instead of `body`.
    pub native: Option<std::sync::Arc<Native>>,
    /// What the client's headers ask of the result cache; `None`: an endpoint the cache does not
    /// serve (set by the endpoints that it does).
    pub cache: Option<CacheControl>,
}

/// A client's body in its own dialect, for a route whose upstream speaks it: a Messages
/// client's on a `kind: anthropic` route (see `providers::anthropic::passthrough`).
#[derive(Debug)]
pub struct Native {
    pub body: Bytes,
    pub model_span: Range<usize>,
    /// The client's `anthropic-beta`, forwarded verbatim (Claude Code's list changes every
    /// release: never filtered).
    pub beta: Option<http::HeaderValue>,
    /// Some turn is a `system` turn (mid-conversation).
    pub system_turns: bool,
    /// Some thinking block carries the gateway's signature (or an empty one).
    pub foreign_thinking: bool,
    /// The answer's message id (`msg_…`), when a translated route answers.
    pub message_id: String,
    /// The client asked for thinking: reasoning becomes thinking blocks.
    pub thinking: bool,
}

// === impl Native ===

impl Native {
    /// The model's name as the client wrote it: a JSON string, ready to be spliced into an
    /// answer without escaping it again.
    pub fn model_json(&self) -> &[u8] {
        self.body.get(self.model_span.clone()).unwrap_or(b"\"\"")
    }
}

/// The two shapes of a text-generation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `POST /v1/chat/completions`: `messages`.
    Chat,
    /// `POST /v1/completions` (legacy): `prompt`, answered as `text_completion`.
    Completion,
}

#[derive(Debug, Clone)]
pub struct EmbeddingsRequest {
    pub body: Bytes,
    pub model: String,
    pub model_span: Range<usize>,
    pub input: EmbeddingInput,
    pub base64: bool,
    pub dimensions: Option<u32>,
    /// What the client's headers ask of the result cache.
    pub cache: Option<CacheControl>,
}

/// The shape of an embeddings `input` or a legacy completion's `prompt`: one text, texts, token
/// ids or token-id arrays, with how many items. Read by [`InputVisitor`] in one pass, the first
/// element of an array choosing the shape, and nothing kept but counts: an untagged enum of
/// vectors buffered the whole array as serde `Content` first (35 times the body for `[0,0,…]`),
/// and `Vec<Vec<u32>>` costs ten times `[[0],[0],…]`. What an item holds is read from the body
/// where it is needed ([`texts`], `Encoding::count_embedding_input`).
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingInput {
    Text,
    Texts(usize),
    Tokens(usize),
    /// Token-id arrays, none of them empty.
    TokenBatches(usize),
}

/// Reads an [`EmbeddingInput`] without buffering.
struct InputVisitor;

/// The first element of an input array, which says what the others must be.
enum Element {
    Text,
    Token,
    Tokens,
}

struct ElementVisitor;

/// A token-id array, counted and dropped; an empty one is refused.
struct TokenIds;

#[derive(Deserialize)]
struct ChatPeek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptionsPeek>,
    #[serde(borrow, default)]
    session_id: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(borrow, default)]
    prompt: Option<&'a RawValue>,
    #[serde(default)]
    n: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptionsPeek {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct EmbeddingsPeek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    encoding_format: Option<Cow<'a, str>>,
    #[serde(default)]
    dimensions: Option<u32>,
}

/// A rerank request (Cohere/Jina shape, PROTOCOLS.md §13.5): what routing, limits and the
/// ledger read; the body goes to OpenAI-kind upstreams with only `model` replaced.
#[derive(Debug)]
pub struct RerankRequest {
    pub body: Bytes,
    pub model: String,
    pub model_span: Range<usize>,
    /// How many documents: a search is one query over up to 100 of them.
    pub documents: usize,
}

#[derive(Deserialize)]
struct RerankPeek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    query: Option<&'a RawValue>,
    #[serde(borrow, default)]
    documents: Option<Vec<&'a RawValue>>,
    // Checked for their types only (a negative `top_n` is a 400 naming it); the body carries them.
    #[serde(default, rename = "top_n")]
    _top_n: Option<u64>,
    #[serde(default, rename = "return_documents")]
    _return_documents: Option<bool>,
}

/// A request passed on as it came but for its model (moderations, image generations): its body
/// and the model it names; without one, the first configured model of the endpoint's type
/// serves (both endpoints default their model).
#[derive(Debug)]
pub struct PassRequest {
    pub body: Bytes,
    /// The name and where it is in the body.
    pub model: Option<(String, Range<usize>)>,
}

// === impl PassRequest ===

impl PassRequest {
    /// The images an image request asks for (`n`, 1 if absent or not a count).
    pub fn images(&self) -> u64 {
        crate::json::member(&self.body, b"n")
            .and_then(crate::json::count)
            .unwrap_or(1)
            .max(1)
    }

    /// `required`: the field the endpoint cannot do without (`input`, `prompt`).
    pub fn parse(body: Bytes, required: &'static str) -> Result<Self, GatewayError> {
        let fields: std::collections::HashMap<Cow<'_, str>, &RawValue> =
            serde_json::from_slice(&body).map_err(|e| {
                GatewayError::invalid_request(format!("invalid JSON body: {e}"))
                    .with_code("invalid_json")
            })?;
        check_depth(&body)?;
        if fields.get(required).is_none_or(|v| v.get() == "null") {
            return Err(missing(required));
        }
        let model = fields
            .get("model")
            .map(|raw| model_field(&body, Some(raw)))
            .transpose()?;
        drop(fields);
        Ok(Self { body, model })
    }
}

/// `POST /v1/audio/speech` (PROTOCOLS.md §13.2): `model` and the `input` it speaks, counted in
/// characters (what tts models are priced by).
#[derive(Debug)]
pub struct SpeechRequest {
    pub body: Bytes,
    pub model: String,
    pub model_span: Range<usize>,
    /// Unicode scalar values of `input`.
    pub characters: u64,
}

#[derive(Deserialize)]
struct SpeechPeek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<Cow<'a, str>>,
}

// === impl SpeechRequest ===

impl SpeechRequest {
    pub fn parse(body: Bytes) -> Result<Self, GatewayError> {
        let peek: SpeechPeek<'_> =
            serde_json::from_slice(&body).map_err(|e| json_error::<SpeechPeek>(&body, e))?;
        check_depth(&body)?;
        let (model, model_span) = model_field(&body, peek.model)?;
        let characters = peek.input.ok_or_else(|| missing("input"))?.chars().count() as u64;
        Ok(Self {
            body,
            model,
            model_span,
            characters,
        })
    }
}

// === impl RerankRequest ===

impl RerankRequest {
    pub fn parse(body: Bytes) -> Result<Self, GatewayError> {
        let peek: RerankPeek<'_> =
            serde_json::from_slice(&body).map_err(|e| json_error::<RerankPeek>(&body, e))?;
        check_depth(&body)?;
        let (model, model_span) = model_field(&body, peek.model)?;
        match peek.query.map(|q| q.get().as_bytes().first().copied()) {
            None => return Err(missing("query")),
            Some(Some(b'"')) => {}
            Some(_) => {
                return Err(
                    GatewayError::invalid_request("'query' must be a string").with_param("query")
                );
            }
        }
        let documents = peek.documents.ok_or_else(|| missing("documents"))?;
        if documents.is_empty() {
            return Err(
                GatewayError::invalid_request("'documents' must not be empty")
                    .with_param("documents"),
            );
        }
        // Strings, or objects (`{"text": …}`; Cohere v1 also takes other fields with
        // `rank_fields`): what every reranker takes.
        if documents
            .iter()
            .any(|d| !matches!(d.get().as_bytes().first(), Some(b'"' | b'{')))
        {
            return Err(GatewayError::invalid_request(
                "'documents' must be an array of strings (or of objects such as {\"text\": …})",
            )
            .with_param("documents"));
        }
        let documents = documents.len();
        Ok(Self {
            body,
            model,
            model_span,
            documents,
        })
    }

    /// The searches this request is, as Cohere counts them: one per 100 documents.
    pub fn searches(&self) -> u64 {
        self.documents.div_ceil(100).max(1) as u64
    }
}

// === impl ChatRequest ===

impl ChatRequest {
    /// A chat request the gateway wrote itself (a Messages request translated), with the
    /// fields it wrote: read from the writer, not parsed again. A stream asks for the usage
    /// chunk.
    pub fn written(
        body: Bytes,
        model: String,
        model_span: Range<usize>,
        stream: bool,
        max_tokens: Option<u64>,
    ) -> Self {
        Self {
            form: Form::Chat,
            body,
            model,
            model_span,
            stream,
            include_usage: stream,
            has_stream_options: stream,
            session_id: None,
            max_tokens,
            n: None,
            native: None,
            cache: None,
        }
    }

    /// A Messages client's request for a model whose routes all take its own body: nothing is
    /// translated. `body` is the client's (what the ledger counts if an upstream reports no
    /// usage).
    pub fn native(native: Native, model: String, stream: bool, max_tokens: Option<u64>) -> Self {
        Self {
            form: Form::Chat,
            body: native.body.clone(),
            model,
            model_span: native.model_span.clone(),
            stream,
            include_usage: false,
            has_stream_options: false,
            session_id: None,
            max_tokens,
            n: None,
            native: Some(std::sync::Arc::new(native)),
            cache: None,
        }
    }

    pub fn parse(body: Bytes) -> Result<Self, GatewayError> {
        Self::parse_as(body, Form::Chat)
    }

    /// A legacy completion (`prompt`: a string, strings, token ids or token-id arrays).
    pub fn parse_completion(body: Bytes) -> Result<Self, GatewayError> {
        Self::parse_as(body, Form::Completion)
    }

    fn parse_as(body: Bytes, form: Form) -> Result<Self, GatewayError> {
        let peek: ChatPeek<'_> =
            serde_json::from_slice(&body).map_err(|e| json_error::<ChatPeek>(&body, e))?;
        check_depth(&body)?;
        let (model, model_span) = model_field(&body, peek.model)?;
        match form {
            Form::Chat => check_messages(peek.messages)?,
            Form::Completion => check_prompt(peek.prompt)?,
        }
        let stream = peek.stream.unwrap_or(false);
        let has_stream_options = peek.stream_options.is_some();
        let include_usage = stream
            && peek
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false);
        let max_tokens = peek.max_completion_tokens.or(peek.max_tokens);
        let n = peek.n;
        let session_id = match peek.session_id {
            None => None,
            Some(raw) if raw.get() == "null" => None,
            Some(raw) => Some(serde_json::from_str::<String>(raw.get()).map_err(|_| {
                GatewayError::invalid_request("'session_id' must be a string")
                    .with_param("session_id")
            })?),
        };
        Ok(Self {
            form,
            body,
            model,
            model_span,
            stream,
            include_usage,
            has_stream_options,
            session_id,
            max_tokens,
            n,
            native: None,
            cache: None,
        })
    }
}

fn check_messages(messages: Option<&RawValue>) -> Result<(), GatewayError> {
    match messages {
        None => Err(missing("messages")),
        Some(raw) if !raw.get().starts_with('[') => Err(GatewayError::invalid_request(
            "'messages' must be an array of message objects",
        )
        .with_param("messages")),
        Some(raw) if raw.get()[1..].trim_start().starts_with(']') => Err(
            GatewayError::invalid_request("'messages' must contain at least one message")
                .with_param("messages"),
        ),
        Some(_) => Ok(()),
    }
}

/// A legacy completion's `prompt`: a non-empty string, array of strings, token ids or
/// token-id arrays (the shapes of an embeddings `input`).
fn check_prompt(prompt: Option<&RawValue>) -> Result<(), GatewayError> {
    let raw = prompt.ok_or_else(|| missing("prompt"))?;
    match serde_json::from_str::<EmbeddingInput>(raw.get()) {
        Ok(prompt) if !prompt.is_empty() => Ok(()),
        _ => Err(GatewayError::invalid_request(
            "'prompt' must be a string, an array of strings, an array of token ids or an array of token-id arrays",
        )
        .with_param("prompt")),
    }
}

// === impl EmbeddingsRequest ===

impl EmbeddingsRequest {
    pub fn parse(body: Bytes) -> Result<Self, GatewayError> {
        let peek: EmbeddingsPeek<'_> =
            serde_json::from_slice(&body).map_err(|e| json_error::<EmbeddingsPeek>(&body, e))?;
        check_depth(&body)?;
        let (model, model_span) = model_field(&body, peek.model)?;
        let raw = peek.input.ok_or_else(|| missing("input"))?;
        let input: EmbeddingInput = serde_json::from_str(raw.get()).map_err(|_| {
            GatewayError::invalid_request("'input' must be a string, an array of strings, an array of token ids, or an array of token-id arrays")
                .with_param("input")
        })?;
        if input.is_empty() {
            return Err(
                GatewayError::invalid_request("'input' must not be empty").with_param("input")
            );
        }
        let base64 = match peek.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(GatewayError::invalid_request(format!(
                    "'encoding_format' must be \"float\" or \"base64\", not {other:?}"
                ))
                .with_param("encoding_format"));
            }
        };
        let dimensions = peek.dimensions;
        if dimensions == Some(0) {
            return Err(
                GatewayError::invalid_request("'dimensions' must be at least 1")
                    .with_param("dimensions"),
            );
        }
        Ok(Self {
            body,
            model,
            model_span,
            input,
            base64,
            dimensions,
            cache: None,
        })
    }
}

// === impl EmbeddingInput ===

impl EmbeddingInput {
    /// How many inputs: texts, or token-id arrays (a flat one is one input).
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(n) | EmbeddingInput::TokenBatches(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            EmbeddingInput::Text => false,
            EmbeddingInput::Texts(n)
            | EmbeddingInput::Tokens(n)
            | EmbeddingInput::TokenBatches(n) => *n == 0,
        }
    }
}

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(InputVisitor)
    }
}

// === impl InputVisitor ===

impl<'de> serde::de::Visitor<'de> for InputVisitor {
    type Value = EmbeddingInput;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, strings, token ids or token-id arrays")
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(EmbeddingInput::Text)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(first) = seq.next_element::<Element>()? else {
            return Ok(EmbeddingInput::Texts(0));
        };
        let mut n = 1;
        // Each later element must have the first one's shape.
        match first {
            Element::Text => {
                while seq.next_element::<TextItem>()?.is_some() {
                    n += 1;
                }
            }
            Element::Token => {
                while seq.next_element::<u32>()?.is_some() {
                    n += 1;
                }
            }
            Element::Tokens => {
                while seq.next_element::<TokenIds>()?.is_some() {
                    n += 1;
                }
            }
        }
        Ok(match first {
            Element::Text => EmbeddingInput::Texts(n),
            Element::Token => EmbeddingInput::Tokens(n),
            Element::Tokens => EmbeddingInput::TokenBatches(n),
        })
    }
}

// === impl Element ===

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(ElementVisitor)
    }
}

impl<'de> serde::de::Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, a token id or a token-id array")
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Element::Text)
    }

    fn visit_u64<E: serde::de::Error>(self, id: u64) -> Result<Self::Value, E> {
        u32::try_from(id)
            .map(|_| Element::Token)
            .map_err(|_| E::custom("token id out of range"))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        TokenIds.visit_seq(seq).map(|_| Element::Tokens)
    }
}

// === impl TokenIds ===

impl<'de> Deserialize<'de> for TokenIds {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_seq(TokenIds)
    }
}

impl<'de> serde::de::Visitor<'de> for TokenIds {
    type Value = TokenIds;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a non-empty array of token ids")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut n = 0usize;
        while seq.next_element::<u32>()?.is_some() {
            n += 1;
        }
        match n {
            0 => Err(serde::de::Error::invalid_length(0, &self)),
            _ => Ok(TokenIds),
        }
    }
}

/// A string item, checked and dropped without being copied where it has no escapes.
struct TextItem;

impl<'de> Deserialize<'de> for TextItem {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = TextItem;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<TextItem, E> {
                Ok(TextItem)
            }
        }
        de.deserialize_str(Text)
    }
}

/// The texts of an embeddings body's `input` (a string or strings); the caller has checked their
/// number on its [`EmbeddingInput`].
pub fn texts(body: &[u8]) -> Result<Vec<String>, GatewayError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Texts {
        One(String),
        Many(Vec<String>),
    }
    #[derive(Deserialize)]
    struct Input {
        input: Texts,
    }
    match serde_json::from_slice::<Input>(body) {
        Ok(Input {
            input: Texts::One(text),
        }) => Ok(vec![text]),
        Ok(Input {
            input: Texts::Many(texts),
        }) => Ok(texts),
        Err(e) => Err(GatewayError::invalid_request(format!("'input': {e}")).with_param("input")),
    }
}

/// The model name and the byte range of its JSON value in `body`.
fn model_field(
    body: &[u8],
    raw: Option<&RawValue>,
) -> Result<(String, Range<usize>), GatewayError> {
    let raw = raw.ok_or_else(|| missing("model"))?;
    let model = raw_text(raw).ok_or_else(|| {
        GatewayError::invalid_request("'model' must be a string").with_param("model")
    })?;
    if model.is_empty() {
        return Err(GatewayError::invalid_request("'model' must not be empty").with_param("model"));
    }
    match raw_span(body, raw) {
        Some(span) => Ok((model, span)),
        None => Err(GatewayError::new(
            ErrorKind::Internal,
            "could not locate the model field in the request body",
        )),
    }
}

/// A JSON string's text from its raw value (`None` if it is not a string): a string without
/// escapes, the usual model name, is taken as it is, with no second parse.
pub fn raw_text(raw: &RawValue) -> Option<String> {
    let json = raw.get();
    let plain = json
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|text| !text.contains(['\\', '"']));
    match plain {
        Some(text) => Some(text.to_owned()),
        None => serde_json::from_str(json).ok(),
    }
}

/// Where a raw value borrowed from `body` sits in it (a borrowed `RawValue` is a slice of its
/// input, so its address is its place); `None` if it is not `body`'s.
pub fn raw_span(body: &[u8], raw: &RawValue) -> Option<Range<usize>> {
    let start = (raw.get().as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let span = start..start + raw.get().len();
    (body.get(span.clone()) == Some(raw.get().as_bytes())).then_some(span)
}

/// Refuses JSON nested deeper than [`MAX_DEPTH`]. Runs on a body serde_json already accepted,
/// so strings are well formed and a backslash always escapes exactly the next byte. Strings (most
/// of a body) are skipped with a SIMD search for their end; only structure is looked at byte by
/// byte.
fn check_depth(body: &[u8]) -> Result<(), GatewayError> {
    let scan = scan(body, MAX_DEPTH);
    if scan.too_deep {
        return Err(too_deep());
    }
    if scan.non_finite {
        // Fields the gateway skips are not parsed; an upstream must still never see a number
        // like 1e999 that no JSON parser can hold.
        return Err(GatewayError::invalid_request(
            "the request body holds a number out of range (not a finite double)",
        )
        .with_code("invalid_json"));
    }
    Ok(())
}

/// Refuses a body whose `serde_json::Value` tree would cost more than [`tree_budget`], before
/// anything builds one: the translations (Responses, DashScope's native body, session turns)
/// work on trees, and `[0,0,0,…]` or `[{},{},…]` cost 30 to 90 times their JSON as one.
pub fn check_tree(body: &[u8]) -> Result<(), GatewayError> {
    let scan = scan(body, MAX_DEPTH);
    if scan.too_deep {
        return Err(too_deep());
    }
    if scan.tree_bytes > tree_budget(body.len()) {
        return Err(GatewayError::invalid_request(format!(
            "the request body holds too many JSON values for its size to be translated \
             ({} bytes as a tree, at most {}); send long arrays as strings or fewer items",
            scan.tree_bytes,
            tree_budget(body.len())
        ))
        .with_code("body_too_complex"));
    }
    Ok(())
}

/// Whether a body fits [`check_tree`], for callers that estimate instead of refusing.
pub fn tree_fits(body: &[u8]) -> bool {
    check_tree(body).is_ok()
}

fn too_deep() -> GatewayError {
    GatewayError::invalid_request(format!(
        "the request body nests JSON deeper than {MAX_DEPTH} levels"
    ))
    .with_code("invalid_json")
}

/// What one pass over a body outside its strings finds.
struct Scan {
    /// Brackets nest deeper than the limit.
    too_deep: bool,
    /// A number too large for a double (`1e999`, 400 digits).
    non_finite: bool,
    /// An upper estimate of the bytes the body costs as a `serde_json::Value` tree.
    tree_bytes: usize,
}

/// What a `serde_json::Value` tree costs, as counted by [`scan`]: an array's every element a
/// 32-byte slot in a `Vec` that doubles as it grows; an object a B-tree leaf (11 keys of 24 bytes
/// and values of 32, its members' slots) and, as it grows, a share of another leaf per member;
/// every string (keys too) its bytes and the allocator's rounding. Upper bounds, so `[0,0,…]`
/// counts 64 bytes for each 2 of JSON (measured: about 70) and a body of long strings about its
/// own size.
const SLOT_BYTES: usize = 64;
const OBJECT_BYTES: usize = 640;
const MEMBER_BYTES: usize = 64;
const STRING_BYTES: usize = 16;

/// Most a body may cost as a `Value` tree: 4 times its size plus 4 MiB, so a request costs the
/// process at most about 8 times its body in all (the body, the tree, what is built from it),
/// while any body of ordinary JSON (strings, tool schemas, a few thousand messages) fits with
/// room to spare.
fn tree_budget(body_len: usize) -> usize {
    body_len.saturating_mul(4).saturating_add(4 << 20)
}

/// Whether brackets outside strings nest deeper than `limit`.
#[cfg(test)]
fn max_depth_over(body: &[u8], limit: usize) -> bool {
    scan(body, limit).too_deep
}

/// One pass over the body outside its strings: bracket depth, and every number with an exponent
/// or more than 300 digits checked for a finite value (others cannot overflow a double).
fn scan(body: &[u8], limit: usize) -> Scan {
    let mut out = Scan {
        too_deep: false,
        non_finite: false,
        tree_bytes: SLOT_BYTES,
    };
    let mut depth = 0usize;
    // Bit `d - 1` set: the container at depth `d` is an array (depth ≤ MAX_DEPTH = 128).
    let mut arrays = 0u128;
    let in_array = |depth: usize, arrays: u128| depth > 0 && (arrays >> (depth - 1)) & 1 == 1;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        // An array's element takes a slot in its Vec; an object's member is in its node.
        if in_array(depth, arrays) && !matches!(b, b',' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
            out.tree_bytes += SLOT_BYTES;
        }
        match b {
            b'"' => {
                let start = i;
                loop {
                    // The string's end: the next quote that no backslash escapes.
                    let Some(rest) = body.get(i..) else {
                        return out;
                    };
                    match memchr::memchr2(b'"', b'\\', rest) {
                        None => return out,
                        Some(j) if rest[j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                    }
                }
                out.tree_bytes += STRING_BYTES + (i - start);
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit || depth > 128 {
                    out.too_deep = true;
                    return out;
                }
                let bit = 1u128 << (depth - 1);
                if b == b'[' {
                    arrays |= bit;
                } else {
                    arrays &= !bit;
                    out.tree_bytes += OBJECT_BYTES;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b':' => out.tree_bytes += MEMBER_BYTES,
            // `true`, `false`, `null`: one value, one slot.
            b't' | b'f' | b'n' => {
                while body.get(i).is_some_and(u8::is_ascii_lowercase) {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i - 1;
                while body
                    .get(i)
                    .is_some_and(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    i += 1;
                }
                let number = &body[start..i];
                if (number.len() > 300 || number.iter().any(|c| matches!(c, b'e' | b'E')))
                    && std::str::from_utf8(number)
                        .ok()
                        .and_then(|n| n.parse::<f64>().ok())
                        .is_some_and(|v| !v.is_finite())
                {
                    out.non_finite = true;
                }
            }
            _ => {}
        }
    }
    out
}

fn missing(field: &'static str) -> GatewayError {
    GatewayError::invalid_request(format!("you must provide a '{field}' parameter"))
        .with_param(field)
}

/// A body serde_json refused as `T`. Malformed JSON is `invalid_json`; a well-formed body with
/// a field of the wrong type or range names the field, found by parsing once more with the
/// path tracked (only on this error path: the first parse stays as fast as it was).
fn json_error<'de, T: Deserialize<'de>>(body: &'de [u8], e: serde_json::Error) -> GatewayError {
    if e.classify() == serde_json::error::Category::Data
        && let Err(named) = parse_named::<T>(body)
    {
        return named;
    }
    GatewayError::invalid_request(format!(
        "the request body is not valid JSON for this endpoint: {e}"
    ))
    .with_code("invalid_json")
}

/// A body as `T`; a bad one is a 400 naming the field (`param`, a dotted path such as
/// `stream_options.include_usage` or `messages[0].role`) and saying what is wrong.
pub fn parse_named<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, GatewayError> {
    parse_named_at(body, "")
}

/// [`parse_named`] for a member of the body (`at`, e.g. `messages`), which prefixes the path.
pub fn parse_named_at<'de, T: Deserialize<'de>>(
    json: &'de [u8],
    at: &str,
) -> Result<T, GatewayError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // A missing field is reported at its parent: name the field itself.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('`').next());
        let field = match (named, path.as_str()) {
            (_, ".") => named.unwrap_or("body").to_owned(),
            // serde_path_to_error puts an unknown field in the path itself, a missing one not.
            (Some(f), p) if p != f && !p.ends_with(&format!(".{f}")) => format!("{p}.{f}"),
            (_, p) => p.to_owned(),
        };
        let field = match (at, field.as_str()) {
            ("", _) => field,
            (at, "." | "body") => at.to_owned(),
            (at, f) => format!("{at}.{f}"),
        };
        invalid(field, message)
    })
}

/// A 400 naming the field: `invalid '<field>': <what is wrong>`, with `param` set to it.
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> GatewayError {
    let field = field.into();
    GatewayError::invalid_request(format!("invalid '{field}': {}", message.into()))
        .with_param(field)
}

/// The header that sets a stored answer's ttl.
pub const CACHE_TTL_HEADER: &str = "x-switchyard-cache-ttl";

/// What a request's headers ask of the result cache: `Cache-Control: no-cache` (do not read, store
/// the fresh answer), `no-store` (neither), `max-age=N` (only entries at most N s old), and
/// `x-switchyard-cache-ttl` (this answer's ttl).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_cache: bool,
    pub no_store: bool,
    pub max_age: Option<u64>,
    pub ttl: Option<Duration>,
}

// === impl CacheControl ===

impl CacheControl {
    /// Read from a request's headers; an unreadable `x-switchyard-cache-ttl` is a 400 naming it.
    /// `Cache-Control` directives the cache does not use are ignored, as HTTP caches do.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, GatewayError> {
        let mut d = Self::default();
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, arg) = match directive.split_once('=') {
                    Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-cache" => d.no_cache = true,
                    "no-store" => d.no_store = true,
                    "max-age" => d.max_age = arg.and_then(|a| a.parse().ok()),
                    _ => {}
                }
            }
        }
        if let Some(value) = headers.get(CACHE_TTL_HEADER) {
            let ttl = value
                .to_str()
                .map_err(|_| "is not text".to_owned())
                .and_then(crate::config::ConfigDuration::parse)
                .and_then(|d| match d.0.is_zero() {
                    true => Err("must be more than 0".to_owned()),
                    false => Ok(d.0),
                })
                .map_err(|e| {
                    GatewayError::invalid_request(format!(
                        "header {CACHE_TTL_HEADER}: {e} (a duration such as 30s, 10m or 24h)"
                    ))
                    .with_param(CACHE_TTL_HEADER)
                })?;
            d.ttl = Some(ttl);
        }
        Ok(d)
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
