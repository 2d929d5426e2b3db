//! Tunnel setup for the local role: a small pool of tunnels already connected and
//! handshaken, and the resumption tickets that make new ones cheap.
//!
//! The first tunnel to a remote pays for a full RSA handshake; it leaves a session
//! ticket ([`crate::handshake::resume`]) with which later tunnels do a resumed
//! handshake: a fresh X25519 exchange, no RSA. Each resumed tunnel leaves a
//! one-time ticket, which a later tunnel spends without a key exchange, up to a
//! chain of [`resume::ONE_TIME_CHAIN`]. The pool keeps a few such tunnels ready, so a new
//! client is carried at once without waiting for a TCP connect and a handshake
//! round trip. A tunnel handed out is replaced in the background. Pooled tunnels
//! older than [`POOL_MAX_AGE`] or closed by the remote are retired, not used.
//!
//! The pool does not relay; [`crate::local`] takes a tunnel from it and hands it to
//! [`crate::relay`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};

use crate::config::{HostPort, LocalConfig};
use crate::handshake::resume::{self, Ticket};
use crate::handshake::{self, Established, HandshakeError, local::LocalParams};
use crate::net;
use crate::record::{Opener, RecordType, Sealer};
use crate::shutdown::Shutdown;

/// Oldest a pooled tunnel may be when handed out; older ones are closed and
/// replaced, so the remote never holds an unused tunnel for long.
pub const POOL_MAX_AGE: Duration = Duration::from_secs(30);

/// Most one-time tickets kept per remote; each pooled tunnel leaves one, so a
/// pool holds about its size in tickets.
const MAX_ONE_TIME_TICKETS: usize = 64;

/// Pause after a failed background dial before the pool dials again; it doubles
/// with each failure in a row, up to [`REFILL_BACKOFF_MAX`].
const REFILL_BACKOFF: Duration = Duration::from_secs(1);

/// Longest pause between background dials while the remote cannot be reached.
const REFILL_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How often the pool drops tunnels the remote closed or that grew too old, and
/// dials replacements, when no client takes one.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

/// Why a tunnel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The TCP connection to the remote failed.
    #[error("cannot reach the remote: {0}")]
    Connect(std::io::Error),
    /// The handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
}

/// A tunnel ready to carry one client: the socket and its record-layer state.
pub struct Tunnel {
    /// The TCP connection to the remote.
    pub stream: TcpStream,
    /// Cipher, peer and record state from the handshake.
    pub established: Established,
    /// How long the setup took (connect and handshake).
    pub setup: Duration,
}

impl Tunnel {
    /// The socket and the two record-layer halves, all a relay needs. Taking the
    /// tunnel whole (not field by field) lets the rest of it be dropped before the
    /// relay runs, instead of staying in the connection task for its lifetime.
    pub fn into_relay_parts(self) -> (TcpStream, Sealer, Opener) {
        (
            self.stream,
            self.established.sealer,
            self.established.opener,
        )
    }
}

/// Ready tunnels to one remote.
pub struct TunnelPool {
    remote: HostPort,
    config: Arc<LocalConfig>,
    size: usize,
    /// The session ticket from the last full handshake.
    ticket: Mutex<Option<Ticket>>,
    /// One-time tickets left by resumed handshakes, oldest first.
    one_time: Mutex<VecDeque<Ticket>>,
    /// Held while a full handshake runs, so that only one does.
    full_handshake: tokio::sync::Mutex<()>,
    ready: Mutex<VecDeque<(Tunnel, Instant)>>,
    dialing: AtomicUsize,
    /// Failed background dials in a row, and when the next may start.
    backoff: Mutex<(u32, Option<Instant>)>,
    closed: AtomicBool,
}

impl TunnelPool {
    /// A pool of `size` ready tunnels to `remote` (0: dial on demand only). Nothing
    /// is dialed until [`TunnelPool::fill`] or the first checkout.
    pub fn new(remote: HostPort, config: Arc<LocalConfig>, size: usize) -> Arc<Self> {
        Arc::new(Self {
            remote,
            config,
            size,
            ticket: Mutex::new(None),
            one_time: Mutex::new(VecDeque::new()),
            full_handshake: tokio::sync::Mutex::new(()),
            ready: Mutex::new(VecDeque::new()),
            dialing: AtomicUsize::new(0),
            backoff: Mutex::new((0, None)),
            closed: AtomicBool::new(false),
        })
    }

    /// Starts dialing until the pool holds its size in ready tunnels.
    pub fn fill(self: &Arc<Self>) {
        let waiting = self
            .backoff
            .lock()
            .expect("backoff lock is never poisoned")
            .1;
        if self.closed.load(Ordering::Acquire) || waiting.is_some_and(|at| at > Instant::now()) {
            return;
        }
        loop {
            let ready = self
                .ready
                .lock()
                .expect("pool lock is never poisoned")
                .len();
            let dialing = self.dialing.load(Ordering::Acquire);
            // Until a ticket exists, one full handshake at a time: the others resume.
            let has_ticket = self
                .ticket
                .lock()
                .expect("ticket lock is never poisoned")
                .is_some();
            if ready + dialing >= self.size || (!has_ticket && dialing > 0) {
                return;
            }
            self.dialing.fetch_add(1, Ordering::AcqRel);
            let pool = self.clone();
            let span = tracing::info_span!("pool", remote = %self.remote);
            tokio::spawn(
                async move {
                    match pool.dial().await {
                        Ok(tunnel) if pool.closed.load(Ordering::Acquire) => retire(tunnel).await,
                        Ok(tunnel) => {
                            debug!(
                                handshake = %tunnel.established.setup,
                                cipher = %tunnel.established.suite,
                                setup_ms = net::millis(tunnel.setup),
                                "tunnel ready in the pool"
                            );
                            *pool.backoff.lock().expect("backoff lock is never poisoned") =
                                (0, None);
                            let mut ready = pool.ready.lock().expect("pool lock is never poisoned");
                            ready.push_back((tunnel, Instant::now()));
                            drop(ready);
                            pool.dialing.fetch_sub(1, Ordering::AcqRel);
                            pool.fill();
                            return;
                        }
                        Err(err) => pool.note_failure(&err),
                    }
                    pool.dialing.fetch_sub(1, Ordering::AcqRel);
                }
                .instrument(span),
            );
        }
    }

    /// Records a failed background dial and pushes the next one back. The first
    /// failure in a row is a warning; repeats are logged at debug level.
    fn note_failure(&self, err: &SetupError) {
        let mut backoff = self.backoff.lock().expect("backoff lock is never poisoned");
        let failures = backoff.0;
        let pause = REFILL_BACKOFF
            .saturating_mul(1 << failures.min(6))
            .min(REFILL_BACKOFF_MAX);
        *backoff = (failures.saturating_add(1), Some(Instant::now() + pause));
        drop(backoff);
        if failures == 0 {
            // Our fingerprint is what the remote's operator needs if it refused us.
            let ours = self.config.key.public_key().fingerprint();
            warn!(error = %err, retry_in = ?pause, our_key = %ours, "cannot prepare a tunnel");
        } else {
            let failures = failures + 1;
            debug!(error = %err, retry_in = ?pause, failures, "cannot prepare a tunnel");
        }
    }

    /// Keeps the pool fresh until `shutdown`: drops tunnels the remote has closed
    /// or that are too old, dials replacements, and at shutdown retires every ready
    /// tunnel with a `Close` record so the remote does not take the end for an
    /// attack.
    pub async fn maintain(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(MAINTENANCE_INTERVAL) => {
                    self.prune();
                    self.fill();
                }
                () = shutdown.stopping() => break,
            }
        }
        self.closed.store(true, Ordering::Release);
        let ready: Vec<_> = self
            .ready
            .lock()
            .expect("pool lock is never poisoned")
            .drain(..)
            .collect();
        for (tunnel, _) in ready {
            retire(tunnel).await;
        }
    }

    /// Retires ready tunnels that are too old or no longer open.
    fn prune(&self) {
        let mut ready = self.ready.lock().expect("pool lock is never poisoned");
        let mut kept = VecDeque::with_capacity(ready.len());
        for (tunnel, since) in ready.drain(..) {
            if since.elapsed() < POOL_MAX_AGE && is_idle_and_open(&tunnel.stream) {
                kept.push_back((tunnel, since));
            } else {
                tokio::spawn(retire(tunnel));
            }
        }
        *ready = kept;
    }

    /// A tunnel for a new client: a pooled one if a live one is ready, otherwise one
    /// dialed now. Either way the pool is topped up in the background.
    ///
    /// # Errors
    /// [`SetupError`] when no pooled tunnel is ready and dialing fails.
    pub async fn checkout(self: &Arc<Self>) -> Result<Tunnel, SetupError> {
        let pooled = loop {
            let next = self
                .ready
                .lock()
                .expect("pool lock is never poisoned")
                .pop_front();
            let Some((tunnel, since)) = next else {
                break None;
            };
            if since.elapsed() < POOL_MAX_AGE && is_idle_and_open(&tunnel.stream) {
                break Some(tunnel);
            }
            tokio::spawn(retire(tunnel));
        };
        self.fill();
        match pooled {
            Some(tunnel) => Ok(tunnel),
            // Boxed: a dial's state is larger than a relay's, and a connection task
            // is as large as its largest state for as long as it runs.
            None => Box::pin(self.dial()).await,
        }
    }

    /// Connects and handshakes. Spends a one-time ticket if one is at hand, else
    /// resumes with the session ticket, else does a full handshake; a ticket the
    /// remote refuses moves on to the next of these.
    async fn dial(&self) -> Result<Tunnel, SetupError> {
        let started = Instant::now();
        if let Some(ticket) = self.take_one_time() {
            match self.resume(&ticket, started).await {
                Err(SetupError::Handshake(HandshakeError::UnknownTicket)) => {
                    // The remote stores a one-time ticket only once it has read the
                    // end of the handshake that left it, and forgets them all when
                    // it restarts: only this one is known to be bad.
                    debug!("remote refused a one-time ticket; resuming with the session ticket");
                }
                outcome => return outcome,
            }
        }
        if let Some(tunnel) = self.resume_with_session(started).await? {
            return Ok(tunnel);
        }
        // One full handshake at a time: dials that get here meanwhile wait for it,
        // then resume with the ticket it leaves.
        let _only_one = self.full_handshake.lock().await;
        if let Some(tunnel) = self.resume_with_session(started).await? {
            return Ok(tunnel);
        }

        let mut stream = self.connect().await?;
        let params = LocalParams {
            key: &self.config.key,
            remote_pin: self.config.remote_pin,
            ciphers: &self.config.ciphers,
        };
        let full =
            async |buffered: &mut Buffered<'_>| handshake::local::run(buffered, &params).await;
        let mut established = self.handshake(&mut stream, full).await?;
        if let Some(ticket) = established.ticket.take() {
            *self.ticket.lock().expect("ticket lock is never poisoned") = Some(ticket);
        }
        Ok(Tunnel {
            stream,
            established,
            setup: started.elapsed(),
        })
    }

    /// A tunnel resumed with the session ticket, or `None` when there is no fresh
    /// one or the remote refuses it. A refused session ticket is forgotten, and the
    /// one-time tickets with it: the remote has restarted or let it expire.
    async fn resume_with_session(&self, started: Instant) -> Result<Option<Tunnel>, SetupError> {
        let session = self
            .ticket
            .lock()
            .expect("ticket lock is never poisoned")
            .clone()
            .filter(Ticket::is_fresh);
        let Some(ticket) = session else {
            return Ok(None);
        };
        match self.resume(&ticket, started).await {
            Ok(tunnel) => Ok(Some(tunnel)),
            Err(SetupError::Handshake(HandshakeError::UnknownTicket)) => {
                debug!("remote forgot our session ticket; doing a full handshake");
                let mut kept = self.ticket.lock().expect("ticket lock is never poisoned");
                // Another dial may have stored a newer ticket meanwhile: keep that.
                if kept.as_ref().is_some_and(|kept| kept.id() == ticket.id()) {
                    *kept = None;
                    self.lock_one_time().clear();
                }
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// A resumed handshake with `ticket` on a new connection; keeps the one-time
    /// ticket it leaves.
    async fn resume(&self, ticket: &Ticket, started: Instant) -> Result<Tunnel, SetupError> {
        let mut stream = self.connect().await?;
        let ciphers = &self.config.ciphers;
        let resumed =
            async |buffered: &mut Buffered<'_>| resume::local(buffered, ticket, ciphers).await;
        let mut established = self.handshake(&mut stream, resumed).await?;
        if let Some(next) = established.ticket.take() {
            let mut one_time = self.lock_one_time();
            if one_time.len() >= MAX_ONE_TIME_TICKETS {
                one_time.pop_front();
            }
            one_time.push_back(next);
        }
        Ok(Tunnel {
            stream,
            established,
            setup: started.elapsed(),
        })
    }

    /// The oldest fresh one-time ticket, removed so it is never offered twice.
    fn take_one_time(&self) -> Option<Ticket> {
        let mut one_time = self.lock_one_time();
        while let Some(ticket) = one_time.pop_front() {
            if ticket.is_fresh() {
                return Some(ticket);
            }
        }
        None
    }

    fn lock_one_time(&self) -> std::sync::MutexGuard<'_, VecDeque<Ticket>> {
        self.one_time
            .lock()
            .expect("one-time ticket lock is never poisoned")
    }

    /// Runs `run`, one of the local handshakes, on `stream` under the handshake
    /// deadline, reading through a [`handshake::READ_AHEAD`] buffer so that each of
    /// the remote's flights takes one read. The remote sends nothing after its last
    /// handshake frame until the tunnel is opened, so bytes left in the buffer are
    /// refused rather than dropped.
    async fn handshake(
        &self,
        stream: &mut TcpStream,
        run: impl AsyncFnOnce(&mut Buffered<'_>) -> Result<Established, HandshakeError>,
    ) -> Result<Established, HandshakeError> {
        let mut buffered = BufReader::with_capacity(handshake::READ_AHEAD, stream);
        let established =
            deadline(self.config.limits.handshake_timeout, run(&mut buffered)).await?;
        match buffered.buffer().len() {
            0 => Ok(established),
            extra => Err(HandshakeError::Malformed(format!(
                "the remote sent {extra} bytes after its last handshake message, before the \
                 tunnel was opened"
            ))),
        }
    }

    async fn connect(&self) -> Result<TcpStream, SetupError> {
        net::connect(&self.remote, self.config.limits.connect_timeout)
            .await
            .map_err(SetupError::Connect)
    }
}

/// The socket to the remote as a handshake reads it.
type Buffered<'a> = BufReader<&'a mut TcpStream>;

/// Sends the record that starts relaying on a tunnel (an empty `Data` record); the
/// remote connects to its target only once it reads it.
///
/// # Errors
/// The socket error if it cannot be written.
pub async fn open(tunnel: &mut Tunnel) -> std::io::Result<()> {
    let record = tunnel
        .established
        .sealer
        .seal_to_vec(RecordType::Data, &[])
        .expect("an empty payload always fits a record");
    tunnel.stream.write_all(&record).await
}

/// Closes an unused pooled tunnel with a `Close` record, so the remote retires it
/// without touching its target.
async fn retire(mut tunnel: Tunnel) {
    if let Ok(record) = tunnel
        .established
        .sealer
        .seal_to_vec(RecordType::Close, &[])
    {
        let _ = tunnel.stream.write_all(&record).await;
        let _ = tunnel.stream.shutdown().await;
    }
}

/// Whether a pooled socket is still open and has nothing to read: before it is
/// used the remote sends nothing, so readable data or an end of stream means the
/// remote gave up on it.
fn is_idle_and_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
}

async fn deadline<T>(
    limit: Duration,
    attempt: impl Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or(Err(HandshakeError::Timeout(limit)))
}
