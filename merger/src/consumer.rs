//! The Kafka side of the merger: the consumer, its rebalance hook, and offsets to commit.
//!
//! The state at `T` depends on messages older than the committed offsets (a long-lived
//! connection is only re-announced with each full report), so committed offsets alone cannot
//! rebuild it. Instead, when partitions are assigned, the rebalance hook asks the broker for
//! the offsets at `now - expire_after` (`offsets_for_times`) and starts each partition there,
//! before the assignment takes effect; replayed messages are idempotent in
//! [`crate::state::State`]. When the lookup fails the partition starts at its earliest offset
//! (the committed offset could not rebuild the state); when it finds nothing within the
//! horizon, at its end (nothing older matters).
//!
//! The hook also notes each partition's high watermark at assignment: until the loop has read
//! up to it, the state lacks part of what the partition says, and a snapshot cut from it
//! would publish live hosts as gone ([`CatchUp`]).
//!
//! tansu answers `offsets_for_times` from the time each batch was stored, which serves the
//! purpose ("what arrived within the horizon"); when nothing arrived within it, tansu answers
//! offset 0 where Kafka answers "end", so on tansu a quiet partition is replayed from its
//! start (bounded by the topic's one-hour retention). Harmless, since replays are idempotent.
//!
//! The hook runs inside the consumer's poll, on the merger's own task, so it only records
//! what changed; the consume loop applies it (dropping the state of revoked partitions)
//! before the next message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::Error;
use crate::config::MergerArgs;
use crate::state::Input;
use scope_schemas::time::now_us;

/// How long the rebalance hook waits for the broker's offset lookups.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What an assigned partition's replay must reach before the state holds all it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CatchUp {
    /// Nothing to replay.
    Done,
    /// Complete once the next offset to read is at least this: the high watermark when the
    /// partition was assigned, the replay starting at or after `now - expire_after`.
    Offset(i64),
    /// The broker could not tell where the partition ends: complete once the wall clock (µs)
    /// reaches this, `expire_after` after the assignment, by when everything the state can
    /// depend on has been consumed live.
    Until(i64),
}

/// A change of assignment, as the consume loop learns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rebalance {
    Assigned {
        partitions: Vec<(Input, i32, CatchUp)>,
        /// How many partitions each input topic has, where the broker said: announcements
        /// name it so that readers can tell when a snapshot time is covered.
        partition_counts: Vec<(Input, i32)>,
    },
    Revoked(Vec<(Input, i32)>),
    /// The group reported an error and the assignment was dropped altogether.
    Lost,
}

/// Consumer context: rewinds assigned partitions and queues rebalances for the loop.
pub(crate) struct MergerContext {
    rewind_us: i64,
    pending: Mutex<Vec<Rebalance>>,
    has_pending: AtomicBool,
}

impl MergerContext {
    pub fn new(rewind_us: i64) -> Self {
        MergerContext {
            rewind_us,
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
        }
    }

    /// Rebalances since the last call, oldest first. Cheap when there are none.
    pub fn take(&self) -> Vec<Rebalance> {
        // A plain load first: this runs before every message.
        if !self.has_pending.load(Ordering::Relaxed)
            || !self.has_pending.swap(false, Ordering::Acquire)
        {
            return Vec::new();
        }
        match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    fn push(&self, event: Rebalance) {
        match self.pending.lock() {
            Ok(mut pending) => pending.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
        self.has_pending.store(true, Ordering::Release);
    }

    /// Sets each partition of `tpl` to start at the first offset stored at or after
    /// `now - rewind`, and says where each replay ends.
    fn rewind(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
    ) -> Vec<(Input, i32, CatchUp)> {
        let now = now_us();
        let since_ms = now.saturating_sub(self.rewind_us) / 1000;
        let mut query = TopicPartitionList::new();
        for elem in tpl.elements() {
            if let Err(error) =
                query.add_partition_offset(elem.topic(), elem.partition(), Offset::Offset(since_ms))
            {
                tracing::warn!(%error, topic = elem.topic(), partition = elem.partition(), "cannot look up the rewind offset");
            }
        }
        // Per partition: `Some(Some(offset))` replays from there, `Some(None)` found nothing
        // within the horizon, absent is a failed lookup.
        let mut by_time: HashMap<(String, i32), Option<i64>> = HashMap::new();
        match blocking(|| consumer.offsets_for_times(query, LOOKUP_TIMEOUT)) {
            Ok(found) => {
                for elem in found.elements() {
                    let key = (elem.topic().to_owned(), elem.partition());
                    match (elem.error(), elem.offset()) {
                        (Ok(()), Offset::Offset(offset)) if offset >= 0 => {
                            by_time.insert(key, Some(offset));
                        }
                        (Ok(()), _) => {
                            by_time.insert(key, None);
                        }
                        (Err(error), _) => {
                            tracing::warn!(%error, topic = elem.topic(), partition = elem.partition(), "offset lookup by time failed; replaying the partition from its start");
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "offset lookup by time failed; replaying from the partitions' start");
            }
        }
        let assigned: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let mut out = Vec::with_capacity(assigned.len());
        for (topic, partition) in assigned {
            let Some(input) = Input::from_topic(&topic) else {
                continue;
            };
            let (low, high) = match blocking(|| {
                consumer.fetch_watermarks(&topic, partition, LOOKUP_TIMEOUT)
            }) {
                Ok(watermarks) => watermarks,
                Err(error) => {
                    tracing::warn!(%error, topic, partition, "cannot tell where the partition ends; snapshots wait until it has been consumed live for the replay horizon");
                    let until = now.saturating_add(self.rewind_us);
                    out.push((input, partition, CatchUp::Until(until)));
                    continue;
                }
            };
            let start = match by_time.get(&(topic.clone(), partition)) {
                Some(Some(offset)) => (*offset).clamp(low, high),
                Some(None) => high,
                None => low,
            };
            tracing::info!(
                topic,
                partition,
                start,
                high,
                since_ms,
                "replaying the partition's recent past"
            );
            if let Err(error) = tpl.set_partition_offset(&topic, partition, Offset::Offset(start)) {
                // Then it starts at the committed offset, and cannot be known to catch up
                // before the horizon has passed live.
                tracing::warn!(%error, topic, partition, "cannot set the rewind offset");
                let until = now.saturating_add(self.rewind_us);
                out.push((input, partition, CatchUp::Until(until)));
                continue;
            }
            let catch_up = if start >= high {
                CatchUp::Done
            } else {
                CatchUp::Offset(high)
            };
            out.push((input, partition, catch_up));
        }
        out
    }
}

impl ClientContext for MergerContext {}

impl ConsumerContext for MergerContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let replays = self.rewind(consumer, tpl);
                let partition_counts = partition_counts(consumer);
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(error) = assigned {
                    tracing::error!(%error, "assigning partitions failed");
                }
                self.push(Rebalance::Assigned {
                    partitions: replays,
                    partition_counts,
                });
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.push(Rebalance::Revoked(partitions(tpl)));
                let revoked = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(error) = revoked {
                    tracing::error!(%error, "unassigning partitions failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "consumer group rebalance failed; dropping the assignment");
                if let Err(error) = consumer.unassign() {
                    tracing::error!(%error, "unassigning partitions failed");
                }
                self.push(Rebalance::Lost);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::trace!(partitions = offsets.count(), "committed input offsets"),
            Err(error) => {
                tracing::warn!(%error, "committing input offsets failed; the next snapshot retries")
            }
        }
    }
}

/// The partition count of each input topic, from the broker's metadata; a topic it cannot
/// tell about is left out.
fn partition_counts(consumer: &BaseConsumer<MergerContext>) -> Vec<(Input, i32)> {
    let mut counts = Vec::new();
    for input in [Input::Connections, Input::Reports] {
        match blocking(|| consumer.fetch_metadata(Some(input.topic()), LOOKUP_TIMEOUT)) {
            Ok(metadata) => {
                if let Some(topic) = metadata.topics().first()
                    && topic.error().is_none()
                    && let Ok(count) = i32::try_from(topic.partitions().len())
                {
                    counts.push((input, count));
                }
            }
            Err(error) => {
                tracing::warn!(%error, topic = input.topic(), "cannot read the topic's partition count; its announcements will not say it");
            }
        }
    }
    counts
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(Input, i32)> {
    tpl.elements()
        .iter()
        .filter_map(|e| Input::from_topic(e.topic()).map(|input| (input, e.partition())))
        .collect()
}

/// Creates the consumer and subscribes it to both input topics.
pub(crate) fn subscribe(
    args: &MergerArgs,
    rewind_us: i64,
) -> Result<StreamConsumer<MergerContext>, Error> {
    let client_id = format!("scope-merger-{}", args.writer);
    let consumer: StreamConsumer<MergerContext> = args
        .kafka
        .client_config(&[
            ("group.id", &args.group_id),
            ("client.id", &client_id),
            // Offsets are committed by hand, only once a snapshot is durable.
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("session.timeout.ms", scope_kafka::GROUP_SESSION_TIMEOUT_MS),
        ])
        .create_with_context(MergerContext::new(rewind_us))
        .map_err(Error::CreateConsumer)?;
    consumer
        .subscribe(&scope_schemas::topics::MERGER_INPUTS)
        .map_err(Error::Subscribe)?;
    Ok(consumer)
}

/// The next offset to read of every partition the loop has read from: what to commit.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    next: [Vec<i64>; 2],
}

impl Positions {
    /// Records that `offset` of `partition` has been read (applied or skipped).
    #[inline]
    pub fn record(&mut self, input: Input, partition: i32, offset: i64) {
        let Ok(p) = usize::try_from(partition) else {
            return;
        };
        let next = &mut self.next[input.index()];
        if next.len() <= p {
            next.resize(p + 1, -1);
        }
        next[p] = offset + 1;
    }

    /// The next offset to read of `partition`, or -1 when nothing has been read from it.
    pub fn next(&self, input: Input, partition: i32) -> i64 {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.next[input.index()].get(p).copied())
            .unwrap_or(-1)
    }

    /// Forgets a revoked partition: its offsets are no longer this merger's to commit.
    pub fn forget(&mut self, input: Input, partition: i32) {
        if let Some(slot) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.next[input.index()].get_mut(p))
        {
            *slot = -1;
        }
    }

    pub fn clear(&mut self) {
        self.next = Default::default();
    }

    /// The offsets to commit, or `None` when nothing has been read.
    pub fn to_list(&self) -> Option<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for input in Input::ALL {
            for (p, &next) in self.next[input.index()].iter().enumerate() {
                if next >= 0 {
                    // Partition numbers come from i32s, so they fit.
                    let p = i32::try_from(p).unwrap_or(i32::MAX);
                    if tpl
                        .add_partition_offset(input.topic(), p, Offset::Offset(next))
                        .is_err()
                    {
                        continue;
                    }
                }
            }
        }
        (tpl.count() > 0).then_some(tpl)
    }
}

/// Runs a blocking client call from async code: on a multi-thread runtime the worker hands
/// its other tasks off first (an embedded broker may be one of them); elsewhere it just runs.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_list_the_next_offsets_of_partitions_read() {
        let mut positions = Positions::default();
        assert!(positions.to_list().is_none());
        positions.record(Input::Connections, 2, 10);
        positions.record(Input::Connections, 2, 11);
        positions.record(Input::Reports, 0, 5);
        let list = positions.to_list().unwrap();
        assert_eq!(list.count(), 2);
        let map = list.to_topic_map();
        assert_eq!(
            map[&(Input::Connections.topic().to_owned(), 2)],
            Offset::Offset(12)
        );
        assert_eq!(
            map[&(Input::Reports.topic().to_owned(), 0)],
            Offset::Offset(6)
        );
        assert_eq!(positions.next(Input::Connections, 2), 12);
        assert_eq!(positions.next(Input::Connections, 7), -1);
        positions.forget(Input::Connections, 2);
        assert_eq!(positions.to_list().unwrap().count(), 1);
        positions.clear();
        assert!(positions.to_list().is_none());
    }

    #[test]
    fn rebalances_are_handed_over_in_order() {
        let ctx = MergerContext::new(0);
        assert!(ctx.take().is_empty());
        ctx.push(Rebalance::Revoked(vec![(Input::Reports, 0)]));
        let assigned = Rebalance::Assigned {
            partitions: vec![(Input::Reports, 1, CatchUp::Done)],
            partition_counts: vec![(Input::Reports, 4)],
        };
        ctx.push(assigned.clone());
        assert_eq!(
            ctx.take(),
            vec![Rebalance::Revoked(vec![(Input::Reports, 0)]), assigned]
        );
        assert!(ctx.take().is_empty());
    }
}
