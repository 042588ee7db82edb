//! Scope's collector: the probe that runs on every host.
//!
//! It publishes TCP connections as [`scope_schemas::ConnectionEvent`]s on `scope.connections`
//! as they happen, learnt from the eBPF tracker ([`scope_ebpf`]) or, where it cannot load,
//! from `/proc` every `--spy-interval` ([`tracker`]). It reads `/proc` every spy for processes
//! and the host itself, published as [`scope_schemas::ReportDelta`]s on `scope.reports`
//! (every `--publish-interval`, full every `--full-every` publishes).
//! Mergers turn these streams into snapshots; the collector keeps no history and talks to
//! nothing but Kafka. It must never fail because of what it reads or a broker being away:
//! processes vanish mid-read all the time and are skipped, undeliverable records are counted,
//! and it keeps spying.
//!
//! # Layout
//! - [`config`]: [`CollectorArgs`], the command line and its validation.
//! - [`conntrack`]: the real backend behind a DNAT'ed address, asked of the kernel over
//!   ctnetlink in the connection's network namespace.
//! - [`scan`]: one walk over `/proc/<pid>` per spy (stat, cmdline, fds, network namespace)
//!   plus the TCP tables of every network namespace.
//! - [`tcp`]: parsing `/proc/net/tcp` and `tcp6`.
//! - [`reporter`]: `endpoint` (connection events), `process` and `host` (report nodes).
//! - [`interfaces`]: the host's local networks from `getifaddrs`.
//! - [`delta`]: report deltas (changed nodes, removals, full every N) and sequence numbers.
//! - [`spy`]: the reporters' state, advanced per spy and summarised per publish.
//! - [`publisher`]: the idempotent, lz4 Kafka producer, keyed by host id.
//! - [`stats`]: counters; [`error`]: what can stop the collector.
//! - `worker`: the thread that owns the endpoint reporter, so its conntrack lookups block
//!   no runtime thread.

pub mod config;
pub mod conntrack;
pub mod delta;
pub mod error;
pub mod interfaces;
pub mod publisher;
pub mod reporter;
pub mod scan;
pub mod spy;
pub mod stats;
pub mod tcp;
pub mod tracker;
mod worker;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use config::CollectorArgs;
pub use error::Error;
/// For `scope`'s tests, which reach the eBPF crate only through this one.
#[doc(hidden)]
pub use scope_ebpf::test_support;
pub use stats::{Stats, stats};

use scope_ebpf::Tracker;

use crate::{
    conntrack::Conntrack, publisher::Publisher, reporter::EndpointReporter, scan::Depth, spy::Spy,
    tracker::TrackerMode, worker::Worker,
};

/// How long shutdown waits for queued records to reach the broker.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a collector until `shutdown` is cancelled, counting into the global [`stats()`].
pub async fn run(args: CollectorArgs, shutdown: CancellationToken) -> Result<(), Error> {
    run_with_stats(args, shutdown, stats()).await
}

/// [`run`], counting into `stats`.
pub async fn run_with_stats(
    args: CollectorArgs,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    args.validate()?;
    let probe = args.proc_root.join("stat");
    std::fs::metadata(&probe).map_err(|source| Error::ProcRoot {
        path: probe,
        source,
    })?;
    let hostname = hostname().map_err(Error::Hostname)?;
    let host_id = args.host_id.clone().unwrap_or_else(|| hostname.clone());
    let mut publisher = Publisher::new(&args.kafka, &host_id, stats.clone())?;
    let mut tracker = tracker::start(&args)?;
    let mode = match tracker {
        Some(_) => TrackerMode::Ebpf,
        None => TrackerMode::Procfs,
    };
    stats.set_tracker_mode(mode);
    let endpoints = Worker::spawn(
        "collector-endpoints",
        EndpointReporter::new(&host_id).with_nat(Conntrack::new(args.proc_root.clone())),
    )
    .map_err(Error::StartEndpoints)?;
    let mut spy = Some(Spy::new(
        &host_id,
        &hostname,
        args.proc_root.clone(),
        args.full_every,
        mode,
        stats.clone(),
    ));
    // With eBPF nothing needs spying between publishes: processes and the host are read once
    // per publish, for the metrics no event carries.
    let spy_interval = match mode {
        TrackerMode::Ebpf => args.publish_interval,
        TrackerMode::Procfs => args.spy_interval,
    };
    tracing::info!(
        host_id, brokers = args.kafka.brokers, proc_root = %args.proc_root.display(),
        tracker = mode.as_str(),
        spy_interval = %humantime::format_duration(spy_interval),
        publish_interval = %humantime::format_duration(args.publish_interval),
        full_every = args.full_every,
        "collector started"
    );

    // The first spy reads the connections that already exist, whatever the mode; with eBPF,
    // later spies read them again only after the kernel lost events, or while connections a
    // scan saw without an owner wait for one.
    let mut read_connections = true;
    let mut lost_seen = 0;
    let mut kernel_events = Vec::new();
    let mut spy_tick = tokio::time::interval(spy_interval);
    spy_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut publish_tick = tokio::time::interval(args.publish_interval);
    publish_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            read = next_kernel_batch(tracker.as_mut(), &mut kernel_events) => {
                if let Err(error) = read {
                    // Not expected once loaded; never keep spinning on a broken descriptor.
                    tracing::error!(%error, "reading the eBPF ring buffer failed; connections now come from procfs");
                    tracker = None;
                    read_connections = true;
                    stats.set_tracker_mode(TrackerMode::Procfs);
                    if let Some(state) = spy.as_mut() {
                        state.set_tracker_mode(TrackerMode::Procfs);
                    }
                    continue;
                }
                publish_kernel_events(&mut kernel_events, &endpoints, spy.as_mut(), &mut publisher, &stats).await?;
            }
            _ = spy_tick.tick() => {
                if let Some(tracker) = &tracker {
                    if lost_events_grew(tracker, &mut lost_seen, &stats) {
                        read_connections = true;
                        Stats::add(&stats.resyncs, 1);
                    }
                    note_malformed_records(tracker, &stats);
                }
                let depth = if read_connections || tracker.is_none() {
                    Depth::Connections
                } else {
                    Depth::Processes
                };
                let Some(mut state) = spy.take() else { break };
                let (state, observed) = tokio::task::spawn_blocking(move || {
                    let observed = state.spy(depth);
                    (state, observed)
                })
                .await
                .map_err(Error::Spy)?;
                spy = Some(state);
                let (events, pending, translations) = endpoints
                    .run(move |endpoints| {
                        let events = observed.map(|(observed, at)| endpoints.apply(observed, at));
                        (events, endpoints.has_pending(), endpoints.nat_translations())
                    })
                    .await?;
                if let Some(events) = events {
                    publisher.send_events(&events);
                    read_connections = pending;
                }
                stats.set_nat_translations(translations);
            }
            _ = publish_tick.tick() => {
                let Some(state) = spy.as_mut() else { break };
                let publish = state.publish();
                for delta in &publish.deltas {
                    publisher.send_delta(delta);
                }
                if publish.full {
                    publisher.send_events(&endpoints.run(|endpoints| endpoints.refresh()).await?);
                    let metrics = stats.metrics();
                    tracing::debug!(?metrics, "collector counters");
                }
                publisher.recover();
            }
        }
    }
    // Events still in the ring buffer happened before the stop: they are published too.
    if let Some(tracker) = tracker.as_mut() {
        tracker.drain_pending(&mut kernel_events);
        publish_kernel_events(
            &mut kernel_events,
            &endpoints,
            spy.as_mut(),
            &mut publisher,
            &stats,
        )
        .await?;
    }
    tracing::info!("collector stopping; flushing queued records");
    publisher.flush(SHUTDOWN_FLUSH_TIMEOUT).await;
    let metrics = stats.metrics();
    tracing::info!(?metrics, "collector stopped");
    Ok(())
}

/// Applies a batch of kernel events to the connection table and publishes what it announces;
/// the processes behind them are noted for the process reporter.
async fn publish_kernel_events(
    batch: &mut Vec<scope_ebpf::Event>,
    endpoints: &Worker<EndpointReporter>,
    mut spy: Option<&mut Spy>,
    publisher: &mut Publisher,
    stats: &Stats,
) -> Result<(), Error> {
    for event in batch.iter() {
        stats.kernel_event(event.kind);
        if let (Some(spy), Some(pid), Some(name)) = (spy.as_deref_mut(), event.pid, &event.comm) {
            spy.connected(pid, name);
        }
    }
    let mut taken = std::mem::take(batch);
    // The batch's buffer comes back emptied, to be filled again without reallocating.
    let (events, emptied) = endpoints
        .run(move |endpoints| {
            let events: Vec<_> = taken
                .drain(..)
                .flat_map(|event| endpoints.on_kernel_event(&event))
                .collect();
            (events, taken)
        })
        .await?;
    *batch = emptied;
    publisher.send_events(&events);
    Ok(())
}

/// The next batch of kernel events; never ready without a tracker.
async fn next_kernel_batch(
    tracker: Option<&mut Tracker>,
    out: &mut Vec<scope_ebpf::Event>,
) -> std::io::Result<()> {
    match tracker {
        Some(tracker) => tracker.next_batch(out).await,
        None => std::future::pending().await,
    }
}

/// Whether the kernel dropped events since the last look: they are counted, logged, and the
/// caller resyncs from /proc, so a lost connect or close is never a silent gap.
fn lost_events_grew(tracker: &Tracker, lost_seen: &mut u64, stats: &Stats) -> bool {
    let lost = match tracker.lost_events() {
        Ok(lost) => lost,
        Err(error) => {
            tracing::warn!(%error, "could not read the eBPF lost-event counter; resyncing from /proc");
            return true;
        }
    };
    if lost <= *lost_seen {
        return false;
    }
    let new = lost - *lost_seen;
    *lost_seen = lost;
    Stats::add(&stats.ebpf_lost_events, new);
    tracing::warn!(
        lost = new,
        "the eBPF ring buffer overflowed (raise --ebpf-ring-buffer-bytes); resyncing connections from /proc"
    );
    true
}

/// Ring records that did not decode were skipped by the tracker: exported and logged, since
/// they mean this build's programs and decoder disagree on the record layout.
fn note_malformed_records(tracker: &Tracker, stats: &Stats) {
    let total = tracker.malformed_records();
    let before = stats
        .ebpf_malformed_records
        .swap(total, std::sync::atomic::Ordering::Relaxed);
    if total > before {
        tracing::warn!(
            skipped = total - before,
            total,
            "eBPF ring buffer records that did not decode were skipped; the programs and the collector disagree on the record layout"
        );
    }
}

/// This machine's host name (`gethostname(2)`).
pub fn hostname() -> std::io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // when the name fits, and the last byte is kept 0 for when it does not.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).trim().to_owned();
    if name.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the host name is empty",
        ));
    }
    Ok(name)
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
