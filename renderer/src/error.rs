//! [`Error`]: every failure names the operation that failed, with its source.

use std::path::PathBuf;

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use parquet::errors::ParquetError;
use rdkafka::{error::KafkaError, types::RDKafkaErrorCode};

/// Why the renderer or `scope sql` failed. While the renderer runs, a snapshot that fails to
/// render or publish is counted, logged and skipped; only start-up errors stop it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Validating the flags (at start, or by `--check-config`) refused them before anything
    /// started (an empty `--group-id` or `--brokers`, a bad `--data-dir` or
    /// `--retention`); the message names the flag to fix.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// librdkafka refused the configuration of the producer or a consumer, before any
    /// broker is contacted: usually an invalid `-X key=value` property. Fix the property.
    #[error("creating the Kafka {client}: {source}")]
    CreateClient {
        client: &'static str,
        source: KafkaError,
    },
    /// Subscribing to the snapshots topic was rejected at start: a consumer configuration
    /// problem, or a bug to report (the topic name is Scope's own).
    #[error("subscribing to {topic}: {source}")]
    Subscribe { topic: String, source: KafkaError },
    /// A changed node could not be queued or delivered to its view topic within 30 s (the
    /// broker is down, ACLs refuse it, the record is too large). It is not marked published, so
    /// the next snapshot sends it again; check the broker.
    #[error("producing to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    /// Reading the view topics back at start (watermarks, assignment, or a message) failed,
    /// e.g. the broker is unreachable. The renderer logs it and goes on; nodes that vanished
    /// while it was down may stay until they reappear and vanish again.
    #[error("reading the published nodes of {topic}: {source}")]
    LoadPublished { topic: String, source: KafkaError },
    /// A rendered node did not fit the `RenderedNode` Avro schema: the struct and its `.avsc`
    /// disagree, a bug to report.
    #[error("encoding a rendered node: {0}")]
    Encode(#[from] scope_schemas::EncodeError),

    /// A server of the renderer (the HTTP API, the Postgres endpoint) could not bind its
    /// address at start: another process holds the port, or the address is not this
    /// machine's. Pick another with its `--*-listen` flag, or `off`.
    #[error("listening for the {what} on {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },

    /// Listing a table directory under `--data-dir` failed (a missing one is simply empty):
    /// permissions, or a failing mount. Fix access to the directory.
    #[error("reading directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Creating `--data-dir` or a table directory, or creating, syncing or renaming a rendered
    /// file, failed: a full disk, permissions or a read-only mount. Free space or fix access.
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Encoding rendered rows into a temporary Parquet file failed, usually because the disk
    /// filled or failed underneath the writer; free space, and the next snapshot retries.
    #[error("writing Parquet file {path}: {source}")]
    WriteParquet { path: PathBuf, source: ParquetError },
    /// Reading a rendered file back (time travel) failed: retention removed it meanwhile, or
    /// permissions. The API renders that moment from its merged files instead.
    #[error("reading Parquet file {path}: {source}")]
    ReadParquet { path: PathBuf, source: ParquetError },
    /// The retention sweep could not remove a rendered file or stale temporary file (a file
    /// another process already removed is fine): fix permissions on `--data-dir`.
    #[error("deleting {path}: {source}")]
    Delete {
        path: PathBuf,
        source: std::io::Error,
    },

    /// An announced snapshot has no merged files in this renderer's `--data-dir`: it is not
    /// the directory the mergers write (not shared, another path), or retention removed them.
    /// Point `--data-dir` at the mergers' directory; the renderer skips the snapshot.
    #[error("no snapshot files for time {snapshot_time_us} in {data_dir}")]
    SnapshotMissing {
        snapshot_time_us: i64,
        data_dir: PathBuf,
    },
    /// DataFusion refused to register a table (a snapshot's Parquet files, in-memory rows, a
    /// derived view, the `history` schema). The names and schemas are Scope's own, so this is
    /// a bug to report, unless a file path cannot be made into a URL.
    #[error("registering table {table}: {source}")]
    Register {
        table: String,
        source: DataFusionError,
    },
    /// Planning or running one of the view SQL queries failed: a Parquet file that is
    /// corrupt, unreadable or deleted mid-query, or a bug in the view SQL (report it).
    #[error("computing {what}: {source}")]
    Query {
        what: String,
        source: DataFusionError,
    },
    /// A query result lacks a column of its table's schema, holds a null where none is
    /// allowed, or has a type that does not cast: the view SQL and `scope_schemas::tables`
    /// disagree, a bug to report.
    #[error("table {table} does not match its schema: {source}")]
    Schema { table: String, source: ArrowError },

    /// The query given to `scope sql` did not parse, plan or run: a syntax error, an unknown
    /// table or column, or an unreadable file. Fix the query; `SHOW TABLES` lists the tables.
    #[error("SQL: {0}")]
    Sql(#[source] DataFusionError),
    /// `scope sql` was given more than one statement, or one that is not a query (DDL, DML,
    /// `SET`, `COPY`). The data directory is read-only to it: send a single `SELECT`.
    #[error("read-only: only SELECT queries (and EXPLAIN, SHOW) are allowed, got {0}")]
    ReadOnly(String),
    /// Arrow could not render the results in the `--format` asked for (a column type the
    /// JSON or CSV writer does not support); try another `--format` or cast the column.
    #[error("formatting query results: {0}")]
    Format(#[source] ArrowError),
    /// Work handed to a blocking thread did not finish (it panicked, or the runtime is
    /// shutting down).
    #[error("{what} did not finish: {source}")]
    Task {
        what: &'static str,
        source: tokio::task::JoinError,
    },
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
            | Error::ReadParquet { .. }
            | Error::Delete { .. } => true,
            // A port held by a process that is stopping frees up.
            Error::Listen { .. } => true,
            // The files are gone (retention) or were never written: waiting will not help.
            Error::SnapshotMissing { .. } => false,
            Error::Config(_)
            | Error::Encode(_)
            | Error::Register { .. }
            | Error::Query { .. }
            | Error::Schema { .. }
            | Error::Sql(_)
            | Error::ReadOnly(_)
            | Error::Format(_)
            | Error::Task { .. } => false,
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
