//! PostgreSQL connections for every user of the database (the ledger and its totals, the
//! control plane, `switchyard migrate`): one reading of a `database_url`.
//!
//! Beyond what tokio-postgres reads itself (several hosts, `target_session_attrs=read-write`, so
//! a refused host or a standby is skipped and a failover followed), the libpq forms fleets use
//! are understood: `sslmode=require|verify-ca|verify-full` turn TLS on, with the certificate
//! always verified (chain and host name, against `sslrootcert`'s CA or the public roots compiled
//! in; stricter than libpq's `require`, which checks nothing without a root file);
//! `disable|allow|prefer` (or none) connect without TLS.

use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How to reach one database: tokio-postgres's config and the TLS connector its `sslmode` uses.
#[derive(Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
}

// === impl Target ===

impl Target {
    /// Reads `url` (a `postgres://` URL); errors name `field` (`usage.database_url`, …) and
    /// never quote the URL (it may hold a password).
    pub fn parse(url: &str, field: &str) -> Result<Self, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let (mut tls, mut root) = (false, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => match value {
                    "require" | "verify-ca" | "verify-full" => tls = true,
                    "disable" | "allow" | "prefer" => tls = false,
                    other => return Err(format!("{field}: sslmode={other} is not a mode")),
                },
                "sslrootcert" => root = Some(crate::hex::percent_decode(value)),
                _ => kept.push(pair),
            }
        }
        let url = match kept.is_empty() {
            true => base.to_owned(),
            false => format!("{base}?{}", kept.join("&")),
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("{field}: not a PostgreSQL URL: {e}"))?;
        config.ssl_mode(match tls {
            true => SslMode::Require,
            false => SslMode::Disable,
        });
        let tls = MakeRustlsConnect::new(client_config(root.as_deref(), field)?);
        Ok(Self { config, tls })
    }

    /// A small pool whose connections are made on first use (a database that is down at start
    /// does not stop the gateway), each call bounded on both sides: a 10 s statement timeout
    /// on the server, 3 s to connect, wait or recycle on the client.
    pub fn pool(mut self, size: usize) -> Result<deadpool_postgres::Pool, String> {
        self.config.connect_timeout(Duration::from_secs(3));
        self.config.options("-c statement_timeout=10000");
        let manager = deadpool_postgres::Manager::from_config(
            self.config,
            self.tls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let timeout = Some(Duration::from_secs(3));
        deadpool_postgres::Pool::builder(manager)
            .max_size(size)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| e.to_string())
    }

    /// One connection; its driving task is spawned, and ends when the client is dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        Ok(client)
    }
}

/// Roots for the server's certificate: the CA of `sslrootcert` alone, or the public roots.
fn client_config(root: Option<&str>, field: &str) -> Result<rustls::ClientConfig, String> {
    let label = format!("{field}: sslrootcert");
    let ca = root.map(|path| (label.as_str(), std::path::Path::new(path)));
    Ok(crate::tls::client(field, ca)?.with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_forms_are_read_and_the_rest_left_to_tokio_postgres() {
        let t = Target::parse(
            "postgres://u:p@db1:5432,db2:5433/ledger?target_session_attrs=read-write&sslmode=verify-full",
            "usage.database_url",
        )
        .unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.config.get_hosts().len(), 2);
        assert_eq!(
            t.config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        let plain = Target::parse("postgres://u@db/x?sslmode=prefer", "f").unwrap();
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        let e = Target::parse(
            "postgres://u@db/x?sslmode=verify-full&sslrootcert=/nope.pem",
            "control.database_url",
        )
        .err()
        .unwrap();
        assert!(
            e.starts_with("control.database_url: sslrootcert: cannot use /nope.pem"),
            "{e}"
        );
        let e = Target::parse("postgres://u:secret@db/x?sslmode=sometimes", "f")
            .err()
            .unwrap();
        assert!(!e.contains("secret"), "{e}");
        assert!(Target::parse("postgres://u@db/x?bogus=1", "f").is_err());
    }
}
