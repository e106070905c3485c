//! The control plane: models, routes and gateway keys held in PostgreSQL and shared live by
//! every replica (DESIGN.md §5 "Control plane"). `store` is the tables, `follower` keeps this
//! replica's runtime in step with them, `catalog` is what they decide. Providers and their
//! secrets stay in the config file.

pub mod catalog;
pub mod follower;
pub mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::config::ControlConfig;
use catalog::Catalog;

/// This replica's side of the control plane.
pub struct Control {
    pub resync: Duration,
    url: String,
    /// Connections for the admin API.
    pub pool: deadpool_postgres::Pool,
    /// Apply pending migrations before the first read (`usage.migrate_on_start`).
    migrate: bool,
    /// The generation this replica serves; -1 until the first read.
    applied: watch::Sender<i64>,
    /// The catalog last read from the tables (a config reload keeps serving it).
    latest: Mutex<Option<Arc<Catalog>>>,
    /// Wakes the follower: a notification arrived, or this replica wrote.
    wake: Notify,
}

/// The longest an admin write waits for its own replica to serve the change.
const APPLY_WAIT: Duration = Duration::from_secs(2);

// === impl Control ===

impl Control {
    pub fn new(config: &ControlConfig, migrate: bool) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            resync: config.resync.0,
            url: config.database_url.clone(),
            pool: crate::db::Target::parse(&config.database_url, "control.database_url")?
                .pool(2)
                .map_err(|e| format!("control.database_url: {e}"))?,
            migrate,
            applied: watch::Sender::new(-1),
            latest: Mutex::new(None),
            wake: Notify::new(),
        }))
    }

    /// Whether the tables have been read at least once.
    pub fn is_loaded(&self) -> bool {
        *self.applied.borrow() >= 0
    }

    /// The catalog last read from the tables.
    pub fn latest(&self) -> Option<Arc<Catalog>> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the catalog now served.
    pub fn replace_latest(&self, catalog: &Arc<Catalog>) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(catalog.clone());
    }

    /// After a write of this replica: re-read now, and wait (a bounded time) until the write's
    /// generation is served here, so its author reads what it wrote.
    pub async fn written(&self, generation: i64) {
        self.wake.notify_one();
        let mut served = self.applied.subscribe();
        let _ = tokio::time::timeout(APPLY_WAIT, served.wait_for(|g| *g >= generation)).await;
    }
}
