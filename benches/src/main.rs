//! `scope-load`: parses the flags, runs every phase (see the `scope_benches` library) and
//! prints the markdown table of figures on stdout. Progress and the pipeline's own logs go to
//! stderr (`RUST_LOG`, default `warn`).

use std::process::ExitCode;

use clap::Parser;
use scope_benches::LoadArgs;

fn main() -> ExitCode {
    let args = LoadArgs::parse();
    if let Err(reason) = args.validate() {
        eprintln!("scope-load: {reason}");
        return ExitCode::from(2);
    }
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
            eprintln!("scope-load: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    match runtime.block_on(scope_benches::run(&args)) {
        Ok(report) => {
            println!("## scope-load ({cores} cores, {} build)\n", build_profile());
            println!("{}", report.to_markdown());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("scope-load: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `debug` or `optimised`: which kind of build produced the figures.
fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug-assertions (dev profile)"
    } else {
        "optimised (release/container profile)"
    }
}
