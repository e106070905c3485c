//! What keys spent against their budgets. Admission reserves a request's maximum cost (its
//! prompt plus `max_tokens` at the model's prices) while the spend so far is under the budget;
//! the outcome settles it to the ledger row's exact cost, so concurrent requests cannot race past
//! a budget by more than one request's cost. The spend lives in Redis (`limits.redis_url`, shared
//! by every replica) or in this process, and a counter that is missing (a restart, a new period,
//! Redis emptied) is rebuilt from the ledger's hourly totals before it is used.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::types::scripts::Script;
use tokio::time::Instant;

use super::budget::{Budget, format_usd, period_end, period_start};
use super::keys::ApiKey;
use super::shared::SharedRedis;
use crate::clock::unix_now;
use crate::config::{BudgetPeriod, OnRedisError};
use crate::error::{ErrorKind, GatewayError};

/// A key's spend in one period. KEYS[1] = the counter; ARGV = units to reserve, the budget.
/// Returns {-1, 0} when the counter is missing (rebuild it), {0, spent} when the budget is
/// spent, {1, spent after}.
const RESERVE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {-1, 0} end
v = tonumber(v)
if v >= tonumber(ARGV[2]) then return {0, v} end
return {1, redis.call('INCRBY', KEYS[1], ARGV[1])}
";

/// Creates a missing counter. ARGV = its value, its Unix expiry.
const SEED: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return 1
";

/// Corrects a reservation by ARGV[1] (negative: a refund) if the counter still exists: one that
/// expired or was lost is rebuilt from the ledger, which has the exact cost.
const CHARGE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return 0
";

/// A counter rebuilt while the ledger could not answer counts from 0 for this long, then is
/// rebuilt again.
const PROVISIONAL: Duration = Duration::from_secs(60);

/// The budgeted keys' spend: the scripts that keep it in Redis, and this process's counters
/// (without Redis, or while it is down under `fail_open`).
pub struct Budgets {
    redis: Option<Arc<SharedRedis>>,
    local: Mutex<HashMap<Arc<str>, Counter>>,
    reserve: Script,
    seed: Script,
    charge: Script,
}

/// A key's spend in this process.
#[derive(Debug)]
struct Counter {
    period_start: u64,
    units: i64,
    /// Set when the ledger could not say what was spent before: rebuilt again after this.
    provisional_until: Option<Instant>,
}

/// A reservation against a key's budget.
#[derive(Debug, Clone)]
pub struct Spend {
    key: Arc<str>,
    period_start: u64,
    units: i64,
    shared: bool,
}

// === impl Budgets ===

impl Budgets {
    pub fn new(redis: Option<Arc<SharedRedis>>) -> Self {
        Self {
            redis,
            local: Mutex::new(HashMap::new()),
            reserve: Script::from_lua(RESERVE),
            seed: Script::from_lua(SEED),
            charge: Script::from_lua(CHARGE),
        }
    }

    /// Reserves `units` (the request's maximum cost) against the key's budget, or refuses with
    /// 429 `insufficient_quota` when the period's spend has reached it. `spent_before` rebuilds a
    /// missing counter: the ledger's total for the key since the period's start (`None` if the
    /// ledger cannot answer).
    pub async fn reserve<F, Fut>(
        &self,
        key: &ApiKey,
        budget: Budget,
        units: i64,
        spent_before: F,
    ) -> Result<Spend, GatewayError>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = Option<i64>>,
    {
        let now = unix_now();
        let period_start = period_start(budget.period, now);
        let expires = period_end(budget.period, now) + 86_400;
        let spend = |shared| Spend {
            key: key.name.clone(),
            period_start,
            units,
            shared,
        };
        let mut rebuild = Some(spent_before);
        if let Some(shared) = self.redis.as_deref().filter(|s| !s.is_down()) {
            let counter = counter_key(&key.name, period_start);
            let mut seeded = false;
            loop {
                let args = vec![units.to_string(), budget.units.to_string()];
                let reply = shared
                    .redis
                    .script::<Vec<i64>>(&self.reserve, vec![counter.clone()], args)
                    .await;
                match reply.as_deref() {
                    Ok([1, ..]) => return Ok(spend(true)),
                    Ok([0, spent, ..]) => return Err(exhausted(key, budget, *spent, now)),
                    Ok(_) if seeded => break,
                    Ok(_) => {
                        seeded = true;
                        let rebuilt = match rebuild.take() {
                            Some(rebuild) => rebuild(period_start).await,
                            None => None,
                        };
                        let (value, expiry) = match rebuilt {
                            Some(spent) => (spent, expires),
                            // Counted from 0 for a minute, then rebuilt again.
                            None => (0, now + PROVISIONAL.as_secs()),
                        };
                        let args = vec![value.to_string(), expiry.to_string()];
                        if let Err(e) = shared
                            .redis
                            .script::<i64>(&self.seed, vec![counter.clone()], args)
                            .await
                        {
                            shared.trip(&e);
                            break;
                        }
                    }
                    Err(e) => {
                        shared.trip(e);
                        break;
                    }
                }
            }
            if shared.on_error == OnRedisError::FailClosed {
                return Err(GatewayError::new(
                    ErrorKind::RateLimited,
                    "Budgets cannot be checked right now (limits.on_redis_error: fail_closed).",
                )
                .with_code("rate_limit_unavailable")
                .with_retry_after(Some(Duration::from_secs(1))));
            }
        }
        // This process's counter (no Redis, or Redis down and fail_open).
        let fresh = |c: &Counter| {
            c.period_start == period_start && c.provisional_until.is_none_or(|t| Instant::now() < t)
        };
        let current = {
            let spend = self.local.lock().unwrap_or_else(|p| p.into_inner());
            spend.get(&key.name).filter(|c| fresh(c)).map(|c| c.units)
        };
        if current.is_none() {
            let rebuilt = match rebuild.take() {
                Some(rebuild) => rebuild(period_start).await,
                None => None,
            };
            let rebuilt = Counter {
                period_start,
                units: rebuilt.unwrap_or(0),
                provisional_until: rebuilt.is_none().then(|| Instant::now() + PROVISIONAL),
            };
            let mut all = self.local.lock().unwrap_or_else(|p| p.into_inner());
            // Another request may have rebuilt it meanwhile (and counted since): keep that one.
            match all.get_mut(&key.name) {
                Some(counter) if fresh(counter) => {}
                Some(counter) => *counter = rebuilt,
                None => {
                    all.insert(key.name.clone(), rebuilt);
                }
            }
        }
        let mut all = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let Some(counter) = all.get_mut(&key.name) else {
            return Ok(spend(false));
        };
        if counter.units >= budget.units {
            return Err(exhausted(key, budget, counter.units, now));
        }
        counter.units = counter.units.saturating_add(units);
        Ok(spend(false))
    }

    /// Settles a reservation to the request's exact cost (0 when nothing was generated).
    pub async fn settle(&self, spend: &Spend, cost_units: i64) {
        let delta = cost_units.saturating_sub(spend.units);
        if delta == 0 {
            return;
        }
        if let (true, Some(shared)) = (spend.shared, self.redis.as_deref()) {
            let counter = counter_key(&spend.key, spend.period_start);
            let charged = shared
                .redis
                .script::<i64>(&self.charge, vec![counter], vec![delta.to_string()])
                .await;
            if let Err(e) = charged {
                tracing::warn!(error = %e, key = %spend.key, "budgets: a reservation could not be settled");
            }
            return;
        }
        let mut all = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(counter) = all
            .get_mut(&spend.key)
            .filter(|c| c.period_start == spend.period_start)
        {
            counter.units = counter.units.saturating_add(delta);
        }
    }

    /// What the key has spent this period as the budget store counts it (reservations of
    /// requests in flight included); `None` when no counter exists yet.
    pub async fn spent(&self, name: &str, period: BudgetPeriod) -> Option<i64> {
        let period_start = period_start(period, unix_now());
        if let Some(shared) = self.redis.as_deref().filter(|s| !s.is_down()) {
            let counter = counter_key(name, period_start);
            let reply = shared
                .redis
                .script::<i64>(&self.charge, vec![counter], vec!["0".to_owned()])
                .await;
            // CHARGE by 0 answers the value, or 0 for a missing counter.
            return reply.ok().filter(|v| *v != 0);
        }
        let all = self.local.lock().unwrap_or_else(|p| p.into_inner());
        all.get(name)
            .filter(|c| c.period_start == period_start)
            .map(|c| c.units)
    }
}

fn counter_key(name: &str, period_start: u64) -> String {
    format!("switchyard:spend:{{{name}}}:{period_start}")
}

fn exhausted(key: &ApiKey, budget: Budget, spent: i64, now: u64) -> GatewayError {
    crate::metrics::rate_limited(&key.name);
    let period = match budget.period {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Month => "month",
    };
    let renews = period_end(budget.period, now);
    GatewayError::new(
        ErrorKind::BudgetExhausted,
        format!(
            "You exceeded the budget of key {}: ${} of ${} spent this {period} (UTC); it renews at {}.",
            key.name,
            format_usd(spent),
            format_usd(budget.units),
            crate::clock::utc_date(renews as i64 * 1_000_000),
        ),
    )
}
