//! Socket plumbing shared by both roles: the accept loop with its connection limit
//! and error backoff, outgoing connects with a deadline, and connection ids.
//!
//! What a connection does once accepted belongs to [`crate::local`] and
//! [`crate::remote`]; this module only hands them sockets.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, warn};

use crate::config::HostPort;
use crate::error::Error;
use crate::shutdown::Shutdown;

/// First pause after a failed `accept` (for example, out of file descriptors).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);

/// Longest pause between `accept` retries; the backoff doubles up to this.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Least time between two warnings that the connection limit is reached.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Binds a listening socket, turning failures into an error that names the address.
///
/// # Errors
/// [`Error::Bind`] when the address is in use, not local, or needs privileges.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Accepts connections until `shutdown` stops, spawning `handle` for each one on the
/// shutdown's task tracker.
///
/// A permit from `limit` is taken before each `accept` and held by the connection's
/// task, so at most the semaphore's size of connections run at once; others wait in
/// the listen backlog. Accept errors are logged and retried with capped backoff.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    limit: Arc<Semaphore>,
    shutdown: Shutdown,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut warned_full: Option<Instant> = None;
    loop {
        let permit = match limit.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned_full.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_INTERVAL) {
                    let listen = listener.local_addr().ok();
                    warn!(
                        listen = ?listen,
                        "all --max-connections slots are in use: further connections wait \
                         in the listen backlog until one ends"
                    );
                    warned_full = Some(Instant::now());
                }
                tokio::select! {
                    permit = limit.clone().acquire_owned() => {
                        permit.expect("the semaphore is never closed")
                    }
                    () = shutdown.stopping() => return,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.stopping() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let _ = stream.set_nodelay(true);
                let task = handle(stream, peer);
                shutdown.tracker().spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
            Err(err) => {
                error!(error = %err, retry_in = ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Descriptors a role needs besides two per connection: listeners, the runtime's
/// own, log output, key files being read.
const SPARE_DESCRIPTORS: u64 = 64;

/// Raises this process's soft open-file limit to its hard limit, and warns when even
/// that cannot hold `connections` connections of two sockets each plus `extra`
/// sockets (pooled tunnels). Many systems start processes with a soft limit of
/// 1024, below what the default connection limit needs; running out shows up only
/// under load, as failed accepts and connects.
pub fn raise_open_file_limit(connections: usize, extra: usize) {
    let needed = 2 * connections as u64 + extra as u64 + SPARE_DESCRIPTORS;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            warn!(error = %err, "cannot read or raise the open-file limit");
            return;
        }
    };
    if limit < needed {
        warn!(
            limit,
            needed,
            "the open-file limit is below what --max-connections needs: raise it (ulimit -n, \
             or the container's nofile limit) or lower --max-connections"
        );
    }
}

/// Waits for a spawned task that must not fail quietly: a panic in it is raised
/// again in the caller.
pub async fn join_task(task: AbortOnDropHandle<()>) {
    if let Err(err) = task.await
        && err.is_panic()
    {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Connects to `addr`, resolving its name now, within `timeout`.
///
/// # Errors
/// The resolver's or the socket's error, or `TimedOut`.
pub async fn connect(addr: &HostPort, timeout: Duration) -> std::io::Result<TcpStream> {
    let attempt = TcpStream::connect((addr.host.as_str(), addr.port));
    let stream = match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ));
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A short process-wide id for log lines of one connection.
pub fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A duration in milliseconds rounded to hundredths, for log fields.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e5).round() / 100.0
}

/// Test helpers: loopback socket pairs and the bound on a role's connection task.
#[cfg(test)]
pub(crate) mod testing {
    use tokio::net::{TcpListener, TcpStream};

    /// Bytes a connection task may take in the test build (about 2.7 KiB now; the
    /// release build measured slightly less). Every open connection pays this, so
    /// an idle one's cost rests on it. It catches state kept alive across the relay
    /// that it does not need, such as a second copy of a setup future or the whole
    /// handshake result (3.3 KiB when that happened).
    const MAX_TASK_BYTES: usize = 2944;

    /// A connected loopback pair: (the connecting end, the accepted end).
    pub(crate) async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (near, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (near.unwrap(), accepted.unwrap().0)
    }

    /// Fails when `task`, a role's connection future, is over the bound.
    pub(crate) fn assert_task_small<T>(role: &str, task: &T) {
        let size = std::mem::size_of_val(task);
        println!("{role} connection task: {size} bytes");
        assert!(
            size <= MAX_TASK_BYTES,
            "a {role} connection task takes {size} bytes"
        );
    }
}
