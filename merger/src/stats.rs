//! Counters of what the merger did, for the CLI to log and `--metrics-addr` to export.
//!
//! The consume loop counts in plain integers and adds them here once per tick, so the hot
//! path touches no shared cache line. Names follow Prometheus conventions; per-topic counters
//! carry a `topic` label with one of the two input topic names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use scope_runtime::metrics::Families;
use scope_schemas::topics;

/// Counters of one input topic.
#[derive(Debug, Default)]
pub struct TopicStats {
    /// `scope_merger_messages_applied_total{topic}`: messages that changed the state.
    pub applied: AtomicU64,
    /// `scope_merger_duplicate_messages_total{topic}`: replays and duplicates, skipped.
    pub duplicates: AtomicU64,
    /// `scope_merger_ignored_messages_total{topic}`: well-formed messages about something
    /// unknown (the close of a socket never seen open), skipped.
    pub ignored: AtomicU64,
    /// `scope_merger_malformed_messages_total{topic}`: undecodable or invalid, skipped.
    pub malformed: AtomicU64,
}

/// Everything the merger counts.
#[derive(Debug, Default)]
pub struct Stats {
    /// Counters of `scope.connections`.
    pub connections: TopicStats,
    /// Counters of `scope.reports`.
    pub reports: TopicStats,
    /// `scope_merger_snapshots_written_total`: snapshots made durable.
    pub snapshots_written: AtomicU64,
    /// `scope_merger_snapshot_written_bytes_total`: Parquet bytes written.
    pub bytes_written: AtomicU64,
    /// `scope_merger_snapshot_failures_total`: snapshots not written or not announced.
    pub snapshot_failures: AtomicU64,
    /// `scope_merger_snapshots_withheld_total`: ticks with no snapshot, because the merger
    /// owned no partition or was still replaying one.
    pub snapshots_withheld: AtomicU64,
    /// `scope_merger_unchanged_ticks_total`: ticks with no snapshot, because nothing the
    /// views draw changed since the last one and it is younger than `--idle-interval`.
    pub unchanged_ticks: AtomicU64,
    /// `scope_merger_expired_sockets_total`: open sockets dropped for lack of confirmation.
    pub expired_sockets: AtomicU64,
    /// `scope_merger_retention_deleted_files_total`: snapshot files deleted past retention.
    pub files_deleted: AtomicU64,
    /// `scope_merger_clock_skew_corrected_messages_total`: input messages whose timestamps
    /// were moved onto the merger's clock because their host's clock was out of bounds.
    pub skew_corrected: AtomicU64,
    /// `scope_merger_clock_skewed_hosts`: hosts whose clock is out of bounds now (a gauge).
    pub skewed_hosts: AtomicU64,
}

static GLOBAL: LazyLock<Arc<Stats>> = LazyLock::new(Arc::default);

/// The counters [`crate::run`] adds to.
pub fn stats() -> &'static Arc<Stats> {
    &GLOBAL
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Stats {
    /// Every counter as a metric family: what a scrape of `--metrics-addr` shows.
    pub fn write_metrics(&self, out: &mut Families) {
        type Field = fn(&TopicStats) -> &AtomicU64;
        let per_topic: [(&'static str, &'static str, Field); 4] = [
            (
                "scope_merger_messages_applied_total",
                "Input messages that changed the merged state.",
                |t| &t.applied,
            ),
            (
                "scope_merger_duplicate_messages_total",
                "Replayed or duplicate input messages skipped.",
                |t| &t.duplicates,
            ),
            (
                "scope_merger_ignored_messages_total",
                "Input messages about unknown sockets skipped.",
                |t| &t.ignored,
            ),
            (
                "scope_merger_malformed_messages_total",
                "Undecodable or invalid input messages skipped.",
                |t| &t.malformed,
            ),
        ];
        for (name, help, field) in per_topic {
            let by_topic = [
                (topics::CONNECTIONS, get(field(&self.connections))),
                (topics::REPORTS, get(field(&self.reports))),
            ];
            out.counter_by(name, help, "topic", by_topic);
        }
        let plain = [
            (
                "scope_merger_snapshots_written_total",
                "Snapshots made durable.",
                &self.snapshots_written,
            ),
            (
                "scope_merger_snapshot_written_bytes_total",
                "Parquet bytes written.",
                &self.bytes_written,
            ),
            (
                "scope_merger_snapshot_failures_total",
                "Snapshots not written or not announced.",
                &self.snapshot_failures,
            ),
            (
                "scope_merger_snapshots_withheld_total",
                "Ticks without a snapshot: no partition owned, or one still replaying.",
                &self.snapshots_withheld,
            ),
            (
                "scope_merger_unchanged_ticks_total",
                "Ticks without a snapshot: nothing the views draw changed, and the last one is younger than --idle-interval.",
                &self.unchanged_ticks,
            ),
            (
                "scope_merger_expired_sockets_total",
                "Open sockets expired unconfirmed.",
                &self.expired_sockets,
            ),
            (
                "scope_merger_retention_deleted_files_total",
                "Snapshot files deleted past retention.",
                &self.files_deleted,
            ),
        ];
        for (name, help, counter) in plain {
            out.counter(name, help, get(counter));
        }
        out.counter(
            "scope_merger_clock_skew_corrected_messages_total",
            "Input messages whose timestamps were corrected for their host's clock skew.",
            get(&self.skew_corrected),
        );
        out.gauge(
            "scope_merger_clock_skewed_hosts",
            "Hosts whose clock is out of bounds of the merger's.",
            get(&self.skewed_hosts),
        );
    }
}

/// Per-topic counts of the consume loop, flushed into [`TopicStats`] once per tick.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LocalCounts {
    pub applied: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub malformed: u64,
}

impl LocalCounts {
    pub fn flush_into(&mut self, t: &TopicStats) {
        t.applied.fetch_add(self.applied, Ordering::Relaxed);
        t.duplicates.fetch_add(self.duplicates, Ordering::Relaxed);
        t.ignored.fetch_add(self.ignored, Ordering::Relaxed);
        t.malformed.fetch_add(self.malformed, Ordering::Relaxed);
        *self = LocalCounts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_shows_every_counter_by_its_name() {
        let stats = Stats::default();
        stats.reports.malformed.fetch_add(3, Ordering::Relaxed);
        stats.skewed_hosts.store(2, Ordering::Relaxed);
        let text = scope_runtime::metrics::encode(|out| stats.write_metrics(out));
        let per_topic = [
            "scope_merger_messages_applied",
            "scope_merger_duplicate_messages",
            "scope_merger_ignored_messages",
            "scope_merger_malformed_messages",
        ];
        for family in per_topic {
            let reports = if family == "scope_merger_malformed_messages" {
                3
            } else {
                0
            };
            let lines = [
                format!("# TYPE {family} counter"),
                format!("{family}_total{{topic=\"scope.connections\"}} 0"),
                format!("{family}_total{{topic=\"scope.reports\"}} {reports}"),
            ];
            for line in lines {
                assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
            }
        }
        let plain = [
            "scope_merger_snapshots_written",
            "scope_merger_snapshot_written_bytes",
            "scope_merger_snapshot_failures",
            "scope_merger_snapshots_withheld",
            "scope_merger_unchanged_ticks",
            "scope_merger_expired_sockets",
            "scope_merger_retention_deleted_files",
            "scope_merger_clock_skew_corrected_messages",
        ];
        for family in plain {
            assert!(
                text.contains(&format!("\n# TYPE {family} counter\n{family}_total 0\n")),
                "no {family}_total in\n{text}"
            );
        }
        assert!(
            text.contains("\n# TYPE scope_merger_clock_skewed_hosts gauge\nscope_merger_clock_skewed_hosts 2\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("# TYPE ").count(),
            per_topic.len() + plain.len() + 1,
            "{text}"
        );
        assert!(
            text.lines()
                .all(|l| l.starts_with('#') || l.starts_with("scope_merger_"))
        );
    }
}
