//! [`run`]: consumes `scope.snapshots`, renders announced snapshots and publishes them.
//!
//! Each wake-up reads every announcement already queued, and renders the newest snapshot time
//! whose announcements cover every input partition ([`crate::announcements`]): a time that
//! only some mergers announced waits, and a renderer that fell behind renders the present
//! instead of each snapshot in turn (the skipped ones stay queryable as `history.*`). A render
//! reads every file of its time, whichever merger wrote it. A snapshot older than the newest
//! one published is not published, so the views never go back in time. An announcement that
//! is not a Snapshot is counted, logged (rate-limited) and skipped; a snapshot whose files are
//! gone is counted and skipped. The consumer's offset is stored once the announcement is
//! taken in and committed by librdkafka's auto-commit, and once more on shutdown.
//!
//! A new consumer group starts at the newest announcement (`auto.offset.reset=latest`): the
//! renderer shows the present; `-X auto.offset.reset=earliest` renders the retained past too.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant, SystemTime},
};

use futures_util::FutureExt;
use rdkafka::{
    Message,
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::KafkaError,
    message::BorrowedMessage,
};
use scope_runtime::{component::Component, throttle::Throttle};
use scope_schemas::{Record, Snapshot, snapshot::table, topics};
use tokio_util::sync::CancellationToken;

use crate::{
    Error, RendererArgs,
    announcements::{Added, Pending, Ready},
    api::Snapshots,
    publish::Publisher,
    render, stats,
};

/// How long reading back the published views may take at start.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Snapshot times waiting, beyond which the renderer warns that none completes: a minute of
/// 1 s ticks, longer than a merger's replay or a rebalance takes.
const WAITING_WARN: usize = 60;
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(30);

/// Runs the renderer until `shutdown` is cancelled. Returns an error only when it cannot
/// start (bad settings, data dir not writable, Kafka clients not creatable).
pub async fn run(args: RendererArgs, shutdown: CancellationToken) -> Result<(), Error> {
    args.validate()?;
    std::fs::create_dir_all(&args.storage.data_dir).map_err(|source| Error::WriteFile {
        path: args.storage.data_dir.clone(),
        source,
    })?;

    let specs: Vec<_> = topics::all(1)
        .into_iter()
        .filter(|spec| !topics::MERGER_INPUTS.contains(&spec.name.as_str()))
        .collect();
    if let Err(error) = scope_kafka::ensure_topics(&args.kafka, &specs).await {
        tracing::warn!(%error, "could not make sure the renderer's topics exist; continuing");
    }

    // Bound before the first render, so a port in use stops the renderer at start.
    let local_networks = &args.networks.local_networks;
    let snapshots = Snapshots::new(args.storage.data_dir.clone(), local_networks);
    // One pool for the queries of both servers: the total bounds them together.
    let memory = args.query.memory();
    let mut servers = Vec::new();
    if let Some(api) = args.api.bind(Arc::clone(&snapshots)).await? {
        let api = api.with_query_memory(memory.clone());
        servers.push(tokio::spawn(api.serve(shutdown.child_token())));
    }
    let postgres = args
        .postgres
        .bind(args.storage.data_dir.clone(), local_networks)
        .await?;
    if let Some(postgres) = postgres {
        let postgres = postgres.with_query_memory(memory);
        servers.push(tokio::spawn(postgres.serve(shutdown.child_token())));
    }

    let mut publisher = Publisher::new(&args.kafka)?;
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => {
            tracing::info!("renderer stopped while reading back the published views");
            stop(servers).await;
            return Ok(());
        }
        loaded = publisher.load(&args.kafka, &args.group_id, LOAD_TIMEOUT) => match loaded {
            Ok(nodes) => tracing::info!(
                nodes,
                last_snapshot_us = publisher.last_snapshot_us(),
                "read back the published views"
            ),
            Err(error) => tracing::warn!(
                %error,
                "could not read back the published views; nodes that left while the renderer was down may stay"
            ),
        },
    }

    let group_id = args.group_id.as_str();
    let consumer: StreamConsumer = args
        .kafka
        .client_config(&[
            ("group.id", group_id),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "latest"),
            ("session.timeout.ms", scope_kafka::GROUP_SESSION_TIMEOUT_MS),
        ])
        .create()
        .map_err(|source| Error::CreateClient {
            client: "consumer",
            source,
        })?;
    consumer
        .subscribe(&[topics::SNAPSHOTS])
        .map_err(|source| Error::Subscribe {
            topic: topics::SNAPSHOTS.into(),
            source,
        })?;
    tracing::info!(
        data_dir = %args.storage.data_dir.display(),
        group_id,
        "renderer consuming {}",
        topics::SNAPSHOTS
    );

    let mut worker = Worker {
        args: &args,
        snapshots,
        publisher,
        malformed_log: Throttle::default(),
        problem_log: Throttle::default(),
        last_retention: None,
    };
    worker.retention();
    let mut pending = Pending::default();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        // Everything queued behind it too, without waiting; the borrowed messages are gone
        // by the end of this block, before any await, so the future stays `Send`.
        let failed = {
            let mut next = Some(first);
            let mut failed = false;
            while let Some(received) = next.take() {
                match received {
                    Ok(message) => worker.take_in(&consumer, &message, &mut pending),
                    Err(error) => {
                        stats().consume_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "receiving from {} failed; retrying", topics::SNAPSHOTS);
                        failed = true;
                        break;
                    }
                }
                next = consumer.recv().now_or_never();
            }
            failed
        };
        let given_up = pending.trim();
        if given_up > 0 {
            stats()
                .snapshots_incomplete
                .fetch_add(given_up, Ordering::Relaxed);
        }
        if let Some(ready) = pending.take_newest_complete() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                () = worker.render(ready, pending.waiting()) => {}
            }
        }
        if pending.waiting() > WAITING_WARN
            && let Some(suppressed) = worker.problem_log.allow()
        {
            tracing::warn!(
                waiting = pending.waiting(),
                missing = ?pending.missing(),
                suppressed,
                "no snapshot time is complete: the announcements lack input partitions (a merger replaying, or gone until the group rebalances)"
            );
        }
        worker.retention();
        if failed {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    // Commit what was handled, leave the group and stop the clients: blocking calls, so off
    // the async threads (an embedded broker may be served by this very runtime).
    let publisher = worker.publisher;
    let committed = tokio::task::spawn_blocking(move || {
        let committed = consumer.commit_consumer_state(CommitMode::Sync);
        drop(consumer);
        drop(publisher);
        committed
    })
    .await;
    match committed {
        Ok(Ok(())) | Ok(Err(KafkaError::ConsumerCommit(_))) => {}
        Ok(Err(error)) => tracing::warn!(%error, "final offset commit failed"),
        Err(error) => tracing::warn!(%error, "final offset commit did not run"),
    }
    stop(servers).await;
    tracing::info!(stats = ?stats().metrics(), "renderer stopped");
    Ok(())
}

/// Waits for the servers, which `shutdown` has told to stop.
async fn stop(servers: Vec<tokio::task::JoinHandle<()>>) {
    for server in servers {
        if let Err(error) = server.await {
            tracing::error!(%error, "a server of the renderer failed");
        }
    }
}

struct Worker<'a> {
    args: &'a RendererArgs,
    /// What the HTTP API serves: each snapshot rendered here is handed over.
    snapshots: Arc<Snapshots>,
    publisher: Publisher,
    malformed_log: Throttle,
    problem_log: Throttle,
    last_retention: Option<Instant>,
}

impl Worker<'_> {
    /// Adds one announcement to `pending`, or counts and skips it; then stores its offset.
    fn take_in(
        &mut self,
        consumer: &StreamConsumer,
        message: &BorrowedMessage<'_>,
        pending: &mut Pending,
    ) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        match Snapshot::decode(message.payload().unwrap_or_default()) {
            Err(reason) => {
                let count = stats()
                    .malformed_announcements
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if let Some(suppressed) = self.malformed_log.allow() {
                    tracing::warn!(
                        suppressed,
                        topic,
                        partition,
                        offset,
                        %reason,
                        skipped_total = count,
                        "skipping a message that is not a Snapshot announcement"
                    );
                }
            }
            Ok(snapshot) => {
                if pending.add(&snapshot) == Added::Stale {
                    stats().snapshots_stale.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        snapshot_time_us = snapshot.snapshot_time_us,
                        writer = snapshot.writer,
                        "announcement of a snapshot older than the one rendered; not rendered"
                    );
                }
            }
        }
        if let Err(error) = consumer.store_offset(topic, partition, offset) {
            tracing::warn!(%error, offset, "could not store the consumer offset");
        }
    }

    /// Renders and publishes a complete snapshot time, counting what was passed over.
    async fn render(&mut self, ready: Ready, waiting: usize) {
        stats()
            .snapshots_skipped
            .fetch_add(ready.skipped, Ordering::Relaxed);
        stats()
            .snapshots_incomplete
            .fetch_add(ready.incomplete, Ordering::Relaxed);
        if ready.skipped + ready.incomplete > 0 {
            tracing::debug!(
                snapshot_time_us = ready.snapshot_time_us,
                skipped = ready.skipped,
                incomplete = ready.incomplete,
                waiting,
                "rendering the newest complete snapshot; older ones passed over"
            );
        }
        let t = ready.snapshot_time_us;
        let writer = ready.writers.join(",");
        let writer = writer.as_str();
        let started = Instant::now();
        let rendered = match render::render(
            &self.args.storage.data_dir,
            t,
            &self.args.networks.local_networks,
        )
        .await
        {
            Ok(rendered) => rendered,
            Err(Error::SnapshotMissing { .. }) => {
                stats().snapshots_missing.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.problem_log.allow() {
                    tracing::warn!(
                        suppressed,
                        snapshot_time_us = t,
                        writer,
                        data_dir = %self.args.storage.data_dir.display(),
                        "announced snapshot has no files in the data dir; skipped"
                    );
                }
                return;
            }
            Err(error) => {
                stats().render_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(snapshot_time_us = t, writer, %error, "rendering a snapshot failed; skipped");
                return;
            }
        };
        stats().snapshots_rendered.fetch_add(1, Ordering::Relaxed);
        let rendered = Arc::new(rendered);
        self.snapshots.insert(Arc::clone(&rendered));
        if !rendered.rejected_cidrs.is_empty()
            && let Some(suppressed) = self.problem_log.allow()
        {
            tracing::warn!(
                suppressed,
                snapshot_time_us = t,
                rejected = ?rendered.rejected_cidrs,
                "local networks that are not CIDRs were ignored"
            );
        }
        if self
            .publisher
            .last_snapshot_us()
            .is_some_and(|last| t < last)
        {
            stats().snapshots_stale.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                snapshot_time_us = t,
                "rendered an older snapshot than the one published; not published"
            );
            return;
        }
        match self.publisher.publish(t, &rendered.views).await {
            Ok(published) => {
                stats()
                    .nodes_published
                    .fetch_add(published.upserts, Ordering::Relaxed);
                stats()
                    .tombstones_published
                    .fetch_add(published.tombstones, Ordering::Relaxed);
                tracing::debug!(
                    snapshot_time_us = t,
                    writer,
                    connections = rendered.connections,
                    upserts = published.upserts,
                    tombstones = published.tombstones,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "rendered and published a snapshot"
                );
            }
            Err(error) => {
                stats().publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    snapshot_time_us = t,
                    %error,
                    "publishing the views failed; the next snapshot retries the changes"
                );
            }
        }
    }

    fn retention(&mut self) {
        if self
            .last_retention
            .is_some_and(|at| at.elapsed() < RETENTION_EVERY)
        {
            return;
        }
        self.last_retention = Some(Instant::now());
        match scope_store::sweep(
            &self.args.storage.data_dir,
            &table::RENDERED,
            self.args.storage.retention,
            SystemTime::now(),
        ) {
            Ok(swept) => {
                stats()
                    .files_deleted
                    .fetch_add(swept.total(), Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "retention failed; retrying later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let args = RendererArgs::new(scope_kafka::KafkaArgs::new("127.0.0.1:1"), "/nonexistent");
        let future = run(args, CancellationToken::new());
        assert_send(&future);
    }
}
