//! What every adapter speaks back: our canonical values, whatever the wire format.

use std::sync::Arc;

use bytes::Bytes;

use crate::request::{Form, Native};
pub use crate::usage::counts::Usage;
use crate::usage::record::Unit;

/// What one upstream frame becomes for the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Relayed {
    /// Send these bytes (possibly empty: nothing to send for this frame).
    Forward(Bytes),
    /// Send these bytes; the stream is complete.
    Done(Bytes),
}

/// A whole answer priced by what it reports: the body as the client gets it, the tokens the
/// upstream counted, and the units (rerank searches, images) it is priced by besides.
pub struct Priced {
    pub body: Bytes,
    pub usage: Option<Usage>,
    pub units: Option<(Unit, u64)>,
}

/// What the response translation needs from the request.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    /// The model name the client asked for: what the client sees as `model`.
    pub client_model: String,
    pub include_usage: bool,
    pub created: u64,
    /// A chat answer, or a legacy `text_completion`.
    pub form: Form,
    /// A Messages client's request: an Anthropic route's answer goes back as it is, any
    /// other's is translated into Anthropic's.
    pub messages: Option<Arc<Native>>,
}
