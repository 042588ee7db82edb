//! Counters the CLI logs and a scraper could export: what was published, what failed, what
//! was skipped. Per-process or per-connection detail never goes into a counter's name.

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use scope_ebpf::EventKind;

use crate::tracker::TrackerMode;

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

    /// Every counter with its Prometheus-style name.
    pub fn metrics(&self) -> [(&'static str, u64); 9] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "scope_collector_events_published_total",
                get(&self.events_published),
            ),
            (
                "scope_collector_deltas_published_total",
                get(&self.deltas_published),
            ),
            (
                "scope_collector_publish_failures_total",
                get(&self.publish_failures),
            ),
            (
                "scope_collector_proc_read_errors_total",
                get(&self.proc_read_errors),
            ),
            ("scope_collector_spies_total", get(&self.spies)),
            (
                "scope_collector_ebpf_lost_events_total",
                get(&self.ebpf_lost_events),
            ),
            (
                "scope_collector_ebpf_malformed_records_total",
                get(&self.ebpf_malformed_records),
            ),
            ("scope_collector_resyncs_total", get(&self.resyncs)),
            (
                "scope_collector_nat_translations_total",
                get(&self.nat_translations),
            ),
        ]
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
    /// Writes every value of [`Stats::metrics`] as a Prometheus family, for the
    /// `--metrics-addr` endpoint: a counter when its name ends in `_total` (the Prometheus
    /// convention), a gauge otherwise. A value added there is exported without a change
    /// here; give it a help text in `help` below (a test insists).
    pub fn write_metrics(&self, out: &mut scope_kafka::metrics::Exposition) {
        for (name, value) in self.metrics() {
            if name.ends_with("_total") {
                out.counter(name, help(name), value);
            } else {
                out.gauge(name, help(name), value);
            }
        }
        for kind in [EventKind::Connect, EventKind::Accept, EventKind::Close] {
            out.counter_with(
                "scope_collector_ebpf_events_total",
                "Connection events the eBPF tracker delivered, by kind.",
                &[("kind", kernel_event_name(kind))],
                self.ebpf_events[kernel_event_index(kind)].load(Ordering::Relaxed),
            );
        }
        let ebpf = self.ebpf_mode.load(Ordering::Relaxed);
        for (mode, active) in [(TrackerMode::Ebpf, ebpf), (TrackerMode::Procfs, !ebpf)] {
            out.gauge_with(
                "scope_collector_tracker_mode",
                "1 for how connections are learnt (ebpf or procfs), 0 for the other.",
                &[("mode", mode.as_str())],
                u64::from(active),
            );
        }
    }
}

/// The `# HELP` text of a value of [`Stats::metrics`].
fn help(name: &str) -> &'static str {
    match name {
        "scope_collector_events_published_total" => "Connection events the broker acknowledged.",
        "scope_collector_deltas_published_total" => "Report deltas the broker acknowledged.",
        "scope_collector_publish_failures_total" => {
            "Records that could not be encoded, queued or delivered."
        }
        "scope_collector_proc_read_errors_total" => {
            "Reads under /proc that failed and were skipped."
        }
        "scope_collector_spies_total" => "Completed reads of /proc (spies).",
        "scope_collector_ebpf_lost_events_total" => {
            "Connection events the eBPF tracker lost (ring buffer full); each loss triggers a resync."
        }
        "scope_collector_ebpf_malformed_records_total" => {
            "eBPF ring buffer records that did not decode (the programs and the collector disagree on their layout), skipped."
        }
        "scope_collector_resyncs_total" => {
            "Re-reads of all connections from /proc after lost events."
        }
        "scope_collector_nat_translations_total" => {
            "Connections reported with their conntrack-translated (DNAT) destination."
        }
        _ => "A collector metric.",
    }
}

#[cfg(test)]
mod metrics_tests {
    use super::*;

    #[test]
    fn every_counter_is_exported_with_its_own_help() {
        let stats = Stats::default();
        Stats::add(&stats.spies, 4);
        let mut out = scope_kafka::metrics::Exposition::new();
        stats.write_metrics(&mut out);
        let text = out.finish();
        for (name, value) in stats.metrics() {
            assert_ne!(help(name), help(""), "{name} needs a help text");
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            assert!(text.contains(&format!("\n# TYPE {name} {kind}\n{name} {value}\n")));
        }
        assert!(text.contains("\nscope_collector_spies_total 4\n"));
    }

    #[test]
    fn tracker_mode_and_kernel_events_are_labelled() {
        let stats = Stats::default();
        stats.set_tracker_mode(TrackerMode::Ebpf);
        stats.kernel_event(EventKind::Accept);
        stats.kernel_event(EventKind::Accept);
        let mut out = scope_kafka::metrics::Exposition::new();
        stats.write_metrics(&mut out);
        let text = out.finish();
        for line in [
            "scope_collector_ebpf_events_total{kind=\"accept\"} 2",
            "scope_collector_ebpf_events_total{kind=\"close\"} 0",
            "scope_collector_tracker_mode{mode=\"ebpf\"} 1",
            "scope_collector_tracker_mode{mode=\"procfs\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
    }
}
