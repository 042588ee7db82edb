//! The contract between Scope's pipeline stages, and the only place that defines it.
//!
//! Nothing here does I/O: collectors, mergers, renderers and any outside program agree on
//! these names and record shapes, and each stage brings its own Kafka and storage plumbing.
//!
//! # Layout
//! - [`topics`]: Kafka topic names, keys and retention.
//! - [`codec`]: Avro single-object encoding (`C3 01` + schema fingerprint + datum) for every record;
//!   decoding resolves what any released schema version (`schemas/avro/released/`) wrote.
//! - [`connection`]: [`ConnectionEvent`], one change in a host's TCP connection table, and
//!   [`ConnectionEvents`], a host's events batched in one record.
//! - [`report`]: [`ReportDelta`], what a reporter changed, in Weave Scope's report-node shape.
//! - [`snapshot`]: [`Snapshot`] announcements and the names of snapshot tables.
//! - [`rendered`]: [`RenderedNode`], one node of a rendered view, and view names.
//! - `tables` (feature `arrow`): the Arrow schema of every snapshot and SQL table.
//! - [`time`]: the records' clock, microseconds since the epoch ([`time::now_us`]).
//!
//! The Avro schemas themselves are the `.avsc` files in `schemas/avro/`, embedded at build time,
//! so any Avro library can decode what Scope publishes.

pub mod codec;
pub mod connection;
pub mod rendered;
pub mod report;
pub mod snapshot;
#[cfg(feature = "arrow")]
pub mod tables;
pub mod time;
pub mod topics;

pub use codec::{DecodeError, EncodeError, Record};
pub use connection::{
    AddressFamily, ConnectionEvent, ConnectionEventKind, ConnectionEvents, EventSource,
};
pub use rendered::{RenderedNode, View};
pub use report::{LatestValue, Metric, Node, ReportDelta, Sample};
pub use snapshot::{Snapshot, SnapshotFile, SnapshotInput};
