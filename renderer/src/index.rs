//! What the HTTP API looks up in a rendered snapshot, computed once by the render instead of
//! on the way from a render to the websockets: a digest of each node's summary, which nodes
//! have an edge, and about how many bytes the snapshot holds.
//!
//! A websocket's delta after a render must name the nodes whose summary changed. Comparing
//! each node's fields, metrics, parents and parents' labels with the previous snapshot's took
//! half of a 10,000-process delta's 110 ms, and the set of connected nodes a fifth; with a
//! digest per node the delta compares two numbers, and rebuilds only the nodes that changed.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    hash::{BuildHasher, Hash, Hasher},
    mem::size_of,
};

use scope_schemas::{RenderedNode, View};

use crate::render::{Edge, Graph, Rendered};

/// Deterministic, so that two snapshots' digests compare; the quality variant, so that a
/// node's text cannot be chosen to collide with another's cheaply.
const HASHER: foldhash::quality::FixedState = foldhash::quality::FixedState::with_seed(0x5c09e);

/// The [`Rendered::index`] of a snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Index {
    views: BTreeMap<View, ViewIndex>,
    heap_bytes: usize,
}

/// One view's part of the [`Index`], in the order of its nodes (by id).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewIndex {
    /// A hash of everything a node's summary shows but the pruning of its adjacency to the
    /// shown nodes: its fields, metrics, parents and their labels. Equal digests of one id in
    /// two snapshots mean an equal summary, but for a collision of 64-bit hashes.
    pub digests: Vec<u64>,
    /// Whether the node has an edge, to or from it: what `?unconnected=hide` shows.
    pub connected: Vec<bool>,
}

impl Index {
    /// The index of `rendered` as it is now (its own `index` is not read).
    pub fn of(rendered: &Rendered) -> Index {
        let views = rendered
            .views
            .iter()
            .map(|(view, nodes)| (*view, ViewIndex::of(rendered, *view, nodes)))
            .collect();
        Index {
            views,
            heap_bytes: heap_bytes(rendered),
        }
    }

    /// The index of `view` in `rendered`: the one the render computed, or, for a snapshot
    /// put together without it, one computed now.
    pub fn view(rendered: &Rendered, view: View) -> Cow<'_, ViewIndex> {
        let nodes = rendered.views.get(&view).map_or(&[][..], Vec::as_slice);
        match rendered.index.views.get(&view) {
            Some(index) if index.digests.len() == nodes.len() => Cow::Borrowed(index),
            _ => Cow::Owned(ViewIndex::of(rendered, view, nodes)),
        }
    }

    /// About how many bytes the snapshot holds: its strings and collections, not the
    /// allocator's overhead, which is the same for every snapshot.
    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }
}

impl ViewIndex {
    /// The index of `nodes`, `view`'s nodes in `rendered`.
    pub fn of(rendered: &Rendered, view: View, nodes: &[RenderedNode]) -> ViewIndex {
        let graph = rendered.graphs.get(&view);
        let digests = nodes
            .iter()
            .map(|node| digest(rendered, graph, node))
            .collect();
        // The nodes are sorted by id: an edge's destination is found by a binary search,
        // with no set of ids to hash and allocate.
        let mut connected = vec![false; nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            if node.adjacency.is_empty() {
                continue;
            }
            connected[i] = true;
            for dst in &node.adjacency {
                if let Ok(j) = nodes.binary_search_by(|n| n.id.as_str().cmp(dst)) {
                    connected[j] = true;
                }
            }
        }
        ViewIndex { digests, connected }
    }
}

/// What [`ViewIndex::digests`] says of `node`.
fn digest(rendered: &Rendered, graph: Option<&Graph>, node: &RenderedNode) -> u64 {
    let mut hasher = HASHER.build_hasher();
    // Every field named, so that a new one cannot be left out of the digest unnoticed.
    let RenderedNode {
        view: _,
        id,
        label,
        label_minor,
        rank,
        shape,
        pseudo,
        adjacency,
        metadata,
        // The only field that changes with every snapshot, and no summary shows it.
        snapshot_time_us: _,
    } = node;
    for text in [id, label, label_minor, rank, shape] {
        text.hash(&mut hasher);
    }
    (pseudo, adjacency, metadata).hash(&mut hasher);
    if let Some(metrics) = graph.and_then(|g| g.metrics.get(id)) {
        for (metric, value) in metrics {
            metric.hash(&mut hasher);
            hasher.write_u64(value.to_bits());
        }
    }
    hasher.write_u8(0xff);
    if let Some(parents) = graph.and_then(|g| g.parents.get(id)) {
        for (view, parent) in parents {
            (view, parent, parent_label(rendered, view, parent)).hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// The label of node `id` of the view named `view`, or the id when there is no such node:
/// what a summary shows of a parent.
pub fn parent_label<'a>(rendered: &'a Rendered, view: &str, id: &'a str) -> &'a str {
    View::ALL
        .into_iter()
        .find(|v| v.name() == view)
        .and_then(|v| find(rendered, v, id))
        .map_or(id, |node| node.label.as_str())
}

/// Node `id` of `view`, found in its id-sorted nodes.
pub fn find<'a>(rendered: &'a Rendered, view: View, id: &str) -> Option<&'a RenderedNode> {
    let nodes = rendered.views.get(&view)?;
    nodes
        .binary_search_by(|n| n.id.as_str().cmp(id))
        .ok()
        .map(|i| &nodes[i])
}

fn heap_bytes(rendered: &Rendered) -> usize {
    let strings = |v: &[String]| {
        v.iter()
            .map(|s| s.len() + size_of::<String>())
            .sum::<usize>()
    };
    let nodes: usize = rendered
        .views
        .values()
        .flatten()
        .map(|n| {
            size_of::<RenderedNode>()
                + n.view.len()
                + n.id.len()
                + n.label.len()
                + n.label_minor.len()
                + n.rank.len()
                + n.shape.len()
                + strings(&n.adjacency)
                + n.metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 2 * size_of::<String>())
                    .sum::<usize>()
        })
        .sum();
    let graphs: usize = rendered
        .graphs
        .values()
        .map(|g| {
            g.edges
                .iter()
                .map(|e| size_of::<Edge>() + e.src.len() + e.dst.len() + e.ports.len() * 16)
                .sum::<usize>()
                + g.metrics
                    .iter()
                    .map(|(id, m)| id.len() + m.iter().map(|(k, _)| k.len() + 32).sum::<usize>())
                    .sum::<usize>()
                + g.parents
                    .iter()
                    .map(|(id, p)| {
                        id.len() + p.iter().map(|(v, p)| v.len() + p.len() + 48).sum::<usize>()
                    })
                    .sum::<usize>()
        })
        .sum();
    let digests: usize = rendered
        .views
        .values()
        .map(|nodes| nodes.len() * (size_of::<u64>() + size_of::<bool>()))
        .sum();
    nodes + graphs + digests
}
