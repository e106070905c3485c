//! The start-up status block: what a gateway that just started is serving and with what, in a
//! few lines an operator reads at a glance (printed on stdout; logs go to stderr). Nothing secret
//! is printed: passwords in URLs are masked, keys are only counted.

use std::fmt::Write;

use crate::config::{Config, ConfigSource, RedisUser, SessionStoreKind, UsageSinkKind};
use crate::state::App;

pub fn status(
    app: &App,
    config: &Config,
    source: &ConfigSource,
    addr: &str,
    workers: usize,
) -> String {
    let runtime = app.runtime();
    let mut out = String::new();
    let mut line = |label: &str, text: &str| {
        let _ = writeln!(out, "  {label:<10} {text}");
    };
    let head = format!(
        "switchyard {} serving on {addr} with {workers} worker{}\n",
        env!("CARGO_PKG_VERSION"),
        if workers == 1 { "" } else { "s" }
    );
    line("config", &source.to_string());
    let providers: Vec<String> = config
        .providers
        .iter()
        .map(|p| {
            let kind = format!("{:?}", p.kind).to_lowercase();
            let state = match runtime.providers.iter().find(|r| *r.id == *p.id) {
                Some(r) if r.probe.is_none() => "probes off",
                Some(r) if r.is_up() => "up",
                Some(_) => "down",
                None => "skipped",
            };
            let url = p
                .base_url
                .as_deref()
                .map_or("in-process".to_owned(), masked);
            format!("{} ({kind}, {url}): {state}", p.id)
        })
        .collect();
    line("providers", &list(&providers));
    let models: Vec<String> = runtime
        .models()
        .iter()
        .map(|m| {
            let kind = m.kind.name();
            let routes = m.routes().count();
            format!(
                "{} ({kind}, {routes} route{})",
                m.name,
                if routes == 1 { "" } else { "s" }
            )
        })
        .collect();
    line("models", &list(&models));
    let store = |kind: SessionStoreKind, user: RedisUser| match (kind, config.redis_for(user)) {
        (SessionStoreKind::Redis, Some(target)) => format!("redis {}", masked(&target.url)),
        _ => "memory".to_owned(),
    };
    let s = &config.sessions;
    line(
        "sessions",
        &format!("{} (ttl {})", store(s.store, RedisUser::Sessions), s.ttl),
    );
    let r = &config.responses;
    line(
        "responses",
        &format!(
            "{} (ttl {})",
            store(r.store.unwrap_or(s.store), RedisUser::Responses),
            r.ttl
        ),
    );
    let u = &config.usage;
    line(
        "usage",
        &match (u.sink, &u.database_url) {
            (UsageSinkKind::Postgres, Some(url)) => format!("postgres {}", masked(url)),
            (UsageSinkKind::File, _) => format!("file {}", u.path),
            _ => "none (no ledger)".to_owned(),
        },
    );
    line(
        "limits",
        &match config.redis_for(RedisUser::Limits) {
            Some(target) => format!("redis {} (shared by every replica)", masked(&target.url)),
            None => "memory (per replica)".to_owned(),
        },
    );
    line(
        "control",
        &match &config.control {
            Some(c) => format!(
                "postgres {} (resync {}; models, routes and keys from the database)",
                masked(&c.database_url),
                c.resync
            ),
            None => "off (models, routes and keys from the config file)".to_owned(),
        },
    );
    let keys = &config.auth.keys;
    line(
        "auth",
        &match (keys.is_empty(), config.control.is_some()) {
            (true, false) => {
                "OPEN: no keys, anyone who can reach the gateway may use it".to_owned()
            }
            (_, true) => format!(
                "keys from the control database ({} in the config seed it)",
                keys.len()
            ),
            (false, false) => format!(
                "{} key{} ({} admin)",
                keys.len(),
                if keys.len() == 1 { "" } else { "s" },
                keys.iter().filter(|k| k.admin).count()
            ),
        },
    );
    line(
        "tracing",
        &match &config.tracing {
            Some(t) => format!(
                "otlp {}/v1/traces (service {}, sample ratio {})",
                masked(t.otlp_endpoint.trim_end_matches('/')),
                t.service_name,
                t.sample_ratio
            ),
            None => "off".to_owned(),
        },
    );
    head + &out
}

fn list(items: &[String]) -> String {
    match items.is_empty() {
        true => "none".to_owned(),
        false => items.join("\n             "),
    }
}

/// A URL with its password (if any) masked: `postgres://user:*****@host/db`.
pub fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":*****" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            masked("postgres://app:s3cret@db:5432/switchyard"),
            "postgres://app:*****@db:5432/switchyard"
        );
        assert_eq!(
            masked("redis://:pw@cache:6379"),
            "redis://:*****@cache:6379"
        );
        assert_eq!(masked("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(masked("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(masked("not a url"), "not a url");
    }
}
