//! `GET /v1/usage?from=&to=&group_by=none|key|model|provider|day&key=`: totals (requests, input
//! and output tokens, cost) from the Postgres ledger or the file sink. A non-admin key sees only
//! its own rows; an admin key (or an open gateway) sees all, optionally filtered by `key`.
//! `from`/`to` are Unix seconds, UTC dates or RFC 3339, defaulting to the start of the current
//! UTC month and now. Costs are decimal strings: exact, unlike JSON numbers.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::clock::{parse_timestamp, unix_micros};
use crate::error::{ErrorKind, GatewayError};
use crate::usage::partitions::Month;
use crate::usage::totals::{Group, Query};

pub async fn handle(
    ctx: &RequestCtx,
    req: &Request<Incoming>,
) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let Some(ledger) = ctx.app.ledger.as_ref() else {
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            "usage totals need usage.sink: postgres or file",
        )
        .with_code("usage_not_available")
        .into());
    };
    let params = query_params(req.uri().query().unwrap_or(""));
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let group = Group::parse(param("group_by").unwrap_or("none")).ok_or_else(|| {
        GatewayError::invalid_request("'group_by' must be none, key, model, provider or day")
            .with_param("group_by")
    })?;
    let time = |name: &'static str, default: i64| match param(name) {
        None => Ok(default),
        Some(text) => parse_timestamp(text).ok_or_else(|| {
            GatewayError::invalid_request(format!(
                "invalid '{name}': use Unix seconds, a date (2026-11-01) or RFC 3339"
            ))
            .with_param(name)
        }),
    };
    let query = Query {
        group,
        from_us: time("from", Month::now().start_micros())?,
        to_us: time("to", unix_micros())?,
        // A non-admin key is scoped to itself whatever it asks for.
        key: match &key {
            Some(k) if !k.admin => Some(k.name.to_string()),
            _ => param("key").map(str::to_owned),
        },
    };
    let totals = ledger.totals(query.clone()).await.map_err(|e| {
        GatewayError::new(
            ErrorKind::NoHealthyRoute,
            format!("usage totals unavailable: {e}"),
        )
    })?;
    let data: Vec<_> = totals.iter().map(|t| t.to_json()).collect();
    let body = json!({
        "object": "list", "group_by": group.name(), "from": query.from_us.div_euclid(1_000_000),
        "to": query.to_us.div_euclid(1_000_000), "key": query.key, "data": data,
    });
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
