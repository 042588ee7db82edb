//! The collector's errors: only what stops it. Everything that goes wrong while it runs (a
//! process exiting mid-read, a dead broker, a record that cannot be delivered) is counted in
//! [`crate::Stats`], logged and survived, so it never becomes an [`Error`].

use std::{io, path::PathBuf};

use rdkafka::error::KafkaError;

/// Why the collector could not start, or had to stop. Every variant is fatal and none is
/// retryable (exit code 1, or 2 for bad flags): each needs a changed setting or host, or is a
/// bug.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Validating the flags (at start, or by `--check-config`) refused them before anything
    /// started (an empty `--brokers`, a `--host-id` with a `;`, a zero interval, a
    /// ring buffer size that is no power of two); the message names the flag to fix.
    #[error("invalid collector configuration: {0}")]
    InvalidConfig(String),
    /// At start, `<--proc-root>/stat` could not be read: the path is wrong, or in a container
    /// the host's `/proc` is not mounted there. Mount it (e.g. `/proc:/host/proc:ro`) and point
    /// `--proc-root` at it.
    #[error("reading {path} (is --proc-root a procfs mount?): {source}")]
    ProcRoot { path: PathBuf, source: io::Error },
    /// `gethostname` failed or returned an empty name, and the host name is needed both for
    /// the host node and as the default `--host-id`. Give the host (or container) a host name.
    #[error("finding the host name for the default --host-id: {0}")]
    Hostname(#[source] io::Error),
    /// librdkafka refused the producer's configuration, before any broker is contacted:
    /// usually a misspelt or invalid `-X key=value` property. A broker that is down is not this
    /// error: deliveries are then retried and counted.
    #[error("creating the Kafka producer: {0}")]
    CreateProducer(#[source] KafkaError),
    /// The OS refused to spawn the thread that serves delivery reports, almost always a
    /// thread or memory limit (`ulimit -u`, a cgroup's `pids.max`); raise it or free resources.
    #[error("starting the Kafka delivery thread: {0}")]
    StartPoller(#[source] io::Error),
    /// The blocking task that reads `/proc` panicked (or the runtime dropped it while shutting
    /// down), and the spy's state went with it. A panic is a bug: report it with the log.
    #[error("running a spy of /proc: {0}")]
    Spy(#[source] tokio::task::JoinError),
    /// The OS refused to spawn the endpoint reporter's thread (which asks conntrack about
    /// NAT), as for [`Error::StartPoller`]: raise the thread or memory limit.
    #[error("starting the endpoint reporter's thread: {0}")]
    StartEndpoints(#[source] io::Error),
    /// A bug: a job of the endpoint reporter panicked and its thread is gone, so connection
    /// events can no longer be derived. Report it with the log; a restart recovers.
    #[error("reporting connections: {0}")]
    Endpoints(#[from] crate::worker::WorkerStopped),
    /// `--tracker ebpf` was asked for explicitly and the tracker could not load; the source
    /// says what to change. `--tracker auto` falls back to procfs instead of failing.
    #[error("starting the eBPF connection tracker (--tracker ebpf): {0}")]
    Tracker(#[source] scope_ebpf::LoadError),
    /// The kernel refused to drop the capabilities the collector no longer needs (`capset`,
    /// `prctl`): a seccomp filter or security module forbids it. The collector stops rather
    /// than run with more privilege than documented.
    #[error("dropping the capabilities not needed after start: {0}")]
    DropCapabilities(#[source] io::Error),
}
