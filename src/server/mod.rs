//! The accept loop (after hyper-util's `server_graceful` example and mini-redis): a semaphore caps
//! connections, HTTP/1 and h2c are served on one port, a slow client gets `header_read_timeout`
//! to send its request head, an h2 connection with no open stream is closed after that same
//! bound, and shutdown is a future passed in so tests can drive it.

pub mod cors;
pub mod first_byte;
pub mod idle;
pub mod router;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::state::App;
use first_byte::FirstByte;
use idle::Activity;

/// After the grace, how long open streams get to write their closing error event.
const STREAMS_END: Duration = Duration::from_secs(2);

/// Connection-level settings, fixed for the process (a reload does not rebind).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Shared by every worker's accept loop: the cap is for the process.
    pub connection_permits: Arc<Semaphore>,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Request line plus headers; larger gets 431 (hyper's HTTP/1 buffer bound, at least 8 KiB).
    pub max_header_bytes: usize,
}

/// Serves until `shutdown` resolves, then stops accepting, gives open connections (streams
/// included) `shutdown_grace` to finish, and returns.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .writev(false)
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8 * 1024))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    // Shutdown is said once to every connection's task, and waited for until each has ended and
    // dropped its receiver (what hyper-util's GracefulShutdown does, which cannot also close a
    // connection for being idle).
    let (stop, stopping) = watch::channel(());
    let permits = options.connection_permits.clone();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let app = app.clone();
        let streams = activity.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let app = app.clone();
            let h2 = (req.version() == http::Version::HTTP_2).then(|| streams.clone());
            async move {
                let response = router::handle(app, req).await;
                Ok::<_, std::convert::Infallible>(match h2 {
                    Some(streams) => streams.track(response),
                    None => response,
                })
            }
        });
        let conn = builder
            .serve_connection(
                TokioIo::new(FirstByte::new(
                    stream,
                    options.header_read_timeout,
                    activity.clone(),
                )),
                service,
            )
            .into_owned();
        let mut stopping = stopping.clone();
        let idle_after = options.header_read_timeout;
        tokio::spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = stopping.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
                () = activity.idle_h2(idle_after) => {
                    // GOAWAY, then the close; a peer that will not take the GOAWAY gets the
                    // same bound again.
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(idle_after, conn).await.unwrap_or(Ok(()))
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(stopping);
            drop(permit);
        });
    }
    drop(listener);
    app.start_draining();
    tracing::info!(grace = ?options.shutdown_grace, "listener closed; draining open connections");
    drop(stopping);
    let _ = stop.send(());
    let drained = stop.closed();
    tokio::pin!(drained);
    match tokio::time::timeout(options.shutdown_grace, &mut drained).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => {
            // Streams still open end with an error event (their rows say `error`), not a
            // chunked body cut mid-way; they get a moment to write it.
            tracing::warn!("shutdown grace elapsed; ending the open streams with an error event");
            app.closing.cancel();
            if tokio::time::timeout(STREAMS_END, &mut drained)
                .await
                .is_err()
            {
                tracing::warn!("closing the remaining connections");
            }
        }
    }
}
