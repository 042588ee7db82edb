//! `scope-load`: parses the flags, runs every phase (see the `scope_benches` library) and
//! prints the markdown table of figures on stdout. Progress and the pipeline's own logs go to
//! stderr (`RUST_LOG`, default `warn`).

use std::process::ExitCode;

use clap::Parser;
use scope_benches::{LoadArgs, main_loop};

/// As in the `scope` binary, so the figures are of what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = LoadArgs::parse();
    if let Err(reason) = args.validate() {
        eprintln!("scope-load: {reason}");
        return ExitCode::from(2);
    }
    main_loop::run("scope-load", main_loop::build_profile(), async {
        let report = scope_benches::run(&args).await?;
        Ok(main_loop::Outcome {
            markdown: report.to_markdown(),
            failure: None,
        })
    })
}
