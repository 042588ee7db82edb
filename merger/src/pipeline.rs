//! The consume loop: apply messages as they come, cut a snapshot every tick.
//!
//! A record of `scope.connections` carries a batch of one host's events
//! ([`ConnectionEvents`]), or one event from a collector that predates batching; either way
//! its events are applied in order and counted one by one, as applied, duplicate, ignored or
//! malformed, and a record that does not decode counts as one malformed.
//!
//! One task owns the state, so nothing is locked on the hot path. Each tick (aligned to the
//! wall clock) it cuts the state, writes the Parquet files on a blocking thread, announces
//! the snapshot on `scope.snapshots`, and only then commits the offsets of every message
//! applied before the cut: a crash at any point replays messages rather than losing them.
//!
//! A tick whose cut has the shape of the last snapshot written ([`State`]'s nodes, edges,
//! names and labels: only metrics and confirmations moved, as they do every second at rest)
//! writes nothing while that snapshot is younger than `--idle-interval`: readers take the
//! newest snapshot at or before a moment, so the previous one stands for it, and nothing
//! downstream renders. Its offsets wait for the next snapshot written. A merger that shares
//! the input partitions writes every tick, since a time is rendered only once every writer's
//! files of it exist.
//!
//! A snapshot is announced as the truth about every host of the partitions its writer owns,
//! so it is cut only when that holds: while the merger owns at least one partition and has
//! replayed each up to where it ended when assigned. Until then ticks are withheld (counted in
//! [`Stats::snapshots_withheld`]): a missing snapshot leaves readers on the previous one, a
//! partial one would tell them live hosts are gone. Replaying up to the high watermark is
//! enough, because the replay starts `2 * window + full_interval` back: every report of the
//! window and the last full report of every live host (which re-announces its open sockets)
//! are in it. Where the broker cannot tell where a partition ends, the merger waits that long
//! of live consumption instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use scope_runtime::{component::Component, throttle::Throttle};
use scope_schemas::{
    ConnectionEvent, ConnectionEvents, Record, ReportDelta, SnapshotInput, topics,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::config::MergerArgs;
use crate::consumer::{self, CatchUp, MergerContext, Positions, Rebalance, blocking};
use crate::skew::{self, Clocks};
use crate::snapshot::SnapshotWriter;
use crate::state::{self, Applied, Input, State};
use crate::stats::{LocalCounts, Stats};
use crate::window::{self, Window};
use scope_schemas::time::{micros, now_us};

/// Messages handled per wake-up before the loop looks at the clock and the shutdown signal.
const BATCH: usize = 4096;
/// How long the announcement may wait in the producer's queue.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often files past retention are looked for.
const SWEEP_EVERY_US: i64 = 60_000_000;

pub(crate) async fn run(
    args: MergerArgs,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    args.validate()?;
    let window = Window::new(args.window, args.full_interval);
    let writer =
        SnapshotWriter::create(&args.storage.data_dir, &args.writer).map_err(|source| {
            Error::DataDir {
                path: args.storage.data_dir.clone(),
                source,
            }
        })?;
    let producer: FutureProducer = args
        .kafka
        .client_config(&[
            ("client.id", &format!("scope-merger-{}", args.writer)),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "10000"),
        ])
        .create()
        .map_err(Error::CreateProducer)?;
    // The announcement topic too: where the broker does not auto-create topics, each
    // announcement to a missing one would wait out the producer's message timeout.
    let own: Vec<_> = topics::all(args.input_partitions)
        .into_iter()
        .filter(|spec| {
            topics::MERGER_INPUTS.contains(&spec.name.as_str()) || spec.name == topics::SNAPSHOTS
        })
        .collect();
    if let Err(error) = scope_kafka::ensure_topics(&args.kafka, &own).await {
        tracing::warn!(%error, "could not make sure the input and announcement topics exist; continuing");
    }
    let consumer = consumer::subscribe(&args, window.expire_after_us)?;
    tracing::info!(
        group_id = args.group_id,
        writer = args.writer,
        data_dir = %writer.data_dir().display(),
        window = %humantime::format_duration(args.window),
        tick = %humantime::format_duration(args.tick),
        "merger started"
    );

    let mut merger = Merger {
        tick_us: micros(args.tick).max(1),
        idle_us: micros(args.idle_interval),
        last_written: None,
        retention: args.storage.retention,
        writer: Arc::new(writer),
        window,
        producer,
        stats,
        state: State::new(),
        positions: Positions::default(),
        counts: [LocalCounts::default(); 2],
        malformed_log: [Throttle::default(), Throttle::default()],
        consume_error_log: Throttle::default(),
        owned: HashMap::new(),
        partition_counts: HashMap::new(),
        clocks: Clocks::new(micros(args.max_clock_skew)),
        input_drained_us: None,
        skew_corrected: 0,
        skew_log: Throttle::default(),
        complete: false,
        withheld_log: Throttle::default(),
        next_sweep_us: i64::MIN,
        writer_name: args.writer,
    };
    let looped = merger.consume(&consumer, &shutdown).await;

    // Shutdown (or a fatal consumer error): persist what is known, commit, leave the group.
    merger.take_rebalances(consumer.context());
    // Written whatever changed: it holds the latest metrics and commits every offset.
    merger.last_written = None;
    let t = window::align_up(now_us(), merger.tick_us);
    let last = merger
        .snapshot_if_complete(&consumer, t, CommitMode::Sync)
        .await;
    merger.flush_counts();
    consumer.unsubscribe();
    // Closing polls until the group is left, which blocks.
    let closed = tokio::task::spawn_blocking(move || drop(consumer)).await;
    let stats = scope_runtime::metrics::Families::of(|out| merger.stats.write_metrics(out));
    tracing::info!(
        snapshot_time_us = t,
        ok = last.is_ok(),
        ?stats,
        "merger stopped"
    );
    looped?;
    last?;
    closed.map_err(Error::Task)
}

struct Merger {
    tick_us: i64,
    /// `--idle-interval`.
    idle_us: i64,
    /// The shape and time of the last snapshot written and announced.
    last_written: Option<(u64, i64)>,
    retention: Duration,
    window: Window,
    writer: Arc<SnapshotWriter>,
    writer_name: String,
    producer: FutureProducer,
    stats: Arc<Stats>,
    state: State,
    positions: Positions,
    counts: [LocalCounts; 2],
    malformed_log: [Throttle; 2],
    consume_error_log: Throttle,
    /// The partitions assigned, and how far each one's replay still has to go.
    owned: HashMap<(Input, i32), CatchUp>,
    /// Partitions of each input topic, as the broker said at the last assignment.
    partition_counts: HashMap<Input, i32>,
    /// Each host's clock against the merger's.
    clocks: Clocks,
    /// When the consumer last found no message waiting: what bounds how long the messages
    /// read after it waited (see [`skew`]).
    input_drained_us: Option<i64>,
    /// Messages corrected for skew since the last flush.
    skew_corrected: u64,
    skew_log: Throttle,
    /// Whether the last check found the state complete, to log the changes only.
    complete: bool,
    withheld_log: Throttle,
    next_sweep_us: i64,
}

impl Merger {
    async fn consume(
        &mut self,
        consumer: &StreamConsumer<MergerContext>,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let mut stream = consumer.stream();
        let mut next_t = window::next_tick(now_us(), self.tick_us);
        let tick = tokio::time::sleep_until(instant_of(next_t));
        let cancelled = shutdown.cancelled();
        tokio::pin!(tick, cancelled);
        loop {
            tokio::select! {
                biased;
                () = &mut cancelled => return Ok(()),
                () = &mut tick => {
                    self.take_rebalances(consumer.context());
                    if let Err(error) = self.snapshot_if_complete(consumer, next_t, CommitMode::Async).await {
                        self.stats.snapshot_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(%error, retryable = error.is_retryable(), "snapshot failed; the next tick retries");
                    }
                    // Ticks missed while busy are skipped, not caught up.
                    next_t = window::next_tick(now_us(), self.tick_us);
                    tick.as_mut().reset(instant_of(next_t));
                }
                item = stream.next() => {
                    let mut item = item;
                    let mut handled = 0;
                    // One clock reading per wake-up: a batch is read within milliseconds.
                    let read_us = now_us();
                    loop {
                        self.take_rebalances(consumer.context());
                        match item {
                            Some(Ok(message)) => self.handle(&message, read_us),
                            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                                return Err(Error::Consume(KafkaError::MessageConsumptionFatal(code)));
                            }
                            Some(Err(error)) => {
                                if let Some(suppressed) = self.consume_error_log.allow() {
                                    tracing::warn!(%error, suppressed, "consuming the input topics failed; retrying");
                                }
                            }
                            None => return Ok(()),
                        }
                        handled += 1;
                        if handled == BATCH {
                            break;
                        }
                        match stream.next().now_or_never() {
                            Some(next) => item = next,
                            None => {
                                self.input_drained_us = Some(now_us());
                                break;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Applies one input message read at `read_us`, or counts and skips it.
    fn handle(&mut self, message: &BorrowedMessage<'_>, read_us: i64) {
        let Some(input) = Input::from_topic(message.topic()) else {
            return;
        };
        let (partition, offset) = (message.partition(), message.offset());
        self.positions.record(input, partition, offset);
        let msg_ts_us = message
            .timestamp()
            .to_millis()
            .map(|ms| ms.saturating_mul(1000));
        let Some(payload) = message.payload() else {
            self.malformed(input, partition, offset, "no value");
            return;
        };
        let live = self.owned.get(&(input, partition)) == Some(&CatchUp::Done);
        let read_us = live.then_some(read_us);
        match input {
            Input::Connections => match ConnectionEvents::decode_any(payload) {
                Ok(batch) => {
                    for ev in batch.events {
                        self.apply_connection(partition, offset, ev, msg_ts_us, read_us);
                    }
                }
                Err(error) => self.malformed(input, partition, offset, &error.to_string()),
            },
            Input::Reports => match ReportDelta::decode(payload) {
                Ok(delta) => self.apply_report(partition, offset, delta, msg_ts_us, read_us),
                Err(error) => self.malformed(input, partition, offset, &error.to_string()),
            },
        }
    }

    /// Applies one connection event of a record read from `partition` at `offset`, or counts
    /// and skips it: an invalid event does not cost the others of its batch.
    fn apply_connection(
        &mut self,
        partition: i32,
        offset: i64,
        mut ev: ConnectionEvent,
        msg_ts_us: Option<i64>,
        read_us: Option<i64>,
    ) {
        if let Err(reason) = state::check_connection(&ev) {
            return self.malformed(Input::Connections, partition, offset, reason);
        }
        let msg_ts_us = self.correct_clock(&ev.host_id, &mut ev.timestamp_us, msg_ts_us, read_us);
        let outcome = self.state.apply_connection_from(partition, ev, msg_ts_us);
        self.count(Input::Connections, outcome);
    }

    /// [`Self::apply_connection`] for a report delta.
    fn apply_report(
        &mut self,
        partition: i32,
        offset: i64,
        mut delta: ReportDelta,
        msg_ts_us: Option<i64>,
        read_us: Option<i64>,
    ) {
        if let Err(reason) = state::check_report(&delta) {
            return self.malformed(Input::Reports, partition, offset, reason);
        }
        let msg_ts_us =
            self.correct_clock(&delta.host_id, &mut delta.timestamp_us, msg_ts_us, read_us);
        let outcome = self.state.apply_report_from(partition, delta, msg_ts_us);
        self.count(Input::Reports, outcome);
    }

    fn count(&mut self, input: Input, outcome: Applied) {
        let counts = &mut self.counts[input.index()];
        match outcome {
            Applied::Changed => counts.applied += 1,
            Applied::Duplicate => counts.duplicates += 1,
            Applied::Ignored => counts.ignored += 1,
        }
    }

    /// Moves `host`'s record timestamp (and returns its message timestamp) onto the
    /// merger's clock; a message read live (`read_us`) also updates the host's estimate, and
    /// a host going out of bounds or back is logged.
    fn correct_clock(
        &mut self,
        host: &str,
        timestamp_us: &mut i64,
        msg_ts_us: Option<i64>,
        read_us: Option<i64>,
    ) -> Option<i64> {
        let correction = match read_us {
            None => self.clocks.correction(host),
            Some(read_us) => {
                let (change, correction) =
                    self.clocks
                        .observe(host, *timestamp_us, read_us, self.input_drained_us);
                if change != skew::Change::None {
                    self.log_clock_change(host, change);
                }
                correction
            }
        };
        if correction == 0 {
            return msg_ts_us;
        }
        self.skew_corrected += 1;
        *timestamp_us = timestamp_us.saturating_sub(correction);
        msg_ts_us.map(|m| m.saturating_sub(correction))
    }

    #[cold]
    fn log_clock_change(&mut self, host: &str, change: skew::Change) {
        let Some(suppressed) = self.skew_log.allow() else {
            return;
        };
        match change {
            skew::Change::OutOfBounds { offset_us } => tracing::warn!(
                host,
                offset_ms = offset_us / 1000,
                suppressed,
                "host clock out of bounds of the merger's; correcting its timestamps"
            ),
            _ => tracing::info!(host, suppressed, "host clock back within bounds"),
        }
    }

    #[cold]
    fn malformed(&mut self, input: Input, partition: i32, offset: i64, reason: &str) {
        self.counts[input.index()].malformed += 1;
        if let Some(suppressed) = self.malformed_log[input.index()].allow() {
            tracing::warn!(
                topic = input.topic(),
                partition,
                offset,
                reason,
                suppressed,
                "skipping a malformed message"
            );
        }
    }

    /// Applies assignment changes the rebalance hook recorded.
    fn take_rebalances(&mut self, context: &MergerContext) {
        for rebalance in context.take() {
            // The next announcement names other partitions: readers need it.
            self.last_written = None;
            match rebalance {
                Rebalance::Assigned {
                    partitions,
                    partition_counts,
                } => {
                    tracing::info!(?partitions, "assigned input partitions");
                    self.partition_counts.extend(partition_counts);
                    for (input, partition, catch_up) in partitions {
                        self.positions.forget(input, partition);
                        self.owned.insert((input, partition), catch_up);
                    }
                }
                Rebalance::Revoked(partitions) => {
                    let mut hosts = 0;
                    for (input, partition) in &partitions {
                        hosts += self.state.revoke(*input, *partition);
                        self.positions.forget(*input, *partition);
                        self.owned.remove(&(*input, *partition));
                    }
                    tracing::info!(
                        ?partitions,
                        hosts,
                        "input partitions revoked; dropped their hosts' state"
                    );
                }
                Rebalance::Lost => {
                    self.state = State::new();
                    self.positions.clear();
                    self.owned.clear();
                    tracing::warn!("assignment lost; dropped all state");
                }
            }
        }
    }

    /// Whether the state holds everything the owned partitions say: at least one is owned,
    /// and every one has been replayed up to where it ended when assigned.
    fn is_complete(&mut self) -> bool {
        let now = now_us();
        let mut complete = !self.owned.is_empty();
        for (&(input, partition), catch_up) in &mut self.owned {
            let done = match *catch_up {
                CatchUp::Done => true,
                CatchUp::Offset(high) => self.positions.next(input, partition) >= high,
                CatchUp::Until(t) => now >= t,
            };
            if done {
                *catch_up = CatchUp::Done;
            } else {
                complete = false;
            }
        }
        if complete != self.complete {
            self.complete = complete;
            if complete {
                tracing::info!(
                    partitions = self.owned.len(),
                    "caught up with every owned partition; announcing snapshots"
                );
            } else {
                tracing::info!(
                    partitions = self.owned.len(),
                    "withholding snapshots until every owned partition is replayed"
                );
            }
        }
        complete
    }

    /// [`Self::snapshot`] when the state is complete; otherwise counts the tick as withheld.
    async fn snapshot_if_complete(
        &mut self,
        consumer: &StreamConsumer<MergerContext>,
        t: i64,
        mode: CommitMode,
    ) -> Result<(), Error> {
        if self.is_complete() {
            return self.snapshot(consumer, t, mode).await;
        }
        self.flush_counts();
        self.stats
            .snapshots_withheld
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(suppressed) = self.withheld_log.allow() {
            let replaying = self.owned.values().filter(|c| **c != CatchUp::Done).count();
            tracing::debug!(
                snapshot_time_us = t,
                owned = self.owned.len(),
                replaying,
                suppressed,
                "snapshot withheld: the state is not complete"
            );
        }
        Ok(())
    }

    /// Cuts at `t`, writes, announces, then commits.
    async fn snapshot(
        &mut self,
        consumer: &StreamConsumer<MergerContext>,
        t: i64,
        mode: CommitMode,
    ) -> Result<(), Error> {
        use std::sync::atomic::Ordering::Relaxed;

        let tables = self.state.cut(t, &self.window);
        let skewed = self
            .clocks
            .prune(t.saturating_sub(self.window.expire_after_us));
        self.stats.skewed_hosts.store(skewed as u64, Relaxed);
        self.stats
            .expired_sockets
            .fetch_add(tables.expired_sockets, Relaxed);
        self.flush_counts();
        let shape = tables.shape();
        if self.stands_for(shape, t) {
            self.stats.unchanged_ticks.fetch_add(1, Relaxed);
            return Ok(());
        }
        let offsets = self.positions.to_list();
        let rows = (
            tables.hosts.len(),
            tables.processes.len(),
            tables.sockets.len(),
        );
        let window_us = tables.window_us;

        let writer = Arc::clone(&self.writer);
        let written = tokio::task::spawn_blocking(move || writer.write(&tables))
            .await
            .map_err(Error::Task)?
            .map_err(|source| Error::WriteSnapshot {
                snapshot_time_us: t,
                source,
            })?;
        self.stats.snapshots_written.fetch_add(1, Relaxed);
        self.stats.bytes_written.fetch_add(written.bytes, Relaxed);

        let announcement = self
            .writer
            .announcement(t, window_us, written, self.owned_inputs());
        let payload = announcement
            .encode()
            .map_err(|source| Error::EncodeAnnouncement {
                snapshot_time_us: t,
                source,
            })?;
        let record = FutureRecord::to(topics::SNAPSHOTS)
            .key(&self.writer_name)
            .payload(&payload);
        self.producer
            .send(record, ANNOUNCE_TIMEOUT)
            .await
            .map_err(|(source, _)| Error::Announce {
                snapshot_time_us: t,
                source,
            })?;

        self.last_written = Some((shape, t));
        if let Some(offsets) = offsets {
            match mode {
                CommitMode::Sync => blocking(|| consumer.commit(&offsets, CommitMode::Sync)),
                CommitMode::Async => consumer.commit(&offsets, CommitMode::Async),
            }
            .map_err(Error::Commit)?;
        }
        tracing::debug!(
            snapshot_time_us = t,
            hosts = rows.0,
            processes = rows.1,
            sockets = rows.2,
            "snapshot written"
        );

        if t >= self.next_sweep_us {
            self.next_sweep_us = t.saturating_add(SWEEP_EVERY_US);
            let writer = Arc::clone(&self.writer);
            let retention = self.retention;
            let swept = tokio::task::spawn_blocking(move || writer.sweep(t, retention))
                .await
                .map_err(Error::Task)?;
            match swept {
                Ok(0) => {}
                Ok(deleted) => {
                    self.stats.files_deleted.fetch_add(deleted, Relaxed);
                    tracing::debug!(deleted, "deleted snapshot files past retention");
                }
                Err(source) => {
                    let error = Error::Retention(source);
                    tracing::warn!(%error, "retention sweep failed; retrying in a minute");
                }
            }
        }
        Ok(())
    }

    /// Whether the last snapshot written stands for a cut of `shape` at `t`: it has that
    /// shape, is younger than `--idle-interval`, and this merger is the only writer.
    fn stands_for(&self, shape: u64, t: i64) -> bool {
        self.last_written
            .is_some_and(|(last, at)| last == shape && t.saturating_sub(at) < self.idle_us)
            && self.owns_every_partition()
    }

    /// Whether every partition of both input topics is this merger's, as far as the broker
    /// said at the last assignment.
    fn owns_every_partition(&self) -> bool {
        [Input::Connections, Input::Reports]
            .into_iter()
            .all(|input| {
                let count = self.partition_counts.get(&input).copied().unwrap_or(0);
                count > 0 && (0..count).all(|p| self.owned.contains_key(&(input, p)))
            })
    }

    fn flush_counts(&mut self) {
        self.counts[Input::Connections.index()].flush_into(&self.stats.connections);
        self.counts[Input::Reports.index()].flush_into(&self.stats.reports);
        self.stats.skew_corrected.fetch_add(
            std::mem::take(&mut self.skew_corrected),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The partitions owned, per input topic, for the announcement: readers render a time
    /// once its announcements cover every partition.
    fn owned_inputs(&self) -> Vec<SnapshotInput> {
        [Input::Connections, Input::Reports]
            .into_iter()
            .map(|input| {
                let mut partitions: Vec<i32> = self
                    .owned
                    .keys()
                    .filter(|(i, _)| *i == input)
                    .map(|(_, p)| *p)
                    .collect();
                partitions.sort_unstable();
                SnapshotInput {
                    topic: input.topic().to_owned(),
                    // 0: unknown, so readers take the snapshot as complete on its own.
                    partition_count: self.partition_counts.get(&input).copied().unwrap_or(0),
                    partitions,
                }
            })
            .collect()
    }
}

/// The tokio instant at which the wall clock reads `t_us`.
fn instant_of(t_us: i64) -> Instant {
    let ahead = u64::try_from(t_us.saturating_sub(now_us())).unwrap_or(0);
    Instant::now() + Duration::from_micros(ahead)
}
