//! The accept loop (after hyper-util's `server_graceful` example and mini-redis): a semaphore caps
//! connections, HTTP/1 and h2c are served on one port, a slow client gets `header_read_timeout`
//! to send its request head, an h2 connection with no open stream is closed after that same
//! bound, and shutdown is a future passed in so tests can drive it.

pub mod cors;
pub mod idle;
pub mod preface;
pub mod router;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::state::App;
use idle::Activity;
use preface::Protocol;

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
    let mut h1 = http1::Builder::new();
    h1.writev(false)
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8 * 1024))
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builders = Arc::new((h1, h2));
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
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            builders.clone(),
            options.header_read_timeout,
            stopping.clone(),
            permit,
        ));
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

/// One connection, from its first bytes (which tell its protocol, within `header_read_timeout`:
/// hyper's own header timer starts only with a request, and a socket that sends nothing would
/// hold its slot for ever) to its end. The permit is its slot under `max_connections`.
async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    app: Arc<App>,
    builders: Arc<(http1::Builder, http2::Builder<TokioExecutor>)>,
    within: Duration,
    mut stopping: watch::Receiver<()>,
    permit: OwnedSemaphorePermit,
) {
    let protocol = tokio::select! {
        told = tokio::time::timeout(within, preface::detect(&stream)) => match told {
            Ok(Ok(Some(protocol))) => protocol,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection failed before its first request");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no request within header_read_timeout");
                return;
            }
        },
        _ = stopping.changed() => return,
    };
    let io = TokioIo::new(stream);
    let (h1, h2) = &*builders;
    let ended = match protocol {
        Protocol::Http1 => {
            // Not boxed, though hyper keeps the slot this future runs in for the connection's
            // life: boxed, a stream held 1.6 KB less (16.2 -> 14.6 KB) and a request cost ~400
            // instructions more (docs/benchmarks.md); CPU is the scarcer of the two.
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, std::convert::Infallible>(router::handle(app, req).await) }
            });
            drive(
                h1.serve_connection(io, service),
                &mut stopping,
                None,
                within,
            )
            .await
        }
        Protocol::Http2 => {
            let activity = Activity::new();
            let streams = activity.clone();
            let service = service_fn(move |req| {
                let app = app.clone();
                let streams = streams.clone();
                async move {
                    let response = router::handle(app, req).await;
                    Ok::<_, std::convert::Infallible>(streams.track(response))
                }
            });
            let conn = h2.serve_connection(io, service);
            // Boxed: the connection task is as large as its largest state, and an HTTP/2
            // connection's is larger than an HTTP/1 one's, which nearly every client opens.
            Box::pin(drive(conn, &mut stopping, Some(&activity), within)).await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    drop(stopping);
    drop(permit);
}

/// Runs a connection to its end: at shutdown it is asked to finish what it has open, and an
/// HTTP/2 connection with no open stream for `within` is closed.
async fn drive<C: GracefulConnection<Error = hyper::Error>>(
    conn: C,
    stopping: &mut watch::Receiver<()>,
    h2: Option<&Activity>,
    within: Duration,
) -> Result<(), hyper::Error> {
    tokio::pin!(conn);
    let idle = async {
        match h2 {
            Some(activity) => activity.idle(within).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        ended = conn.as_mut() => ended,
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = idle => {
            // GOAWAY, then the close; a peer that will not take the GOAWAY gets the same bound
            // again.
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(within, conn).await.unwrap_or(Ok(()))
        }
    }
}
