//! Who may call the gateway, and how much: gateway API keys (held hashed) and per-key request
//! and token limits.

pub mod bucket;
pub mod budget;
pub mod keys;
pub mod rate;
pub mod shared;
pub mod spend;
