//! The remote role: accepts tunnels from `tunnel local`, authenticates them, and
//! relays each one to the configured target service.
//!
//! Per connection: run the responder handshake under the handshake deadline, then
//! connect to the target (name resolved now). If the target cannot be reached the
//! local side is told so in an `Abort` record and closes its client. Anything that
//! is not a valid tunnel (garbage, HTTP, silence) is logged and dropped without
//! affecting other connections. The handshake steps belong to
//! [`crate::handshake::remote`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{DEFAULT_IDLE_TIMEOUT, RemoteConfig};
use crate::crypto::CipherSuite;
use crate::error::Error;
use crate::handshake::resume::TicketStore;
use crate::handshake::{self, HandshakeError, Setup, remote::RemoteParams};
use crate::keys::Fingerprint;
use crate::net;
use crate::record::{AbortReason, Sealer};
use crate::relay::{self, RecordReader};
use crate::shutdown::Shutdown;

/// The remote role with its listener bound, ready to run.
pub struct Remote {
    listener: TcpListener,
    config: Arc<RemoteConfig>,
    tickets: Arc<TicketStore>,
    logs: Arc<LogBudgets>,
}

impl Remote {
    /// Binds the tunnel listener.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn bind(config: RemoteConfig) -> Result<Self, Error> {
        let listener = net::bind(config.listen).await?;
        let tickets = Arc::new(TicketStore::new());
        Ok(Self {
            listener,
            config: Arc::new(config),
            tickets,
            logs: Arc::default(),
        })
    }

    /// The bound address (useful with port 0).
    ///
    /// # Errors
    /// When the socket cannot report its address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is triggered, then drains open connections.
    pub async fn run(self, shutdown: Shutdown) {
        let limit = Arc::new(Semaphore::new(self.config.limits.max_connections));
        let addr = self
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        info!(
            listen = %addr,
            target = %self.config.target,
            authorized_keys = self.config.authorized.len(),
            "remote listening"
        );
        let config = self.config.clone();
        let tickets = self.tickets.clone();
        let logs = self.logs.clone();
        let conn_shutdown = shutdown.clone();
        // The accept loop runs as a task on the worker threads, not on the thread
        // that called `run`: each accepted connection is then started without
        // waking another thread. It ends with `run`, even if `run` is cancelled.
        let serve = net::serve(
            self.listener,
            limit,
            shutdown.clone(),
            move |stream, peer| {
                let span = info_span!("remote", conn = net::next_connection_id(), %peer);
                handle(
                    stream,
                    config.clone(),
                    tickets.clone(),
                    logs.clone(),
                    conn_shutdown.clone(),
                )
                .instrument(span)
            },
        );
        net::join_task(AbortOnDropHandle::new(tokio::spawn(serve))).await;
        shutdown.drain(self.config.limits.shutdown_grace).await;
    }
}

/// What a finished handshake leaves for the rest of a connection.
struct Authenticated {
    sealer: Sealer,
    reader: RecordReader,
    suite: CipherSuite,
    peer: Fingerprint,
    setup: Setup,
    handshake_ms: f64,
}

/// Runs the handshake on a new tunnel under its deadline, files the ticket it
/// issues, and logs why it failed if it did (`None` then).
async fn authenticate(
    tunnel: &mut TcpStream,
    config: &RemoteConfig,
    tickets: &TicketStore,
    logs: &LogBudgets,
    shutdown: &Shutdown,
) -> Option<Authenticated> {
    let started = Instant::now();
    let limits = &config.limits;
    let params = RemoteParams {
        key: &config.key,
        authorized: &config.authorized,
        ciphers: &config.ciphers,
        tickets: Some(tickets),
    };
    // Each of the local's flights then takes one read. What the read-ahead took in
    // past the last handshake frame (the opening record, say) goes to the record
    // reader below.
    let mut buffered = BufReader::with_capacity(handshake::READ_AHEAD, tunnel);
    let handshake = handshake::remote::run(&mut buffered, &params);
    let handshake = tokio::time::timeout(limits.handshake_timeout, handshake);
    // A tunnel that finishes its handshake after a stop could not be used anyway.
    let outcome = tokio::select! {
        outcome = handshake => outcome,
        () = shutdown.stopping() => {
            debug!("handshake abandoned: shutting down");
            return None;
        }
    };
    let established = match outcome
        .unwrap_or(Err(HandshakeError::Timeout(limits.handshake_timeout)))
    {
        Ok(established) => established,
        Err(HandshakeError::UnknownTicket) => {
            // Normal after a restart or once tickets expire: the local side follows
            // up with another ticket or a full handshake. A spent one-time ticket
            // shown again is a replay; either way the count is worth seeing.
            let what = "resumption refused: ticket unknown, spent or expired (expected after \
                        a restart; otherwise a replay)";
            match logs.refused_tickets.admit() {
                Admit::Log { suppressed } => info!(suppressed, "{what}"),
                Admit::Quiet => debug!("{what}"),
            }
            return None;
        }
        Err(err) => {
            match logs.failures.admit() {
                Admit::Log { suppressed: 0 } => warn!(error = %err, "handshake failed"),
                Admit::Log { suppressed } => {
                    warn!(error = %err, suppressed, "handshake failed (after a burst of failures)");
                }
                Admit::Quiet => debug!(error = %err, "handshake failed"),
            }
            return None;
        }
    };
    if let Some(ticket) = established.ticket {
        tickets.insert(ticket);
    }
    Some(Authenticated {
        sealer: established.sealer,
        reader: RecordReader::new(established.opener).with_early(buffered.buffer()),
        suite: established.suite,
        peer: established.peer,
        setup: established.setup,
        handshake_ms: net::millis(started.elapsed()),
    })
}

/// Authenticates one tunnel and relays it to the target.
async fn handle(
    mut tunnel: TcpStream,
    config: Arc<RemoteConfig>,
    tickets: Arc<TicketStore>,
    logs: Arc<LogBudgets>,
    shutdown: Shutdown,
) {
    let started = Instant::now();
    let limits = &config.limits;
    // A task is as large as its largest state, and every idle connection pays for
    // it: the handshake runs boxed, so its state is freed when it ends, and only
    // what the rest of the connection needs comes out of it.
    let authenticating = Box::pin(authenticate(
        &mut tunnel,
        &config,
        &tickets,
        &logs,
        &shutdown,
    ));
    let Some(Authenticated {
        mut sealer,
        mut reader,
        suite,
        peer,
        setup,
        handshake_ms,
    }) = authenticating.await
    else {
        return;
    };
    let handshaken = Instant::now();

    // A pooled tunnel may wait here until the local side hands it a client.
    let wait = limits.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT);
    let opened = tokio::select! {
        opened = tokio::time::timeout(wait, reader.wait_for_open(&mut tunnel)) => opened,
        () = shutdown.stopping() => {
            let reason = AbortReason::ShuttingDown;
            let _ = relay::abort(&mut tunnel, &mut sealer, reason).await;
            return;
        }
    };
    let pooled_ms = net::millis(handshaken.elapsed());
    match opened {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            debug!(handshake = %setup, "unused tunnel retired by the local side");
            return;
        }
        Ok(Err(err)) => {
            warn!(error = %err, "tunnel failed before relaying");
            return;
        }
        Err(_) => {
            info!(waited = ?wait, "unused tunnel closed as idle");
            let _ = relay::abort(&mut tunnel, &mut sealer, AbortReason::Idle).await;
            return;
        }
    }

    let connected = tokio::select! {
        connected = net::connect(&config.target, limits.connect_timeout) => connected,
        () = shutdown.cut() => {
            let _ = relay::abort(&mut tunnel, &mut sealer, AbortReason::ShuttingDown).await;
            return;
        }
    };
    let mut target = match connected {
        Ok(target) => target,
        Err(err) => {
            warn!(target = %config.target, error = %err, "cannot reach the target");
            let reason = AbortReason::TargetUnreachable;
            let _ = relay::abort(&mut tunnel, &mut sealer, reason).await;
            return;
        }
    };
    info!(
        local_key = %peer,
        cipher = %suite,
        handshake = %setup,
        target = %config.target,
        handshake_ms,
        pooled_ms,
        "tunnel open"
    );

    let (stats, result) = relay::run(
        &mut target,
        &mut tunnel,
        sealer,
        reader,
        limits.idle_timeout,
        shutdown.cut(),
    )
    .await;
    relay::log_outcome(stats, started.elapsed(), &result);
}

/// Handshake failures logged at warn level per second; beyond it they go to debug
/// level and are counted, so a flood of bad connections cannot flood the log. The
/// next warning says how many were held back.
const FAILURE_WARNINGS_PER_SECOND: u32 = 20;

/// Separate budgets, so that refused tickets (a burst of them is normal after a
/// restart) cannot crowd out handshake failures, nor be counted among them.
#[derive(Debug, Default)]
struct LogBudgets {
    failures: FailureLog,
    refused_tickets: FailureLog,
}

/// Counts handshake-failure warnings in the current one-second window.
#[derive(Debug, Default)]
struct FailureLog {
    window: std::sync::Mutex<FailureWindow>,
}

#[derive(Debug, Default)]
struct FailureWindow {
    started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// Whether a failure is logged at warn level, and how many were held back before it.
enum Admit {
    Log { suppressed: u64 },
    Quiet,
}

impl FailureLog {
    fn admit(&self) -> Admit {
        let mut window = self
            .window
            .lock()
            .expect("failure log lock is never poisoned");
        let now = Instant::now();
        if window
            .started
            .is_none_or(|started| now.duration_since(started) >= Duration::from_secs(1))
        {
            window.started = Some(now);
            window.logged = 0;
        }
        if window.logged >= FAILURE_WARNINGS_PER_SECOND {
            window.suppressed += 1;
            return Admit::Quiet;
        }
        window.logged += 1;
        Admit::Log {
            suppressed: std::mem::take(&mut window.suppressed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HostPort, Limits};
    use crate::crypto::CipherPolicy;
    use crate::keys::{AuthorizedKeys, PrivateKey};
    use crate::net::testing::{assert_task_small, socket_pair};

    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let (_client, accepted) = socket_pair().await;
        let config = RemoteConfig {
            listen: accepted.local_addr().unwrap(),
            target: HostPort::parse("127.0.0.1:9").unwrap(),
            key: Arc::new(PrivateKey::test_key("remote")),
            authorized: Arc::new(AuthorizedKeys::from_fingerprints([])),
            ciphers: CipherPolicy::default(),
            limits: Limits::default(),
        };
        let tickets = Arc::new(TicketStore::new());
        let task = handle(
            accepted,
            Arc::new(config),
            tickets,
            Arc::default(),
            Shutdown::new(),
        );
        assert_task_small("remote", &task);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_warnings_are_capped_per_second_and_counted() {
        let log = FailureLog::default();
        for _ in 0..FAILURE_WARNINGS_PER_SECOND {
            assert!(matches!(log.admit(), Admit::Log { suppressed: 0 }));
        }
        for _ in 0..5 {
            assert!(matches!(log.admit(), Admit::Quiet));
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(log.admit(), Admit::Log { suppressed: 5 }));
        assert!(matches!(log.admit(), Admit::Log { suppressed: 0 }));
    }
}
