//! The relay: moves bytes between a plaintext socket and a tunnel socket once the
//! handshake is done, in both directions at once.
//!
//! Each direction is a small loop with one buffer of one record's size: read, seal
//! or open, write, repeat. Nothing is queued, so a slow reader stalls its writer
//! through TCP flow control and memory per connection stays fixed. Half-close is
//! kept: end of stream on the plaintext side becomes a `Close` record and a TCP
//! shutdown of the tunnel's write half; a `Close` record from the peer becomes a
//! shutdown of the plaintext write half, while the other direction goes on. The
//! relay ends when both directions have closed, on the first error, on the idle
//! timeout, or when the role cuts it at shutdown.
//!
//! Record formats and key updates belong to [`crate::record`]; accepting,
//! connecting and logging belong to the role modules.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::handshake::Established;
use crate::record::{
    AbortReason, HEADER_LEN, MAX_PAYLOAD_LEN, MAX_RECORD_LEN, MAX_SEALED_LEN, Opener, RecordError,
    RecordType, Sealer, parse_header,
};

/// Why a relay ended early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading or writing the tunnel socket failed (reset, broken pipe, ...).
    #[error("tunnel connection failed: {0}")]
    Tunnel(std::io::Error),
    /// Reading or writing the plaintext socket failed.
    #[error("plaintext connection failed: {0}")]
    Plain(std::io::Error),
    /// A record was rejected: the tunnel stream was tampered with or cut.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The peer gave up on the connection and said why.
    #[error("peer aborted the connection: {0}")]
    Aborted(AbortReason),
    /// No bytes moved either way for the idle timeout.
    #[error("no traffic for {0:?}; closed as idle")]
    Idle(Duration),
    /// The role is shutting down and the grace period ran out.
    #[error("cut at shutdown")]
    Shutdown,
}

/// Plaintext bytes moved in each direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Bytes read from the plaintext socket and sent into the tunnel.
    pub sent: u64,
    /// Bytes received from the tunnel and written to the plaintext socket.
    pub received: u64,
}

/// Relays between `plain` and `tunnel` until both directions close.
///
/// `cut` is a future that completes when the relay must stop at once (shutdown).
/// The byte counts are returned whatever the outcome. On error the plaintext socket
/// is reset rather than closed, so the application sees a failure and not a clean
/// end of stream.
pub async fn run(
    plain: &mut TcpStream,
    tunnel: &mut TcpStream,
    established: Established,
    idle_timeout: Option<Duration>,
    cut: impl Future<Output = ()>,
) -> (RelayStats, Result<(), RelayError>) {
    let Established { sealer, opener, .. } = established;
    let activity = Activity::new();
    let result = {
        let (plain_read, plain_write) = plain.split();
        let (tunnel_read, tunnel_write) = tunnel.split();
        let outbound = plain_to_tunnel(plain_read, tunnel_write, sealer, &activity);
        let inbound = tunnel_to_plain(tunnel_read, plain_write, opener, &activity);
        tokio::select! {
            result = async { tokio::try_join!(outbound, inbound).map(|_| ()) } => result,
            timeout = activity.idle(idle_timeout) => Err(RelayError::Idle(timeout)),
            () = cut => Err(RelayError::Shutdown),
        }
    };
    if result.is_err() {
        // Best effort: the socket may already be gone.
        let _ = plain.set_zero_linger();
    }
    (activity.stats(), result)
}

/// Logs the end of a relay: `info` for a clean close, an idle timeout or a shutdown
/// cut, `warn` for anything else.
pub fn log_outcome(stats: RelayStats, elapsed: Duration, result: &Result<(), RelayError>) {
    let (sent, received) = (stats.sent, stats.received);
    match result {
        Ok(()) => info!(sent, received, duration = ?elapsed, "connection closed"),
        Err(err @ (RelayError::Idle(_) | RelayError::Shutdown)) => {
            info!(sent, received, duration = ?elapsed, reason = %err, "connection closed");
        }
        Err(err) => {
            warn!(sent, received, duration = ?elapsed, error = %err, "connection closed with error");
        }
    }
}

/// Sends `reason` as an `Abort` record and closes the tunnel's write half; used when
/// the connection fails before relaying starts (for example, target unreachable).
///
/// # Errors
/// The socket error if the record cannot be written.
pub async fn abort<W: AsyncWrite + Unpin>(
    tunnel: &mut W,
    sealer: &mut Sealer,
    reason: AbortReason,
) -> std::io::Result<()> {
    let record = sealer
        .seal_to_vec(RecordType::Abort, &[reason.to_byte()])
        .expect("a one-byte payload always fits a record");
    tunnel.write_all(&record).await?;
    tunnel.shutdown().await
}

/// Copies plaintext into sealed records until end of stream, then sends `Close`.
async fn plain_to_tunnel<R, W>(
    mut plain: R,
    mut tunnel: W,
    mut sealer: Sealer,
    activity: &Activity,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; MAX_RECORD_LEN];
    let payload = HEADER_LEN + 1..HEADER_LEN + 1 + MAX_PAYLOAD_LEN;
    loop {
        if sealer.key_update_due() {
            tunnel
                .write_all(&sealer.seal_key_update())
                .await
                .map_err(RelayError::Tunnel)?;
        }
        let read = match plain.read(&mut buf[payload.clone()]).await {
            Ok(read) => read,
            Err(err) => {
                // Tell the peer this is a failure, not an end of stream.
                let _ = abort(&mut tunnel, &mut sealer, AbortReason::Other).await;
                return Err(RelayError::Plain(err));
            }
        };
        if read == 0 {
            let len = sealer.seal_in_place(RecordType::Close, &mut buf, 0)?;
            tunnel
                .write_all(&buf[..len])
                .await
                .map_err(RelayError::Tunnel)?;
            tunnel.shutdown().await.map_err(RelayError::Tunnel)?;
            return Ok(());
        }
        activity.sent(read);
        let len = sealer.seal_in_place(RecordType::Data, &mut buf, read)?;
        tunnel
            .write_all(&buf[..len])
            .await
            .map_err(RelayError::Tunnel)?;
    }
}

/// Opens records and writes their payload out until the peer's `Close`.
async fn tunnel_to_plain<R, W>(
    mut tunnel: R,
    mut plain: W,
    mut opener: Opener,
    activity: &Activity,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut body = vec![0u8; MAX_SEALED_LEN];
    loop {
        let mut header = [0u8; HEADER_LEN];
        read_exact_or_truncated(&mut tunnel, &mut header).await?;
        let len = parse_header(&header)?;
        read_exact_or_truncated(&mut tunnel, &mut body[..len]).await?;
        let (kind, range) = opener.open_in_place(&header, &mut body[..len])?;
        match kind {
            RecordType::Data => {
                activity.received(range.len());
                plain
                    .write_all(&body[range])
                    .await
                    .map_err(RelayError::Plain)?;
            }
            RecordType::KeyUpdate => {}
            RecordType::Close => {
                plain.shutdown().await.map_err(RelayError::Plain)?;
                return Ok(());
            }
            RecordType::Abort => {
                let reason = body[range].first().copied().map(AbortReason::from_byte);
                return Err(RelayError::Aborted(reason.unwrap_or(AbortReason::Other)));
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes; an end of stream anywhere reads as truncation,
/// since a clean end is always announced by a `Close` record first.
async fn read_exact_or_truncated<R: AsyncRead + Unpin>(
    tunnel: &mut R,
    buf: &mut [u8],
) -> Result<(), RelayError> {
    match tunnel.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(RecordError::Truncated.into())
        }
        Err(err) => Err(RelayError::Tunnel(err)),
    }
}

/// Byte counters and the time of the last transfer, shared by both directions.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        }
    }

    fn sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
        self.touch();
    }

    fn received(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Ordering::Relaxed);
        self.touch();
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn stats(&self) -> RelayStats {
        RelayStats {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        }
    }

    /// Completes once nothing has moved for `timeout`; never, without a timeout.
    async fn idle(&self, timeout: Option<Duration>) -> Duration {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= timeout {
                return timeout;
            }
            tokio::time::sleep(timeout - quiet).await;
        }
    }
}
