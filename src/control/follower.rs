//! Keeps this replica's runtime in step with the control tables: one connection that LISTENs on
//! `switchyard_control` (every change notifies it, whoever made it), a re-read on each
//! notification, and a periodic `resync` that compares the generation for notifications missed
//! while disconnected. While the database is unreachable nothing is swapped: the last table read
//! stays in force, and the follower reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use super::Control;
use super::catalog::Catalog;
use super::store::{self, ControlError, Seed};

/// Longest wait for one statement of the follower: a blackholed database is noticed by this.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Runs for the life of the process. `apply` swaps in a catalog read from the tables.
pub async fn follow(
    control: Arc<Control>,
    seed: Seed,
    apply: impl Fn(Arc<Catalog>) -> Result<(), String>,
) {
    let mut prepared = false;
    let mut retry = FIRST_RETRY;
    loop {
        let failure = session(&control, &seed, &mut prepared, &apply, &mut retry).await;
        match control.is_loaded() {
            true => {
                tracing::warn!(error = %failure, retry_ms = retry.as_millis() as u64, "control plane unreachable; serving the last table read")
            }
            false => {
                tracing::warn!(error = %failure, retry_ms = retry.as_millis() as u64, "control plane not read yet; serving the config file's models and keys")
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// One connection's worth of following; returns why it ended.
async fn session(
    control: &Control,
    seed: &Seed,
    prepared: &mut bool,
    apply: &impl Fn(Arc<Catalog>) -> Result<(), String>,
    retry: &mut Duration,
) -> ControlError {
    let mut target = match crate::db::Target::parse(&control.url, "control.database_url") {
        Ok(target) => target,
        Err(e) => return ControlError::Unavailable(e),
    };
    target.config.connect_timeout(QUERY_TIMEOUT);
    let (mut client, mut connection) = match target.config.connect(target.tls.clone()).await {
        Ok(pair) => pair,
        Err(e) => return e.into(),
    };
    // The connection's messages: notifications wake the follower; its end ends the session.
    let (lost_tx, mut lost) = tokio::sync::oneshot::channel::<String>();
    let wake = Arc::new(tokio::sync::Notify::new());
    let notified = wake.clone();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let why = loop {
            match messages.next().await {
                Some(Ok(AsyncMessage::Notification(_))) => notified.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "connection closed".to_owned(),
            }
        };
        let _ = lost_tx.send(why);
    });
    let _abort = AbortOnDrop(driver.abort_handle());
    let result: Result<std::convert::Infallible, ControlError> = async {
        bounded(client.batch_execute("LISTEN switchyard_control")).await??;
        if !*prepared {
            if control.migrate {
                // Not bounded like a query: a first upgrade may backfill a large ledger.
                crate::usage::migrations::migrate(&mut client)
                    .await
                    .map_err(|e| ControlError::Unavailable(e.to_string()))?;
            }
            if bounded(store::seed(&mut client, seed)).await?? {
                tracing::info!("control plane seeded from the config file's models and keys");
            }
            *prepared = true;
        }
        let mut served = read(control, &mut client, apply).await?;
        *retry = FIRST_RETRY;
        let mut resync = tokio::time::interval(control.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        loop {
            tokio::select! {
                () = wake.notified() => {}
                () = control.wake.notified() => {}
                _ = resync.tick() => {
                    if bounded(store::generation(&client)).await?? == served {
                        continue;
                    }
                }
                why = &mut lost => {
                    return Err(ControlError::Unavailable(why.unwrap_or_else(|_| "connection lost".into())));
                }
            }
            served = read(control, &mut client, apply).await?;
        }
    }
    .await;
    match result {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// Reads the tables and swaps the catalog in; returns the generation now served.
async fn read(
    control: &Control,
    client: &mut tokio_postgres::Client,
    apply: &impl Fn(Arc<Catalog>) -> Result<(), String>,
) -> Result<i64, ControlError> {
    let (generation, catalog) = bounded(store::load(client)).await??;
    if let Err(e) = apply(Arc::new(catalog)) {
        // A table this replica cannot serve (its config lacks what the rows need): keep the
        // running one, and do not re-read until the tables change again.
        tracing::error!(error = %e, generation, "control-plane change refused; keeping the running table");
    }
    control.applied.send_replace(generation);
    Ok(generation)
}

async fn bounded<T>(work: impl Future<Output = T>) -> Result<T, ControlError> {
    tokio::time::timeout(QUERY_TIMEOUT, work)
        .await
        .map_err(|_| {
            ControlError::Unavailable("the control database did not answer in time".into())
        })
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
