//! `/admin/v1/routes`: list, get, create, patch and delete routing rules; a route must name a
//! provider of this gateway's config.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, Answer, list, nullable, ok, parse, refused};
use crate::control::store::{self, RouteFields};
use crate::error::GatewayError;
use crate::request::invalid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutePatch {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    upstream_model: Option<String>,
    #[serde(default)]
    priority: Option<u32>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    max_rps: Option<Option<u32>>,
    #[serde(default)]
    enabled: Option<bool>,
}

// === impl Admin ===

impl Admin<'_> {
    pub(super) async fn list_routes(&self) -> Answer {
        let conn = self.conn().await?;
        let routes = store::list_routes(&**conn).await.map_err(refused)?;
        Ok(list(&routes))
    }

    pub(super) async fn get_route(&self, id: i64) -> Answer {
        let conn = self.conn().await?;
        let route = store::get_route(&conn, id).await.map_err(refused)?;
        Ok(ok(StatusCode::OK, &route))
    }

    pub(super) async fn create_route(&self, body: &[u8]) -> Answer {
        let fields: RouteFields = parse(body)?;
        self.check_route(&fields)?;
        let mut conn = self.conn().await?;
        let (route, generation) = store::create_route(&mut conn, &fields)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::CREATED, &route))
    }

    pub(super) async fn patch_route(&self, id: i64, body: &[u8]) -> Answer {
        let patch: RoutePatch = parse(body)?;
        let mut conn = self.conn().await?;
        let current = store::get_route(&conn, id).await.map_err(refused)?.fields;
        let fields = RouteFields {
            model: patch.model.unwrap_or(current.model),
            provider: patch.provider.unwrap_or(current.provider),
            upstream_model: patch.upstream_model.unwrap_or(current.upstream_model),
            priority: patch.priority.unwrap_or(current.priority),
            weight: patch.weight.unwrap_or(current.weight),
            max_rps: patch.max_rps.unwrap_or(current.max_rps),
            enabled: patch.enabled.unwrap_or(current.enabled),
        };
        self.check_route(&fields)?;
        let (route, generation) = store::update_route(&mut conn, id, &fields)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &route))
    }

    pub(super) async fn delete_route(&self, id: i64) -> Answer {
        let mut conn = self.conn().await?;
        let generation = store::delete_route(&mut conn, id).await.map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &json!({"id": id, "deleted": true})))
    }

    /// A route must name a provider of this gateway's config; its model is checked by the
    /// database (a foreign key).
    fn check_route(&self, r: &RouteFields) -> Result<(), GatewayError> {
        if !self
            .ctx
            .runtime
            .providers
            .iter()
            .any(|p| *p.id == *r.provider)
        {
            return Err(invalid(
                "provider",
                format!("unknown provider {:?}", r.provider),
            ));
        }
        if r.upstream_model.is_empty() {
            return Err(invalid("upstream_model", "must not be empty"));
        }
        if r.weight == 0 {
            return Err(invalid(
                "weight",
                "must be at least 1 (disable the route with enabled: false)",
            ));
        }
        if r.max_rps == Some(0) {
            return Err(invalid("max_rps", "must be at least 1 (or null for none)"));
        }
        if r.priority > i32::MAX as u32 || r.weight > 1_000_000 {
            return Err(invalid(
                "weight",
                "priority and weight must be at most 1000000",
            ));
        }
        Ok(())
    }
}
