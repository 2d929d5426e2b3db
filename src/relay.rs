//! The relay: moves bytes between a plaintext socket and a tunnel socket once the
//! handshake is done, in both directions at once.
//!
//! Each direction is a small loop with at most one buffer of one record's size:
//! read, seal or open, write, repeat. Buffers exist only while data flows. Nothing is queued, so a slow reader stalls its writer
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

use bytes::BufMut;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::crypto::aead::TAG_LEN;
use crate::handshake::Established;
use crate::record::{
    AbortReason, HEADER_LEN, MAX_PAYLOAD_LEN, MAX_RECORD_LEN, Opener, RecordError, RecordType,
    Sealer, parse_header,
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

/// Waits for the local side's first record on a fresh tunnel: an empty `Data`
/// record opens it for relaying (`true`), a `Close` retires an unused pooled tunnel
/// (`false`).
///
/// # Errors
/// A [`RelayError`] for anything else: a record that fails to open, a record with
/// payload, an end of stream or a socket error.
pub async fn wait_for_open(
    tunnel: &mut TcpStream,
    opener: &mut Opener,
) -> Result<bool, RelayError> {
    let (mut read, _) = tunnel.split();
    let mut header = [0u8; HEADER_LEN];
    read_exact_or_truncated(&mut read, &mut header).await?;
    let len = parse_header(&header)?;
    let mut body = vec![0u8; len];
    read_exact_or_truncated(&mut read, &mut body).await?;
    match opener.open_in_place(&header, &mut body)? {
        (RecordType::Data, range) if range.is_empty() => Ok(true),
        (RecordType::Close, _) => Ok(false),
        (RecordType::Abort, range) => {
            let reason = body[range].first().copied().map(AbortReason::from_byte);
            Err(RelayError::Aborted(reason.unwrap_or(AbortReason::Other)))
        }
        (kind, _) => Err(RecordError::UnexpectedFirst(format!("{kind:?}")).into()),
    }
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
///
/// The record buffer exists only while data flows: it is allocated when the socket
/// turns readable and released once a read finds nothing more, so an idle
/// connection holds no buffer.
async fn plain_to_tunnel(
    plain: ReadHalf<'_>,
    mut tunnel: WriteHalf<'_>,
    mut sealer: Sealer,
    activity: &Activity,
) -> Result<(), RelayError> {
    let mut buf: Option<Vec<u8>> = None;
    loop {
        if buf.is_none()
            && let Err(err) = plain.readable().await
        {
            return Err(fail_plain(&mut tunnel, &mut sealer, err).await);
        }
        let record = buf.get_or_insert_with(|| Vec::with_capacity(MAX_RECORD_LEN));
        record.clear();
        record.resize(HEADER_LEN + 1, 0);
        let read = match plain.try_read_buf(&mut (&mut *record).limit(MAX_PAYLOAD_LEN)) {
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                buf = None;
                continue;
            }
            Err(err) => return Err(fail_plain(&mut tunnel, &mut sealer, err).await),
        };
        if sealer.key_update_due() {
            tunnel
                .write_all(&sealer.seal_key_update())
                .await
                .map_err(RelayError::Tunnel)?;
        }
        if read == 0 {
            let close = sealer.seal_to_vec(RecordType::Close, &[])?;
            tunnel.write_all(&close).await.map_err(RelayError::Tunnel)?;
            tunnel.shutdown().await.map_err(RelayError::Tunnel)?;
            return Ok(());
        }
        activity.sent(read);
        record.resize(HEADER_LEN + 1 + read + TAG_LEN, 0);
        let len = sealer.seal_in_place(RecordType::Data, record, read)?;
        tunnel
            .write_all(&record[..len])
            .await
            .map_err(RelayError::Tunnel)?;
    }
}

/// Tells the peer the plaintext side failed (so it is not taken for an end of
/// stream) and returns the error to report.
async fn fail_plain(
    tunnel: &mut WriteHalf<'_>,
    sealer: &mut Sealer,
    err: std::io::Error,
) -> RelayError {
    let _ = abort(tunnel, sealer, AbortReason::Other).await;
    RelayError::Plain(err)
}

/// Opens records and writes their payload out until the peer's `Close`.
///
/// Each record body gets a buffer of exactly its announced size, checked against
/// the limit first, and released once the payload is written.
async fn tunnel_to_plain(
    mut tunnel: ReadHalf<'_>,
    mut plain: WriteHalf<'_>,
    mut opener: Opener,
    activity: &Activity,
) -> Result<(), RelayError> {
    loop {
        let mut header = [0u8; HEADER_LEN];
        read_exact_or_truncated(&mut tunnel, &mut header).await?;
        let len = parse_header(&header)?;
        let mut body = Vec::with_capacity(len);
        while body.len() < len {
            let want = len - body.len();
            match tunnel.read_buf(&mut (&mut body).limit(want)).await {
                Ok(0) => return Err(RecordError::Truncated.into()),
                Ok(_) => {}
                Err(err) => return Err(RelayError::Tunnel(err)),
            }
        }
        let (kind, range) = opener.open_in_place(&header, &mut body)?;
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
async fn read_exact_or_truncated(
    tunnel: &mut ReadHalf<'_>,
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
