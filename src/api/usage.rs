//! `GET /v1/usage?from=&to=&group_by=key|model|provider|day&key=`: totals (requests, input and
//! output tokens, cost) from the Postgres ledger. A non-admin key sees only its own rows; an
//! admin key (or an open gateway) sees all, optionally filtered by `key`. `from`/`to` take
//! anything Postgres reads as a timestamptz (`2026-11-01`, RFC 3339); they default to the start
//! of the current UTC month and now. Costs are decimal strings: exact, unlike JSON numbers.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::{Rejection, RequestCtx};
use crate::body::Body;
use crate::error::{ErrorKind, GatewayError};

/// `(group_by value, SQL expression)`; the expression is chosen from this list, never built from input.
const GROUPS: &[(&str, &str)] = &[
    ("none", "'all'"),
    ("key", "coalesce(key_name, '')"),
    ("model", "model_name"),
    ("provider", "coalesce(provider_id, '')"),
    (
        "day",
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    ),
];

pub async fn handle(
    ctx: &RequestCtx,
    req: &Request<Incoming>,
) -> Result<Response<Body>, Rejection> {
    let key = ctx.runtime.keys.authenticate(req.headers())?;
    let Some(pool) = ctx.app.usage_db.as_ref() else {
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            "usage totals need usage.sink: postgres",
        )
        .with_code("usage_not_available")
        .into());
    };
    let params = query_params(req.uri().query().unwrap_or(""));
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let group_by = param("group_by").unwrap_or_else(|| "none".into());
    let expr = GROUPS
        .iter()
        .find(|(name, _)| *name == group_by)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            GatewayError::invalid_request("'group_by' must be key, model, provider or day")
                .with_param("group_by")
        })?;
    // A non-admin key is scoped to itself whatever it asks for.
    let key_filter = match &key {
        Some(k) if !k.admin => Some(k.name.to_string()),
        _ => param("key"),
    };
    let client = pool.get().await.map_err(|e| {
        GatewayError::new(
            ErrorKind::NoHealthyRoute,
            format!("usage database unavailable: {e}"),
        )
    })?;
    let bounds = client
        .query_one(
            "SELECT coalesce($1::text::timestamptz, date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS lo,
                    coalesce($2::text::timestamptz, now()) AS hi",
            &[&param("from"), &param("to")],
        )
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) if db.code().code().starts_with("22") => {
                GatewayError::invalid_request(format!("invalid 'from' or 'to': {}", db.message()))
            }
            _ => GatewayError::new(ErrorKind::Internal, format!("usage query failed: {e}")),
        })?;
    let (lo, hi): (std::time::SystemTime, std::time::SystemTime) = (bounds.get(0), bounds.get(1));
    let sql = format!(
        "SELECT {expr}, count(*)::int8, coalesce(sum(input_tokens), 0)::int8, coalesce(sum(output_tokens), 0)::int8,
                coalesce(sum(cost), 0)::numeric(20,10)::text
         FROM request_logs
         WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR key_name = $3)
         GROUP BY 1 ORDER BY 1"
    );
    let rows = client
        .query(&sql, &[&lo, &hi, &key_filter])
        .await
        .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("usage query failed: {e}")))?;
    let data: Vec<Value> = rows
        .iter()
        .map(|r| json!({"group": r.get::<_, String>(0), "requests": r.get::<_, i64>(1), "input_tokens": r.get::<_, i64>(2),
            "output_tokens": r.get::<_, i64>(3), "cost": r.get::<_, String>(4)}))
        .collect();
    let unix = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let (from, to) = (unix(lo), unix(hi));
    let body = json!({"object": "list", "group_by": group_by, "from": from, "to": to, "key": key_filter, "data": data});
    Ok(super::json(StatusCode::OK, body.to_string()))
}

fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                super::percent_decode(&k.replace('+', " ")),
                super::percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}
