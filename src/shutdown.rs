//! Graceful stop: the signal that ends accepting, and the drain that gives open
//! connections a grace period before cutting them.
//!
//! Listeners watch [`Shutdown::stopping`]; connection tasks are spawned on
//! [`Shutdown::tracker`] and watch [`Shutdown::cut`], which fires only when the
//! grace period runs out. The roles in [`crate::local`] and [`crate::remote`] call
//! [`Shutdown::drain`] once their listeners have stopped.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Shared stop state for one role.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    stop: CancellationToken,
    cut: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh, not yet triggered shutdown state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks listeners to stop accepting; open connections go on.
    pub fn trigger(&self) {
        self.stop.cancel();
    }

    /// Completes once a stop was asked for.
    pub async fn stopping(&self) {
        self.stop.cancelled().await;
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Completes when open connections must end now.
    pub async fn cut(&self) {
        self.cut.cancelled().await;
    }

    /// Where connection tasks are spawned, so the drain can wait for them.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Waits for every connection task, cutting them once `grace` has passed.
    pub async fn drain(&self, grace: Duration) {
        self.tracker.close();
        if self.tracker.is_empty() {
            return;
        }
        info!(open = self.tracker.len(), grace = ?grace, "waiting for open connections");
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                open = self.tracker.len(),
                "grace period over; cutting open connections"
            );
            self.cut.cancel();
            self.tracker.wait().await;
        }
    }

    /// Triggers this shutdown on SIGTERM or SIGINT (Ctrl-C).
    ///
    /// # Errors
    /// When the signal handlers cannot be installed.
    pub fn trigger_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let this = self.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            info!(signal = name, "stop requested; no new connections accepted");
            this.trigger();
        });
        Ok(())
    }
}
