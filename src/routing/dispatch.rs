//! Sending a request: pick a route, try it, and on a retryable failure try the next pick (same
//! tier first, then lower tiers) until `max_attempts` distinct routes were tried. Everything
//! here happens before the commit point: nothing has reached the client yet.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use super::{ModelEntry, Route};
use crate::error::{ErrorKind, GatewayError};

/// A request some route served.
pub struct Served<T> {
    pub value: T,
    pub route: Arc<Route>,
    pub attempts: u32,
}

/// A request no route served: the error to show, how many routes were tried, and the last one.
pub struct Failure {
    pub error: GatewayError,
    pub attempts: u32,
    pub route: Option<Arc<Route>>,
}

/// Tries routes until one serves. With `affinity` (a session's key) the first attempt goes to
/// the session's pinned route; retries fall back like any request.
pub async fn dispatch<T, F, Fut>(
    model: &ModelEntry,
    max_attempts: u32,
    affinity: Option<u64>,
    mut attempt: F,
) -> Result<Served<T>, Failure>
where
    F: FnMut(Arc<Route>) -> Fut,
    Fut: Future<Output = Result<T, GatewayError>>,
{
    // Routes tried or skipped, never picked again for this request.
    let mut passed: Vec<usize> = Vec::with_capacity(max_attempts as usize);
    let mut attempts = 0u32;
    let mut last: Option<(GatewayError, Arc<Route>)> = None;
    let mut at_ceiling: Option<Arc<Route>> = None;
    while attempts < max_attempts {
        let now = Instant::now();
        let pick = match affinity {
            Some(key) if passed.is_empty() => model.pick_pinned(key, &passed, now),
            _ => model.pick(&passed, now),
        };
        let Some(pick) = pick else {
            break;
        };
        let route = pick.route.clone();
        passed.push(route.id);
        // A route at its max_rps ceiling is skipped like an unhealthy one: it costs no attempt.
        if !route.admit() {
            at_ceiling = Some(route);
            continue;
        }
        attempts += 1;
        // Every attempt's error passes the one scrubbing point before anything can show it
        // (only on failure: the answered path pays nothing).
        let outcome = attempt(route.clone())
            .await
            .map_err(|e| e.scrubbed(route.provider.transport.secret()));
        match outcome {
            Ok(value) => {
                route.provider.note_answer();
                pick.succeeded();
                return Ok(Served {
                    value,
                    route,
                    attempts,
                });
            }
            Err(e) if e.is_retryable() => {
                if let Some(length) = pick.failed(Instant::now()) {
                    route.metrics.ejected();
                    tracing::warn!(route = %route.label(), ejected_for = ?length, error = %e, "route ejected");
                    if e.kind() == ErrorKind::UpstreamRateLimited {
                        route.health.cooling();
                    }
                }
                crate::metrics::upstream_failure(&route.provider.id, e.metric_label());
                last = Some((e, route));
            }
            Err(e) => {
                // The upstream answered (it refused the request itself): the route is healthy.
                route.provider.note_answer();
                pick.succeeded();
                return Err(Failure {
                    error: e,
                    attempts,
                    route: Some(route),
                });
            }
        }
    }
    // A real failure says more than a ceiling; a ceiling (every route tried was at one) is a 429.
    match (last, at_ceiling) {
        (Some((error, route)), _) => Err(Failure {
            error,
            attempts,
            route: Some(route),
        }),
        (None, Some(route)) => Err(Failure {
            error: GatewayError::new(
                ErrorKind::RateLimited,
                format!(
                    "every route of model {:?} is at its max_rps ceiling",
                    model.name
                ),
            )
            .with_retry_after(Some(std::time::Duration::from_secs(1))),
            attempts,
            route: Some(route),
        }),
        (None, None) => Err(Failure {
            error: no_route(model),
            attempts,
            route: None,
        }),
    }
}

/// Why no route could be tried: every route cooling down after upstream 429s is a 429 whose
/// `retry-after` is the soonest end of a cool-down; anything else (ejected, down) is a 503.
fn no_route(model: &ModelEntry) -> GatewayError {
    let now = Instant::now();
    let cooling: Option<Vec<Instant>> = model
        .routes()
        .map(|r| r.health.cooling_until(now))
        .collect();
    match cooling.and_then(|until| until.into_iter().min()) {
        Some(soonest) => GatewayError::new(
            ErrorKind::UpstreamRateLimited,
            format!(
                "every route of model {:?} is cooling down after upstream rate limits",
                model.name
            ),
        )
        .with_retry_after(Some((soonest - now).max(std::time::Duration::from_secs(1)))),
        None => GatewayError::new(
            ErrorKind::NoHealthyRoute,
            format!("no healthy route for model {:?}", model.name),
        ),
    }
}
