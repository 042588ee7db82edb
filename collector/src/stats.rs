//! Counters the CLI logs and a scraper could export: what was published, what failed, what
//! was skipped. Per-process or per-connection detail never goes into a counter's name.

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use scope_ebpf::EventKind;
use scope_runtime::metrics::Families;

use crate::{
    container::{cri::CriStats, docker::DockerStats},
    tracker::TrackerMode,
};

/// The collector's counters. Cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connection events the broker acknowledged.
    pub events_published: AtomicU64,
    /// Report deltas the broker acknowledged.
    pub deltas_published: AtomicU64,
    /// Records that could not be encoded, queued or delivered.
    pub publish_failures: AtomicU64,
    /// Reads under `/proc` that failed (mostly processes that exited mid-read) and were skipped.
    pub proc_read_errors: AtomicU64,
    /// Completed spies.
    pub spies: AtomicU64,
    /// Events the eBPF tracker delivered: connect, accept, close.
    pub ebpf_events: [AtomicU64; 3],
    /// Events the eBPF tracker could not deliver (ring buffer full).
    pub ebpf_lost_events: AtomicU64,
    /// Records of the eBPF ring buffer that did not decode, and were skipped.
    pub ebpf_malformed_records: AtomicU64,
    /// Re-reads of the connections from /proc after lost events.
    pub resyncs: AtomicU64,
    /// Connections reported with their conntrack-translated (DNAT) destination.
    pub nat_translations: AtomicU64,
    /// Whether connections come from eBPF (else procfs).
    pub ebpf_mode: AtomicBool,
    /// The Docker Engine API watcher's counters.
    pub docker: Arc<DockerStats>,
    /// The CRI watcher's counters.
    pub cri: Arc<CriStats>,
}

impl Stats {
    pub(crate) fn proc_read_error(&self) {
        self.proc_read_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn kernel_event(&self, kind: EventKind) {
        Stats::add(&self.ebpf_events[kernel_event_index(kind)], 1);
    }

    pub(crate) fn set_tracker_mode(&self, mode: TrackerMode) {
        self.ebpf_mode
            .store(mode == TrackerMode::Ebpf, Ordering::Relaxed);
    }

    pub(crate) fn set_nat_translations(&self, total: u64) {
        self.nat_translations.store(total, Ordering::Relaxed);
    }
}

fn kernel_event_index(kind: EventKind) -> usize {
    match kind {
        EventKind::Connect => 0,
        EventKind::Accept => 1,
        EventKind::Close => 2,
    }
}

fn kernel_event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Connect => "connect",
        EventKind::Accept => "accept",
        EventKind::Close => "close",
    }
}

static GLOBAL: LazyLock<Arc<Stats>> = LazyLock::new(Arc::default);

/// The counters [`crate::run`] updates.
pub fn stats() -> Arc<Stats> {
    GLOBAL.clone()
}

impl Stats {
    /// Every counter as a metric family: what a scrape of `--metrics-addr` shows.
    pub fn write_metrics(&self, out: &mut Families) {
        self.docker.write_metrics(out);
        self.cri.write_metrics(out);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.counter(
            "scope_collector_events_published_total",
            "Connection events the broker acknowledged.",
            get(&self.events_published),
        );
        out.counter(
            "scope_collector_deltas_published_total",
            "Report deltas the broker acknowledged.",
            get(&self.deltas_published),
        );
        out.counter(
            "scope_collector_publish_failures_total",
            "Records that could not be encoded, queued or delivered.",
            get(&self.publish_failures),
        );
        out.counter(
            "scope_collector_proc_read_errors_total",
            "Reads under /proc that failed and were skipped.",
            get(&self.proc_read_errors),
        );
        out.counter(
            "scope_collector_spies_total",
            "Completed reads of /proc (spies).",
            get(&self.spies),
        );
        out.counter(
            "scope_collector_ebpf_lost_events_total",
            "Connection events the eBPF tracker lost (ring buffer full); each loss triggers a resync.",
            get(&self.ebpf_lost_events),
        );
        out.counter(
            "scope_collector_ebpf_malformed_records_total",
            "eBPF ring buffer records that did not decode (the programs and the collector disagree on their layout), skipped.",
            get(&self.ebpf_malformed_records),
        );
        out.counter(
            "scope_collector_resyncs_total",
            "Re-reads of all connections from /proc after lost events.",
            get(&self.resyncs),
        );
        out.counter(
            "scope_collector_nat_translations_total",
            "Connections reported with their conntrack-translated (DNAT) destination.",
            get(&self.nat_translations),
        );
        out.counter_by(
            "scope_collector_ebpf_events_total",
            "Connection events the eBPF tracker delivered, by kind.",
            "kind",
            [EventKind::Connect, EventKind::Accept, EventKind::Close].map(|kind| {
                (
                    kernel_event_name(kind),
                    get(&self.ebpf_events[kernel_event_index(kind)]),
                )
            }),
        );
        let ebpf = self.ebpf_mode.load(Ordering::Relaxed);
        out.gauge_by(
            "scope_collector_tracker_mode",
            "1 for how connections are learnt (ebpf or procfs), 0 for the other.",
            "mode",
            [(TrackerMode::Ebpf, ebpf), (TrackerMode::Procfs, !ebpf)]
                .map(|(mode, active)| (mode.as_str(), u64::from(active))),
        );
    }

    /// Every counter with its value, for a log line.
    pub fn metrics(&self) -> Families {
        Families::of(|out| self.write_metrics(out))
    }
}

#[cfg(test)]
mod metrics_tests {
    use super::*;

    #[test]
    fn a_scrape_shows_every_counter_by_its_name() {
        let stats = Stats::default();
        Stats::add(&stats.spies, 4);
        stats.set_tracker_mode(TrackerMode::Ebpf);
        stats.kernel_event(EventKind::Accept);
        stats.kernel_event(EventKind::Accept);
        let text = scope_runtime::metrics::encode(|out| stats.write_metrics(out));
        let counters = [
            "scope_collector_events_published",
            "scope_collector_deltas_published",
            "scope_collector_publish_failures",
            "scope_collector_proc_read_errors",
            "scope_collector_spies",
            "scope_collector_ebpf_lost_events",
            "scope_collector_ebpf_malformed_records",
            "scope_collector_resyncs",
            "scope_collector_nat_translations",
            "scope_collector_docker_api_failures",
            "scope_collector_docker_events",
            "scope_collector_docker_events_skipped",
            "scope_collector_docker_inspect_failures",
            "scope_collector_cri_api_failures",
            "scope_collector_cri_events",
            "scope_collector_cri_polls",
            "scope_collector_cri_status_failures",
        ];
        for family in counters {
            let value = if family == "scope_collector_spies" {
                4
            } else {
                0
            };
            assert!(
                text.contains(&format!(
                    "\n# TYPE {family} counter\n{family}_total {value}\n"
                )),
                "no {family}_total in\n{text}"
            );
        }
        for line in [
            "# TYPE scope_collector_ebpf_events counter",
            "scope_collector_ebpf_events_total{kind=\"connect\"} 0",
            "scope_collector_ebpf_events_total{kind=\"accept\"} 2",
            "scope_collector_ebpf_events_total{kind=\"close\"} 0",
            "# TYPE scope_collector_tracker_mode gauge",
            "scope_collector_tracker_mode{mode=\"ebpf\"} 1",
            "scope_collector_tracker_mode{mode=\"procfs\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        assert_eq!(
            text.matches("# TYPE ").count(),
            counters.len() + 2,
            "{text}"
        );
        assert!(
            text.lines()
                .all(|l| l.starts_with('#') || l.starts_with("scope_collector_"))
        );
        let logged = format!("{:?}", stats.metrics());
        assert!(
            logged.contains("scope_collector_spies_total: 4"),
            "{logged}"
        );
    }
}
