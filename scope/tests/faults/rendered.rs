//! A rendered topic as a downstream consumer reads it: a changelog folded into the current
//! graph (latest value per node id, a tombstone removes it), with every tombstone noted, so
//! that a live node removed even for a moment is seen.

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
};
use scope_schemas::{Record, RenderedNode, topics::RENDERED_PREFIX};
use scope_testkit::{TimedOut, consume_until, now_us};

pub struct RenderedView {
    consumer: StreamConsumer,
    /// The current graph, by node id.
    pub nodes: BTreeMap<String, RenderedNode>,
    /// Every tombstone read, with when it was read (µs).
    pub tombstones: Vec<(String, i64)>,
}

impl RenderedView {
    /// Reads `scope.rendered.<view>` from its beginning, in a group of its own.
    pub fn subscribe(brokers: &str, view: &str) -> RenderedView {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("faults-{view}-{}", std::process::id()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        consumer
            .subscribe(&[&format!("{RENDERED_PREFIX}{view}")])
            .expect("subscribed");
        RenderedView {
            consumer,
            nodes: BTreeMap::new(),
            tombstones: Vec::new(),
        }
    }

    /// Reads until `done(nodes)` holds, or fails after `limit`.
    pub async fn until(
        &mut self,
        limit: Duration,
        done: impl Fn(&BTreeMap<String, RenderedNode>) -> bool,
    ) -> Result<(), TimedOut> {
        let mut state = (&mut self.nodes, &mut self.tombstones);
        consume_until(
            &self.consumer,
            limit,
            &mut state,
            |(nodes, tombstones), message| {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                match message.payload() {
                    None => {
                        nodes.remove(&key);
                        tombstones.push((key, now_us()));
                    }
                    Some(bytes) => {
                        let node = RenderedNode::decode(bytes)
                            .unwrap_or_else(|e| panic!("an undecodable node {key}: {e}"));
                        nodes.insert(key, node);
                    }
                }
            },
            |(nodes, _)| done(nodes),
        )
        .await
    }
}

/// Whether `from` is in the graph with an edge to `to`.
pub fn has_edge(nodes: &BTreeMap<String, RenderedNode>, from: &str, to: &str) -> bool {
    nodes
        .get(from)
        .is_some_and(|node| node.adjacency.iter().any(|id| id == to))
}
