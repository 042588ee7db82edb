//! The cluster role (`--role=cluster`): one collector per Kubernetes cluster, like Weave
//! Scope's cluster agent, that reads nothing of its node. It watches the API server's pods,
//! replica sets, deployments, daemon sets, stateful sets, jobs, cron jobs, services,
//! namespaces and nodes, and publishes them as [`scope_schemas::ReportDelta`]s of reporter
//! [`keys::KUBERNETES`] under host id [`cluster_host_id`], every `--publish-interval`, full
//! every `--full-every` publishes, as the node role publishes its reporters.
//!
//! An API server it cannot reach (or a kubeconfig it cannot load) is said once, counted, and
//! retried with backoff; meanwhile it keeps publishing what it last knew.
//!
//! # Layout
//! - `client`: loading the kube configuration and making the client.
//! - `watch`: [`watch::Cluster`], one watcher and reflector store per kind.
//! - `health`: whether the API server answers, said once per outage.
//! - `nodes`: each kind as a report node.
//! - `stats`: its counters.

mod client;
mod health;
mod nodes;
mod stats;
mod watch;

use std::sync::Arc;

use scope_runtime::component::Component;
use scope_schemas::report::{cluster_host_id, keys};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use stats::kube_stats;

use crate::{
    CollectorArgs, Error, SHUTDOWN_FLUSH_TIMEOUT, Stats,
    delta::{DeltaTracker, FullSchedule, Sequence},
    publisher::Publisher,
};

/// Runs the cluster collector until `shutdown` is cancelled, then flushes what it queued.
pub async fn run(
    args: &CollectorArgs,
    shutdown: &CancellationToken,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    args.validate()?;
    let host_id = cluster_host_id(&args.cluster_id);
    let mut publisher = Publisher::new(&args.kafka, &host_id, stats)?;
    let cluster = watch::Cluster::watch(args.kubeconfig.clone());
    let mut deltas = DeltaTracker::new(host_id.as_str(), keys::KUBERNETES);
    let mut schedule = FullSchedule::new(args.full_every);
    let mut seq = Sequence::starting_at(scope_schemas::time::now_us());
    tracing::info!(
        cluster_id = args.cluster_id, host_id, brokers = args.kafka.brokers,
        kubeconfig = ?args.kubeconfig,
        publish_interval = %humantime::format_duration(args.publish_interval),
        full_every = args.full_every,
        "cluster collector started"
    );
    // The first publish is full and replaces whatever the cluster's previous collector said:
    // one interval gives the lists time to arrive first.
    let mut publish_tick = tokio::time::interval_at(
        Instant::now() + args.publish_interval,
        args.publish_interval,
    );
    publish_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = publish_tick.tick() => {
                let now = scope_schemas::time::now_us();
                let nodes = cluster.nodes(&args.cluster_id, now);
                let full = schedule.next_is_full();
                publisher.send_delta(&deltas.delta(&nodes, full, seq.next_seq(), now));
                publisher.recover();
            }
        }
    }
    drop(cluster);
    tracing::info!("cluster collector stopping; flushing queued records");
    publisher.flush(SHUTDOWN_FLUSH_TIMEOUT).await;
    Ok(())
}
