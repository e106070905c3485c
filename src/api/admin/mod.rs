//! `/admin/v1/…`: the control plane's JSON API (DESIGN.md §5 "Control plane"), for admin keys
//! only. Models, routes and keys are read from and written to the control tables; a write
//! answers once this replica serves it (the others follow within a second). Bodies are strict:
//! an unknown or mistyped field is a 400 that names it. One file per table: [`models`],
//! [`routes`], [`keys`]; [`cache`] empties the result cache; this one authorises, dispatches and
//! renders.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::control::Control;
use crate::control::store::ControlError;
use crate::error::{ErrorKind, GatewayError};
use crate::request::invalid;

mod cache;
mod keys;
mod models;
mod routes;

/// Lets an admin key through: another key is a 403; an open gateway (no keys) passes only
/// where `open_passes` (the dashboard's figures), else it is a 401 saying how to make one.
pub fn authorize(
    ctx: &RequestCtx,
    headers: &http::HeaderMap,
    open_passes: bool,
    refusal: &'static str,
) -> Result<(), GatewayError> {
    match admit::authenticate(ctx, headers)? {
        Some(key) if key.admin => Ok(()),
        Some(_) => Err(GatewayError::new(ErrorKind::AdminOnly, refusal)),
        None if open_passes => Ok(()),
        None => Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "The admin API needs an admin key, and this gateway has none: create one with `switchyard keys create --name NAME --admin`.",
        )),
    }
}

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    authorize(
        ctx,
        req.headers(),
        false,
        "The admin API needs an admin key.",
    )?;
    // The result cache is this replica's (or its Redis): no control plane needed.
    if req.uri().path() == "/admin/v1/cache" {
        return Ok(cache::handle(ctx, &req).await?);
    }
    let Some(control) = ctx.app.control.clone() else {
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            "The control plane is not configured (set control.database_url).",
        )
        .with_code("control_plane_not_configured")
        .into());
    };
    let method = req.method().clone();
    let path = req.uri().path()["/admin/v1/".len()..].to_owned();
    let segments: Vec<String> = path.split('/').map(super::percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let body = match method {
        Method::POST | Method::PATCH => super::read_body(ctx, req).await?,
        _ => Default::default(),
    };
    let admin = Admin {
        ctx,
        control: &control,
    };
    let answer = match (&method, segments.as_slice()) {
        (&Method::GET, ["models"]) => admin.list_models().await,
        (&Method::POST, ["models"]) => admin.create_model(&body).await,
        (&Method::GET, ["models", name]) => admin.get_model(name).await,
        (&Method::PATCH, ["models", name]) => admin.patch_model(name, &body).await,
        (&Method::DELETE, ["models", name]) => admin.delete_model(name).await,
        (&Method::GET, ["routes"]) => admin.list_routes().await,
        (&Method::POST, ["routes"]) => admin.create_route(&body).await,
        (&Method::GET, ["routes", id]) => admin.get_route(route_id(id)?).await,
        (&Method::PATCH, ["routes", id]) => admin.patch_route(route_id(id)?, &body).await,
        (&Method::DELETE, ["routes", id]) => admin.delete_route(route_id(id)?).await,
        (&Method::GET, ["keys"]) => admin.list_keys().await,
        (&Method::POST, ["keys"]) => admin.create_key(&body).await,
        (&Method::GET, ["keys", name]) => admin.get_key(name).await,
        (&Method::PATCH, ["keys", name]) => admin.patch_key(name, &body).await,
        (&Method::DELETE, ["keys", name]) => admin.delete_key(name).await,
        (&Method::POST, ["keys", name, "rotate"]) => admin.rotate_key(name, &body).await,
        (_, ["models" | "routes" | "keys"] | ["models" | "routes" | "keys", _])
        | (_, ["keys", _, "rotate"]) => {
            let allow = match segments.as_slice() {
                [_] => "GET, POST",
                [_, _] => "GET, PATCH, DELETE",
                _ => "POST",
            };
            let path = format!("/admin/v1/{path}");
            return Err(GatewayError::method_not_allowed(&method, &path, allow).into());
        }
        _ => {
            return Err(GatewayError::new(
                ErrorKind::NotFound,
                format!("Unknown admin URL: {method} /admin/v1/{path}"),
            )
            .into());
        }
    };
    Ok(answer?)
}

struct Admin<'a> {
    ctx: &'a RequestCtx,
    control: &'a Control,
}

type Answer = Result<Response<Body>, GatewayError>;

// === impl Admin ===

impl Admin<'_> {
    /// A connection for one call; none within the pool's timeouts is a 503.
    async fn conn(&self) -> Result<deadpool_postgres::Object, GatewayError> {
        self.control
            .pool
            .get()
            .await
            .map_err(|e| refused(ControlError::from(e)))
    }
}

fn route_id(text: &str) -> Result<i64, GatewayError> {
    text.parse()
        .map_err(|_| GatewayError::new(ErrorKind::NotFound, format!("no route with id {text:?}")))
}

/// A body as `T`; a bad one is a 400 naming the field.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    crate::request::parse_named(body)
}

fn refused(e: ControlError) -> GatewayError {
    match e {
        ControlError::Unavailable(m) => {
            tracing::warn!(error = %m, "admin call refused: control database unavailable");
            GatewayError::new(
                ErrorKind::ControlUnavailable,
                "The control plane's database is unavailable; try again later.",
            )
        }
        ControlError::NotFound(m) => GatewayError::new(ErrorKind::NotFound, m),
        ControlError::Conflict(m) => GatewayError::new(ErrorKind::Conflict, m),
        ControlError::Invalid { field, message } => invalid(field, message),
    }
}

fn ok(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    super::json(
        status,
        serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
    )
}

fn list(items: &[impl serde::Serialize]) -> Response<Body> {
    ok(StatusCode::OK, &json!({"object": "list", "data": items}))
}

/// A field that may be given as `null` (clear it) or left out (keep it).
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
