//! Who may call the gateway, and how much: gateway API keys (held hashed) and, later, per-key
//! request and token limits.

pub mod keys;
