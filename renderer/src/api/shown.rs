//! A view's nodes as one set of options shows them, built once per rendered snapshot and
//! shared by every listing and websocket that asks for them: the JSON of each node, the
//! listing, the websocket's first message and the diffs between snapshots.
//!
//! Building a 10,000-node view's summaries and their JSON takes about a tenth of a second;
//! Weave Scope (and this API before) paid that per request and per socket. Here it is paid
//! once per snapshot, view and options, and between two snapshots only for the nodes whose
//! inputs changed (usually the few whose metrics moved): the others reuse the previous
//! snapshot's JSON, found while that snapshot is still held.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    fmt::Write as _,
    sync::{Arc, Mutex, OnceLock, Weak},
};

use axum::body::Bytes;
use scope_schemas::{RenderedNode, View};

use super::{
    scope_json::NodeSummary,
    topology::{self, Options},
};
use crate::{Error, render::Rendered};

/// How many bytes of node JSON the cache keeps, over every snapshot, view and options.
const CACHE_BYTES: usize = 256 << 20;
/// Entries kept at most, however small: every view and a few option sets for the last two
/// snapshots, and some moments of time travel.
const ENTRIES: usize = 128;
/// Diffs kept: one per view and options for the last few snapshots is plenty.
const DIFFS: usize = 64;

/// What identifies a [`Shown`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    snapshot_time_us: i64,
    view: View,
    options: Options,
}

pub struct Shown {
    key: Key,
    /// The snapshot shown, while something else holds it, to compare the next one with.
    rendered: Weak<Rendered>,
    /// Each shown node's JSON (Scope's `NodeSummary`), by id.
    nodes: BTreeMap<String, Arc<str>>,
    listing: OnceLock<Bytes>,
    reset: OnceLock<Bytes>,
}

impl Shown {
    pub fn snapshot_time_us(&self) -> i64 {
        self.key.snapshot_time_us
    }

    /// `{"nodes": {...}}`, the answer of `GET /api/topology/{view}`.
    pub fn listing(&self) -> Bytes {
        self.listing
            .get_or_init(|| {
                let mut json = String::with_capacity(self.json_bytes() + 16);
                json.push_str("{\"nodes\":{");
                push_joined(&mut json, &self.nodes, |json, (id, node)| {
                    push_string(json, id);
                    json.push(':');
                    json.push_str(node);
                });
                json.push_str("}}");
                Bytes::from(json)
            })
            .clone()
    }

    /// A websocket's first message: every node, `{"add": [...], "reset": true}`.
    pub fn reset(&self) -> Bytes {
        self.reset
            .get_or_init(|| {
                let added: Vec<&str> = self.nodes.values().map(|n| &**n).collect();
                Bytes::from(diff_json(&added, &[], &[], true))
            })
            .clone()
    }

    /// What turns `previous` into this, or None when nothing changed.
    fn diff_from(&self, previous: &Shown) -> Option<Bytes> {
        let mut add = Vec::new();
        let mut update = Vec::new();
        for (id, node) in &self.nodes {
            match previous.nodes.get(id) {
                None => add.push(&**node),
                Some(old) if !Arc::ptr_eq(old, node) && old != node => update.push(&**node),
                Some(_) => {}
            }
        }
        let remove: Vec<&str> = previous
            .nodes
            .keys()
            .filter(|id| !self.nodes.contains_key(*id))
            .map(String::as_str)
            .collect();
        (!add.is_empty() || !update.is_empty() || !remove.is_empty())
            .then(|| Bytes::from(diff_json(&add, &update, &remove, false)))
    }

    fn json_bytes(&self) -> usize {
        self.nodes
            .iter()
            .map(|(id, node)| id.len() + node.len() + 4)
            .sum()
    }
}

/// The summaries and diffs built so far, bounded by their bytes.
#[derive(Default)]
pub struct ShownCache {
    entries: Mutex<Entries>,
    /// By the shown snapshot's key and the time of the one it is diffed from.
    diffs: Mutex<VecDeque<((Key, i64), SharedDiff)>>,
}

/// A diff, built by the first socket that needs it.
type SharedDiff = Arc<OnceLock<Option<Bytes>>>;

#[derive(Default)]
struct Entries {
    /// Least recently used first.
    order: VecDeque<(Key, Arc<tokio::sync::OnceCell<Arc<Shown>>>)>,
    bytes: usize,
}

impl ShownCache {
    /// `view` of `rendered` as `options` show it; built by the first caller, whom the
    /// others wait for.
    pub async fn get(
        &self,
        rendered: &Arc<Rendered>,
        view: View,
        options: &Options,
    ) -> Result<Arc<Shown>, Error> {
        let key = Key {
            snapshot_time_us: rendered.snapshot_time_us,
            view,
            options: options.clone(),
        };
        let (cell, previous) = self.cell(&key);
        let shown = cell
            .get_or_try_init(|| async {
                let rendered = Arc::clone(rendered);
                let built = tokio::task::spawn_blocking(move || {
                    Arc::new(build(key, &rendered, previous.as_deref()))
                })
                .await
                .map_err(|source| Error::Task {
                    what: "building a view's summaries",
                    source,
                })?;
                self.account(&built);
                Ok::<_, Error>(built)
            })
            .await?;
        Ok(Arc::clone(shown))
    }

    /// What turns `previous` into `current` (the same view and options), built once for
    /// every socket that shows both; None when nothing changed.
    pub fn diff(&self, previous: &Shown, current: &Shown) -> Option<Bytes> {
        let key = (current.key.clone(), previous.key.snapshot_time_us);
        let cell = {
            let mut diffs = self.diffs.lock().unwrap_or_else(|e| e.into_inner());
            match diffs.iter().find(|(k, _)| *k == key) {
                Some((_, cell)) => Arc::clone(cell),
                None => {
                    let cell = Arc::new(OnceLock::new());
                    diffs.push_back((key, Arc::clone(&cell)));
                    if diffs.len() > DIFFS {
                        diffs.pop_front();
                    }
                    cell
                }
            }
        };
        cell.get_or_init(|| current.diff_from(previous)).clone()
    }

    /// The cell of `key`, marked as just used, and the newest built one of an earlier
    /// snapshot with the same view and options, to reuse the JSON of unchanged nodes.
    fn cell(&self, key: &Key) -> (Arc<tokio::sync::OnceCell<Arc<Shown>>>, Option<Arc<Shown>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let previous = entries
            .order
            .iter()
            .filter(|(k, _)| {
                k.view == key.view
                    && k.options == key.options
                    && k.snapshot_time_us < key.snapshot_time_us
            })
            .filter_map(|(_, cell)| cell.get())
            .max_by_key(|shown| shown.key.snapshot_time_us)
            .cloned();
        let cell = match entries.order.iter().position(|(k, _)| k == key) {
            Some(at) => {
                let entry = entries.order.remove(at).expect("a found position");
                let cell = Arc::clone(&entry.1);
                entries.order.push_back(entry);
                cell
            }
            None => {
                let cell = Arc::new(tokio::sync::OnceCell::new());
                entries.order.push_back((key.clone(), Arc::clone(&cell)));
                cell
            }
        };
        (cell, previous)
    }

    /// Counts a built entry, and forgets the least recently used ones beyond the bound.
    fn account(&self, built: &Shown) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.bytes += built.json_bytes();
        while (entries.bytes > CACHE_BYTES && entries.order.len() > 1)
            || entries.order.len() > ENTRIES
        {
            let Some((_, cell)) = entries.order.pop_front() else {
                break;
            };
            if let Some(evicted) = cell.get() {
                entries.bytes = entries.bytes.saturating_sub(evicted.json_bytes());
            }
        }
    }
}

/// Builds the shown nodes' JSON, reusing `previous`'s for nodes whose inputs are the same.
fn build(key: Key, rendered: &Arc<Rendered>, previous: Option<&Shown>) -> Shown {
    // A summary has string keys and no types serde_json refuses, so this cannot fail.
    let json = |node: &NodeSummary| serde_json::to_string(node).unwrap_or_else(|_| "null".into());
    let nodes: BTreeMap<String, Arc<str>> = if key.options.groups() {
        topology::summaries(rendered, key.view, &key.options)
            .into_iter()
            .map(|(id, node)| (id, Arc::from(json(&node))))
            .collect()
    } else {
        let shown = topology::shown_nodes(rendered, key.view, &key.options);
        let ids: HashSet<&str> = shown.iter().map(|n| n.id.as_str()).collect();
        let reuse = previous.and_then(|p| {
            let before = p.rendered.upgrade()?;
            // An edge to a node the options hid is pruned, so a node's JSON depends on
            // which others are shown: reuse only when the same nodes are.
            (p.nodes.len() == ids.len() && p.nodes.keys().all(|id| ids.contains(id.as_str())))
                .then_some((p, before))
        });
        shown
            .iter()
            .map(|node| {
                let kept = reuse.as_ref().and_then(|(p, before)| {
                    same_inputs(before, rendered, key.view, node)
                        .then(|| p.nodes.get(&node.id).cloned())
                        .flatten()
                });
                let json = kept.unwrap_or_else(|| {
                    let mut summary = topology::summary(rendered, key.view, node);
                    summary.adjacency.retain(|peer| ids.contains(peer.as_str()));
                    Arc::from(json(&summary))
                });
                (node.id.clone(), json)
            })
            .collect()
    };
    Shown {
        key,
        rendered: Arc::downgrade(rendered),
        nodes,
        listing: OnceLock::new(),
        reset: OnceLock::new(),
    }
}

/// Whether `node` of `after` summarises as it did in `before`: the same node (but for its
/// snapshot time), metrics and parents, and its parents' labels.
fn same_inputs(before: &Rendered, after: &Rendered, view: View, node: &RenderedNode) -> bool {
    let Some(old) = topology::find(before, view, &node.id) else {
        return false;
    };
    let same_node = old.label == node.label
        && old.label_minor == node.label_minor
        && old.rank == node.rank
        && old.shape == node.shape
        && old.pseudo == node.pseudo
        && old.adjacency == node.adjacency
        && old.metadata == node.metadata;
    if !same_node {
        return false;
    }
    let (graph_before, graph_after) = (before.graphs.get(&view), after.graphs.get(&view));
    let parents_before = graph_before.and_then(|g| g.parents.get(&node.id));
    let parents_after = graph_after.and_then(|g| g.parents.get(&node.id));
    graph_before.and_then(|g| g.metrics.get(&node.id))
        == graph_after.and_then(|g| g.metrics.get(&node.id))
        && parents_before == parents_after
        && parents_after.is_none_or(|parents| {
            parents.iter().all(|(view, id)| {
                topology::parent_label(before, view, id) == topology::parent_label(after, view, id)
            })
        })
}

/// Scope's `Diff` (`{"add", "update", "remove", "reset"}`), from nodes already in JSON.
fn diff_json(add: &[&str], update: &[&str], remove: &[&str], reset: bool) -> String {
    let len: usize = add.iter().chain(update).map(|n| n.len() + 1).sum::<usize>()
        + remove.iter().map(|id| id.len() + 3).sum::<usize>();
    let mut json = String::with_capacity(len + 64);
    let list = |json: &mut String, name: &str, items: &[&str], quote: bool| {
        let _ = write!(json, "\"{name}\":");
        if items.is_empty() {
            json.push_str("null");
            return;
        }
        json.push('[');
        push_joined(json, items, |json, item| {
            if quote {
                push_string(json, item);
            } else {
                json.push_str(item);
            }
        });
        json.push(']');
    };
    json.push('{');
    list(&mut json, "add", add, false);
    json.push(',');
    list(&mut json, "update", update, false);
    json.push(',');
    list(&mut json, "remove", remove, true);
    if reset {
        json.push_str(",\"reset\":true");
    }
    json.push('}');
    json
}

/// Each of `items` as `push` writes it, separated by commas.
fn push_joined<T>(
    json: &mut String,
    items: impl IntoIterator<Item = T>,
    mut push: impl FnMut(&mut String, T),
) {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push(json, item);
    }
}

/// `text` as a JSON string.
fn push_string(json: &mut String, text: &str) {
    json.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Graph;

    fn node(view: View, id: &str, label: &str, adjacency: &[&str]) -> RenderedNode {
        RenderedNode {
            view: view.name().into(),
            id: id.into(),
            label: label.into(),
            label_minor: String::new(),
            rank: String::new(),
            shape: "square".into(),
            pseudo: false,
            adjacency: adjacency.iter().map(|a| (*a).into()).collect(),
            metadata: BTreeMap::new(),
            snapshot_time_us: 0,
        }
    }

    /// Processes `a`, `b`, `c` (a -> b) on host `h` labelled `host`, `a`'s CPU at `cpu`.
    fn rendered(time: i64, host: &str, cpu: f64) -> Arc<Rendered> {
        let processes = vec![
            node(View::Processes, "a", "a", &["b"]),
            node(View::Processes, "b", "b", &[]),
            node(View::Processes, "c", "c", &[]),
        ];
        let graph = Graph {
            metrics: [("a".into(), vec![("process_cpu_usage_percent".into(), cpu)])].into(),
            parents: ["a", "b", "c"]
                .into_iter()
                .map(|id| (id.into(), vec![("hosts".into(), "h".into())]))
                .collect(),
            ..Graph::default()
        };
        Arc::new(Rendered {
            snapshot_time_us: time,
            views: [
                (View::Processes, processes),
                (View::Hosts, vec![node(View::Hosts, "h", host, &[])]),
            ]
            .into(),
            graphs: [(View::Processes, graph)].into(),
            connections: 1,
            files: Vec::new(),
            rejected_cidrs: Vec::new(),
        })
    }

    fn key(time: i64) -> Key {
        Key {
            snapshot_time_us: time,
            view: View::Processes,
            options: Options::default(),
        }
    }

    #[test]
    fn only_changed_nodes_are_rebuilt_and_sent() {
        let first = rendered(1, "host", 1.0);
        let shown1 = build(key(1), &first, None);
        // a's CPU moved: a is rebuilt, b and c reuse their JSON.
        let second = rendered(2, "host", 2.0);
        let shown2 = build(key(2), &second, Some(&shown1));
        assert!(!Arc::ptr_eq(&shown1.nodes["a"], &shown2.nodes["a"]));
        assert!(Arc::ptr_eq(&shown1.nodes["b"], &shown2.nodes["b"]));
        assert_eq!(shown2.nodes, build(key(2), &second, None).nodes);
        let diff: serde_json::Value =
            serde_json::from_slice(&shown2.diff_from(&shown1).expect("a changed")).unwrap();
        assert_eq!(diff["update"].as_array().unwrap().len(), 1, "{diff}");
        assert_eq!(diff["update"][0]["id"], "a");
        assert!(diff["add"].is_null() && diff["remove"].is_null());

        // The host's label is in every process's parents: all are rebuilt.
        let third = rendered(3, "renamed", 2.0);
        let shown3 = build(key(3), &third, Some(&shown2));
        assert_eq!(shown3.nodes, build(key(3), &third, None).nodes);
        let diff: serde_json::Value =
            serde_json::from_slice(&shown3.diff_from(&shown2).expect("labels changed")).unwrap();
        assert_eq!(diff["update"].as_array().unwrap().len(), 3, "{diff}");
        assert_eq!(diff["update"][0]["parents"][0]["label"], "renamed");

        // Nothing changed: no diff.
        let fourth = rendered(4, "renamed", 2.0);
        assert!(
            build(key(4), &fourth, Some(&shown3))
                .diff_from(&shown3)
                .is_none()
        );
    }

    #[test]
    fn a_dropped_snapshot_is_not_compared_with() {
        let shown1 = build(key(1), &rendered(1, "host", 1.0), None);
        // `rendered(1, ..)` is gone: the next build cannot reuse and builds all anew.
        let second = rendered(2, "host", 1.0);
        let shown2 = build(key(2), &second, Some(&shown1));
        assert!(!Arc::ptr_eq(&shown1.nodes["b"], &shown2.nodes["b"]));
        assert!(shown2.diff_from(&shown1).is_none());
    }

    /// Small views would never fill the bytes: the count bounds them, every tick adding one.
    #[tokio::test]
    async fn the_cache_is_bounded_by_count_too() {
        let cache = ShownCache::default();
        for t in 0..3 * ENTRIES as i64 {
            let shown = cache
                .get(
                    &rendered(t, "host", 1.0),
                    View::Processes,
                    &Options::default(),
                )
                .await
                .unwrap();
            assert_eq!(shown.snapshot_time_us(), t);
        }
        let entries = cache.entries.lock().unwrap();
        assert_eq!(entries.order.len(), ENTRIES);
        assert_eq!(entries.order[0].0.snapshot_time_us, 2 * ENTRIES as i64);
    }

    #[test]
    fn listing_and_reset_are_scopes_shapes() {
        let shown = build(key(1), &rendered(1, "host", 1.0), None);
        let listing: serde_json::Value = serde_json::from_slice(&shown.listing()).unwrap();
        assert_eq!(listing["nodes"]["a"]["adjacency"], serde_json::json!(["b"]));
        assert_eq!(listing["nodes"].as_object().unwrap().len(), 3);
        let reset: serde_json::Value = serde_json::from_slice(&shown.reset()).unwrap();
        assert_eq!(reset["reset"], true);
        assert_eq!(reset["add"].as_array().unwrap().len(), 3);
        assert!(reset["update"].is_null() && reset["remove"].is_null());
    }
}
