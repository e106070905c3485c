//! Model prices and exact costs: integer nano-dollars, never floats, so the ledger's sums are
//! exact to the cent and beyond.

use crate::config::PriceConfig;

/// A model's prices in integer nano-dollars per million tokens: exact for any price written
/// with up to 9 decimals, so the ledger never accumulates float error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    input_nanos_per_1m: u64,
    output_nanos_per_1m: u64,
}

// === impl Price ===

impl Price {
    pub fn from_config(p: Option<&PriceConfig>) -> Self {
        let nanos = |dollars: f64| (dollars * 1e9).round().max(0.0) as u64;
        p.map(|p| Self {
            input_nanos_per_1m: nanos(p.input_per_1m),
            output_nanos_per_1m: nanos(p.output_per_1m),
        })
        .unwrap_or_default()
    }

    /// (input, output) in nano-dollars per million tokens.
    pub fn nanos_per_1m(&self) -> (u64, u64) {
        (self.input_nanos_per_1m, self.output_nanos_per_1m)
    }

    /// The cost of these tokens in dollars, exact to 10 decimals (rounded half up below that).
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> String {
        format_cost(self.cost_units(input_tokens, output_tokens))
    }

    /// The same cost in the ledger's units of 1e-10 dollars.
    pub fn cost_units(&self, input_tokens: u64, output_tokens: u64) -> u128 {
        // tokens × nano$/1M tokens = 1e-15 $ units; u128 cannot overflow for any real count.
        let femto = u128::from(input_tokens) * u128::from(self.input_nanos_per_1m)
            + u128::from(output_tokens) * u128::from(self.output_nanos_per_1m);
        (femto + 50_000) / 100_000
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

    #[test]
    fn costs_are_exact_decimals() {
        let price = Price::from_config(Some(&PriceConfig {
            input_per_1m: 0.15,
            output_per_1m: 0.60,
        }));
        assert_eq!(price.cost(19, 10), "0.0000088500");
        assert_eq!(price.cost(1_000_000, 1_000_000), "0.7500000000");
        assert_eq!(price.cost(0, 0), "0.0000000000");
        // A million requests of 19/10 tokens add up exactly, with no drift.
        assert_eq!(price.cost(19_000_000, 10_000_000), "8.8500000000");
        assert_eq!(Price::from_config(None).cost(123, 456), "0.0000000000");
        let pricey = Price::from_config(Some(&PriceConfig {
            input_per_1m: 2.5,
            output_per_1m: 10.0,
        }));
        assert_eq!(pricey.cost(3, 1), "0.0000175000");
    }
}
