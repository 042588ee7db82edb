//! Kafka topics: names, keys, and the retention each needs. `schemas/README.md` documents them.

use crate::rendered::View;

/// [`crate::ConnectionEvent`]s, keyed by host id.
pub const CONNECTIONS: &str = "scope.connections";
/// [`crate::ReportDelta`]s, keyed by host id.
pub const REPORTS: &str = "scope.reports";
/// [`crate::Snapshot`] announcements, keyed by merger.
pub const SNAPSHOTS: &str = "scope.snapshots";
/// Prefix of the per-view [`crate::RenderedNode`] topics, keyed by node id.
pub const RENDERED_PREFIX: &str = "scope.rendered.";

/// The topics a merger consumes.
pub const MERGER_INPUTS: [&str; 2] = [CONNECTIONS, REPORTS];

/// How a topic keeps its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Delete records older than this many milliseconds.
    Delete { retention_ms: i64 },
    /// Keep the latest record per key; tombstones remove a key.
    Compact,
}

/// What a topic should look like when Scope creates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub cleanup: Cleanup,
}

/// Every topic of the pipeline. Input topics have `partitions` partitions (mergers in one
/// consumer group share them by host); the others have one, so their order is total.
pub fn all(partitions: i32) -> Vec<TopicSpec> {
    let hour = 3_600_000;
    let mut specs: Vec<TopicSpec> = MERGER_INPUTS
        .iter()
        .map(|name| TopicSpec {
            name: (*name).to_owned(),
            partitions,
            cleanup: Cleanup::Delete { retention_ms: hour },
        })
        .collect();
    specs.push(TopicSpec {
        name: SNAPSHOTS.to_owned(),
        partitions: 1,
        cleanup: Cleanup::Delete { retention_ms: hour },
    });
    specs.extend(View::ALL.iter().map(|view| TopicSpec {
        name: view.topic(),
        partitions: 1,
        cleanup: Cleanup::Compact,
    }));
    specs
}
