//! This thread's idle upstream connections, per upstream address, most recently used first.
//!
//! The gateway runs one single-threaded runtime per core, so a connection taken here is driven by
//! the thread (and the reactor) that opened it, and no lock or cross-thread wakeup is involved.
//! There is no reaper task: expired connections are closed when their upstream's pool is next
//! touched, and a connection the upstream closed meanwhile is noticed before reuse.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// How long an idle connection is kept (upstream servers close theirs after 60–120 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream address and thread.
const MAX_IDLE: usize = 1024;

thread_local! {
    /// Few upstream addresses per gateway: a list beats hashing the key on every request.
    static IDLE: RefCell<Vec<(Arc<str>, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
}

struct Idle {
    io: TcpStream,
    since: Instant,
}

/// A live idle connection to `addr`, if this thread has one.
pub fn take(addr: &Arc<str>) -> Option<TcpStream> {
    IDLE.with_borrow_mut(|pools| {
        let idle = find(pools, addr)?;
        let now = Instant::now();
        while let Some(conn) = idle.pop() {
            if now.duration_since(conn.since) < IDLE_TIMEOUT && is_quiet(&conn.io) {
                return Some(conn.io);
            }
        }
        None
    })
}

/// Keeps `io` for the next request to `addr`; the response on it was read to its end.
pub fn put(addr: &Arc<str>, io: TcpStream) {
    IDLE.with_borrow_mut(|pools| {
        let idle = match pools.iter().position(|(key, _)| same(key, addr)) {
            Some(i) => &mut pools[i].1,
            None => {
                pools.push((addr.clone(), Vec::new()));
                let last = pools.len() - 1;
                &mut pools[last].1
            }
        };
        let now = Instant::now();
        // Reuse is LIFO, so the longest idle sit at the front.
        let expired = idle
            .iter()
            .take_while(|c| now.duration_since(c.since) >= IDLE_TIMEOUT)
            .count();
        idle.drain(..expired);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { io, since: now });
        }
    });
}

/// Idle connections this thread holds to `addr` (tests).
#[cfg(test)]
pub fn idle_count(addr: &Arc<str>) -> usize {
    IDLE.with_borrow_mut(|pools| find(pools, addr).map_or(0, |idle| idle.len()))
}

fn find<'a>(pools: &'a mut [(Arc<str>, Vec<Idle>)], addr: &Arc<str>) -> Option<&'a mut Vec<Idle>> {
    pools
        .iter_mut()
        .find(|(key, _)| same(key, addr))
        .map(|(_, idle)| idle)
}

fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// An idle connection must have nothing to read: end of stream means the upstream closed it,
/// and bytes it never asked for mean it is out of step. No system call unless the reactor saw
/// the socket become readable (tokio clears readiness after the short read that ended the
/// previous response).
fn is_quiet(io: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
