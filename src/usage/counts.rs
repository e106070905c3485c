//! A request's token counts, as an upstream reported them (or as the gateway estimated them):
//! what every adapter reads from its wire format and what the ledger prices.

/// Token counts as the upstream reported them (or as we estimated them). `input_tokens` is all
/// input, the cached and cache-written parts included; `output_tokens` all output, reasoning
/// included (DESIGN §5 "Money with prompt caching").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input read from the provider's prompt cache (billed below the input price).
    pub cached_input_tokens: u64,
    /// Input written to the provider's prompt cache (Anthropic bills it above the input price).
    pub cache_write_tokens: u64,
    /// Output spent on reasoning (thinking), where reported.
    pub reasoning_tokens: u64,
}

// === impl Usage ===

impl Usage {
    /// Plain counts, nothing cached or reasoned.
    pub fn tokens(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            ..Self::default()
        }
    }
}
