//! The Responses API: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`, and
//! `GET /v1/responses/{id}/input_items` (PROTOCOLS.md §10.4). A key sees only its own responses.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::{cache_directives, json, read_body, render};
use crate::body::Body;
use crate::call::admit;
use crate::call::chain;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::responses::responses;
use crate::error::{ErrorKind, GatewayError};
use crate::responses::request::ResponsesRequest;

/// Most input items one page lists.
const MAX_PAGE: usize = 100;

pub async fn create(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let cache = cache_directives(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let request = ResponsesRequest::parse(&body)?;
    Ok(render(responses(ctx, key, request, &body, cache).await?))
}

/// `GET` or `DELETE /v1/responses/{id}`, and `GET /v1/responses/{id}/input_items`.
pub async fn stored(
    ctx: &RequestCtx,
    req: &Request<Incoming>,
    id: &str,
    input_items: bool,
) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let owner = key.as_ref().map(|k| &*k.name);
    if req.method() == Method::DELETE {
        return match chain::delete(&ctx.app, id, owner).await? {
            true => {
                let body = json!({"id": id, "object": "response", "deleted": true});
                Ok(json(StatusCode::OK, body.to_string()))
            }
            false => Err(not_found(id).into()),
        };
    }
    let response = chain::stored(&ctx.app, id, owner)
        .await?
        .ok_or_else(|| not_found(id))?;
    if !input_items {
        return Ok(json(StatusCode::OK, response.response.to_string()));
    }
    let page = page(req.uri().query().unwrap_or(""), &response.input)?;
    Ok(json(StatusCode::OK, page.to_string()))
}

/// One page of input items: `limit` (1–100, default 20), `order` (`desc` by default), `after`.
fn page(query: &str, items: &[Value]) -> Result<Value, GatewayError> {
    let (mut limit, mut ascending, mut after) = (20usize, false, None);
    for (k, v) in query.split('&').filter_map(|p| p.split_once('=')) {
        let v = super::percent_decode(v);
        match k {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        GatewayError::invalid_request("limit must be between 1 and 100")
                            .with_param("limit")
                    })?;
            }
            "order" => {
                ascending = match v.as_str() {
                    "asc" => true,
                    "desc" => false,
                    _ => {
                        return Err(GatewayError::invalid_request("order must be asc or desc")
                            .with_param("order"));
                    }
                };
            }
            "after" => after = Some(v),
            _ => {}
        }
    }
    let ordered: Vec<&Value> = match ascending {
        true => items.iter().collect(),
        false => items.iter().rev().collect(),
    };
    let start = match &after {
        Some(id) => ordered
            .iter()
            .position(|item| item["id"] == id.as_str())
            .map_or(ordered.len(), |at| at + 1),
        None => 0,
    };
    let rest = &ordered[start.min(ordered.len())..];
    let data: Vec<&Value> = rest.iter().take(limit).copied().collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "first_id": data.first().map(|i| &i["id"]),
        "last_id": data.last().map(|i| &i["id"]),
        "has_more": rest.len() > limit,
    }))
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::NotFound,
        format!("Response with id '{id}' not found."),
    )
    .with_code("response_not_found")
}
