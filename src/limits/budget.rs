//! Spend ceilings per key (DESIGN.md §5 "Budgets"): dollars per UTC day or month, counted in
//! the ledger's exact unit (1e-10 dollar) so a budget compares with summed costs without float
//! error. `spend` holds what keys spent against them.

use crate::clock::{civil_from_days, days_from_civil};
use crate::config::{BudgetConfig, BudgetPeriod};

/// Dollars per unit of the ledger's `numeric(30,10)` costs.
pub const UNITS_PER_USD: i64 = 10_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The ceiling in 1e-10 dollars.
    pub units: i64,
    pub period: BudgetPeriod,
}

// === impl Budget ===

impl Budget {
    pub fn from_config(b: &BudgetConfig) -> Self {
        Self {
            units: usd_to_units(b.usd),
            period: b.period,
        }
    }

    /// The ceiling in dollars, as the API shows it.
    pub fn usd(&self) -> f64 {
        self.units as f64 / UNITS_PER_USD as f64
    }
}

/// Units as dollars with up to 10 decimals, trailing zeros dropped.
pub fn format_usd(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let units = units.unsigned_abs();
    let per = UNITS_PER_USD as u64;
    let frac = format!("{:010}", units % per);
    let frac = frac.trim_end_matches('0');
    match frac.is_empty() {
        true => format!("{sign}{}", units / per),
        false => format!("{sign}{}.{frac}", units / per),
    }
}

/// Dollars (as a config or an API body writes them) in 1e-10 units, rounded; saturating.
pub fn usd_to_units(usd: f64) -> i64 {
    (usd * UNITS_PER_USD as f64)
        .round()
        .clamp(0.0, i64::MAX as f64) as i64
}

/// The start of the UTC period containing `unix_secs`, in Unix seconds.
pub fn period_start(period: BudgetPeriod, unix_secs: u64) -> u64 {
    let days = (unix_secs / 86_400) as i64;
    let start_day = match period {
        BudgetPeriod::Day => days,
        BudgetPeriod::Month => {
            let (y, m, _) = civil_from_days(days);
            days_from_civil(y, m, 1)
        }
    };
    start_day.max(0) as u64 * 86_400
}

/// The start of the next period after the one containing `unix_secs`.
pub fn period_end(period: BudgetPeriod, unix_secs: u64) -> u64 {
    let start = period_start(period, unix_secs);
    match period {
        BudgetPeriod::Day => start + 86_400,
        BudgetPeriod::Month => {
            let (y, m, _) = civil_from_days((start / 86_400) as i64);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(y, m, 1).max(0) as u64 * 86_400
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_and_months() {
        // 2026-11-30T23:59:59Z
        let t = 1_796_083_199;
        assert_eq!(period_start(BudgetPeriod::Day, t), 1_795_996_800);
        assert_eq!(period_end(BudgetPeriod::Day, t), 1_796_083_200);
        // 2026-11-01 and 2026-12-01
        assert_eq!(period_start(BudgetPeriod::Month, t), 1_793_491_200);
        assert_eq!(period_end(BudgetPeriod::Month, t), 1_796_083_200);
        // December rolls into the next year: 2026-12-15 → 2027-01-01.
        assert_eq!(
            period_end(BudgetPeriod::Month, 1_797_292_800),
            1_798_761_600
        );
    }

    #[test]
    fn units_print_as_dollars() {
        assert_eq!(format_usd(500_000_000_000), "50");
        assert_eq!(format_usd(1), "0.0000000001");
        assert_eq!(format_usd(12_345_000_000), "1.2345");
        assert_eq!(format_usd(-5_000_000_000), "-0.5");
    }

    #[test]
    fn dollars_become_exact_units() {
        assert_eq!(usd_to_units(50.0), 500_000_000_000);
        assert_eq!(usd_to_units(0.0000000001), 1);
        assert_eq!(usd_to_units(-3.0), 0);
        assert_eq!(usd_to_units(f64::INFINITY), i64::MAX);
    }
}
