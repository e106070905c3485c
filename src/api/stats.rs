//! `GET /admin/v1/stats`: the live figures the dashboard draws. Admin keys only; an open
//! gateway needs none. Routes and the last 15 minutes of traffic are read from this replica's
//! memory on every call; ledger totals and store counts are cached for a few seconds, since a
//! dashboard polls and they cost queries.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::body::Body;
use crate::call::context::{Rejection, RequestCtx};
use crate::clock::{unix_micros, unix_now};
use crate::routing::health::Availability;
use crate::usage::counts::Usage;
use crate::usage::partitions::Month;
use crate::usage::price::{Price, format_cost};
use crate::usage::totals::{Group, Query, Totals};

/// Most rows per usage table.
const TOP: usize = 50;

/// How long ledger totals and store counts are reused.
const CACHE_FOR: Duration = Duration::from_secs(5);

pub async fn handle(
    ctx: &RequestCtx,
    req: &Request<Incoming>,
) -> Result<Response<Body>, Rejection> {
    super::admin::authorize(
        ctx,
        req.headers(),
        true,
        "The dashboard's figures need an admin key.",
    )?;
    let now = Instant::now();
    let models: Vec<Value> = ctx
        .runtime
        .models()
        .iter()
        .map(|m| {
            let routes: Vec<Value> = m
                .routes()
                .map(|r| {
                    let health = match r.availability(now) {
                        Availability::Healthy => "healthy",
                        Availability::HalfOpen => "half_open",
                        Availability::Ejected => "ejected",
                    };
                    json!({
                        "provider": &*r.provider.id,
                        "upstream_model": r.upstream_model,
                        "priority": r.priority,
                        "weight": r.weight,
                        "max_rps": r.max_rps,
                        "provider_max_rps": r.provider.max_rps,
                        "provider_up": r.provider.is_up(),
                        "health": health,
                        "ejected_for_s": r.health.ejected_until(now).map(|u| (u - now).as_secs_f64().ceil()),
                    })
                })
                .collect();
            json!({
                "name": m.name,
                "type": m.kind.name(),
                "routes": routes,
            })
        })
        .collect();
    let points = crate::stats::series();
    let series = json!({
        "step_s": crate::stats::STEP_SECS,
        "at": points.iter().map(|p| p.at).collect::<Vec<_>>(),
        "requests": points.iter().map(|p| p.requests).collect::<Vec<_>>(),
        "client_errors": points.iter().map(|p| p.client_errors).collect::<Vec<_>>(),
        "server_errors": points.iter().map(|p| p.server_errors).collect::<Vec<_>>(),
        "p50_ms": points.iter().map(|p| p.p50_ms).collect::<Vec<_>>(),
        "p99_ms": points.iter().map(|p| p.p99_ms).collect::<Vec<_>>(),
    });
    let slow = Box::pin(slow_figures(ctx)).await;
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": ctx.app.started.elapsed().as_secs(),
        "now": unix_now(),
        "models": models,
        "series": series,
        "usage": slow["usage"],
        "sessions": slow["sessions"],
        "responses": slow["responses"],
    });
    Ok(super::json(StatusCode::OK, body.to_string()))
}

/// Ledger totals (today and this month, by key and by model) and store counts, cached.
async fn slow_figures(ctx: &RequestCtx) -> Value {
    if let Some(cached) = ctx.app.figures.fresh(CACHE_FOR) {
        return cached;
    }
    let count = |c: Option<(u64, bool)>| match c {
        Some((n, complete)) => json!({"count": n, "complete": complete}),
        None => Value::Null,
    };
    let figures = json!({
        "usage": usage(ctx).await,
        "sessions": count(ctx.app.sessions.count().await),
        "responses": count(ctx.app.responses.count().await),
    });
    ctx.app.figures.store(figures.clone());
    figures
}

async fn usage(ctx: &RequestCtx) -> Value {
    let Some(ledger) = ctx.app.ledger.as_ref() else {
        return Value::Null;
    };
    let to_us = unix_micros();
    let today_us = to_us - to_us.rem_euclid(86_400_000_000);
    let month_us = Month::now().start_micros();
    let mut out = serde_json::Map::new();
    for (period, from_us) in [("today", today_us), ("month", month_us)] {
        let mut groups = serde_json::Map::new();
        for (name, group) in [("by_key", Group::Key), ("by_model", Group::Model)] {
            let query = Query {
                group,
                from_us,
                to_us,
                key: None,
            };
            let rows = match ledger.totals(query).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard: ledger totals unavailable");
                    return Value::Null;
                }
            };
            // The costliest first, and at most TOP of them: a fleet with thousands of keys gets
            // a readable table and a bounded answer.
            let mut rows = rows;
            rows.sort_by(|a, b| b.cost.cmp(&a.cost).then(b.requests.cmp(&a.requests)));
            let rows: Vec<Value> = rows
                .iter()
                .take(TOP)
                .map(|t| {
                    let mut row = json!({
                        "name": t.group, "requests": t.requests, "input_tokens": t.input_tokens,
                        "output_tokens": t.output_tokens, "cached_input_tokens": t.cached_input_tokens,
                        "cache_write_tokens": t.cache_write_tokens, "cost": format_cost(t.cost),
                        "cache_hits": t.cache_hits, "cache_hit_ratio": t.cache_hit_ratio(),
                        "cache_saved_cost": format_cost(t.cache_saved_cost),
                    });
                    // What the prompt cache saved, at the model's price now (a key's rows span
                    // models, so only a model's row can say).
                    if group == Group::Model {
                        row["saved"] = Value::String(format_cost(saved(ctx, t)));
                    }
                    row
                })
                .collect();
            groups.insert(name.into(), Value::Array(rows));
        }
        out.insert(period.into(), Value::Object(groups));
    }
    Value::Object(out)
}

/// The cost the prompt cache saved a model's rows: cached input at the input price less its own.
fn saved(ctx: &RequestCtx, t: &Totals) -> u128 {
    let price = ctx
        .runtime
        .models()
        .iter()
        .find(|m| *m.name == *t.group)
        .map(|m| Price::from_config(m.price.as_ref()))
        .unwrap_or_default();
    let cached = Usage {
        cached_input_tokens: u64::try_from(t.cached_input_tokens).unwrap_or(0),
        ..Usage::tokens(u64::try_from(t.input_tokens).unwrap_or(0), 0)
    };
    price.cache_savings_units(&cached)
}
