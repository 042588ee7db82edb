//! Report deltas: what a reporter's nodes changed since its previous publish.
//!
//! Sending only new and changed nodes (and the ids of vanished ones) keeps `scope.reports`
//! small on a host with thousands of idle processes. "Changed" ignores timestamps: a node
//! whose values are the same as last time is not sent again. Every `full_every`-th publish
//! (the first one included) is full: all nodes, `full = true`, so a consumer that starts late
//! or missed a delta converges within one full interval.

use std::collections::BTreeMap;

use scope_schemas::{Node, ReportDelta};

/// Strictly increasing sequence numbers for [`ReportDelta::seq`], across restarts: they
/// start at the current time in microseconds and count up by one per publish.
#[derive(Debug)]
pub struct Sequence(i64);

impl Sequence {
    pub fn starting_at(now_us: i64) -> Self {
        Sequence(now_us)
    }

    pub fn next_seq(&mut self) -> i64 {
        let seq = self.0;
        self.0 += 1;
        seq
    }
}

/// When publishes are full: the first, then every `full_every`-th.
#[derive(Debug)]
pub struct FullSchedule {
    full_every: u64,
    publishes: u64,
}

impl FullSchedule {
    pub fn new(full_every: u32) -> Self {
        FullSchedule {
            full_every: u64::from(full_every.max(1)),
            publishes: 0,
        }
    }

    /// Whether the next publish is full; advances the schedule.
    pub fn next_is_full(&mut self) -> bool {
        let full = self.publishes.is_multiple_of(self.full_every);
        self.publishes += 1;
        full
    }
}

/// The last published nodes of one reporter.
#[derive(Debug)]
pub struct DeltaTracker {
    host_id: String,
    reporter: &'static str,
    published: BTreeMap<String, Node>,
}

impl DeltaTracker {
    pub fn new(host_id: impl Into<String>, reporter: &'static str) -> Self {
        DeltaTracker {
            host_id: host_id.into(),
            reporter,
            published: BTreeMap::new(),
        }
    }

    /// The delta from the previous publish to `nodes` (or all of `nodes` when `full`), and
    /// `nodes` becomes the new reference.
    pub fn delta(&mut self, nodes: &[Node], full: bool, seq: i64, now_us: i64) -> ReportDelta {
        let current: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let removals: Vec<String> = self
            .published
            .keys()
            .filter(|id| !current.contains_key(id.as_str()))
            .cloned()
            .collect();
        let upserts: Vec<Node> = current
            .values()
            .filter(|node| {
                full || self
                    .published
                    .get(&node.id)
                    .is_none_or(|old| !same_values(old, node))
            })
            .map(|node| (*node).clone())
            .collect();
        self.published = current
            .into_iter()
            .map(|(id, node)| (id.to_owned(), node.clone()))
            .collect();
        ReportDelta {
            host_id: self.host_id.clone(),
            reporter: self.reporter.to_owned(),
            seq,
            full,
            timestamp_us: now_us,
            upserts,
            // A full delta replaces everything: removals are implied.
            removals: if full { Vec::new() } else { removals },
        }
    }
}

/// Equal apart from timestamps.
pub fn same_values(a: &Node, b: &Node) -> bool {
    a.topology == b.topology
        && a.id == b.id
        && a.sets == b.sets
        && a.parents == b.parents
        && a.latest.len() == b.latest.len()
        && a.latest
            .iter()
            .zip(&b.latest)
            .all(|((ka, va), (kb, vb))| ka == kb && va.value == vb.value)
        && a.metrics.len() == b.metrics.len()
        && a.metrics
            .iter()
            .zip(&b.metrics)
            .all(|((ka, ma), (kb, mb))| {
                ka == kb
                    && ma.samples.len() == mb.samples.len()
                    && ma
                        .samples
                        .iter()
                        .zip(&mb.samples)
                        .all(|(sa, sb)| sa.value == sb.value)
            })
}

#[cfg(test)]
mod tests {
    use scope_schemas::Metric;

    use super::*;

    fn node(id: &str, value: &str, ts: i64) -> Node {
        let mut n = Node::new("process", id).with_latest("name", value, ts);
        n.metrics.insert("cpu".into(), Metric::single(ts, 1.0));
        n
    }

    fn ids(nodes: &[Node]) -> Vec<&str> {
        nodes.iter().map(|n| n.id.as_str()).collect()
    }

    #[test]
    fn upserts_changes_and_removes_vanished_nodes() {
        let mut tracker = DeltaTracker::new("h1", "process");
        let d = tracker.delta(
            &[node("h1;1", "a", 1), node("h1;2", "b", 1)],
            false,
            10,
            100,
        );
        assert_eq!(ids(&d.upserts), ["h1;1", "h1;2"]);
        assert!(d.removals.is_empty());
        assert_eq!(
            (
                d.host_id.as_str(),
                d.reporter.as_str(),
                d.seq,
                d.full,
                d.timestamp_us
            ),
            ("h1", "process", 10, false, 100)
        );

        // Same values, newer timestamps: nothing to send. A change and a new node are sent.
        let d = tracker.delta(
            &[
                node("h1;1", "a", 2),
                node("h1;2", "B", 2),
                node("h1;3", "c", 2),
            ],
            false,
            11,
            200,
        );
        assert_eq!(ids(&d.upserts), ["h1;2", "h1;3"]);
        assert!(d.removals.is_empty());

        // A node vanished.
        let d = tracker.delta(
            &[node("h1;2", "B", 3), node("h1;3", "c", 3)],
            false,
            12,
            300,
        );
        assert!(d.upserts.is_empty());
        assert_eq!(d.removals, ["h1;1"]);

        // A metric value changed.
        let mut busy = node("h1;3", "c", 4);
        busy.metrics.insert("cpu".into(), Metric::single(4, 50.0));
        let d = tracker.delta(&[node("h1;2", "B", 4), busy], false, 13, 400);
        assert_eq!(ids(&d.upserts), ["h1;3"]);

        // Full: everything, no removals.
        let d = tracker.delta(&[node("h1;2", "B", 5)], true, 14, 500);
        assert!(d.full);
        assert_eq!(ids(&d.upserts), ["h1;2"]);
        assert!(d.removals.is_empty());
        // The full delta is the new reference: the node it dropped is not removed again.
        let d = tracker.delta(&[node("h1;2", "B", 6)], false, 15, 600);
        assert!(d.upserts.is_empty() && d.removals.is_empty());
    }

    #[test]
    fn full_every_n_starting_with_the_first() {
        let mut schedule = FullSchedule::new(3);
        let fulls: Vec<bool> = (0..7).map(|_| schedule.next_is_full()).collect();
        assert_eq!(fulls, [true, false, false, true, false, false, true]);
        let mut every = FullSchedule::new(1);
        assert!((0..3).all(|_| every.next_is_full()));
    }

    #[test]
    fn sequence_counts_up_from_the_clock() {
        let mut seq = Sequence::starting_at(1_700_000_000_000_000);
        assert_eq!(seq.next_seq(), 1_700_000_000_000_000);
        assert_eq!(seq.next_seq(), 1_700_000_000_000_001);
    }
}
