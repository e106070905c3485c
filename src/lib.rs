//! Switchyard: an OpenAI-compatible LLM routing gateway.
//!
//! Request flow: accept → body (size-limited) → parse the few fields needed (`api`) → admit (key,
//! allow-list, limits) → expand (session) → dispatch (adapter translates, transport sends,
//! retries before the commit point) → respond (pass-through or translate) → record the outcome
//! (`call`). docs/architecture.md has the map of modules and their import order.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod anthropic;
pub mod api;
pub mod body;
pub mod cache;
pub mod call;
pub mod clock;
pub mod config;
pub mod control;
pub mod db;
pub mod error;
pub mod hex;
pub mod json;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod providers;
pub mod redis;
pub mod request;
pub mod responses;
pub mod routing;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod sessions;
pub mod sse;
pub mod startup;
pub mod state;
pub mod stats;
pub mod tls;
pub mod tokens;
pub mod trace;
pub mod upload;
pub mod usage;
