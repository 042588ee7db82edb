//! What `scope-load` and `scope-collector-load` do around their measurements: logs to stderr
//! (`RUST_LOG`, default `warn`), a multi-threaded runtime, the markdown on stdout, and the
//! exit code.

use std::{future::Future, process::ExitCode};

/// What a bench produced: its markdown, and why it counts as failed if some of it did.
pub struct Outcome {
    pub markdown: String,
    pub failure: Option<String>,
}

/// Runs `bench` to completion on a fresh runtime and prints its markdown under a heading
/// naming `name`, the cores and `build` (e.g. [`build_profile`]). Exits 1 when it failed.
pub fn run<F>(name: &str, build: &str, bench: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<Outcome>>,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench) {
        Ok(outcome) => {
            let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
            println!("## {name} ({cores} cores, {build})\n");
            println!("{}", outcome.markdown);
            match outcome.failure {
                Some(why) => {
                    eprintln!("{name}: {why}");
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            eprintln!("{name}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `debug` or `optimised`: which kind of build produced the figures.
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug-assertions (dev profile)"
    } else {
        "optimised (release/container profile)"
    }
}
