//! Publishing the views: each `scope.rendered.<view>` topic is a changelog of that view's
//! nodes, keyed by node id, compacted, so a reader that consumes it from the beginning holds the
//! current graph, and one that keeps consuming sees every change.
//!
//! Only what changed is produced: a node whose fields (all but `snapshot_time_us`) differ from
//! the last published value, a new node, and a tombstone (null value) for each node that left
//! the view. What was published is known from the deliveries acknowledged by the broker, and
//! on start it is read back from the topics ([`Publisher::load`]), so a restarted renderer
//! neither republishes the whole graph nor forgets to remove a node that vanished while it was
//! down. The producer is idempotent: a retried send is not duplicated.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};
use scope_kafka::KafkaArgs;
use scope_schemas::{Record, RenderedNode, View};

use crate::{Error, stats};

/// One change to a view's topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new node, or one that changed.
    Upsert(RenderedNode),
    /// The node with this id left the view.
    Tombstone(String),
}

impl Change {
    pub fn id(&self) -> &str {
        match self {
            Change::Upsert(node) => &node.id,
            Change::Tombstone(id) => id,
        }
    }
}

/// Whether two renderings of a node show the same thing (the snapshot time aside).
pub fn same_node(a: &RenderedNode, b: &RenderedNode) -> bool {
    a.view == b.view
        && a.id == b.id
        && a.label == b.label
        && a.label_minor == b.label_minor
        && a.rank == b.rank
        && a.shape == b.shape
        && a.pseudo == b.pseudo
        && a.adjacency == b.adjacency
        && a.metadata == b.metadata
}

/// What turns `previous` into `current`: upserts in `current`'s order, then tombstones by id.
pub fn diff(previous: &BTreeMap<String, RenderedNode>, current: &[RenderedNode]) -> Vec<Change> {
    let mut changes: Vec<Change> = current
        .iter()
        .filter(|node| {
            previous
                .get(&node.id)
                .is_none_or(|old| !same_node(old, node))
        })
        .cloned()
        .map(Change::Upsert)
        .collect();
    let present: std::collections::HashSet<&str> = current.iter().map(|n| n.id.as_str()).collect();
    changes.extend(
        previous
            .keys()
            .filter(|id| !present.contains(id.as_str()))
            .map(|id| Change::Tombstone(id.clone())),
    );
    changes
}

/// Counts of one publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub upserts: u64,
    pub tombstones: u64,
}

/// Produces view changes and remembers what the broker acknowledged.
pub struct Publisher {
    producer: FutureProducer,
    published: BTreeMap<View, BTreeMap<String, RenderedNode>>,
    last_snapshot_us: Option<i64>,
}

impl Publisher {
    /// An idempotent, lz4-compressing producer for the view topics.
    pub fn new(kafka: &KafkaArgs) -> Result<Self, Error> {
        let producer = kafka
            .client_config(&[
                ("enable.idempotence", "true"),
                ("compression.type", "lz4"),
                ("linger.ms", "20"),
                ("message.timeout.ms", "30000"),
            ])
            .create()
            .map_err(|source| Error::CreateClient {
                client: "producer",
                source,
            })?;
        Ok(Publisher {
            producer,
            published: BTreeMap::new(),
            last_snapshot_us: None,
        })
    }

    /// The newest snapshot time published (or read back by [`Self::load`]).
    pub fn last_snapshot_us(&self) -> Option<i64> {
        self.last_snapshot_us
    }

    /// The nodes of `view` as last published.
    pub fn published(&self, view: View) -> Option<&BTreeMap<String, RenderedNode>> {
        self.published.get(&view)
    }

    /// Reads every view topic from its beginning to its current end and takes the result as
    /// what was published. Gives up after `timeout` with what it has read (then a node that
    /// vanished may keep its stale value until it appears and vanishes again). Returns the
    /// number of nodes known.
    pub async fn load(
        &mut self,
        kafka: &KafkaArgs,
        group_id: &str,
        timeout: Duration,
    ) -> Result<usize, Error> {
        let group = format!("{group_id}-published");
        let consumer: StreamConsumer = kafka
            .client_config(&[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "false"),
            ])
            .create()
            .map_err(|source| Error::CreateClient {
                client: "consumer",
                source,
            })?;
        let consumer = Arc::new(consumer);
        let deadline = tokio::time::Instant::now() + timeout;

        // Watermarks are a blocking call: off the async threads.
        let topics: Vec<String> = View::ALL.iter().map(|v| v.topic()).collect();
        let marks = {
            let consumer = Arc::clone(&consumer);
            let topics = topics.clone();
            tokio::task::spawn_blocking(move || {
                topics
                    .into_iter()
                    .map(|topic| {
                        let marks = consumer.fetch_watermarks(&topic, 0, timeout);
                        (topic, marks)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default()
        };
        let mut ends: HashMap<String, i64> = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for (topic, marks) in marks {
            match marks {
                Ok((low, high)) if high > low => {
                    assignment
                        .add_partition_offset(&topic, 0, Offset::Beginning)
                        .map_err(|source| Error::LoadPublished {
                            topic: topic.clone(),
                            source,
                        })?;
                    ends.insert(topic, high);
                }
                Ok(_) => {}
                Err(source) => return Err(Error::LoadPublished { topic, source }),
            }
        }
        if ends.is_empty() {
            return Ok(0);
        }
        consumer
            .assign(&assignment)
            .map_err(|source| Error::LoadPublished {
                topic: topics.join(","),
                source,
            })?;

        while !ends.is_empty() {
            let message = match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_elapsed) => {
                    tracing::warn!(
                        unfinished = ?ends.keys().collect::<Vec<_>>(),
                        "reading back the published views timed out; continuing with what was read"
                    );
                    break;
                }
                Ok(Err(source)) => {
                    return Err(Error::LoadPublished {
                        topic: topics.join(","),
                        source,
                    });
                }
                Ok(Ok(message)) => message,
            };
            let topic = message.topic().to_owned();
            if ends
                .get(&topic)
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                ends.remove(&topic);
            }
            let Some(view) = View::ALL.into_iter().find(|v| v.topic() == topic) else {
                continue;
            };
            let Some(id) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                stats().malformed_published.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let nodes = self.published.entry(view).or_default();
            match message.payload() {
                None => {
                    nodes.remove(id);
                }
                Some(bytes) => match RenderedNode::decode(bytes) {
                    Ok(node) => {
                        self.last_snapshot_us =
                            self.last_snapshot_us.max(Some(node.snapshot_time_us));
                        nodes.insert(id.to_owned(), node);
                    }
                    Err(error) => {
                        stats().malformed_published.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%topic, id, %error, "skipping an undecodable published node");
                    }
                },
            }
        }
        Ok(self.published.values().map(BTreeMap::len).sum())
    }

    /// Publishes what changed in `views` since the last publish. A change whose delivery fails
    /// is not remembered as published, so the next publish retries it; the first such failure
    /// is returned after every other change has been awaited.
    pub async fn publish(
        &mut self,
        snapshot_time_us: i64,
        views: &BTreeMap<View, Vec<RenderedNode>>,
    ) -> Result<Published, Error> {
        self.last_snapshot_us = self.last_snapshot_us.max(Some(snapshot_time_us));
        let mut pending: Vec<(View, Change, DeliveryFuture)> = Vec::new();
        let mut counts = Published::default();
        let mut first_error: Option<Error> = None;
        let empty = BTreeMap::new();
        let changes: Vec<(View, Change)> = views
            .iter()
            .flat_map(|(view, nodes)| {
                let previous = self.published.get(view).unwrap_or(&empty);
                diff(previous, nodes)
                    .into_iter()
                    .map(|change| (*view, change))
            })
            .collect();
        for (view, change) in changes {
            let topic = view.topic();
            let payload = match &change {
                Change::Upsert(node) => Some(node.encode()?),
                Change::Tombstone(_) => None,
            };
            loop {
                let mut record = FutureRecord::<str, Vec<u8>>::to(&topic).key(change.id());
                if let Some(payload) = &payload {
                    record = record.payload(payload);
                }
                // The record (which borrows the change) is dropped with the error.
                match self
                    .producer
                    .send_result(record)
                    .map_err(|(error, _record)| error)
                {
                    Ok(delivery) => {
                        pending.push((view, change, delivery));
                        break;
                    }
                    Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                        // Let the queue drain by awaiting what is in flight.
                        self.settle(&mut pending, &mut counts, &mut first_error)
                            .await;
                    }
                    Err(source) => {
                        first_error.get_or_insert(Error::Produce {
                            topic: topic.clone(),
                            source,
                        });
                        break;
                    }
                }
            }
        }
        self.settle(&mut pending, &mut counts, &mut first_error)
            .await;
        match first_error {
            Some(error) => Err(error),
            None => Ok(counts),
        }
    }

    async fn settle(
        &mut self,
        pending: &mut Vec<(View, Change, DeliveryFuture)>,
        counts: &mut Published,
        first_error: &mut Option<Error>,
    ) {
        for (view, change, delivery) in pending.drain(..) {
            let result = match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((source, _))) => Err(source),
                Err(_canceled) => Err(KafkaError::Canceled),
            };
            if let Err(source) = result {
                first_error.get_or_insert(Error::Produce {
                    topic: view.topic(),
                    source,
                });
                continue;
            }
            let nodes = self.published.entry(view).or_default();
            match change {
                Change::Upsert(node) => {
                    counts.upserts += 1;
                    nodes.insert(node.id.clone(), node);
                }
                Change::Tombstone(id) => {
                    counts.tombstones += 1;
                    nodes.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, adjacency: &[&str], t: i64) -> RenderedNode {
        RenderedNode {
            view: "processes".into(),
            id: id.into(),
            label: id.into(),
            label_minor: String::new(),
            rank: id.into(),
            shape: "square".into(),
            pseudo: false,
            adjacency: adjacency.iter().map(|s| s.to_string()).collect(),
            metadata: Default::default(),
            snapshot_time_us: t,
        }
    }

    #[test]
    fn diff_publishes_only_changes_and_tombstones_leavers() {
        let previous: BTreeMap<String, RenderedNode> = [
            node("a", &["b"], 1),
            node("b", &[], 1),
            node("gone", &[], 1),
        ]
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect();
        let current = vec![
            node("a", &["b"], 2),
            node("b", &["a"], 2),
            node("new", &[], 2),
        ];
        let changes = diff(&previous, &current);
        assert_eq!(
            changes,
            vec![
                Change::Upsert(node("b", &["a"], 2)),
                Change::Upsert(node("new", &[], 2)),
                Change::Tombstone("gone".into()),
            ]
        );
        assert!(diff(&BTreeMap::new(), &[]).is_empty());
    }
}
