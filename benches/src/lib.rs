//! `scope-load`: how fast Scope's pipeline is, measured against the broker it runs on.
//!
//! A throughput figure means little on its own (it depends on the machine and the build), so
//! every pipeline figure is put next to a baseline taken in the same run on the same bytes: the
//! raw produce and consume rate of the embedded broker. The pipeline stages are then driven
//! through their public APIs, as `scope up` drives them, on synthetic collector traffic.
//!
//! # Layout
//! - [`config`]: [`LoadArgs`], the command line: workload sizes, churn, which phases run.
//! - [`workload`]: the synthetic collectors: hosts, processes and connections with churn,
//!   encoded once as the Avro messages collectors publish, and the merged state of a
//!   topology for the render phase.
//! - [`bus`]: the benchmark's own Kafka clients: a producer like the collector's and counting
//!   consumers.
//! - [`baseline`]: phase 1, the raw broker: produce + consume of the workload's bytes.
//! - [`merge`]: phase 2, the merger: decode + apply in memory, then Kafka to snapshot files.
//! - [`render`]: phase 3, window tick to rendered topic, for a large snapshot.
//! - [`membership`]: phase 4, the network lookup of `scope_local_network` against a linear
//!   scan.
//! - [`api`]: phase 5, the HTTP API's latency: a large view, and the websocket delta.
//! - [`ui`]: a synthetic processes view of any size served to the web UI, for
//!   `examples/ui_scale.rs` (its draw and pan times in Chromium) and `tests/ui_scale.rs`.
//! - [`memory`]: peak resident memory (VmHWM) per phase.
//! - [`report`]: the figures and their markdown table.
//! - [`run`]: all phases in order.
//! - [`main_loop`]: what both load generators' `main` do: logging, the runtime, the exit code.

pub mod api;
pub mod baseline;
pub mod bus;
pub mod config;
pub mod main_loop;
pub mod membership;
pub mod memory;
pub mod merge;
pub mod render;
pub mod report;
pub mod ui;
pub mod workload;

use std::time::Instant;

use anyhow::Context as _;

pub use config::{LoadArgs, Phase};
pub use report::{Figure, Report};

/// Runs the phases `args` asks for, in order, and collects their figures.
///
/// Each phase starts its own embedded broker, so one phase's messages neither slow down nor
/// take memory from the next.
pub async fn run(args: &LoadArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let peak = memory::PhasePeak::start();
    let started = Instant::now();
    let workload = workload::Workload::generate(&args.traffic());
    report.note(format!(
        "workload: {} hosts x {} processes x {} connections = {} connections, churn {} /s over {} s: \
         {} connection events in {} records + {} report deltas = {} messages, {:.1} MB of Avro \
         payload (generated in {:.1} s)",
        args.hosts,
        args.processes,
        args.connections,
        args.hosts as u64 * args.processes as u64 * args.connections as u64,
        args.churn,
        args.seconds,
        workload.connection_events,
        workload.encoded.count(scope_merger::state::Input::Connections),
        workload.report_deltas,
        workload.len(),
        workload.payload_bytes() as f64 / 1e6,
        started.elapsed().as_secs_f64(),
    ));
    report.memory("generating the workload", peak.finish());

    let mut baseline_rate = None;
    if args.runs(Phase::Baseline) {
        let peak = memory::PhasePeak::start();
        let result = baseline::run(args, &workload)
            .await
            .context("phase 1 (baseline)")?;
        baseline_rate = Some(result.end_to_end.messages_per_second());
        result.report(&mut report);
        report.memory("phase 1 (baseline)", peak.finish());
    }
    report.set_baseline(baseline_rate);

    if args.runs(Phase::Merger) {
        let peak = memory::PhasePeak::start();
        let result = merge::run(args, &workload)
            .await
            .context("phase 2 (merger)")?;
        result.report(&mut report);
        report.memory("phase 2 (merger)", peak.finish());
    }
    drop(workload);

    if args.runs(Phase::Render) {
        let peak = memory::PhasePeak::start();
        let result = render::run(args).await.context("phase 3 (render)")?;
        result.report(&mut report);
        report.memory("phase 3 (render)", peak.finish());
    }
    if args.runs(Phase::Membership) {
        let peak = memory::PhasePeak::start();
        let result = membership::run(args).context("phase 4 (membership)")?;
        result.report(&mut report);
        report.memory("phase 4 (membership)", peak.finish());
    }
    if args.runs(Phase::Api) {
        let peak = memory::PhasePeak::start();
        let result = api::run(args).await.context("phase 5 (api)")?;
        result.report(&mut report);
        report.memory("phase 5 (api)", peak.finish());
        report.memory(
            "phase 5 (api), serving only (after the untimed cut and render)",
            result.serving_peak,
        );
    }
    report.note(format!(
        "total run time {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(report)
}
