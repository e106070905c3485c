//! The `routing_rules` table.

use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row};

use super::common::{ControlError, commit, delete, positive};

/// A routing rule as the admin API shows it: its id and its fields, side by side in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteRow {
    pub id: i64,
    #[serde(flatten)]
    pub fields: RouteFields,
}

/// A new route's fields (the body of POST /admin/v1/routes), or a route's fields after a PATCH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFields {
    pub model: String,
    pub provider: String,
    pub upstream_model: String,
    #[serde(default = "one")]
    pub priority: u32,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub max_rps: Option<u32>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

const SELECT_ROUTES: &str = "SELECT id, model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled FROM routing_rules";

pub async fn list_routes(client: &impl GenericClient) -> Result<Vec<RouteRow>, ControlError> {
    let rows = client
        .query(&format!("{SELECT_ROUTES} ORDER BY id"), &[])
        .await?;
    Ok(rows.iter().map(route_row).collect())
}

pub async fn create_route(
    client: &mut Client,
    r: &RouteFields,
) -> Result<(RouteRow, i64), ControlError> {
    let tx = client.transaction().await?;
    let row = insert_route(&tx, r).await?;
    Ok((row, commit(tx).await?))
}

pub async fn get_route(client: &Client, id: i64) -> Result<RouteRow, ControlError> {
    client
        .query_opt(&format!("{SELECT_ROUTES} WHERE id = $1"), &[&id])
        .await?
        .map(|r| route_row(&r))
        .ok_or_else(|| ControlError::NotFound(format!("no route with id {id}")))
}

pub async fn update_route(
    client: &mut Client,
    id: i64,
    r: &RouteFields,
) -> Result<(RouteRow, i64), ControlError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE routing_rules SET model_name = $2, provider_id = $3, upstream_model = $4,
                    priority = $5, weight = $6, max_rps = $7, is_enabled = $8,
                    updated_at = clock_timestamp()
             WHERE id = $1
             RETURNING id, model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled",
            &[&[&id as &(dyn ToSql + Sync)][..], &Columns::of(r).params()].concat(),
        )
        .await
        .map_err(unknown_model)?
        .ok_or_else(|| ControlError::NotFound(format!("no route with id {id}")))?;
    Ok((route_row(&row), commit(tx).await?))
}

pub async fn delete_route(client: &mut Client, id: i64) -> Result<i64, ControlError> {
    delete(
        client,
        "DELETE FROM routing_rules WHERE id = $1",
        &id,
        || format!("no route with id {id}"),
    )
    .await
}

pub(super) async fn insert_route(
    client: &impl GenericClient,
    r: &RouteFields,
) -> Result<RouteRow, ControlError> {
    let row = client
        .query_one(
            "INSERT INTO routing_rules (model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled",
            &Columns::of(r).params(),
        )
        .await
        .map_err(unknown_model)?;
    Ok(route_row(&row))
}

/// A route's fields as the table's columns (integers as Postgres `integer`s).
struct Columns<'a> {
    fields: &'a RouteFields,
    priority: i32,
    weight: i32,
    max_rps: Option<i32>,
}

impl<'a> Columns<'a> {
    fn of(fields: &'a RouteFields) -> Self {
        Self {
            fields,
            priority: fields.priority.min(i32::MAX as u32) as i32,
            weight: fields.weight.min(i32::MAX as u32) as i32,
            max_rps: fields.max_rps.map(|m| m.min(i32::MAX as u32) as i32),
        }
    }

    /// model_name, provider_id, upstream_model, priority, weight, max_rps, is_enabled.
    fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.fields.model,
            &self.fields.provider,
            &self.fields.upstream_model,
            &self.priority,
            &self.weight,
            &self.max_rps,
            &self.fields.enabled,
        ]
    }
}

fn route_row(row: &Row) -> RouteRow {
    RouteRow {
        id: row.get(0),
        fields: RouteFields {
            model: row.get(1),
            provider: row.get(2),
            upstream_model: row.get(3),
            priority: row.get::<_, i32>(4).max(0) as u32,
            weight: row.get::<_, i32>(5).max(1) as u32,
            max_rps: positive(row.get(6)),
            enabled: row.get(7),
        },
    }
}

/// A route naming a model that does not exist.
fn unknown_model(e: tokio_postgres::Error) -> ControlError {
    match e.code() {
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => ControlError::Invalid {
            field: "model".into(),
            message: "unknown model (create it first: POST /admin/v1/models)".into(),
        },
        _ => e.into(),
    }
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}
