//! The local role: accepts plaintext clients on each forward's listener, opens an
//! encrypted tunnel to the remote for every client, and relays.
//!
//! Per connection: take a tunnel to the remote from the forward's
//! [`crate::pool`] (ready, or dialed and handshaken now), send the record that opens
//! it, then hand both sockets to [`crate::relay`]. A client whose tunnel cannot be
//! set up is reset, so it sees a failure at once instead of a silent close.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{Forward, LocalConfig};
use crate::error::Error;
use crate::net;
use crate::pool::{self, Tunnel, TunnelPool};
use crate::relay::{self, RecordReader};
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
        let mut pools = Vec::new();
        for (listener, forward) in self.listeners {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            info!(listen = %addr, remote = %forward.remote, "local listening");
            let pool = TunnelPool::new(
                forward.remote.clone(),
                self.config.clone(),
                self.config.pool,
            );
            pool.fill();
            // Not on the shutdown tracker, which counts client connections only: the
            // pool ends by itself once stopping, retiring its ready tunnels.
            let maintain = pool.clone().maintain(shutdown.clone());
            pools.push(AbortOnDropHandle::new(tokio::spawn(maintain)));
            let forward = Arc::new(forward);
            let conn_shutdown = shutdown.clone();
            let config = self.config.clone();
            let serve = net::serve(
                listener,
                limit.clone(),
                shutdown.clone(),
                move |client, peer| {
                    let span = info_span!("local", conn = net::next_connection_id(), %peer);
                    let task = handle(
                        client,
                        forward.clone(),
                        pool.clone(),
                        config.clone(),
                        conn_shutdown.clone(),
                    );
                    task.instrument(span)
                },
            );
            // Each accept loop ends with `run`, even if `run` is cancelled.
            servers.push(AbortOnDropHandle::new(tokio::spawn(serve)));
        }
        for task in servers.into_iter().chain(pools) {
            net::join_task(task).await;
        }
        shutdown.drain(self.config.limits.shutdown_grace).await;
    }
}

/// A tunnel from the pool, opened for a client; `None`, with the reason logged, when
/// there is none.
async fn ready_tunnel(
    pool: &Arc<TunnelPool>,
    forward: &Forward,
    config: &LocalConfig,
) -> Option<Tunnel> {
    let mut tunnel = match pool.checkout().await {
        Ok(tunnel) => tunnel,
        Err(err) => {
            let ours = config.key.public_key().fingerprint();
            warn!(remote = %forward.remote, error = %err, our_key = %ours, "cannot open a tunnel");
            return None;
        }
    };
    if let Err(err) = pool::open(&mut tunnel).await {
        warn!(remote = %forward.remote, error = %err, "tunnel failed before relaying");
        return None;
    }
    Some(tunnel)
}

/// Carries one client connection through a tunnel from the pool.
async fn handle(
    mut client: TcpStream,
    forward: Arc<Forward>,
    pool: Arc<TunnelPool>,
    config: Arc<LocalConfig>,
    shutdown: Shutdown,
) {
    let started = Instant::now();
    // Getting a tunnel ends with the grace period; it has no Abort to send. A task
    // is as large as its largest state and every idle connection pays for it, so
    // neither the pending tunnel nor its parts outlive their use: the select's
    // result is matched in place, and the tunnel is taken apart whole below.
    let Some(tunnel) = (tokio::select! {
        tunnel = ready_tunnel(&pool, &forward, &config) => tunnel,
        () = shutdown.cut() => {
            debug!("shutting down before a tunnel was ready");
            None
        }
    }) else {
        let _ = client.set_zero_linger();
        return;
    };
    info!(
        remote = %forward.remote,
        cipher = %tunnel.established.suite,
        handshake = %tunnel.established.setup,
        setup_ms = net::millis(tunnel.setup),
        waited_ms = net::millis(started.elapsed()),
        "tunnel open"
    );

    let limits = &config.limits;
    let (mut stream, sealer, opener) = tunnel.into_relay_parts();
    let reader = RecordReader::for_local(opener);
    let (stats, result) = relay::run(
        &mut client,
        &mut stream,
        sealer,
        reader,
        limits.idle_timeout,
        shutdown.cut(),
    )
    .await;
    relay::log_outcome(stats, started.elapsed(), &result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HostPort, Limits};
    use crate::crypto::CipherPolicy;
    use crate::keys::PrivateKey;
    use crate::net::testing::{assert_task_small, socket_pair};

    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let (_client, accepted) = socket_pair().await;
        let key = PrivateKey::test_key("local");
        let remote = HostPort::parse("127.0.0.1:9").unwrap();
        let config = Arc::new(LocalConfig {
            forwards: Vec::new(),
            remote_pin: key.public_key().fingerprint(),
            key: Arc::new(key),
            ciphers: CipherPolicy::default(),
            pool: 0,
            limits: Limits::default(),
        });
        let forward = Forward {
            bind: accepted.local_addr().unwrap(),
            remote: remote.clone(),
        };
        let pool = TunnelPool::new(remote, config.clone(), 0);
        let task = handle(accepted, Arc::new(forward), pool, config, Shutdown::new());
        assert_task_small("local", &task);
    }
}
