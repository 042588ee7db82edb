//! The life of a Scope process: logging set up once, a shutdown token cancelled by SIGINT or
//! SIGTERM, and an exit code that tells a supervisor whether to restart.

use std::{net::SocketAddr, process::ExitCode};

use tokio_util::sync::CancellationToken;

use crate::{
    component::{Component, Context, EXIT_RETRYABLE},
    metrics,
};

/// What is logged when `RUST_LOG` is unset: the pipeline's own `info`, everyone else's
/// warnings. The embedded broker (the `tansu_*` crates) logs every request it serves at
/// `info`, nested in its spans, about 100 kB a second under `scope up`; librdkafka and
/// DataFusion have nothing a user needs below `warn` either.
pub const DEFAULT_LOG_FILTER: &str = "warn,scope=info,scope_kafka=info,scope_runtime=info,scope_collector=info,\
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

/// A flag's default duration, written once as the text clap parses ("15s") and turned into
/// the value the component's `new` sets. Only for constants: the tests of each component
/// parse all of its defaults.
pub fn default_duration(text: &'static str) -> std::time::Duration {
    humantime::parse_duration(text).expect("a default is a duration")
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
pub struct Cli<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    /// Validate the configuration, print the verdict and exit (0 when sound, 2 when not).
    #[arg(long)]
    pub check_config: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464). None by default.
    #[arg(long, env = "SCOPE_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// The whole `main` of a component's binary `name`: parse, validate, run until a signal.
pub async fn main<A>(name: &'static str, about: &'static str) -> ExitCode
where
    A: Component + clap::Args + clap::FromArgMatches,
{
    Cli::<A>::parse(name, about).main(name).await
}

impl<A: Component + clap::Args + clap::FromArgMatches> Cli<A> {
    /// Parses this process's command line as the binary `name`; exits with usage on error.
    pub fn parse(name: &'static str, about: &'static str) -> Self {
        use clap::FromArgMatches;
        let command = clap::Command::new(name)
            .about(about)
            .version(env!("CARGO_PKG_VERSION"));
        let matches = <Self as clap::Args>::augment_args(command).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Runs the component until it returns or a signal stops it, as the program `name`.
    /// With `--check-config`, only validates.
    ///
    /// With `--metrics-addr`, the address is bound before `run` starts, so a port in use
    /// fails the start (exit code 2, as for an invalid configuration) instead of leaving a
    /// component nobody can scrape; every scrape reads the component's counters at that
    /// moment. The endpoint stops with the component.
    pub async fn main(self, name: &str) -> ExitCode {
        init_tracing();
        if let Err(error) = self.args.validate() {
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
            && let Err(error) =
                metrics::listen(addr, A::write_metrics, metrics_shutdown.clone()).await
        {
            eprintln!("{name}: {error}");
            return ExitCode::from(2);
        }
        let result = self.args.run(Context { shutdown }).await;
        metrics_shutdown.cancel();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                let retryable = A::is_retryable(&error);
                tracing::error!(%error, retryable, "{name} stopped");
                if retryable {
                    ExitCode::from(EXIT_RETRYABLE)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use clap::FromArgMatches;

    use crate::metrics::Families;

    static RAN: AtomicBool = AtomicBool::new(false);

    /// A component that only notes that it ran.
    #[derive(clap::Args, Debug)]
    struct Probe {}

    impl Component for Probe {
        const NAME: &'static str = "probe";
        type Error = std::io::Error;
        fn validate(&self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn write_metrics(_: &mut Families) {}
        fn is_retryable(_: &Self::Error) -> bool {
            false
        }
        async fn run(self, _: Context) -> Result<(), Self::Error> {
            RAN.store(true, Ordering::Relaxed);
            Ok(())
        }
    }

    /// A component whose broker is away: it fails, and says a restart may help.
    #[derive(clap::Args, Debug)]
    struct BrokerAway {}

    impl Component for BrokerAway {
        const NAME: &'static str = "broker-away";
        type Error = std::io::Error;
        fn validate(&self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn write_metrics(_: &mut Families) {}
        fn is_retryable(error: &Self::Error) -> bool {
            error.kind() == std::io::ErrorKind::ConnectionRefused
        }
        async fn run(self, _: Context) -> Result<(), Self::Error> {
            Err(std::io::ErrorKind::ConnectionRefused.into())
        }
    }

    #[tokio::test]
    async fn a_failure_that_may_pass_exits_with_ex_tempfail() {
        let cli = Cli {
            args: BrokerAway {},
            check_config: false,
            metrics_addr: None,
        };
        assert_eq!(cli.main("test").await, ExitCode::from(75));
    }

    fn parse(argv: &[&str]) -> Result<Cli<Probe>, clap::Error> {
        let command = <Cli<Probe> as clap::Args>::augment_args(clap::Command::new("t"));
        let matches =
            command.try_get_matches_from(std::iter::once("t").chain(argv.iter().copied()))?;
        Cli::from_arg_matches(&matches)
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
        let cli = Cli {
            args: Probe {},
            check_config: false,
            metrics_addr: Some(taken.local_addr().unwrap()),
        };
        assert_eq!(cli.main("test").await, ExitCode::from(2));
        assert!(!RAN.load(Ordering::Relaxed));

        let cli = Cli {
            args: Probe {},
            check_config: false,
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        };
        assert_eq!(cli.main("test").await, ExitCode::SUCCESS);
        assert!(RAN.load(Ordering::Relaxed));
    }
}
