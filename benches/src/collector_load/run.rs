//! One run: the broker, the load server and the events reader are shared; each cell
//! (containers × mode × rate) gets a fresh collector with its own host id. The containers of a
//! count are started before its cells and kept through them, so each count is measured back to
//! back at every mode and rate; Docker runs for the whole run if any count is above 0.
//!
//! A cell, in order:
//! 1. open `--long-lived` connections to the load server;
//! 2. start the collector and wait for its first record on Kafka (it is up and publishing);
//! 3. start the paced load and let it run for `--warmup`;
//! 4. measure over `--duration`: the collector's utime + stime and each thread's, then its
//!    VmRSS and VmHWM at the end; record the client port of every short connection begun; in
//!    eBPF mode also the kernel-side run time of its programs (statistics turned on with
//!    `BPF_ENABLE_STATS` for the whole run), which the kernel charges to the processes making
//!    the connections, not to the collector;
//! 5. stop the load, SIGTERM the collector (it flushes), close the long-lived connections;
//! 6. read `scope.connections` to its end and count the measured connections announced, and
//!    how many of the running containers the collector reported.
//!
//! A cell that fails (a collector that cannot start, typically eBPF without the rights) is
//! reported as failed and the run goes on to the next cell.

use std::path::Path;
use std::time::{Duration, Instant};

use scope_schemas::time::now_us;

use anyhow::{Context as _, bail};
use scope_kafka::{EmbeddedBroker, KafkaArgs};
use scope_schemas::topics;

use crate::args::{CollectorLoadArgs, Mode};
use crate::child::Collector;
use crate::containers::Fleet;
use crate::events::{self, Events};
use crate::procstat;
use crate::report::{Cell, Measured, Report};
use crate::traffic::{self, Load, Server};

/// How long after the measured span a `connect` may be stamped and still count: a procfs
/// collector stamps a connection with the spy that first saw it (1 s apart by default).
const ANNOUNCE_SLACK_US: i64 = 3_000_000;

/// What every cell shares.
struct Bench<'a> {
    args: &'a CollectorLoadArgs,
    collector: &'a Path,
    bootstrap: String,
    server: Server,
    events: Events,
    ticks_per_second: u64,
    /// Holds the kernel's eBPF run-time statistics on, or why they could not be.
    bpf_stats: Result<std::os::fd::OwnedFd, String>,
}

pub async fn run(args: &CollectorLoadArgs, collector: &Path) -> anyhow::Result<Report> {
    let ticks_per_second = procstat::ticks_per_second()?;
    let broker = EmbeddedBroker::start(([127, 0, 0, 1], 0).into())
        .await
        .context("starting the embedded broker")?;
    let bootstrap = broker.bootstrap();
    scope_kafka::ensure_topics(&KafkaArgs::new(&bootstrap), &topics::all(1))
        .await
        .context("creating the topics")?;
    let server = Server::start().await?;
    let events = Events::start(&bootstrap, server.addr.port())?;
    let bench = Bench {
        args,
        collector,
        bootstrap,
        server,
        events,
        ticks_per_second,
        bpf_stats: procstat::enable_bpf_stats()
            .map_err(|e| format!("BPF_ENABLE_STATS refused: {e}")),
    };

    let mut report = Report::default();
    report.notes.push(format!(
        "collector {}; broker: embedded tansu (memory) in the bench process at {}; load server \
         {}; {} long-lived connections; clock ticks {}/s",
        collector.display(),
        bench.bootstrap,
        bench.server.addr,
        args.long_lived,
        ticks_per_second
    ));
    let mut fleet = args.wants_docker().then(Fleet::start).transpose()?;
    if let Some(fleet) = &fleet {
        report.notes.push(format!(
            "containers: `{}` running `sleep 86400` on Docker's default bridge; every collector \
             gets --docker-socket {} and the default --cgroup-root",
            scope_testkit::docker::BUSYBOX_IMAGE,
            fleet.socket().display()
        ));
    }
    for &containers in &args.containers {
        let resized = match fleet.as_mut() {
            Some(fleet) => {
                eprintln!("scope-collector-load: {containers} containers");
                fleet.resize(containers as usize)
            }
            None => Ok(()),
        }
        .map_err(|error| format!("{error:#}"));
        for &mode in &args.modes {
            for &rate in &args.rates {
                let name = format!("{} with {containers} containers at {rate}/s", mode.as_str());
                eprintln!("scope-collector-load: {name}");
                let outcome = match &resized {
                    Ok(()) => bench
                        .cell(mode, rate, containers, fleet.as_ref())
                        .await
                        .map_err(|error| format!("{error:#}")),
                    Err(reason) => Err(reason.clone()),
                };
                match &outcome {
                    Ok(m) => eprintln!(
                        "scope-collector-load: {name}: CPU {:.2} %, RSS {:.1} MiB, seen {} of {}",
                        m.cpu_percent,
                        m.rss as f64 / 1_048_576.0,
                        m.seen,
                        m.made
                    ),
                    Err(reason) => eprintln!("scope-collector-load: {name} FAILED: {reason}"),
                }
                report.cells.push(Cell {
                    mode,
                    containers,
                    rate,
                    outcome,
                });
            }
        }
    }
    if let Some(fleet) = fleet.as_mut()
        && let Err(error) = fleet.resize(0)
    {
        report
            .notes
            .push(format!("removing the containers: {error:#}"));
    }
    let malformed = bench.events.malformed();
    if malformed > 0 {
        report
            .notes
            .push(format!("{malformed} records did not decode"));
    }
    bench.events.stop().await;
    drop(broker);
    Ok(report)
}

impl Bench<'_> {
    async fn cell(
        &self,
        mode: Mode,
        rate: u32,
        containers: u32,
        fleet: Option<&Fleet>,
    ) -> anyhow::Result<Measured> {
        let args = self.args;
        let host_id = format!(
            "collector-load-{}-{}-{containers}c-{rate}",
            std::process::id(),
            mode.as_str()
        );
        let held = traffic::hold_open(self.server.addr, args.long_lived).await?;
        let mut collector = Collector::spawn(
            self.collector,
            mode,
            &self.bootstrap,
            &host_id,
            fleet.map(Fleet::socket),
        )?;
        let pid = collector.pid;

        let deadline = Instant::now() + args.timeout;
        while self.events.records(&host_id) == 0 {
            collector.check_running().await.with_context(|| {
                format!("starting the collector with --tracker {}", mode.as_str())
            })?;
            if Instant::now() > deadline {
                bail!(
                    "the collector (pid {pid}) published nothing within {}",
                    humantime::format_duration(args.timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let load = Load::start(self.server.addr, rate);
        collector
            .run_for(args.warmup)
            .await
            .context("during the warm-up")?;

        let bpf = |pid| match &self.bpf_stats {
            Ok(_) => procstat::bpf_run_time(pid).map_err(|e| format!("{e:#}")),
            Err(reason) => Err(reason.clone()),
        };
        let bpf_before = bpf(pid);
        let threads_before = procstat::thread_ticks(pid)?;
        let ticks_before = procstat::process_ticks(pid)?;
        let started = Instant::now();
        let from_us = now_us();
        load.measure(true);
        collector
            .run_for(args.duration)
            .await
            .context("during the measurement")?;
        load.measure(false);
        let to_us = now_us();
        let ticks_after = procstat::process_ticks(pid)?;
        let elapsed = started.elapsed();
        let threads_after = procstat::thread_ticks(pid)?;
        let memory = procstat::memory(pid)?;
        let bpf_after = bpf(pid);
        let machine = procstat::machine();

        let tally = std::sync::Arc::clone(&load.tally);
        load.stop(args.timeout).await?;
        let status = collector.stop(args.timeout).await?;
        drop(held);
        self.events
            .catch_up(args.timeout)
            .await
            .context("reading the collector's connection events")?;
        let host = self.events.host(&host_id);
        let seen = events::seen(
            &tally.ports(),
            &host.connects,
            from_us,
            to_us + ANNOUNCE_SLACK_US,
        );

        let containers = fleet.map(|fleet| fleet.reported(&host));

        let per_core = |ticks| procstat::percent_of_core(ticks, self.ticks_per_second, elapsed);
        let kernel = (mode == Mode::Ebpf).then(|| {
            let (before, after) = (bpf_before?, bpf_after?);
            let spent = procstat::BpfRunTime {
                programs: after.programs,
                runs: after.runs.saturating_sub(before.runs),
                nanos: after.nanos.saturating_sub(before.nanos),
            };
            let percent = spent.nanos as f64 / 1e9 / elapsed.as_secs_f64() * 100.0;
            Ok((spent, percent))
        });
        Ok(Measured {
            cpu_percent: per_core(ticks_after.saturating_sub(ticks_before)),
            elapsed,
            rss: memory.rss,
            peak: memory.peak,
            made: tally.made(),
            failed: tally.failed(),
            first_error: tally.first_error(),
            seen,
            threads: procstat::ticks_by_thread_group(&threads_before, &threads_after)
                .into_iter()
                .map(|(name, ticks, n)| (name, per_core(ticks), n))
                .collect(),
            events: host.by_kind,
            containers,
            other_connects: busiest(host.other_connects, 3),
            exit: status.to_string(),
            machine,
            kernel,
        })
    }
}

/// The `n` largest counts, largest first.
fn busiest(
    counts: std::collections::BTreeMap<(String, i32), u64>,
    n: usize,
) -> Vec<(String, i32, u64)> {
    let mut all: Vec<(String, i32, u64)> = counts
        .into_iter()
        .map(|((process, port), count)| (process, port, count))
        .collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.2));
    all.truncate(n);
    all
}
