//! The life of a Scope process: logging set up once, a shutdown token cancelled by SIGINT or
//! SIGTERM, and an exit code that tells a supervisor whether to restart.

use std::{fmt::Display, future::Future, process::ExitCode};

use tokio_util::sync::CancellationToken;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
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

/// A component's command line: its own arguments plus `--check-config`. Shared by the
/// standalone binaries and the `scope` subcommands, so both accept the same flags.
#[derive(clap::Args, Debug)]
pub struct Component<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    /// Validate the configuration, print the verdict and exit (0 when sound, 2 when not).
    #[arg(long)]
    pub check_config: bool,
}

impl<A: clap::Args + clap::FromArgMatches> Component<A> {
    /// Parses this process's command line as the binary `name`; exits with usage on error.
    pub fn parse(name: &'static str, about: &'static str) -> Self {
        use clap::FromArgMatches;
        let command = clap::Command::new(name)
            .about(about)
            .version(env!("CARGO_PKG_VERSION"));
        let matches = <Self as clap::Args>::augment_args(command).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Runs the component until it returns or a signal stops it. With `--check-config`, only
    /// validates.
    pub async fn main<E, Fut>(
        self,
        name: &str,
        validate: impl FnOnce(&A) -> Result<(), E>,
        run: impl FnOnce(A, CancellationToken) -> Fut,
    ) -> ExitCode
    where
        E: Display,
        Fut: Future<Output = Result<(), E>>,
    {
        init_tracing();
        if let Err(error) = validate(&self.args) {
            eprintln!("{name}: invalid configuration: {error}");
            return ExitCode::from(2);
        }
        if self.check_config {
            println!("{name}: configuration ok");
            return ExitCode::SUCCESS;
        }
        match run(self.args, shutdown_on_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "{name} stopped");
                ExitCode::FAILURE
            }
        }
    }
}
