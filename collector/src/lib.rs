//! Scope's collector: the probe that runs on every host.
//!
//! It reads `/proc` every `--spy-interval` and publishes what changed to Kafka: TCP
//! connections as [`scope_schemas::ConnectionEvent`]s on `scope.connections` (as soon as a
//! spy sees them change), processes and the host itself as [`scope_schemas::ReportDelta`]s
//! on `scope.reports` (every `--publish-interval`, full every `--full-every` publishes).
//! Mergers turn these streams into snapshots; the collector keeps no history and talks to
//! nothing but Kafka. It must never fail because of what it reads or a broker being away:
//! processes vanish mid-read all the time and are skipped, undeliverable records are counted,
//! and it keeps spying.
//!
//! # Layout
//! - [`config`]: [`CollectorArgs`], the command line and its validation.
//! - [`scan`]: one walk over `/proc/<pid>` per spy (stat, cmdline, fds, network namespace)
//!   plus the TCP tables of every network namespace.
//! - [`tcp`]: parsing `/proc/net/tcp` and `tcp6`.
//! - [`reporter`]: `endpoint` (connection events), `process` and `host` (report nodes).
//! - [`interfaces`]: the host's local networks from `getifaddrs`.
//! - [`delta`]: report deltas (changed nodes, removals, full every N) and sequence numbers.
//! - [`spy`]: the reporters' state, advanced per spy and summarised per publish.
//! - [`publisher`]: the idempotent, lz4 Kafka producer, keyed by host id.
//! - [`stats`]: counters; [`error`]: what can stop the collector.

pub mod config;
pub mod delta;
pub mod error;
pub mod interfaces;
pub mod publisher;
pub mod reporter;
pub mod scan;
pub mod spy;
pub mod stats;
pub mod tcp;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use config::CollectorArgs;
pub use error::Error;
pub use stats::{Stats, stats};

use crate::{publisher::Publisher, spy::Spy};

/// How long shutdown waits for queued records to reach the broker.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a collector until `shutdown` is cancelled, counting into the global [`stats()`].
pub async fn run(args: CollectorArgs, shutdown: CancellationToken) -> Result<(), Error> {
    run_with_stats(args, shutdown, stats()).await
}

/// [`run`], counting into `stats`.
pub async fn run_with_stats(
    args: CollectorArgs,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    args.validate()?;
    let probe = args.proc_root.join("stat");
    std::fs::metadata(&probe).map_err(|source| Error::ProcRoot {
        path: probe,
        source,
    })?;
    let hostname = hostname().map_err(Error::Hostname)?;
    let host_id = args.host_id.clone().unwrap_or_else(|| hostname.clone());
    let mut publisher = Publisher::new(&args.kafka, &host_id, stats.clone())?;
    let mut spy = Some(Spy::new(
        &host_id,
        &hostname,
        args.proc_root.clone(),
        args.full_every,
        stats.clone(),
    ));
    tracing::info!(
        host_id, brokers = args.kafka.brokers, proc_root = %args.proc_root.display(),
        spy_interval = %humantime::format_duration(args.spy_interval),
        publish_interval = %humantime::format_duration(args.publish_interval),
        full_every = args.full_every,
        "collector started"
    );

    let mut spy_tick = tokio::time::interval(args.spy_interval);
    spy_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut publish_tick = tokio::time::interval(args.publish_interval);
    publish_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = spy_tick.tick() => {
                let Some(mut state) = spy.take() else { break };
                let (state, events) = tokio::task::spawn_blocking(move || {
                    let events = state.spy();
                    (state, events)
                })
                .await
                .map_err(Error::Spy)?;
                spy = Some(state);
                publisher.send_events(&events);
            }
            _ = publish_tick.tick() => {
                let Some(state) = spy.as_mut() else { break };
                let publish = state.publish();
                for delta in &publish.deltas {
                    publisher.send_delta(delta);
                }
                publisher.send_events(&publish.refresh);
                publisher.recover();
                if publish.deltas.first().is_some_and(|d| d.full) {
                    let metrics = stats.metrics();
                    tracing::debug!(?metrics, "collector counters");
                }
            }
        }
    }
    tracing::info!("collector stopping; flushing queued records");
    publisher.flush(SHUTDOWN_FLUSH_TIMEOUT).await;
    let metrics = stats.metrics();
    tracing::info!(?metrics, "collector stopped");
    Ok(())
}

/// This machine's host name (`gethostname(2)`).
pub fn hostname() -> std::io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // when the name fits, and the last byte is kept 0 for when it does not.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).trim().to_owned();
    if name.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the host name is empty",
        ));
    }
    Ok(name)
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
