//! Shutting down: [`shutdown_signal`], what a server process waits for, and [`Stop`], the
//! one signal that ends its background tasks.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::health::Health;

/// A stop signal for a server's background tasks (certificate reloaders, watches, caches):
/// fired once, awaited by any number of tasks. Cheap to clone; clones share the signal.
#[derive(Debug, Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    /// Not fired yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Fires the signal. Firing again does nothing.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the signal has fired.
    #[must_use]
    pub fn is_fired(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once the signal fires (at once if it already has). Give one to each
    /// background task as its shutdown future.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut rx = self.tx.subscribe();
        async move {
            // An error means every `Stop` is gone: nothing can fire any more, so stop too.
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }

    /// The shutdown future for [`crate::Server::serve`]: completes when `shutdown` does,
    /// after turning `health` not ready (`/readyz` fails while in-flight requests drain) and
    /// firing this signal (background tasks end meanwhile).
    pub fn on_shutdown<F>(&self, shutdown: F, health: Health) -> impl Future<Output = ()> + use<F>
    where
        F: Future<Output = ()>,
    {
        let stop = self.clone();
        async move {
            shutdown.await;
            health.set_ready(false);
            stop.fire();
        }
    }
}

/// Completes on SIGINT, SIGTERM or — with `watch_stdin` — end of file on standard input (for
/// tests: a parent that dies leaves no server behind), logging which.
///
/// Standard input is read on a plain thread, not tokio's blocking pool, so a read still
/// pending when the process exits does not hold the runtime open.
pub async fn shutdown_signal(watch_stdin: bool) {
    let stdin_closed = async {
        if !watch_stdin {
            return std::future::pending::<()>().await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("stdin-watch".into())
            .spawn(move || {
                use std::io::Read as _;
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 256];
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
                let _ = tx.send(());
            });
        match spawned {
            Ok(_) => {
                let _ = rx.await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch standard input");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
        () = stdin_closed => tracing::info!("standard input closed: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn fires_once_for_every_waiter_and_after_shutdown_health_is_not_ready() {
        let stop = Stop::new();
        let early = tokio::spawn(stop.stopped());
        let health = Health::new();
        health.set_ready(true);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let on_shutdown = tokio::spawn(stop.on_shutdown(
            async {
                let _ = rx.await;
            },
            health.clone(),
        ));
        assert!(!stop.is_fired() && health.is_ready());
        let _ = tx.send(());
        let limit = Duration::from_secs(10);
        let joined = tokio::time::timeout(limit, on_shutdown).await;
        assert!(matches!(joined, Ok(Ok(()))));
        assert!(stop.is_fired() && !health.is_ready());
        assert!(matches!(
            tokio::time::timeout(limit, early).await,
            Ok(Ok(()))
        ));
        // A waiter that arrives late completes at once; firing again is harmless.
        stop.fire();
        assert!(tokio::time::timeout(limit, stop.stopped()).await.is_ok());
    }
}
