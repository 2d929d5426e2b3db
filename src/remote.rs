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

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{DEFAULT_IDLE_TIMEOUT, RemoteConfig};
use crate::error::Error;
use crate::handshake::resume::TicketStore;
use crate::handshake::{self, HandshakeError, remote::RemoteParams};
use crate::net;
use crate::record::AbortReason;
use crate::relay::{self, RecordReader};
use crate::shutdown::Shutdown;

/// The remote role with its listener bound, ready to run.
pub struct Remote {
    listener: TcpListener,
    config: Arc<RemoteConfig>,
    tickets: Arc<TicketStore>,
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
        let conn_shutdown = shutdown.clone();
        net::serve(
            self.listener,
            limit,
            shutdown.clone(),
            move |stream, peer| {
                let span = info_span!("remote", conn = net::next_connection_id(), %peer);
                handle(
                    stream,
                    config.clone(),
                    tickets.clone(),
                    conn_shutdown.clone(),
                )
                .instrument(span)
            },
        )
        .await;
        shutdown.drain(self.config.limits.shutdown_grace).await;
    }
}

/// Authenticates one tunnel and relays it to the target.
async fn handle(
    mut tunnel: TcpStream,
    config: Arc<RemoteConfig>,
    tickets: Arc<TicketStore>,
    shutdown: Shutdown,
) {
    let started = Instant::now();
    let limits = &config.limits;
    let params = RemoteParams {
        key: &config.key,
        authorized: &config.authorized,
        ciphers: &config.ciphers,
        tickets: Some(&tickets),
    };
    let handshake = handshake::remote::run(&mut tunnel, &params);
    let outcome = tokio::time::timeout(limits.handshake_timeout, handshake).await;
    let mut established = match outcome
        .unwrap_or(Err(HandshakeError::Timeout(limits.handshake_timeout)))
    {
        Ok(established) => established,
        Err(HandshakeError::UnknownTicket) => {
            // Normal after a restart or once tickets expire: the local side
            // follows up with a full handshake.
            debug!("resumption ticket unknown or expired; the local side will do a full handshake");
            return;
        }
        Err(err) => {
            warn!(error = %err, "handshake failed");
            return;
        }
    };
    let handshake_ms = net::millis(started.elapsed());
    let resumed = established.ticket.is_none();
    if let Some(ticket) = established.ticket.take() {
        tickets.insert(ticket);
    }
    let (suite, peer) = (established.suite, established.peer);
    let mut sealer = established.sealer;
    let mut reader = RecordReader::new(established.opener);

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
    match opened {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            debug!(resumed, "unused tunnel retired by the local side");
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

    let mut target = match net::connect(&config.target, limits.connect_timeout).await {
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
        resumed,
        target = %config.target,
        handshake_ms,
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
