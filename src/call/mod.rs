//! One request's way through the gateway, shared by every endpoint that calls a model (chat,
//! embeddings, responses, session summaries):
//!
//! admit (key, allow-list, limits) → expand (session, stored response chain) → dispatch
//! (routes tried until one serves; the commit point) → one outcome recorder (ledger row,
//! metrics, limit settlement), with the session turn or the response stored before the answer
//! ends.
//!
//! `api/` parses requests and renders answers around [`pipeline`] and [`responses`]; this is
//! the only module that knows all the steps. Each file is one step, imported only by the steps
//! after it: [`context`] → [`admit`], [`relay`], [`reply`] → [`outcome`] → [`dispatch`] →
//! [`compress`] → [`turn`], [`chain`] → [`pipeline`] → [`responses`].

pub mod admit;
pub mod cached;
pub mod chain;
pub mod chat_events;
pub mod compress;
pub mod context;
pub mod dispatch;
pub mod media;
mod media_stream;
pub mod messages;
pub mod outcome;
pub mod pipeline;
pub mod relay;
pub mod reply;
pub mod responses;
#[cfg(test)]
mod test_support;
pub mod turn;
