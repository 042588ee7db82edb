//! The merger's errors: each variant names the operation that failed, with its source, and
//! [`Error::is_retryable`] tells a supervisor whether running again may help.

use std::path::PathBuf;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::snapshot::SnapshotError;

/// Why the merger could not start, or stopped. A failed snapshot while running is logged and
/// retried on the next tick; only start-up, a fatal consumer error and the final snapshot at
/// shutdown return one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Validating the flags (at start, or by `--check-config`) refused them before anything
    /// started (an empty `--group-id`, `--window` shorter than `--tick`, `--retention` shorter
    /// than `--window`, a bad `--writer`); the message names the flag to fix.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// At start, `--data-dir` or one of its table directories could not be created or
    /// resolved: a read-only mount, missing permissions, or a path through a regular file.
    /// Fix the mount or the ownership; retrying does not.
    #[error("preparing the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: SnapshotError,
    },
    /// librdkafka refused the consumer's configuration, before any broker is contacted:
    /// usually an invalid `-X key=value` property. An unreachable broker is not this error.
    #[error("creating the Kafka consumer: {0}")]
    CreateConsumer(#[source] KafkaError),
    /// librdkafka refused the producer (of snapshot announcements) configuration, usually an
    /// invalid `-X key=value` property; fix the property.
    #[error("creating the Kafka producer: {0}")]
    CreateProducer(#[source] KafkaError),
    /// librdkafka rejected the subscription to the input topics at start. The topic names are
    /// Scope's own, so this points at a consumer configuration problem or a bug to report.
    #[error("subscribing to the input topics: {0}")]
    Subscribe(#[source] KafkaError),
    /// The consumer hit a fatal error (`MessageConsumptionFatal`, such as a static member
    /// fenced by another with its `group.instance.id`); other consume errors are logged and
    /// retried. Restart the merger to rejoin, with a unique `group.instance.id` if set.
    #[error("consuming the input topics: {0}")]
    Consume(#[source] KafkaError),
    /// The Parquet files of a snapshot could not be written or synced under `--data-dir`,
    /// most often a full disk or lost permissions; free space, and the next tick retries.
    #[error("writing the snapshot at {snapshot_time_us}: {source}")]
    WriteSnapshot {
        snapshot_time_us: i64,
        source: SnapshotError,
    },
    /// The snapshot's files were written but its announcement was not delivered to the
    /// snapshots topic within 10 s: the broker is down, slow or refuses the write (ACLs).
    /// The offsets stay uncommitted, so the next snapshot covers the same input again.
    #[error("announcing the snapshot at {snapshot_time_us}: {source}")]
    Announce {
        snapshot_time_us: i64,
        source: KafkaError,
    },
    /// The announcement did not fit its Avro schema: the record and the `.avsc` disagree,
    /// a bug to report, not something input data or retrying can fix.
    #[error("encoding the announcement of the snapshot at {snapshot_time_us}: {source}")]
    EncodeAnnouncement {
        snapshot_time_us: i64,
        source: scope_schemas::EncodeError,
    },
    /// Committing the input offsets after an announced snapshot failed: the broker or group
    /// coordinator is unreachable, or a rebalance took the partitions. The input is read again
    /// after a restart or rebalance, which only repeats work.
    #[error("committing input offsets: {0}")]
    Commit(#[source] KafkaError),
    /// Listing or deleting snapshot files older than `--retention` failed (permissions, an I/O
    /// error); it is logged and the sweep is tried again a minute later.
    #[error("deleting snapshots past retention: {0}")]
    Retention(#[source] SnapshotError),
    /// A blocking task (writing a snapshot, sweeping retention, closing the consumer) panicked
    /// or was dropped by a runtime shutting down. A panic is a bug: report it with the log.
    #[error("a blocking task of the merger failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// Whether the same operation may succeed later (a broker that comes back, a disk that
    /// gets space); configuration and encoding errors will not go away by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) | Error::EncodeAnnouncement { .. } | Error::Task(_) => false,
            Error::DataDir { .. } => false,
            Error::CreateConsumer(_) | Error::CreateProducer(_) | Error::Subscribe(_) => false,
            Error::Consume(e) => !matches!(e, KafkaError::MessageConsumptionFatal(_)),
            Error::Announce { source, .. } | Error::Commit(source) => !matches!(
                source.rdkafka_error_code(),
                Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::InvalidArgument)
            ),
            Error::WriteSnapshot { .. } | Error::Retention(_) => true,
        }
    }
}
