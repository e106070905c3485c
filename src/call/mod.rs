//! One request's way through the gateway, shared by every endpoint that calls a model (chat,
//! embeddings, session summaries):
//!
//! admit (key, allow-list, limits) → expand (session) → dispatch (routes tried until one
//! serves; the commit point) → one outcome recorder (ledger row, metrics, limit settlement),
//! with the session turn appended before the answer ends.
//!
//! `api/` parses requests and renders answers around [`pipeline`]; this is the only module that
//! knows all the steps. Each file is one step, imported only by the steps after it:
//! [`context`] → [`admit`], [`relay`], [`reply`] → [`outcome`] → [`dispatch`] → [`compress`] →
//! [`turn`] → [`pipeline`].

pub mod admit;
pub mod compress;
pub mod context;
pub mod dispatch;
pub mod outcome;
pub mod pipeline;
pub mod relay;
pub mod reply;
pub mod turn;
