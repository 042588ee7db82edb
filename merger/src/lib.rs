//! Scope's merger: folds every host's connection events and report deltas into one state,
//! and every tick writes the window ending then as Parquet snapshot tables.
//!
//! Collectors publish changes, not states; the merger is where they become a state again,
//! and where the state becomes durable files that the renderer and `scope sql` read. It
//! scales out as a consumer group: input partitions (keyed by host) are spread over the
//! mergers, each writes its own files for the same wall-clock-aligned snapshot times, and
//! readers union them.
//!
//! # Layout
//! - [`config`]: [`MergerArgs`], the command line, and its cross-field validation.
//! - [`state`]: [`State`], per-host state and the idempotent application of
//!   [`scope_schemas::ConnectionEvent`]s and [`scope_schemas::ReportDelta`]s. Pure, so
//!   benchmarks and tests drive it without Kafka.
//! - [`window`]: which hosts and sockets belong to the snapshot at `T`, tick alignment.
//! - [`snapshot`]: cut tables to Arrow batches with the `scope_schemas::tables` schemas, to
//!   durable Parquet files (zstd; temp file, fsync, rename), and the retention sweep.
//! - `consumer`: the Kafka consumer, its rebalance hook (rewind by time on assignment, drop
//!   state on revocation) and the offsets to commit.
//! - `skew`: each host's clock offset against the merger's, measured on live messages, and
//!   the correction of hosts beyond `--max-clock-skew`.
//! - `pipeline`: the consume loop behind [`run`]: apply, cut, write, announce, commit.
//! - [`mod@stats`]: [`Stats`] and [`stats()`], counters with Prometheus-style names.
//! - [`Error`]: what failed, and whether retrying may help.

pub mod config;
mod consumer;
mod error;
mod pipeline;
mod skew;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod window;

use std::sync::Arc;

pub use config::{MergerArgs, default_writer};
pub use error::Error;
pub use snapshot::SnapshotError;
pub use state::{Applied, SnapshotTables, State};
pub use stats::{Stats, TopicStats, stats};
use tokio_util::sync::CancellationToken;
pub use window::Window;

/// Runs a merger until `shutdown` is cancelled, counting into the process-wide [`stats()`].
///
/// On shutdown it cuts and persists a final snapshot (at the next tick boundary, so it lines
/// up with the other mergers' files), announces it, commits, and leaves the consumer group.
/// Errors of a single tick (a full disk, an unreachable broker) are logged, counted in
/// [`Stats::snapshot_failures`] and retried on the next tick; `run` returns an error only for
/// bad configuration, a fatal consumer error, or a failed final snapshot.
///
/// Best on a multi-thread tokio runtime: the rebalance hook makes blocking broker calls
/// (offset lookups), which then step aside for other tasks, such as an embedded broker.
pub async fn run(args: MergerArgs, shutdown: CancellationToken) -> Result<(), Error> {
    run_with_stats(args, shutdown, Arc::clone(stats())).await
}

/// [`run`], counting into `stats` (tests and embedders that run several mergers in one
/// process keep their counters apart this way).
pub async fn run_with_stats(
    args: MergerArgs,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    pipeline::run(args, shutdown, stats).await
}
