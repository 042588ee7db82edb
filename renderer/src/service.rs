//! [`run`]: consumes `scope.snapshots`, renders each announced snapshot and publishes it.
//!
//! Every announcement is rendered, whichever merger sent it: with several mergers, each one
//! announces its part of the same snapshot time T and each render of T reads every file of T
//! present, so the last render of T is complete and renders of T are idempotent. A snapshot
//! older than the newest one published is rendered (its tables serve `history.*`) but not
//! published, so the views never go back in time. An announcement that is not a Snapshot is
//! counted, logged (rate-limited) and skipped; a snapshot whose files are gone is counted and
//! skipped. The consumer's offset is stored after the announcement is handled and committed
//! by librdkafka's auto-commit, and once more on shutdown.
//!
//! A new consumer group starts at the newest announcement (`auto.offset.reset=latest`): the
//! renderer shows the present; `-X auto.offset.reset=earliest` renders the retained past too.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant, SystemTime},
};

use rdkafka::{
    Message,
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::KafkaError,
};
use scope_schemas::{Record, Snapshot, topics};
use tokio_util::sync::CancellationToken;

use crate::{Error, RendererArgs, publish::Publisher, render, retention, stats};

/// How long reading back the published views may take at start.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(30);
/// At most one warning per this interval for a repeated kind of problem.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Runs the renderer until `shutdown` is cancelled. Returns an error only when it cannot
/// start (bad settings, data dir not writable, Kafka clients not creatable).
pub async fn run(args: RendererArgs, shutdown: CancellationToken) -> Result<(), Error> {
    args.validate()?;
    std::fs::create_dir_all(&args.data_dir).map_err(|source| Error::WriteFile {
        path: args.data_dir.clone(),
        source,
    })?;

    let specs: Vec<_> = topics::all(1)
        .into_iter()
        .filter(|spec| !topics::MERGER_INPUTS.contains(&spec.name.as_str()))
        .collect();
    if let Err(error) = scope_kafka::ensure_topics(&args.kafka, &specs).await {
        tracing::warn!(%error, "could not make sure the renderer's topics exist; continuing");
    }

    let mut publisher = Publisher::new(&args.kafka)?;
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Ok(()),
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
        data_dir = %args.data_dir.display(),
        group_id,
        "renderer consuming {}",
        topics::SNAPSHOTS
    );

    let mut worker = Worker {
        args: &args,
        publisher,
        malformed_log: RateLimited::default(),
        problem_log: RateLimited::default(),
        last_retention: None,
    };
    worker.retention();
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        // The borrowed message is dropped here, before any await: the future stays `Send`.
        let received = match received {
            Err(error) => Err(error),
            Ok(message) => Ok((
                Snapshot::decode(message.payload().unwrap_or_default()),
                message.topic().to_owned(),
                message.partition(),
                message.offset(),
            )),
        };
        let (announcement, topic, partition, offset) = match received {
            Ok(received) => received,
            Err(error) => {
                stats().consume_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "receiving from {} failed; retrying", topics::SNAPSHOTS);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        match announcement {
            Err(reason) => {
                let count = stats()
                    .malformed_announcements
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if worker.malformed_log.ready() {
                    tracing::warn!(
                        topic,
                        partition,
                        offset,
                        %reason,
                        skipped_total = count,
                        "skipping a message that is not a Snapshot announcement"
                    );
                }
            }
            Ok(snapshot) => tokio::select! {
                _ = shutdown.cancelled() => break,
                () = worker.handle(&snapshot) => {}
            },
        }
        if let Err(error) = consumer.store_offset(&topic, partition, offset) {
            tracing::warn!(%error, offset, "could not store the consumer offset");
        }
        worker.retention();
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
    tracing::info!(stats = ?stats().metrics(), "renderer stopped");
    Ok(())
}

struct Worker<'a> {
    args: &'a RendererArgs,
    publisher: Publisher,
    malformed_log: RateLimited,
    problem_log: RateLimited,
    last_retention: Option<Instant>,
}

impl Worker<'_> {
    async fn handle(&mut self, snapshot: &Snapshot) {
        let t = snapshot.snapshot_time_us;
        let writer = snapshot.writer.as_str();
        let started = Instant::now();
        let rendered = match render::render(&self.args.data_dir, t).await {
            Ok(rendered) => rendered,
            Err(Error::SnapshotMissing { .. }) => {
                stats().snapshots_missing.fetch_add(1, Ordering::Relaxed);
                if self.problem_log.ready() {
                    tracing::warn!(
                        snapshot_time_us = t,
                        writer,
                        announced_data_dir = snapshot.data_dir,
                        data_dir = %self.args.data_dir.display(),
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
        if !rendered.rejected_cidrs.is_empty() && self.problem_log.ready() {
            tracing::warn!(
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
        match retention::apply(&self.args.data_dir, self.args.retention, SystemTime::now()) {
            Ok(deleted) => {
                stats()
                    .files_deleted
                    .fetch_add(deleted.files + deleted.temp_files, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "retention failed; retrying later"),
        }
    }
}

/// Lets one log line through per [`WARN_EVERY`].
#[derive(Default)]
struct RateLimited {
    last: Option<Instant>,
}

impl RateLimited {
    fn ready(&mut self) -> bool {
        if self.last.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return false;
        }
        self.last = Some(Instant::now());
        true
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
