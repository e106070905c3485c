//! The result cache's one place in the pipeline (DESIGN §5 "Result cache"): every cacheable
//! endpoint asks [`plan`] before it admits the request, answers a hit with [`answer`] (no
//! upstream call; the key's rpm only; a ledger row marked `cache`), and stores a miss's answer
//! with [`store`] (whole answers) or [`stream_store`] (streams, from the chunks the client got)
//! after the client has it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::context::{Rejection, RequestCtx};
use super::outcome::Recorder;
use super::relay::{Finishing, StreamFinisher};
use crate::cache::{Directives, Endpoint, Entry, Key, Verdict};
use crate::config::CacheScope;
use crate::limits::keys::ApiKey;
use crate::metrics::Lookup;
use crate::providers::Usage;
use crate::routing::ModelEntry;
use crate::state::App;
use crate::usage::record::Purpose;

/// What the cache does for one request.
pub enum Plan {
    /// No cache here (none configured, the model's is off, or the endpoint is not cached): no
    /// `x-switchyard-cache` header.
    Off,
    /// Not read and not stored (`no-store`, a session, a stored-response chain, a body too
    /// costly to key): `bypass`.
    Bypass,
    /// Looked up (unless `no-cache`) and stored on a clean miss.
    Use(Use),
}

pub struct Use {
    key: Key,
    ttl: Duration,
    directives: Directives,
}

/// A request's answer from the cache: the stored entry and its age.
pub struct Hit {
    pub entry: Entry,
    pub age: u64,
}

// === impl Hit ===

impl Hit {
    /// The answer's body as the request wants it: whole, or replayed as a stream (`None` if the
    /// entry cannot be: then the request goes on as a miss).
    pub fn body(&self, stream: bool, include_usage: bool) -> Option<Bytes> {
        match stream {
            false => Some(self.entry.body.clone()),
            true => crate::cache::replay::stream(&self.entry.body, include_usage),
        }
    }
}

// === impl Plan ===

impl Plan {
    /// `never`: the request is never cached whatever its headers say (it continues a session or
    /// a stored response).
    pub fn new(
        ctx: &RequestCtx,
        key: Option<&ApiKey>,
        model: &ModelEntry,
        endpoint: Endpoint,
        body: &[u8],
        directives: Option<Directives>,
        never: bool,
    ) -> Self {
        let (Some(cache), Some(directives)) = (ctx.app.cache.as_ref(), directives) else {
            return Plan::Off;
        };
        let Some(ttl) = cache.ttl_for(model.cache) else {
            return Plan::Off;
        };
        if never || directives.no_store {
            return Plan::Bypass;
        }
        let scope = match cache.scope {
            CacheScope::Shared => "",
            // The key's name (keys are named uniquely); an open gateway's requests share one.
            CacheScope::Key => key.map_or("-", |k| &k.name),
        };
        match Key::of(scope, endpoint, &model.name, body) {
            Ok(key) => Plan::Use(Use {
                key,
                ttl: directives.ttl.unwrap_or(ttl),
                directives,
            }),
            Err(_) => Plan::Bypass,
        }
    }

    /// The stored answer, if there is one the request accepts (`max-age`); counts the lookup.
    /// A store that cannot answer makes the request a `bypass` (not stored either).
    pub async fn lookup(&mut self, ctx: &RequestCtx, model: &ModelEntry) -> Option<Hit> {
        let (Plan::Use(u), Some(cache)) = (&*self, ctx.app.cache.as_ref()) else {
            if matches!(self, Plan::Bypass) {
                model.metrics.cache_lookup(Lookup::Bypass);
            }
            return None;
        };
        let found = match u.directives.no_cache {
            true => None,
            // Boxed: a shared store's future is large, and every request's future would carry
            // its space (pipeline_tests).
            false => match Box::pin(cache.get(&u.key)).await {
                Ok(found) => found,
                Err(crate::cache::Unavailable) => {
                    *self = Plan::Bypass;
                    model.metrics.cache_lookup(Lookup::Bypass);
                    return None;
                }
            },
        };
        let now = crate::clock::unix_millis();
        let hit = found
            .map(|entry| Hit {
                age: entry.age_secs(now),
                entry,
            })
            .filter(|hit| u.directives.max_age.is_none_or(|max| hit.age <= max));
        model.metrics.cache_lookup(match hit {
            Some(_) => Lookup::Hit,
            None => Lookup::Miss,
        });
        if let Some(span) = &ctx.trace {
            span.set(
                crate::trace::Attr::Cache,
                crate::trace::Value::Static(if hit.is_some() { "hit" } else { "miss" }),
            );
        }
        hit
    }

    /// What `x-switchyard-cache` says for a request that was not a hit.
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            Plan::Off => None,
            Plan::Bypass => Some(Verdict::Bypass),
            Plan::Use(_) => Some(Verdict::Miss),
        }
    }

    /// Stores a whole answer, after the response (a clean 200 only reaches here).
    pub fn store(self, ctx: &RequestCtx, body: &Bytes, usage: Option<Usage>) {
        let Plan::Use(u) = self else { return };
        let (app, body) = (ctx.app.clone(), body.clone());
        ctx.app
            .background
            .spawn(async move { put(&app, u, body, usage).await });
    }

    /// What stores a stream's answer when it ends cleanly, if this plan stores anything.
    pub fn stream_store(self, ctx: &RequestCtx) -> Option<Box<dyn StreamFinisher>> {
        let Plan::Use(u) = self else { return None };
        Some(Box::new(StoreStream {
            app: ctx.app.clone(),
            plan: u,
        }))
    }
}

/// Stores an answer under the plan's key (off the request path: callers spawn it), unless it
/// is over `max_entry_bytes` (then it was served, never stored).
async fn put(app: &App, u: Use, body: Bytes, usage: Option<Usage>) {
    let Some(cache) = app.cache.as_ref() else {
        return;
    };
    let entry = Entry {
        body,
        usage,
        stored_at_ms: crate::clock::unix_millis(),
    };
    if entry.size() <= cache.max_entry_bytes {
        cache.put(&u.key, entry, u.ttl).await;
    }
}

/// A streamed miss's answer, stored when the upstream finished cleanly: the chunks the client
/// was sent, assembled into the whole answer. Work done off the stream: the client's `[DONE]`
/// waits for nothing.
struct StoreStream {
    app: Arc<App>,
    plan: Use,
}

impl StreamFinisher for StoreStream {
    fn finish(self: Box<Self>, sent: Vec<Bytes>, usage: Option<Usage>) -> Finishing {
        let Self { app, plan } = *self;
        app.clone().background.spawn(async move {
            if let Some(body) = crate::cache::assemble::completion(&sent, usage) {
                put(&app, plan, body, usage).await;
            }
        });
        Box::pin(async { Ok(()) })
    }
}

/// Admits a hit: under the key's rpm only (no tokens are generated, nothing is spent), recorded
/// as a `cache` row with zero tokens and cost and the answer's saved cost.
pub async fn admit(
    ctx: &RequestCtx,
    key: Option<&ApiKey>,
    model: &ModelEntry,
    purpose: Purpose,
    stream: bool,
    request: Bytes,
    hit: &Hit,
) -> Result<crate::limits::rate::Admission, Rejection> {
    let admission = match key.filter(|k| k.rpm.is_some()) {
        Some(k) => Box::pin(ctx.app.limits.admit_request(k)).await?,
        None => Default::default(),
    };
    model.metrics.cached(ctx.started.elapsed());
    Recorder::new(ctx, key, model, purpose, stream, request, admission.clone())
        .cached(hit.entry.usage, stream);
    Ok(admission)
}
