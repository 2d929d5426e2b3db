//! The local role: accepts plaintext clients on each forward's listener, opens an
//! encrypted tunnel to the remote for every client, and relays.
//!
//! Per connection: connect to the remote (name resolved now), run the initiator
//! handshake under the handshake deadline, then hand both sockets to
//! [`crate::relay`]. A client whose tunnel cannot be set up is reset, so it sees a
//! failure at once instead of a silent close. The handshake steps belong to
//! [`crate::handshake::local`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::config::{Forward, LocalConfig};
use crate::error::Error;
use crate::handshake::{self, HandshakeError, local::LocalParams};
use crate::net;
use crate::relay;
use crate::shutdown::Shutdown;

/// The local role with its listeners bound, ready to run.
pub struct Local {
    listeners: Vec<(TcpListener, Forward)>,
    config: Arc<LocalConfig>,
}

impl Local {
    /// Binds one listener per forward.
    ///
    /// # Errors
    /// [`Error::Bind`] for the first address that cannot be bound.
    pub async fn bind(config: LocalConfig) -> Result<Self, Error> {
        let mut listeners = Vec::with_capacity(config.forwards.len());
        for forward in &config.forwards {
            listeners.push((net::bind(forward.bind).await?, forward.clone()));
        }
        Ok(Self {
            listeners,
            config: Arc::new(config),
        })
    }

    /// The bound addresses, in forward order (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(listener, _)| listener.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` is triggered, then drains open connections.
    pub async fn run(self, shutdown: Shutdown) {
        let limit = Arc::new(Semaphore::new(self.config.limits.max_connections));
        let mut servers = Vec::new();
        for (listener, forward) in self.listeners {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            info!(listen = %addr, remote = %forward.remote, "local listening");
            let config = self.config.clone();
            let conn_shutdown = shutdown.clone();
            let forward = Arc::new(forward);
            servers.push(tokio::spawn(net::serve(
                listener,
                limit.clone(),
                shutdown.clone(),
                move |client, peer| {
                    let span = info_span!("local", conn = net::next_connection_id(), %peer);
                    handle(
                        client,
                        forward.clone(),
                        config.clone(),
                        conn_shutdown.clone(),
                    )
                    .instrument(span)
                },
            )));
        }
        for server in servers {
            let _ = server.await;
        }
        shutdown.drain(self.config.limits.shutdown_grace).await;
    }
}

/// Carries one client connection through a new tunnel.
async fn handle(
    mut client: TcpStream,
    forward: Arc<Forward>,
    config: Arc<LocalConfig>,
    shutdown: Shutdown,
) {
    let started = Instant::now();
    let limits = &config.limits;
    let mut tunnel = match net::connect(&forward.remote, limits.connect_timeout).await {
        Ok(tunnel) => tunnel,
        Err(err) => {
            warn!(remote = %forward.remote, error = %err, "cannot reach the remote");
            let _ = client.set_zero_linger();
            return;
        }
    };

    let params = LocalParams {
        key: &config.key,
        remote_pin: config.remote_pin,
        ciphers: &config.ciphers,
    };
    let handshake = handshake::local::run(&mut tunnel, &params);
    let outcome = tokio::time::timeout(limits.handshake_timeout, handshake).await;
    let established =
        match outcome.unwrap_or(Err(HandshakeError::Timeout(limits.handshake_timeout))) {
            Ok(established) => established,
            Err(err) => {
                warn!(remote = %forward.remote, error = %err, "handshake failed");
                let _ = client.set_zero_linger();
                return;
            }
        };
    info!(
        remote = %forward.remote,
        cipher = %established.suite,
        handshake_ms = started.elapsed().as_millis() as u64,
        "tunnel open"
    );

    let (stats, result) = relay::run(
        &mut client,
        &mut tunnel,
        established,
        limits.idle_timeout,
        shutdown.cut(),
    )
    .await;
    relay::log_outcome(stats, started.elapsed(), &result);
}
