//! [`Error`]: every failure names the operation that failed, with its source.

use std::path::PathBuf;

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use parquet::errors::ParquetError;
use rdkafka::{error::KafkaError, types::RDKafkaErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("creating the Kafka {client}: {source}")]
    CreateClient {
        client: &'static str,
        source: KafkaError,
    },
    #[error("subscribing to {topic}: {source}")]
    Subscribe { topic: String, source: KafkaError },
    #[error("producing to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("reading the published nodes of {topic}: {source}")]
    LoadPublished { topic: String, source: KafkaError },
    #[error("encoding a rendered node: {0}")]
    Encode(#[from] scope_schemas::EncodeError),

    #[error("reading directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing Parquet file {path}: {source}")]
    WriteParquet { path: PathBuf, source: ParquetError },
    #[error("deleting {path}: {source}")]
    Delete {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("no snapshot files for time {snapshot_time_us} in {data_dir}")]
    SnapshotMissing {
        snapshot_time_us: i64,
        data_dir: PathBuf,
    },
    #[error("registering table {table}: {source}")]
    Register {
        table: String,
        source: DataFusionError,
    },
    #[error("computing {what}: {source}")]
    Query {
        what: String,
        source: DataFusionError,
    },
    #[error("table {table} does not match its schema: {source}")]
    Schema { table: String, source: ArrowError },

    #[error("SQL: {0}")]
    Sql(#[source] DataFusionError),
    #[error("read-only: only SELECT queries (and EXPLAIN, SHOW) are allowed, got {0}")]
    ReadOnly(String),
    #[error("formatting query results: {0}")]
    Format(#[source] ArrowError),
}

impl Error {
    /// Whether trying the same operation again later may succeed: a broker that is down or
    /// slow, or a file system that is full, may recover; bad configuration or SQL will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::CreateClient { source, .. }
            | Error::Subscribe { source, .. }
            | Error::Produce { source, .. }
            | Error::LoadPublished { source, .. } => kafka_retryable(source),
            Error::ReadDir { .. }
            | Error::WriteFile { .. }
            | Error::WriteParquet { .. }
            | Error::Delete { .. } => true,
            // The files are gone (retention) or were never written: waiting will not help.
            Error::SnapshotMissing { .. } => false,
            Error::Config(_)
            | Error::Encode(_)
            | Error::Register { .. }
            | Error::Query { .. }
            | Error::Schema { .. }
            | Error::Sql(_)
            | Error::ReadOnly(_)
            | Error::Format(_) => false,
        }
    }
}

fn kafka_retryable(error: &KafkaError) -> bool {
    match error {
        KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..) => false,
        other => !matches!(
            other.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::InvalidConfig
                    | RDKafkaErrorCode::MessageSizeTooLarge
            )
        ),
    }
}
