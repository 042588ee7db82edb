//! The life of a Scope process: logging set up once, a shutdown token cancelled by SIGINT or
//! SIGTERM, and an exit code that tells a supervisor whether to restart.

use std::{fmt::Display, future::Future, process::ExitCode};

use tokio_util::sync::CancellationToken;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                let _ = tokio::signal::ctrl_c().await;
                cancel.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// Runs one component until it returns or a signal stops it. With `check_config`, only
/// validates: exit 0 if the configuration is sound, 2 with the reason if not.
pub async fn main<E, V, F, Fut>(name: &str, check_config: bool, validate: V, run: F) -> ExitCode
where
    E: Display,
    V: FnOnce() -> Result<(), E>,
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    init_tracing();
    if let Err(error) = validate() {
        eprintln!("{name}: invalid configuration: {error}");
        return ExitCode::from(2);
    }
    if check_config {
        println!("{name}: configuration ok");
        return ExitCode::SUCCESS;
    }
    match run(shutdown_on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{name} stopped");
            ExitCode::FAILURE
        }
    }
}
