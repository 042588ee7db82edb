//! A pipeline component (`run(config, shutdown)`) running inside the test, stopped as a user
//! stops it: by its shutdown signal, not by dropping its task.

use std::{fmt::Debug, future::Future, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A component spawned on the test's runtime with a shutdown token of its own, so that each
/// test can stop it, and only it, and fail unless it stops cleanly.
pub struct Running<E> {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), E>>,
}

impl<E: Debug + Send + 'static> Running<E> {
    /// Spawns `run` with a fresh shutdown token, e.g.
    /// `Running::start(|shutdown| scope_collector::run(args, shutdown))`.
    pub fn start<F>(run: impl FnOnce(CancellationToken) -> F) -> Running<E>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Running { shutdown, task }
    }

    /// Signals shutdown and fails the test unless the component returns `Ok` within `limit`:
    /// a clean stop (a final flush, offsets committed) is part of what the tests check.
    pub async fn stop(self, limit: Duration) {
        self.shutdown.cancel();
        tokio::time::timeout(limit, self.task)
            .await
            .unwrap_or_else(|_| panic!("the component did not stop within {limit:?}"))
            .expect("the component did not panic")
            .expect("the component stopped without an error");
    }
}
