//! The collector's errors: only what stops it. Everything that goes wrong while it runs (a
//! process exiting mid-read, a dead broker, a record that cannot be delivered) is counted in
//! [`crate::Stats`], logged and survived, so it never becomes an [`Error`].

use std::{io, path::PathBuf};

use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid collector configuration: {0}")]
    InvalidConfig(String),
    #[error("reading {path} (is --proc-root a procfs mount?): {source}")]
    ProcRoot { path: PathBuf, source: io::Error },
    #[error("finding the host name for the default --host-id: {0}")]
    Hostname(#[source] io::Error),
    #[error("creating the Kafka producer: {0}")]
    CreateProducer(#[source] KafkaError),
    #[error("starting the Kafka delivery thread: {0}")]
    StartPoller(#[source] io::Error),
    #[error("running a spy of /proc: {0}")]
    Spy(#[source] tokio::task::JoinError),
    #[error("starting the endpoint reporter's thread: {0}")]
    StartEndpoints(#[source] io::Error),
    /// A bug: a job of the endpoint reporter panicked and its thread is gone.
    #[error("reporting connections: {0}")]
    Endpoints(#[from] crate::worker::WorkerStopped),
    #[error("starting the eBPF connection tracker (--tracker ebpf): {0}")]
    Tracker(#[source] scope_ebpf::LoadError),
}
