//! Counters of what the merger did, for the CLI to log and `--metrics-addr` to export.
//!
//! The consume loop counts in plain integers and adds them here once per tick, so the hot
//! path touches no shared cache line. Names follow Prometheus conventions; per-topic counters
//! carry a `topic` label with one of the two input topic names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use scope_kafka::metrics::Exposition;
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
    /// `scope_merger_expired_sockets_total`: open sockets dropped for lack of confirmation.
    pub expired_sockets: AtomicU64,
    /// `scope_merger_retention_deleted_files_total`: snapshot files deleted past retention.
    pub files_deleted: AtomicU64,
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
    /// Writes every counter as a Prometheus family, for the `--metrics-addr` endpoint.
    pub fn write_metrics(&self, out: &mut Exposition) {
        type Field = fn(&TopicStats) -> &AtomicU64;
        let per_topic: [(&str, &str, Field); 4] = [
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
            for (topic, t) in [
                (topics::CONNECTIONS, &self.connections),
                (topics::REPORTS, &self.reports),
            ] {
                out.counter_with(name, help, &[("topic", topic)], get(field(t)));
            }
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
    fn prometheus_text_names_every_counter() {
        let stats = Stats::default();
        stats.reports.malformed.fetch_add(3, Ordering::Relaxed);
        let mut out = Exposition::new();
        stats.write_metrics(&mut out);
        let text = out.finish();
        assert_eq!(text.matches("# TYPE ").count(), 10, "{text}");
        assert_eq!(
            text.matches("# TYPE scope_merger_malformed_messages_total counter\n")
                .count(),
            1
        );
        assert!(text.contains("scope_merger_malformed_messages_total{topic=\"scope.reports\"} 3"));
        assert!(
            text.contains("scope_merger_malformed_messages_total{topic=\"scope.connections\"} 0")
        );
        assert!(text.contains("scope_merger_snapshot_written_bytes_total 0"));
    }
}
