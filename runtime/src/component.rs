//! The one shape of every Scope component: settings that validate without I/O, counters a
//! scrape reads, and a run that ends when its context says so.
//!
//! The binaries ([`crate::service::Cli`]) and `scope up` drive a component through this trait
//! alone, so a new component (the API server, the SQL server, the cluster collector) is one
//! implementation, not a new `main` nor a new arm in `scope up`.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::metrics::Families;

/// The exit code of a component that failed for a reason that may pass (sysexits.h's
/// `EX_TEMPFAIL`); any other failure exits with 1, an invalid configuration with 2.
pub const EXIT_RETRYABLE: u8 = 75;

/// A pipeline stage, as its settings: `validate`, then `run(self, cx)`.
pub trait Component: Send + Sized + 'static {
    /// What it is called in logs and errors ("merger").
    const NAME: &'static str;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Checks the settings and the rules between them, without touching the network or disk.
    fn validate(&self) -> Result<(), Self::Error>;

    /// Lists its counters as they are now; called on every scrape of `/metrics`.
    fn write_metrics(out: &mut Families);

    /// Whether running again unchanged may succeed (a broker or disk that comes back): it
    /// decides the exit code, [`EXIT_RETRYABLE`] rather than 1, for a supervisor to restart on.
    fn is_retryable(error: &Self::Error) -> bool;

    /// Runs until `cx.shutdown` is cancelled, then finishes what is in flight (the final
    /// snapshot, commit or flush) and returns. An error means it could not go on.
    fn run(self, cx: Context) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// What a running component gets from whoever runs it.
#[derive(Clone, Debug)]
pub struct Context {
    /// Cancelled when the component is asked to stop (a signal, or another component of
    /// `scope up` failing).
    pub shutdown: CancellationToken,
}
