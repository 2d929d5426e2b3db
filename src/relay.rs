//! The relay: moves bytes between a plaintext socket and a tunnel socket once the
//! handshake is done, in both directions at once.
//!
//! Each direction is a small loop with at most one buffer of about one record's
//! size: read, seal or open, write, repeat. Buffers (and expanded cipher keys)
//! exist only while data flows. Nothing is queued, so a slow reader stalls its
//! writer through TCP flow control and memory per connection stays fixed. Half-close is
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
use tokio::io::Interest;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::crypto::aead::TAG_LEN;
use crate::record::{
    AbortReason, HEADER_LEN, MAX_PAYLOAD_LEN, MAX_RECORD_LEN, Opener, RecordError, RecordType,
    Sealer, is_alert, parse_header,
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
    sealer: Sealer,
    reader: RecordReader,
    idle_timeout: Option<Duration>,
    cut: impl Future<Output = ()>,
) -> (RelayStats, Result<(), RelayError>) {
    let activity = Activity::new();
    let stop = Stop::default();
    let result = {
        let (plain_read, plain_write) = plain.split();
        let (tunnel_read, tunnel_write) = tunnel.split();
        let outbound = plain_to_tunnel(plain_read, tunnel_write, sealer, &activity, &stop);
        let inbound = tunnel_to_plain(tunnel_read, plain_write, reader, &activity);
        tokio::pin!(outbound, inbound, cut);
        let (mut out_done, mut in_done) = (false, false);
        loop {
            let stopping = tokio::select! {
                result = &mut outbound, if !out_done => match result {
                    Ok(()) => { out_done = true; None }
                    Err(err) => break Err(err),
                },
                result = &mut inbound, if !in_done => match result {
                    Ok(()) => { in_done = true; None }
                    Err(err) => break Err(err),
                },
                timeout = activity.idle(idle_timeout) => {
                    Some((AbortReason::Idle, RelayError::Idle(timeout)))
                }
                () = &mut cut => Some((AbortReason::ShuttingDown, RelayError::Shutdown)),
            };
            if out_done && in_done {
                break Ok(());
            }
            let Some((reason, error)) = stopping else {
                continue;
            };
            // Let the sending half tell the peer why, unless it has already closed
            // its direction or is stuck behind a peer that does not read.
            stop.trigger(reason);
            if !out_done {
                let _ = tokio::time::timeout(ABORT_GRACE, &mut outbound).await;
            }
            break Err(error);
        }
    };
    if result.is_err() {
        // Best effort: the socket may already be gone.
        let _ = plain.set_zero_linger();
    }
    (activity.stats(), result)
}

/// Logs the end of a relay: `info` for a clean close, an idle timeout or a shutdown
/// on either side, `warn` for anything else.
pub fn log_outcome(stats: RelayStats, elapsed: Duration, result: &Result<(), RelayError>) {
    let (sent, received) = (stats.sent, stats.received);
    match result {
        Ok(()) => info!(sent, received, duration = ?elapsed, "connection closed"),
        Err(
            err @ (RelayError::Idle(_)
            | RelayError::Shutdown
            | RelayError::Aborted(AbortReason::Idle | AbortReason::ShuttingDown)),
        ) => {
            info!(sent, received, duration = ?elapsed, reason = %err, "connection closed");
        }
        Err(err) => {
            let duration = elapsed;
            warn!(sent, received, ?duration, error = %err, "connection closed with error");
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
    stop: &Stop,
) -> Result<(), RelayError> {
    let mut buf: Option<Vec<u8>> = None;
    loop {
        if let Some(reason) = stop.reason() {
            return Err(send_abort(&mut tunnel, &mut sealer, reason).await);
        }
        if buf.is_none() {
            tokio::select! {
                ready = plain.readable() => if let Err(err) = ready {
                    return Err(fail_plain(&mut tunnel, &mut sealer, err).await);
                },
                () = stop.token.cancelled() => continue,
            }
        }
        let record = buf.get_or_insert_with(|| Vec::with_capacity(MAX_RECORD_LEN));
        record.clear();
        record.resize(HEADER_LEN + 1, 0);
        let read = match read_draining(&plain, &mut (&mut *record).limit(MAX_PAYLOAD_LEN)) {
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                buf = None;
                sealer.release_key();
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

/// Why the relay is being stopped from outside (idle timeout, shutdown), for the
/// sending half to put in an `Abort` record.
#[derive(Default)]
struct Stop {
    token: tokio_util::sync::CancellationToken,
    reason: std::sync::OnceLock<AbortReason>,
}

impl Stop {
    fn trigger(&self, reason: AbortReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    fn reason(&self) -> Option<AbortReason> {
        self.reason.get().copied()
    }
}

/// How long the sending half gets, once the relay is stopped, to put its `Abort`
/// record on the wire; a peer that does not read gets no record.
const ABORT_GRACE: Duration = Duration::from_millis(200);

/// Sends `reason` in an `Abort` record; returns the error the half ends with (the
/// relay reports its own reason instead).
async fn send_abort(
    tunnel: &mut WriteHalf<'_>,
    sealer: &mut Sealer,
    reason: AbortReason,
) -> RelayError {
    let _ = abort(tunnel, sealer, reason).await;
    RelayError::Shutdown
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
async fn tunnel_to_plain(
    tunnel: ReadHalf<'_>,
    mut plain: WriteHalf<'_>,
    mut reader: RecordReader,
    activity: &Activity,
) -> Result<(), RelayError> {
    loop {
        let (kind, payload) = reader.next(&tunnel).await?;
        match kind {
            RecordType::Data => {
                activity.received(payload.len());
                plain.write_all(payload).await.map_err(RelayError::Plain)?;
            }
            RecordType::KeyUpdate => {}
            RecordType::Close => {
                plain.shutdown().await.map_err(RelayError::Plain)?;
                return Ok(());
            }
            RecordType::Abort => return Err(aborted(payload)),
        }
    }
}

/// Reads and opens one direction's records through a single buffer, so that a
/// header and its body, or several small records, arrive with one system call.
///
/// The buffer holds at most [`READ_BUF_LEN`] bytes and exists only while data
/// flows: once everything read has been handed on and the socket has nothing more,
/// it is released, so an idle connection holds none. A record is opened in place
/// and its payload lent to the caller until the next call.
pub struct RecordReader {
    opener: Opener,
    buf: Vec<u8>,
    start: usize,
    /// Whether the next record may be a handshake Alert (the local side's first).
    alert_possible: bool,
}

impl RecordReader {
    /// A reader opening records with `opener`, holding no buffer yet.
    pub fn new(opener: Opener) -> Self {
        Self {
            opener,
            buf: Vec::new(),
            start: 0,
            alert_possible: false,
        }
    }

    /// This reader with `early` already buffered: bytes after the handshake that
    /// were read along with it, which come before anything still in the socket.
    #[must_use]
    pub fn with_early(mut self, early: &[u8]) -> Self {
        if !early.is_empty() {
            let mut buf = Vec::with_capacity(READ_BUF_LEN);
            buf.extend_from_slice(early);
            self.buf = buf;
        }
        self
    }

    /// A reader for the local side, whose first record from the remote may instead
    /// be an Alert refusing its authentication ([`RecordError::Refused`]).
    pub fn for_local(opener: Opener) -> Self {
        Self {
            alert_possible: true,
            ..Self::new(opener)
        }
    }

    /// Waits for the local side's first record on a fresh tunnel: an empty `Data`
    /// record opens it for relaying (`true`), a `Close` retires an unused pooled
    /// tunnel (`false`). Bytes that came in behind the first record stay buffered
    /// for the relay.
    ///
    /// # Errors
    /// A [`RelayError`] for anything else: a record that fails to open, a record
    /// with payload, an end of stream or a socket error.
    pub async fn wait_for_open(&mut self, tunnel: &mut TcpStream) -> Result<bool, RelayError> {
        let (read, _) = tunnel.split();
        match self.next(&read).await? {
            (RecordType::Data, []) => Ok(true),
            (RecordType::Close, _) => Ok(false),
            (RecordType::Abort, payload) => Err(aborted(payload)),
            (kind, _) => Err(RecordError::UnexpectedFirst(format!("{kind:?}")).into()),
        }
    }

    /// Reads until a whole record is buffered, opens it, and returns its type and
    /// payload (`KeyUpdate` records too, with an empty payload).
    ///
    /// # Errors
    /// A [`RecordError`] for a record that is rejected or for an end of stream
    /// (a clean end always comes after a `Close` record); [`RelayError::Tunnel`] for
    /// a socket error.
    async fn next(&mut self, tunnel: &ReadHalf<'_>) -> Result<(RecordType, &[u8]), RelayError> {
        loop {
            let buffered = &self.buf[self.start..];
            if let Some(header) = buffered.first_chunk::<HEADER_LEN>().copied() {
                if self.alert_possible && is_alert(&header) {
                    return Err(RecordError::Refused.into());
                }
                let total = HEADER_LEN + parse_header(&header)?;
                if buffered.len() >= total {
                    let at = self.start + HEADER_LEN;
                    self.start += total;
                    let body = &mut self.buf[at..self.start];
                    let (kind, range) = self.opener.open_in_place(&header, body)?;
                    self.alert_possible = false;
                    return Ok((kind, &self.buf[at + range.start..at + range.end]));
                }
                if self.start + total > READ_BUF_LEN {
                    // Move the partial record to the front to make room for the rest.
                    self.buf.copy_within(self.start.., 0);
                    self.buf.truncate(self.buf.len() - self.start);
                    self.start = 0;
                }
            }
            self.fill(tunnel).await?;
        }
    }

    /// Reads what the socket has into the buffer, waiting if it has nothing.
    async fn fill(&mut self, tunnel: &ReadHalf<'_>) -> Result<(), RelayError> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        loop {
            if self.buf.capacity() == 0 {
                tunnel.readable().await.map_err(RelayError::Tunnel)?;
                self.buf.reserve_exact(READ_BUF_LEN);
            }
            let room = READ_BUF_LEN - self.buf.len();
            match read_draining(tunnel, &mut (&mut self.buf).limit(room)) {
                Ok(0) => return Err(RecordError::Truncated.into()),
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.buf.is_empty() {
                        // Nothing half-read: hold no buffer, nor expanded key, while
                        // waiting.
                        self.buf = Vec::new();
                        self.opener.release_key();
                    } else {
                        tunnel.readable().await.map_err(RelayError::Tunnel)?;
                    }
                }
                Err(err) => return Err(RelayError::Tunnel(err)),
            }
        }
    }
}

/// Reads what `socket` has into `buf` without waiting, like `try_read_buf`. A read
/// of fewer than [`DRAINED_BELOW`] bytes that fills less than the space offered
/// emptied the socket's receive queue, so the socket's readiness is dropped with
/// it: the next read then reports `WouldBlock` at once, without a system call, and
/// waiting resumes on the next wake-up. Readiness is dropped only as of the
/// wake-up seen before this read (a later one is kept), and an end of stream
/// already seen stays visible.
fn read_draining<B: BufMut>(socket: &ReadHalf<'_>, buf: &mut B) -> std::io::Result<usize> {
    let socket: &TcpStream = socket.as_ref();
    let offered = buf.chunk_mut().len();
    let mut read = None;
    let outcome = socket.try_io(Interest::READABLE, || {
        let got = socket.try_read_buf(buf)?;
        read = Some(got);
        if 0 < got && got < offered && got < DRAINED_BELOW {
            // Reported as `WouldBlock` so that `try_io` drops the readiness.
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match (outcome, read) {
        (Err(err), Some(got)) if err.kind() == std::io::ErrorKind::WouldBlock => Ok(got),
        (outcome, _) => outcome,
    }
}

/// Reads shorter than this drop the socket's readiness when they empty it (see
/// [`read_draining`]): small messages are where one more read, only to learn it
/// would block, costs as much as the work. A longer read is taken to be part of a
/// bulk transfer, where more bytes have usually arrived by the time its record is
/// sealed and sent, so reading again at once is cheaper than a trip through the
/// poller.
const DRAINED_BELOW: usize = 16 * 1024;

/// Most bytes the record reader buffers: the largest record and 16 KiB more, so one
/// read can take in a whole record and the start of the next while a stalled
/// connection holds little more than one record.
pub const READ_BUF_LEN: usize = MAX_RECORD_LEN + 16 * 1024;

/// The error for an `Abort` record whose payload is `payload`.
fn aborted(payload: &[u8]) -> RelayError {
    let reason = payload.first().copied().map(AbortReason::from_byte);
    RelayError::Aborted(reason.unwrap_or(AbortReason::Other))
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

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;
    use crate::crypto::CipherSuite;
    use crate::crypto::aead::KEY_LEN;
    use crate::net::testing::socket_pair;
    use crate::record::MAX_SEALED_LEN;

    fn keys() -> (Sealer, RecordReader) {
        let secret = Zeroizing::new([3u8; KEY_LEN]);
        let suite = CipherSuite::Aes256Gcm;
        let sealer = Sealer::new(suite, secret.clone());
        (sealer, RecordReader::new(Opener::new(suite, secret)))
    }

    #[tokio::test]
    async fn a_short_read_waits_for_more_and_still_sees_the_end_of_stream() {
        let (mut near, mut far) = socket_pair().await;
        let (read, _) = far.split();
        let mut buf = Vec::with_capacity(1024);
        let read = &read;
        let mut read_some = || read_draining(read, &mut (&mut buf).limit(1024));
        let woken = |what| async move {
            let wait = tokio::time::timeout(Duration::from_secs(5), read.readable());
            wait.await.expect(what).unwrap();
        };

        near.write_all(b"first").await.unwrap();
        woken("the first bytes did not wake the reader").await;
        assert_eq!(read_some().unwrap(), 5);
        // The socket was emptied: the next read says so without waiting.
        let err = read_some().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);

        // New bytes wake the reader again; bytes and end of stream sent together
        // are both seen, the end right after the bytes.
        near.write_all(b"second").await.unwrap();
        near.shutdown().await.unwrap();
        woken("new bytes did not wake the reader").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(read_some().unwrap(), 6);
        woken("the end of stream was lost").await;
        assert_eq!(read_some().unwrap(), 0);
        assert_eq!(buf, b"firstsecond");
    }

    #[tokio::test]
    async fn records_split_or_batched_arrive_whole_and_in_order() {
        let (mut near, mut far) = socket_pair().await;
        let (mut sealer, mut reader) = keys();
        let payloads: Vec<Vec<u8>> = (0..40usize)
            .map(|i| {
                let len = [0, 1, 700, MAX_PAYLOAD_LEN][i % 4];
                (0..len).map(|b| (b * 31 + i) as u8).collect()
            })
            .collect();
        let mut wire = Vec::new();
        for payload in &payloads {
            wire.extend(sealer.seal_to_vec(RecordType::Data, payload).unwrap());
        }
        // Odd-sized writes with pauses: records straddle reads, and several small
        // ones share a read; full-size ones force the buffer to be compacted.
        let writer = tokio::spawn(async move {
            for chunk in wire.chunks(50_001) {
                near.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            near
        });
        let (read, _) = far.split();
        for (index, expected) in payloads.iter().enumerate() {
            let (kind, payload) = reader.next(&read).await.unwrap();
            assert_eq!(kind, RecordType::Data);
            assert!(payload == &expected[..], "record {index} differs");
            assert!(reader.buf.capacity() <= READ_BUF_LEN);
        }
        let _near = writer.await.unwrap();

        // Nothing left and nothing arriving: the reader waits without a buffer.
        let wait = tokio::time::timeout(Duration::from_millis(50), reader.next(&read));
        assert!(wait.await.is_err(), "a record appeared from nowhere");
        assert_eq!(reader.buf.capacity(), 0, "an idle reader kept its buffer");
    }

    #[tokio::test]
    async fn end_of_stream_without_close_is_truncation() {
        let (mut near, mut far) = socket_pair().await;
        let (mut sealer, mut reader) = keys();
        let record = sealer.seal_to_vec(RecordType::Data, b"partial").unwrap();
        near.write_all(&record[..record.len() - 3]).await.unwrap();
        drop(near);
        let (read, _) = far.split();
        let err = reader.next(&read).await.unwrap_err();
        assert!(
            matches!(err, RelayError::Record(RecordError::Truncated)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_alert_is_a_refusal_only_where_the_local_expects_the_first_record() {
        let alert = [0x7f, 0, 1, 4, 0, 0, 0, 0];
        for (local, first_record_sent) in [(true, false), (true, true), (false, false)] {
            let (mut near, mut far) = socket_pair().await;
            let (mut sealer, reader) = keys();
            let mut reader = if local {
                RecordReader::for_local(reader.opener)
            } else {
                reader
            };
            if first_record_sent {
                let record = sealer.seal_to_vec(RecordType::Data, b"first").unwrap();
                near.write_all(&record).await.unwrap();
            }
            near.write_all(&alert).await.unwrap();
            let (read, _) = far.split();
            if first_record_sent {
                let (kind, payload) = reader.next(&read).await.unwrap();
                assert_eq!((kind, payload), (RecordType::Data, &b"first"[..]));
            }
            let err = reader.next(&read).await.unwrap_err();
            let refused = matches!(err, RelayError::Record(RecordError::Refused));
            let oversize = matches!(err, RelayError::Record(RecordError::Oversize { .. }));
            let case = format!("local {local}, after a record {first_record_sent}: {err}");
            if local && !first_record_sent {
                assert!(refused, "{case}");
            } else {
                assert!(oversize, "{case}");
            }
        }
    }

    #[tokio::test]
    async fn oversized_header_is_refused_before_buffering() {
        let (mut near, mut far) = socket_pair().await;
        let (_, mut reader) = keys();
        let announced = (MAX_SEALED_LEN as u32 + 1).to_be_bytes();
        near.write_all(&announced).await.unwrap();
        let (read, _) = far.split();
        let err = reader.next(&read).await.unwrap_err();
        assert!(
            matches!(err, RelayError::Record(RecordError::Oversize { .. })),
            "{err}"
        );
    }
}
