//! What every step of a request's way knows about it, and how a request that failed says so.

use std::sync::Arc;

use http::HeaderValue;
use tokio::time::Instant;

use crate::error::{Dialect, GatewayError};
use crate::routing::Route;
use crate::routing::dispatch::Failure;
use crate::runtime::Runtime;
use crate::state::App;
use crate::trace::{Active, Kind};

/// One request: the app, the config generation it started on, its clock and its id.
pub struct RequestCtx {
    pub app: Arc<App>,
    /// The config generation this request started on; a reload does not change it mid-request.
    pub runtime: Arc<Runtime>,
    pub started: Instant,
    pub deadline: Instant,
    pub request_id: HeaderValue,
    /// The request's span when its trace is recorded: attempts and internal steps nest under it.
    pub trace: Option<Arc<Active>>,
    /// The error envelope the client reads.
    pub dialect: Dialect,
}

/// A failed request: the error, the route and attempt count when a route was involved, and
/// whether the outcome recorder already counted it (the router counts the rest).
pub struct Rejection {
    pub error: GatewayError,
    pub route: Option<Arc<Route>>,
    pub attempts: u32,
    pub recorded: bool,
}

// === impl RequestCtx ===

impl RequestCtx {
    /// A client's request, on the config generation current when it arrived.
    pub fn new(app: Arc<App>, request_id: HeaderValue, started: Instant) -> Self {
        let runtime = app.runtime();
        Self {
            deadline: started + runtime.request_timeout,
            app,
            runtime,
            started,
            request_id,
            trace: None,
            dialect: Dialect::OpenAi,
        }
    }

    /// A request the gateway makes on its own account (a session's summary call), with an id of
    /// its own so its ledger row stands apart from the client request that led to it.
    pub fn internal(app: Arc<App>) -> Self {
        let request_id = app.next_request_id();
        Self::new(app, request_id, Instant::now())
    }

    /// A span under this request's, if its trace is recorded.
    pub fn span(&self, name: &'static str, kind: Kind) -> Option<Active> {
        self.trace.as_ref().map(|t| t.child(name, kind))
    }
}

// === impl Rejection ===

impl From<GatewayError> for Rejection {
    fn from(error: GatewayError) -> Self {
        Self {
            error,
            route: None,
            attempts: 0,
            recorded: false,
        }
    }
}

impl From<Failure> for Rejection {
    fn from(f: Failure) -> Self {
        Self {
            error: f.error,
            route: f.route,
            attempts: f.attempts,
            recorded: false,
        }
    }
}
