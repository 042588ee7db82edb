//! The life of a Scope process: logging set up once, a shutdown token cancelled by SIGINT or
//! SIGTERM, and an exit code that tells a supervisor whether to restart.

use std::{fmt::Display, future::Future, net::SocketAddr, process::ExitCode};

use tokio_util::sync::CancellationToken;

use crate::metrics::{self, Exposition};

/// What is logged when `RUST_LOG` is unset: the pipeline's own `info`, everyone else's
/// warnings. The embedded broker (the `tansu_*` crates) logs every request it serves at
/// `info`, nested in its spans, about 100 kB a second under `scope up`; librdkafka and
/// DataFusion have nothing a user needs below `warn` either.
pub const DEFAULT_LOG_FILTER: &str = "warn,scope=info,scope_kafka=info,scope_collector=info,\
     scope_ebpf=info,scope_merger=info,scope_renderer=info,scope_schemas=info";

/// Logs to stderr, filtered by `RUST_LOG` (default [`DEFAULT_LOG_FILTER`]).
pub fn init_tracing() {
    // An empty `RUST_LOG` means unset, as `env_logger` treats it, rather than "log nothing".
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .and_then(
            |value| match tracing_subscriber::EnvFilter::try_new(&value) {
                Ok(filter) => Some(filter),
                Err(error) => {
                    eprintln!(
                        "ignoring RUST_LOG={value:?} ({error}); logging {DEFAULT_LOG_FILTER}"
                    );
                    None
                }
            },
        )
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
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

/// A component's command line: its own arguments plus `--check-config` and `--metrics-addr`.
/// Shared by the standalone binaries and the `scope` subcommands, so both accept the same
/// flags.
#[derive(clap::Args, Debug)]
pub struct Component<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    /// Validate the configuration, print the verdict and exit (0 when sound, 2 when not).
    #[arg(long)]
    pub check_config: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464). None by default.
    #[arg(long, env = "SCOPE_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
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
    ///
    /// With `--metrics-addr`, the address is bound before `run` starts, so a port in use
    /// fails the start (exit code 2, as for an invalid configuration) instead of leaving a
    /// component nobody can scrape; every scrape then calls `metrics` for the component's
    /// families. The endpoint stops with the component.
    pub async fn main<E, Fut>(
        self,
        name: &str,
        validate: impl FnOnce(&A) -> Result<(), E>,
        metrics: impl Fn(&mut Exposition) + Send + Sync + 'static,
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
        let shutdown = shutdown_on_signal();
        // A child token: the endpoint also stops when `run` returns on its own (an error).
        let metrics_shutdown = shutdown.child_token();
        if let Some(addr) = self.metrics_addr
            && let Err(error) = metrics::listen(addr, metrics, metrics_shutdown.clone()).await
        {
            eprintln!("{name}: {error}");
            return ExitCode::from(2);
        }
        let result = run(self.args, shutdown).await;
        metrics_shutdown.cancel();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "{name} stopped");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    #[derive(clap::Args, Debug)]
    struct NoArgs {}

    fn parse(argv: &[&str]) -> Result<Component<NoArgs>, clap::Error> {
        let command = <Component<NoArgs> as clap::Args>::augment_args(clap::Command::new("t"));
        let matches =
            command.try_get_matches_from(std::iter::once("t").chain(argv.iter().copied()))?;
        Component::from_arg_matches(&matches)
    }

    #[test]
    fn metrics_addr_is_optional_and_must_be_a_socket_address() {
        // The default shows only where the environment does not set one.
        if std::env::var_os("SCOPE_METRICS_ADDR").is_none() {
            assert_eq!(parse(&[]).unwrap().metrics_addr, None);
        }
        let c = parse(&["--metrics-addr", "0.0.0.0:9464", "--check-config"]).unwrap();
        assert_eq!(c.metrics_addr, Some("0.0.0.0:9464".parse().unwrap()));
        assert!(c.check_config);
        let c = parse(&["--metrics-addr=[::1]:0"]).unwrap();
        assert_eq!(c.metrics_addr, Some("[::1]:0".parse().unwrap()));
        for bad in ["9464", "localhost", "1.2.3.4:99999", ""] {
            assert!(parse(&["--metrics-addr", bad]).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_metrics_address_in_use_fails_the_start_like_a_bad_config() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let component = Component {
            args: NoArgs {},
            check_config: false,
            metrics_addr: Some(taken.local_addr().unwrap()),
        };
        let ran = std::sync::atomic::AtomicBool::new(false);
        let code = component
            .main(
                "test",
                |_| Ok::<(), String>(()),
                |_| {},
                |_, _| async {
                    ran.store(true, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                },
            )
            .await;
        assert_eq!(code, ExitCode::from(2));
        assert!(!ran.load(std::sync::atomic::Ordering::Relaxed));

        let component = Component {
            args: NoArgs {},
            check_config: false,
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        };
        let code = component
            .main(
                "test",
                |_| Ok::<(), String>(()),
                |_| {},
                |_, _| async { Ok(()) },
            )
            .await;
        assert_eq!(code, ExitCode::SUCCESS);
    }
}
