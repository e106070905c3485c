//! Model prices and exact costs: integer nano-dollars, never floats, so the ledger's sums are
//! exact to the cent and beyond.

use super::counts::Usage;
use crate::config::PriceConfig;
use crate::usage::record::Unit;

/// A model's prices in integer nano-dollars per million tokens: exact for any price written
/// with up to 9 decimals, so the ledger never accumulates float error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    input_nanos_per_1m: u64,
    output_nanos_per_1m: u64,
    /// Input read from a prompt cache; the input price unless configured.
    cached_input_nanos_per_1m: u64,
    /// Input written to a prompt cache; the input price unless configured.
    cache_write_nanos_per_1m: u64,
    /// Rerank searches, per thousand.
    search_nanos_per_1k: u64,
    /// Images, each.
    image_nanos: u64,
    /// Audio in, per minute.
    minute_nanos: u64,
    /// Speech input, per million characters.
    chars_nanos_per_1m: u64,
}

// === impl Price ===

impl Price {
    pub fn from_config(p: Option<&PriceConfig>) -> Self {
        let nanos = |dollars: f64| (dollars * 1e9).round().max(0.0) as u64;
        p.map(|p| {
            let input = nanos(p.input_per_1m);
            Self {
                input_nanos_per_1m: input,
                output_nanos_per_1m: nanos(p.output_per_1m),
                cached_input_nanos_per_1m: p.cached_input_per_1m.map_or(input, nanos),
                cache_write_nanos_per_1m: p.cache_write_per_1m.map_or(input, nanos),
                search_nanos_per_1k: p.per_1k_searches.map_or(0, nanos),
                image_nanos: p.per_image.map_or(0, nanos),
                minute_nanos: p.per_minute.map_or(0, nanos),
                chars_nanos_per_1m: p.per_1m_chars.map_or(0, nanos),
            }
        })
        .unwrap_or_default()
    }

    /// (input, output) in nano-dollars per million tokens.
    pub fn nanos_per_1m(&self) -> (u64, u64) {
        (self.input_nanos_per_1m, self.output_nanos_per_1m)
    }

    /// The cost of this usage in dollars, exact to 10 decimals (rounded half up below that).
    pub fn cost(&self, usage: &Usage) -> String {
        format_cost(self.cost_units(usage))
    }

    /// The same cost in the ledger's units of 1e-10 dollars: the input not read from or written
    /// to a cache at the input price, cached input and cache writes at theirs, all output at the
    /// output price (reasoning is output). No token is priced twice.
    pub fn cost_units(&self, usage: &Usage) -> u128 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        let plain = usage.input_tokens - cached - written;
        // tokens × nano$/1M tokens = 1e-15 $ units; u128 cannot overflow for any real count.
        let femto = u128::from(plain) * u128::from(self.input_nanos_per_1m)
            + u128::from(cached) * u128::from(self.cached_input_nanos_per_1m)
            + u128::from(written) * u128::from(self.cache_write_nanos_per_1m)
            + u128::from(usage.output_tokens) * u128::from(self.output_nanos_per_1m);
        (femto + 50_000) / 100_000
    }

    /// The cost of `units` (of the kind the model's unit price is for) in 1e-10 $ units.
    pub fn units_cost(&self, unit: Unit, units: u64) -> u128 {
        match unit {
            // searches × nano$/1k searches = 1e-12 $ units.
            Unit::Searches => (u128::from(units) * u128::from(self.search_nanos_per_1k) + 50) / 100,
            // images × nano$ = 1e-9 $ units.
            Unit::Images => u128::from(units) * u128::from(self.image_nanos) * 10,
            // seconds × nano$/minute / 60 = 1e-9 $ units.
            Unit::Seconds => (u128::from(units) * u128::from(self.minute_nanos) * 10 + 30) / 60,
            // characters × nano$/1M characters = 1e-15 $ units.
            Unit::Characters => {
                (u128::from(units) * u128::from(self.chars_nanos_per_1m) + 50_000) / 100_000
            }
        }
    }

    /// What reading `usage`'s cached input saved against the full input price (1e-10 $ units).
    pub fn cache_savings_units(&self, usage: &Usage) -> u128 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let per = self
            .input_nanos_per_1m
            .saturating_sub(self.cached_input_nanos_per_1m);
        (u128::from(cached) * u128::from(per) + 50_000) / 100_000
    }
}

/// Dollars in units of 1e-10 (the ledger's `numeric(20,10)`) as a decimal string.
pub fn format_cost(units: u128) -> String {
    let mut whole = itoa::Buffer::new();
    let mut frac = itoa::Buffer::new();
    let frac = frac.format(units % 10_000_000_000);
    let mut out = String::with_capacity(24);
    out.push_str(whole.format(units / 10_000_000_000));
    out.push('.');
    // Ten places: the fraction's zeros before its digits.
    out.extend(std::iter::repeat_n('0', 10 - frac.len()));
    out.push_str(frac);
    out
}

/// A cost string of the ledger (up to 10 decimals) in units of 1e-10 dollars, exactly.
pub fn parse_cost(text: &str) -> Option<u128> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || frac.len() > 10 || !digits(whole) || !digits(frac) {
        return None;
    }
    let frac: u128 = format!("{frac:0<10}").parse().ok()?;
    whole
        .parse::<u128>()
        .ok()?
        .checked_mul(10_000_000_000)?
        .checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_strings_round_trip_exactly() {
        assert_eq!(parse_cost("0.0005172000"), Some(5_172_000));
        assert_eq!(parse_cost("12.5"), Some(125_000_000_000));
        assert_eq!(format_cost(125_000_000_000), "12.5000000000");
        assert_eq!(format_cost(0), "0.0000000000");
        assert_eq!(format_cost(1), "0.0000000001");
        assert_eq!(format_cost(9_999_999_999), "0.9999999999");
        assert_eq!(format_cost(10_000_000_000), "1.0000000000");
        for units in [
            0,
            1,
            99,
            5_172_000,
            10_000_000_001,
            u128::from(u64::MAX) * 7,
        ] {
            assert_eq!(parse_cost(&format_cost(units)), Some(units), "{units}");
        }
        for bad in ["", ".5", "1.00000000001", "-1", "1e3"] {
            assert_eq!(parse_cost(bad), None, "{bad:?}");
        }
    }

    fn price(input: f64, output: f64, cached: Option<f64>, write: Option<f64>) -> Price {
        Price::from_config(Some(&PriceConfig {
            input_per_1m: input,
            output_per_1m: output,
            cached_input_per_1m: cached,
            cache_write_per_1m: write,
            ..PriceConfig::default()
        }))
    }

    #[test]
    fn costs_are_exact_decimals() {
        let price = price(0.15, 0.60, None, None);
        let cost = |i, o| price.cost(&Usage::tokens(i, o));
        assert_eq!(cost(19, 10), "0.0000088500");
        assert_eq!(cost(1_000_000, 1_000_000), "0.7500000000");
        assert_eq!(cost(0, 0), "0.0000000000");
        // A million requests of 19/10 tokens add up exactly, with no drift.
        assert_eq!(cost(19_000_000, 10_000_000), "8.8500000000");
        assert_eq!(
            Price::from_config(None).cost(&Usage::tokens(123, 456)),
            "0.0000000000"
        );
        let pricey = self::price(2.5, 10.0, None, None);
        assert_eq!(pricey.cost(&Usage::tokens(3, 1)), "0.0000175000");
    }

    #[test]
    fn cached_input_and_cache_writes_are_priced_as_such_and_never_twice() {
        // Claude Sonnet's prices: input 3, output 15, cache read 0.30, cache write 3.75.
        let sonnet = price(3.0, 15.0, Some(0.30), Some(3.75));
        let usage = Usage {
            input_tokens: 100_000,
            output_tokens: 1_000,
            cached_input_tokens: 90_000,
            cache_write_tokens: 8_000,
            reasoning_tokens: 400,
        };
        // 2,000 × 3 + 90,000 × 0.30 + 8,000 × 3.75 + 1,000 × 15 (reasoning is part of output),
        // per million: 0.006 + 0.027 + 0.03 + 0.015.
        assert_eq!(sonnet.cost(&usage), "0.0780000000");
        // Without a cache price, cached tokens cost the input price: as if uncached.
        let plain = price(3.0, 15.0, None, None);
        assert_eq!(
            plain.cost(&usage),
            plain.cost(&Usage::tokens(100_000, 1_000))
        );
        // Parts that claim more than the input are capped by it, in order: cached, then written.
        let odd = Usage {
            input_tokens: 10,
            cached_input_tokens: 8,
            cache_write_tokens: 8,
            ..Usage::tokens(10, 0)
        };
        // 8 × 0.30 + 2 × 3.75 per million.
        assert_eq!(sonnet.cost(&odd), "0.0000099000");
        // Savings: 90,000 × (3 − 0.30) per million.
        assert_eq!(
            format_cost(sonnet.cache_savings_units(&usage)),
            "0.2430000000"
        );
        // A cache price of half a nano-dollar per token rounds exactly.
        let gpt = price(0.15, 0.60, Some(0.075), None);
        let u = Usage {
            cached_input_tokens: 1,
            ..Usage::tokens(3, 0)
        };
        // 2 × 0.15 + 1 × 0.075 per million = 0.000000375.
        assert_eq!(gpt.cost(&u), "0.0000003750");
    }
}
