//! The merger's errors: each variant names the operation that failed, with its source, and
//! [`Error::is_retryable`] tells a supervisor whether running again may help.

use std::path::PathBuf;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::snapshot::SnapshotError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("preparing the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: SnapshotError,
    },
    #[error("creating the Kafka consumer: {0}")]
    CreateConsumer(#[source] KafkaError),
    #[error("creating the Kafka producer: {0}")]
    CreateProducer(#[source] KafkaError),
    #[error("subscribing to the input topics: {0}")]
    Subscribe(#[source] KafkaError),
    #[error("consuming the input topics: {0}")]
    Consume(#[source] KafkaError),
    #[error("writing the snapshot at {snapshot_time_us}: {source}")]
    WriteSnapshot {
        snapshot_time_us: i64,
        source: SnapshotError,
    },
    #[error("announcing the snapshot at {snapshot_time_us}: {source}")]
    Announce {
        snapshot_time_us: i64,
        source: KafkaError,
    },
    #[error("encoding the announcement of the snapshot at {snapshot_time_us}: {source}")]
    EncodeAnnouncement {
        snapshot_time_us: i64,
        source: scope_schemas::EncodeError,
    },
    #[error("committing input offsets: {0}")]
    Commit(#[source] KafkaError),
    #[error("deleting snapshots past retention: {0}")]
    Retention(#[source] SnapshotError),
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
