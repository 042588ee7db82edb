//! Scope's collector: the probe that runs on every host.
//!
//! It publishes TCP connections as [`scope_schemas::ConnectionEvent`]s on `scope.connections`
//! as they happen (a batch of them a record, [`scope_schemas::ConnectionEvents`]), learnt
//! from the eBPF tracker ([`scope_ebpf`]) or, where it cannot load, from `/proc` every
//! `--spy-interval` (`tracker`). It reads `/proc` every spy for processes
//! and the host itself, published as [`scope_schemas::ReportDelta`]s on `scope.reports`
//! (every `--publish-interval`, full every `--full-every` publishes).
//! Mergers turn these streams into snapshots; the collector keeps no history and talks to
//! nothing but Kafka. It must never fail because of what it reads or a broker being away:
//! processes vanish mid-read all the time and are skipped, undeliverable records are counted,
//! and it keeps spying.
//!
//! # Layout
//! - `config`: [`CollectorArgs`], the command line and its validation.
//! - `tracker`: [`TrackerChoice`], and loading the eBPF tracker or falling back to procfs.
//! - `conntrack`: the real backend behind a DNAT'ed address, asked of the kernel over
//!   ctnetlink in the connection's network namespace.
//! - `scan`: one walk over `/proc/<pid>` per spy (stat, cmdline, fds, network namespace)
//!   plus the TCP tables of every network namespace.
//! - `tcp`: parsing `/proc/net/tcp` and `tcp6`.
//! - `reporter`: `endpoint` (connection events), `process`, `host` and `container` (report
//!   nodes).
//! - `container`: each process's container from its cgroup path (Docker, containerd/CRI,
//!   CRI-O, Podman), and the Docker Engine API and CRI watchers for their names, images,
//!   labels and pods.
//! - `interfaces`: the host's local networks from `getifaddrs`.
//! - `delta`: report deltas (changed nodes, removals, full every N) and sequence numbers.
//! - `spy`: the reporters' state, advanced per spy and summarised per publish.
//! - `publisher`: the idempotent, lz4 Kafka producer, keyed by host id.
//! - `worker`: the thread that owns the endpoint reporter, so its conntrack lookups block
//!   no runtime thread.
//! - `stats`: [`Stats`] and [`stats()`], counters; [`Error`]: what can stop the collector.
//! - [`run`]: the event loop, one `Collector` method per event.
//! - `privileges`: what capabilities the standalone collector keeps after loading the
//!   tracker (`CAP_SYS_PTRACE`, `CAP_DAC_READ_SEARCH`, `CAP_NET_ADMIN`, `CAP_SYS_ADMIN`; none
//!   in the cluster role), and dropping the rest.
//! - `kubernetes`: the cluster role (`--role=cluster`), which reads no node but watches the
//!   Kubernetes API server and publishes the cluster's objects as report deltas.

mod config;
mod conntrack;
mod container;
mod delta;
mod error;
mod interfaces;
mod kubernetes;
mod privileges;
mod publisher;
mod reporter;
mod scan;
mod spy;
mod stats;
mod tcp;
// Public because `collector/tests` name `tracker::TrackerChoice`.
mod tracker;
mod worker;

/// Replays the fuzz corpus of the socket table parser (`fuzz/`, target `proc_files`).
#[cfg(test)]
#[path = "../../fuzz/harness/proc_files.rs"]
mod fuzz_corpus;

use std::{io, sync::Arc, time::Duration};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use config::{CollectorArgs, Role};
/// The Docker Engine API and CRI watchers, for their tests and for embedding them elsewhere.
pub use container::{
    ContainerMeta, MetaCache, Runtime as ContainerRuntime,
    cri::{CriStats, connect as connect_cri},
    docker::{DockerStats, watch as watch_docker},
};
pub use error::Error;
/// For `scope`'s tests, which reach the eBPF crate only through this one.
#[doc(hidden)]
pub use scope_ebpf::test_support;
pub use stats::{Stats, stats};
pub use tracker::TrackerChoice;

use scope_ebpf::Tracker;
use scope_runtime::component::Component;

use crate::{
    conntrack::Conntrack,
    publisher::Publisher,
    reporter::{ContainerReporter, EndpointReporter},
    scan::Depth,
    spy::Spy,
    tracker::TrackerMode,
    worker::Worker,
};

/// How long shutdown waits for queued records to reach the broker.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

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
    match args.role {
        Role::Node => Collector::start(&args, stats)?.run(&shutdown).await,
        Role::Cluster => {
            privileges::drop_unneeded(&args)?;
            kubernetes::run(&args, &shutdown, stats).await
        }
    }
}

/// Everything the event loop owns between events. One task drives it, so the endpoint
/// reporter's events keep the order of the spies and kernel events that caused them.
struct Collector {
    stats: Arc<Stats>,
    publisher: Publisher,
    /// `None` in procfs mode, whether chosen, fallen back to at start, or after the ring
    /// buffer failed.
    tracker: Option<Tracker>,
    endpoints: Worker<EndpointReporter>,
    /// Lent to a blocking thread while a spy reads /proc. A spy that panics stops the
    /// collector with [`Error::Spy`], so it is back whenever an event is handled.
    spy: Option<Spy>,
    spy_interval: Duration,
    publish_interval: Duration,
    /// Whether the next spy reads the connections too. The first does, whatever the mode;
    /// with eBPF, later ones only after the kernel lost events, or while connections a scan
    /// saw without an owner wait for one.
    read_connections: bool,
    /// The kernel's lost-event count at the last look, to log and count only what is new.
    lost_seen: u64,
    /// The buffer kernel events are read into, reused from batch to batch.
    kernel_events: Vec<scope_ebpf::Event>,
    /// Stops the Docker and CRI watchers when the collector is dropped, however its run ended.
    _runtime_watch: tokio_util::sync::DropGuard,
}

impl Collector {
    /// Checks the configuration and `/proc`, loads the tracker, drops the capabilities
    /// only loading needed (before any thread starts, as they inherit them), creates the
    /// producer and starts the endpoint reporter's thread.
    fn start(args: &CollectorArgs, stats: Arc<Stats>) -> Result<Self, Error> {
        args.validate()?;
        let probe = args.proc_root.join("stat");
        std::fs::metadata(&probe).map_err(|source| Error::ProcRoot {
            path: probe,
            source,
        })?;
        let hostname = hostname().map_err(Error::Hostname)?;
        let host_id = args.host_id.clone().unwrap_or_else(|| hostname.clone());
        let tracker = tracker::start(args)?;
        privileges::drop_unneeded(args)?;
        let publisher = Publisher::new(&args.kafka, &host_id, stats.clone())?;
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
        let containers = container::MetaCache::default();
        let runtime_watch = CancellationToken::new();
        tokio::spawn(container::docker::watch(
            args.docker_socket.clone(),
            containers.clone(),
            stats.docker.clone(),
            runtime_watch.clone(),
        ));
        tokio::spawn(container::cri::watch(
            args.cri_socket.clone(),
            containers.clone(),
            stats.cri.clone(),
            runtime_watch.clone(),
        ));
        let spy = Spy::new(
            &host_id,
            &hostname,
            args.proc_root.clone(),
            ContainerReporter::new(&host_id, args.cgroup_root.clone(), containers),
            args.full_every,
            mode,
            stats.clone(),
        );
        // With eBPF nothing needs spying between publishes: processes and the host are read
        // once per publish, for the metrics no event carries.
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
        Ok(Collector {
            stats,
            publisher,
            tracker,
            endpoints,
            spy: Some(spy),
            spy_interval,
            publish_interval: args.publish_interval,
            read_connections: true,
            lost_seen: 0,
            kernel_events: Vec::new(),
            _runtime_watch: runtime_watch.drop_guard(),
        })
    }

    /// Handles events until `shutdown` is cancelled, then [`Self::stop`]s.
    async fn run(mut self, shutdown: &CancellationToken) -> Result<(), Error> {
        let mut spy_tick = tokio::time::interval(self.spy_interval);
        spy_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut publish_tick = tokio::time::interval(self.publish_interval);
        publish_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                read = self.next_kernel_batch() => self.on_kernel_batch(read).await?,
                _ = spy_tick.tick() => self.on_spy_tick().await?,
                _ = publish_tick.tick() => self.on_publish_tick().await?,
            }
        }
        self.stop().await
    }

    /// Fills [`Self::kernel_events`] with the next batch; never ready without a tracker.
    async fn next_kernel_batch(&mut self) -> io::Result<()> {
        match self.tracker.as_mut() {
            Some(tracker) => tracker.next_batch(&mut self.kernel_events).await,
            None => std::future::pending().await,
        }
    }

    /// Publishes a batch the tracker delivered, or falls back to procfs if it could not.
    async fn on_kernel_batch(&mut self, read: io::Result<()>) -> Result<(), Error> {
        match read {
            Ok(()) => self.publish_kernel_events().await,
            Err(error) => {
                self.fall_back_to_procfs(&error);
                Ok(())
            }
        }
    }

    /// The ring buffer failed, which is not expected once loaded: rather than spin on a broken
    /// descriptor, the collector learns connections from /proc from now on.
    fn fall_back_to_procfs(&mut self, error: &io::Error) {
        tracing::error!(%error, "reading the eBPF ring buffer failed; connections now come from procfs");
        self.tracker = None;
        self.read_connections = true;
        self.stats.set_tracker_mode(TrackerMode::Procfs);
        if let Some(spy) = self.spy.as_mut() {
            spy.set_tracker_mode(TrackerMode::Procfs);
        }
    }

    /// Applies the batch of kernel events to the connection table and publishes what it
    /// announces; the processes behind them are noted for the process reporter.
    async fn publish_kernel_events(&mut self) -> Result<(), Error> {
        for event in &self.kernel_events {
            self.stats.kernel_event(event.kind);
            if let (Some(spy), Some(pid), Some(name)) = (self.spy.as_mut(), event.pid, &event.comm)
            {
                spy.connected(pid, name);
            }
        }
        let mut taken = std::mem::take(&mut self.kernel_events);
        // The batch's buffer comes back emptied, to be filled again without reallocating.
        let (events, emptied) = self
            .endpoints
            .run(move |endpoints| {
                let events: Vec<_> = taken
                    .drain(..)
                    .flat_map(|event| endpoints.on_kernel_event(&event))
                    .collect();
                (events, taken)
            })
            .await?;
        self.kernel_events = emptied;
        self.publisher.send_events(&events);
        Ok(())
    }

    /// Reads /proc on a blocking thread, to the connections when [`Self::spy_depth`] says so,
    /// and publishes the connection events the endpoint reporter derives from them.
    async fn on_spy_tick(&mut self) -> Result<(), Error> {
        let depth = self.spy_depth();
        let Some(mut spy) = self.spy.take() else {
            return Ok(());
        };
        let (spy, observed) = tokio::task::spawn_blocking(move || {
            let observed = spy.spy(depth);
            (spy, observed)
        })
        .await
        .map_err(Error::Spy)?;
        self.spy = Some(spy);
        let (events, pending, translations) = self
            .endpoints
            .run(move |endpoints| {
                let events = observed.map(|(observed, at)| endpoints.apply(observed, at));
                (
                    events,
                    endpoints.has_pending(),
                    endpoints.nat_translations(),
                )
            })
            .await?;
        if let Some(events) = events {
            self.publisher.send_events(&events);
            self.read_connections = pending;
        }
        self.stats.set_nat_translations(translations);
        Ok(())
    }

    /// How deep the next spy reads: the connections too in procfs mode, at the first spy, and
    /// whenever the kernel lost events since the last look (a resync).
    fn spy_depth(&mut self) -> Depth {
        if let Some(tracker) = &self.tracker {
            if lost_events_grew(tracker, &mut self.lost_seen, &self.stats) {
                self.read_connections = true;
                Stats::add(&self.stats.resyncs, 1);
            }
            note_malformed_records(tracker, &self.stats);
        }
        if self.read_connections || self.tracker.is_none() {
            Depth::Connections
        } else {
            Depth::Processes
        }
    }

    /// Publishes the host and process reporters' deltas; with a full report, open
    /// connections are re-announced too.
    async fn on_publish_tick(&mut self) -> Result<(), Error> {
        let Some(spy) = self.spy.as_mut() else {
            return Ok(());
        };
        let publish = spy.publish();
        for delta in &publish.deltas {
            self.publisher.send_delta(delta);
        }
        if publish.full {
            // Taken before the table: every event published so far is older.
            let taken_us = scope_schemas::time::now_us();
            let refresh = self
                .endpoints
                .run(move |endpoints| endpoints.refresh(taken_us))
                .await?;
            self.publisher.send_events(&refresh);
            let metrics = self.stats.metrics();
            tracing::debug!(?metrics, "collector counters");
        }
        self.publisher.recover();
        Ok(())
    }

    /// Publishes what the tracker still holds and flushes the producer.
    async fn stop(mut self) -> Result<(), Error> {
        // Events still in the ring buffer happened before the stop: they are published too.
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.drain_pending(&mut self.kernel_events);
            self.publish_kernel_events().await?;
        }
        tracing::info!("collector stopping; flushing queued records");
        self.publisher.flush(SHUTDOWN_FLUSH_TIMEOUT).await;
        let metrics = self.stats.metrics();
        tracing::info!(?metrics, "collector stopped");
        Ok(())
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
fn hostname() -> std::io::Result<String> {
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
