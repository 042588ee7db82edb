//! `scope-collector-load`: what the collector costs on a host, eBPF against procfs, measured
//! side by side in one run.
//!
//! The collector runs as a child process, exactly as deployed, once per mode and connection
//! rate; this process is its environment: an embedded broker, a TCP server on 127.0.0.1,
//! long-lived connections to it and a paced load of short ones. The figures are the child's
//! CPU (% of one core) and resident memory from /proc, and the share of the short connections
//! it announced on `scope.connections`. procfs is the baseline: eBPF's CPU is given as a ratio
//! to it at each rate. With `--containers 0,50` each mode and rate is measured without, then
//! with 50 containers running, and the second's CPU and RSS are given as ratios to the
//! first's. The markdown table goes to stdout, progress to stderr (`RUST_LOG`, default `warn`,
//! for this process; the collector always runs with `RUST_LOG=warn`).
//!
//! # Layout
//! - [`args`]: the command line and where the collector binary is found.
//! - [`traffic`]: the load server, the long-lived connections and the paced short ones.
//! - [`child`]: starting and stopping the collector.
//! - [`containers`]: the Docker containers that run beside it (`--containers`).
//! - [`procstat`]: CPU ticks and memory from /proc, and the run time of eBPF programs.
//! - [`events`]: reading what the collectors publish, and counting what they saw.
//! - [`run`]: the cells, in order.
//! - [`report`]: the figures and their markdown.
//!
//! Exit code: 0 when every cell was measured, 1 when any failed or the run could not start
//! (the table of what was measured is still printed), 2 for invalid flags.

mod args;
mod child;
mod containers;
mod events;
mod procstat;
mod report;
mod run;
mod traffic;

use std::process::ExitCode;

use clap::Parser as _;
use scope_benches::main_loop;

use crate::args::CollectorLoadArgs;

fn main() -> ExitCode {
    let args = CollectorLoadArgs::parse();
    if let Err(reason) = args.validate() {
        eprintln!("scope-collector-load: {reason}");
        return ExitCode::from(2);
    }
    let collector = match args.collector_path() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("scope-collector-load: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let build = format!(
        "this bench: {}; collector: {}",
        main_loop::build_profile(),
        collector_profile(&collector)
    );
    main_loop::run("scope-collector-load", &build, async {
        let report = run::run(&args, &collector).await?;
        let failed = report.failed();
        Ok(main_loop::Outcome {
            markdown: report.to_markdown(),
            failure: (failed > 0).then(|| {
                format!(
                    "{failed} of {} cells failed (see the notes)",
                    report.cells.len()
                )
            }),
        })
    })
}

/// The collector's profile as its directory under the target directory tells it.
fn collector_profile(path: &std::path::Path) -> String {
    match path
        .parent()
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
    {
        Some(dir @ ("debug" | "release" | "container")) => format!("`{dir}` profile build"),
        _ => format!("{} (profile unknown)", path.display()),
    }
}
