//! Counters the CLI logs and a scraper could export: what was published, what failed, what
//! was skipped. Per-process or per-connection detail never goes into a counter's name.

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicU64, Ordering},
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
}

impl Stats {
    pub(crate) fn proc_read_error(&self) {
        self.proc_read_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Every counter with its Prometheus-style name.
    pub fn metrics(&self) -> [(&'static str, u64); 5] {
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
        ]
    }
}

static GLOBAL: LazyLock<Arc<Stats>> = LazyLock::new(Arc::default);

/// The counters [`crate::run`] updates.
pub fn stats() -> Arc<Stats> {
    GLOBAL.clone()
}
