//! `/admin/v1/…`: the control plane's JSON API (DESIGN.md §5 "Control plane"), for admin keys
//! only. Models, routes and keys are read from and written to the control tables; a write
//! answers once this replica serves it (the others follow within a second). Bodies are strict:
//! an unknown or mistyped field is a 400 that names it.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::clock::{parse_timestamp, unix_now};
use crate::config::{BudgetConfig, ConfigDuration, ModelType, PriceConfig, Tokenizer};
use crate::control::Control;
use crate::control::store::{self, ControlError, KeyPatch, ModelRow, NewKey, RouteFields};
use crate::error::{ErrorKind, GatewayError};
use crate::limits::budget::{format_usd, period_start};
use crate::request::invalid;

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

// === request bodies ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelPatch {
    #[serde(rename = "type", default)]
    kind: Option<ModelType>,
    #[serde(default, deserialize_with = "nullable")]
    context_window: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    price: Option<Option<PriceConfig>>,
    #[serde(default, deserialize_with = "nullable")]
    tokenizer: Option<Option<Tokenizer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteBody {
    model: String,
    provider: String,
    upstream_model: String,
    #[serde(default = "one")]
    priority: u32,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    max_rps: Option<u32>,
    #[serde(default = "yes")]
    enabled: bool,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    rpm: Option<u32>,
    #[serde(default)]
    tpm: Option<u32>,
    #[serde(default)]
    budget: Option<BudgetConfig>,
    #[serde(default)]
    expires_at: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPatchBody {
    #[serde(default)]
    admin: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    tpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    budget: Option<Option<BudgetConfig>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<Timestamp>>,
    #[serde(default)]
    revoked: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    grace: Option<ConfigDuration>,
}

/// Unix seconds, a date or RFC 3339.
#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Seconds(i64),
    Text(String),
}

// === impl Admin ===

impl Admin<'_> {
    async fn list_models(&self) -> Answer {
        let conn = self.conn().await?;
        let models = store::list_models(&**conn).await.map_err(refused)?;
        Ok(list(&models))
    }

    async fn get_model(&self, name: &str) -> Answer {
        let conn = self.conn().await?;
        let model = store::get_model(&conn, name).await.map_err(refused)?;
        Ok(ok(StatusCode::OK, &model))
    }

    async fn create_model(&self, body: &[u8]) -> Answer {
        let model: ModelRow = parse(body)?;
        check_model(&model)?;
        let mut conn = self.conn().await?;
        let generation = store::create_model(&mut conn, &model)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::CREATED, &model))
    }

    async fn patch_model(&self, name: &str, body: &[u8]) -> Answer {
        let patch: ModelPatch = parse(body)?;
        let mut conn = self.conn().await?;
        let mut model = store::get_model(&conn, name).await.map_err(refused)?;
        if let Some(kind) = patch.kind {
            model.kind = kind;
        }
        if let Some(context_window) = patch.context_window {
            model.context_window = context_window;
        }
        if let Some(price) = patch.price {
            model.price = price;
        }
        if let Some(tokenizer) = patch.tokenizer {
            model.tokenizer = tokenizer;
        }
        check_model(&model)?;
        let generation = store::update_model(&mut conn, &model)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &model))
    }

    async fn delete_model(&self, name: &str) -> Answer {
        let mut conn = self.conn().await?;
        let generation = store::delete_model(&mut conn, name)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &json!({"name": name, "deleted": true})))
    }

    async fn list_routes(&self) -> Answer {
        let conn = self.conn().await?;
        let routes = store::list_routes(&**conn).await.map_err(refused)?;
        Ok(list(&routes))
    }

    async fn get_route(&self, id: i64) -> Answer {
        let conn = self.conn().await?;
        let route = store::get_route(&conn, id).await.map_err(refused)?;
        Ok(ok(StatusCode::OK, &route))
    }

    async fn create_route(&self, body: &[u8]) -> Answer {
        let b: RouteBody = parse(body)?;
        let fields = RouteFields {
            model: b.model,
            provider: b.provider,
            upstream_model: b.upstream_model,
            priority: b.priority,
            weight: b.weight,
            max_rps: b.max_rps,
            enabled: b.enabled,
        };
        self.check_route(&fields)?;
        let mut conn = self.conn().await?;
        let (route, generation) = store::create_route(&mut conn, &fields)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::CREATED, &route))
    }

    async fn patch_route(&self, id: i64, body: &[u8]) -> Answer {
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

    async fn delete_route(&self, id: i64) -> Answer {
        let mut conn = self.conn().await?;
        let generation = store::delete_route(&mut conn, id).await.map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &json!({"id": id, "deleted": true})))
    }

    async fn list_keys(&self) -> Answer {
        let conn = self.conn().await?;
        let keys = store::list_keys(&conn).await.map_err(refused)?;
        let mut shown = Vec::with_capacity(keys.len());
        for key in keys {
            shown.push(self.with_spend(&key).await);
        }
        Ok(list(&shown))
    }

    async fn get_key(&self, name: &str) -> Answer {
        let conn = self.conn().await?;
        let key = store::get_key(&conn, name).await.map_err(refused)?;
        Ok(ok(StatusCode::OK, &self.with_spend(&key).await))
    }

    /// A key as shown, with what it spent this budget period (`null` without a budget): the
    /// budget store's count (reservations in flight included), else the ledger's.
    async fn with_spend(&self, key: &store::KeyRow) -> Value {
        let mut value = serde_json::to_value(key).unwrap_or(Value::Null);
        let spend = match &key.budget {
            None => Value::Null,
            Some(b) => {
                let start = period_start(b.period, unix_now());
                let units = match self.ctx.app.limits.budgets.spent(&key.name, b.period).await {
                    Some(units) => units,
                    None => admit::spent_before(self.ctx, key.name.clone())(start)
                        .await
                        .unwrap_or(0),
                };
                json!({"period_start": start, "usd": format_usd(units)})
            }
        };
        if let Value::Object(map) = &mut value {
            map.insert("spend".into(), spend);
        }
        value
    }

    async fn create_key(&self, body: &[u8]) -> Answer {
        let b: KeyBody = parse(body)?;
        let fields = NewKey {
            name: b.name,
            admin: b.admin,
            models: b.models,
            rpm: b.rpm,
            tpm: b.tpm,
            budget: b.budget,
            expires_at: b.expires_at.map(|t| t.seconds("expires_at")).transpose()?,
        };
        check_key_name(&fields.name)?;
        check_key_fields(
            fields.models.as_ref(),
            fields.rpm,
            fields.tpm,
            fields.budget.as_ref(),
        )?;
        let mut conn = self.conn().await?;
        let (key, plaintext, generation) = store::create_key(&mut conn, &fields)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(with_plaintext(
            StatusCode::CREATED,
            self.with_spend(&key).await,
            &plaintext,
        ))
    }

    async fn patch_key(&self, name: &str, body: &[u8]) -> Answer {
        let b: KeyPatchBody = parse(body)?;
        let patch = KeyPatch {
            admin: b.admin,
            models: b.models,
            rpm: b.rpm,
            tpm: b.tpm,
            budget: b.budget,
            expires_at: match b.expires_at {
                None => None,
                Some(None) => Some(None),
                Some(Some(t)) => Some(Some(t.seconds("expires_at")?)),
            },
            revoked: b.revoked,
        };
        check_key_fields(
            patch.models.as_ref().and_then(Option::as_ref),
            patch.rpm.flatten(),
            patch.tpm.flatten(),
            patch.budget.as_ref().and_then(Option::as_ref),
        )?;
        let mut conn = self.conn().await?;
        let (key, generation) = store::update_key(&mut conn, name, &patch)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &self.with_spend(&key).await))
    }

    async fn delete_key(&self, name: &str) -> Answer {
        let mut conn = self.conn().await?;
        let generation = store::delete_key(&mut conn, name).await.map_err(refused)?;
        self.control.written(generation).await;
        Ok(ok(StatusCode::OK, &json!({"name": name, "deleted": true})))
    }

    async fn rotate_key(&self, name: &str, body: &[u8]) -> Answer {
        let b: RotateBody = match body.iter().all(u8::is_ascii_whitespace) {
            true => RotateBody::default(),
            false => parse(body)?,
        };
        let grace = b.grace.map_or(0, |g| g.0.as_secs());
        let mut conn = self.conn().await?;
        let (key, plaintext, generation) = store::rotate_key(&mut conn, name, grace)
            .await
            .map_err(refused)?;
        self.control.written(generation).await;
        Ok(with_plaintext(
            StatusCode::OK,
            self.with_spend(&key).await,
            &plaintext,
        ))
    }

    /// A connection for one call; none within the pool's timeouts is a 503.
    async fn conn(&self) -> Result<deadpool_postgres::Object, GatewayError> {
        self.control
            .pool
            .get()
            .await
            .map_err(|e| refused(ControlError::from(e)))
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

// === impl Timestamp ===

impl Timestamp {
    fn seconds(self, field: &'static str) -> Result<i64, GatewayError> {
        match self {
            Timestamp::Seconds(s) => Ok(s),
            Timestamp::Text(t) => parse_timestamp(&t)
                .map(|us| us.div_euclid(1_000_000))
                .ok_or_else(|| invalid(field, "use Unix seconds, a date or RFC 3339")),
        }
    }
}

fn check_model(m: &ModelRow) -> Result<(), GatewayError> {
    if m.name.is_empty() || m.name.len() > 256 || m.name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "must be 1 to 256 characters, none of them control characters",
        ));
    }
    if m.context_window == Some(0) {
        return Err(invalid("context_window", "must be at least 1 (or null)"));
    }
    if let Some(p) = &m.price {
        for (field, v) in [
            ("price.input_per_1m", p.input_per_1m),
            ("price.output_per_1m", p.output_per_1m),
        ] {
            if !(v.is_finite() && (0.0..1e9).contains(&v)) {
                return Err(invalid(field, "must be a price in dollars, 0 or more"));
            }
        }
    }
    Ok(())
}

/// Key names show up in logs, metrics and ledger rows: kept plain.
fn check_key_name(name: &str) -> Result<(), GatewayError> {
    let plain = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    match plain {
        true => Ok(()),
        false => Err(invalid("name", "must match [A-Za-z0-9._:-]{1,64}")),
    }
}

fn check_key_fields(
    models: Option<&Vec<String>>,
    rpm: Option<u32>,
    tpm: Option<u32>,
    budget: Option<&BudgetConfig>,
) -> Result<(), GatewayError> {
    if models.is_some_and(|m| m.iter().any(String::is_empty)) {
        return Err(invalid("models", "names must not be empty"));
    }
    for (field, v) in [("rpm", rpm), ("tpm", tpm)] {
        if v == Some(0) || v.is_some_and(|v| v > i32::MAX as u32) {
            return Err(invalid(field, "must be at least 1 (or null for no limit)"));
        }
    }
    if budget.is_some_and(|b| !b.is_valid()) {
        return Err(invalid(
            "budget.usd",
            "must be dollars, from 0 to 100000000",
        ));
    }
    Ok(())
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

/// A key's answer with its plaintext: the only time it is ever shown.
fn with_plaintext(status: StatusCode, mut value: Value, plaintext: &str) -> Response<Body> {
    if let Value::Object(map) = &mut value {
        map.insert("key".into(), Value::String(plaintext.to_owned()));
    }
    ok(status, &value)
}

/// A field that may be given as `null` (clear it) or left out (keep it).
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}
