//! Switchyard: an OpenAI-compatible LLM routing gateway.
//!
//! Request flow: accept → body (size-limited) → auth → parse the few fields needed → route →
//! dispatch (adapter translates, transport sends, retries before the commit point) → respond
//! (pass-through or translate) → metrics. See DESIGN.md §6 for the map of modules.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod body;
pub mod clock;
pub mod config;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod providers;
pub mod redis;
pub mod request;
pub mod routing;
pub mod secret;
pub mod server;
pub mod sessions;
pub mod sse;
pub mod state;
pub mod tokens;
pub mod usage;
