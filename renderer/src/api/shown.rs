//! A view's nodes as one set of options shows them, built once per rendered snapshot and
//! shared by every listing and websocket that asks for them: the JSON of each node, the
//! listing, the websocket's first message and the diffs between snapshots.
//!
//! Building a 10,000-node view's summaries and their JSON takes about a tenth of a second;
//! Weave Scope (and this API before) paid that per request and per socket. Here it is paid
//! once per snapshot, view and options, and between two snapshots only for the nodes whose
//! summary changed (usually the few whose metrics moved), told by the digests the render
//! computed ([`crate::index`]): the others reuse the previous snapshot's JSON. Nodes are kept
//! in id order, as the render sorts them, so pairing two snapshots' nodes is one merge.

use std::{
    collections::{HashSet, VecDeque},
    fmt::Write as _,
    sync::{Arc, Mutex, OnceLock},
};

use axum::body::Bytes;
use scope_schemas::View;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    scope_json::NodeSummary,
    topology::{self, Options},
};
use crate::{Error, index::Index, render::Rendered};

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
    /// The shown nodes, by id.
    nodes: Vec<ShownNode>,
    listing: OnceLock<Bytes>,
    /// Text a websocket sends as it is: checked as UTF-8 once, not once per socket.
    reset: OnceLock<Utf8Bytes>,
}

/// A shown node's id and JSON (Scope's `NodeSummary`), and the digest of the summary it was
/// built from; a grouped node has none and is never reused.
struct ShownNode {
    id: Arc<str>,
    digest: Option<u64>,
    json: Arc<str>,
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
                push_joined(&mut json, &self.nodes, |json, node| {
                    push_string(json, &node.id);
                    json.push(':');
                    json.push_str(&node.json);
                });
                json.push_str("}}");
                Bytes::from(json)
            })
            .clone()
    }

    /// A websocket's first message: every node, `{"add": [...], "reset": true}`.
    pub fn reset(&self) -> Utf8Bytes {
        self.reset
            .get_or_init(|| {
                let added: Vec<&str> = self.nodes.iter().map(|n| &*n.json).collect();
                Utf8Bytes::from(diff_json(&added, &[], &[], true))
            })
            .clone()
    }

    /// What turns `previous` into this, or None when nothing changed.
    fn diff_from(&self, previous: &Shown) -> Option<Utf8Bytes> {
        let (mut add, mut update, mut remove) = (Vec::new(), Vec::new(), Vec::new());
        let (mut now, mut before) = (
            self.nodes.iter().peekable(),
            previous.nodes.iter().peekable(),
        );
        loop {
            match (now.peek(), before.peek()) {
                (Some(node), Some(old)) if node.id < old.id => {
                    add.push(&*node.json);
                    now.next();
                }
                (Some(node), Some(old)) if node.id == old.id => {
                    if !Arc::ptr_eq(&node.json, &old.json) && node.json != old.json {
                        update.push(&*node.json);
                    }
                    now.next();
                    before.next();
                }
                (_, Some(old)) => {
                    remove.push(&*old.id);
                    before.next();
                }
                (Some(node), None) => {
                    add.push(&*node.json);
                    now.next();
                }
                (None, None) => break,
            }
        }
        (!add.is_empty() || !update.is_empty() || !remove.is_empty())
            .then(|| Utf8Bytes::from(diff_json(&add, &update, &remove, false)))
    }

    fn json_bytes(&self) -> usize {
        self.nodes
            .iter()
            .map(|node| node.id.len() + node.json.len() + 4)
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
type SharedDiff = Arc<OnceLock<Option<Utf8Bytes>>>;

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
    pub fn diff(&self, previous: &Shown, current: &Shown) -> Option<Utf8Bytes> {
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

/// Builds the shown nodes' JSON, reusing `previous`'s for nodes whose digest is the same.
fn build(key: Key, rendered: &Rendered, previous: Option<&Shown>) -> Shown {
    // A summary has string keys and no types serde_json refuses, so this cannot fail.
    let json = |node: &NodeSummary| -> Arc<str> {
        Arc::from(serde_json::to_string(node).unwrap_or_else(|_| "null".into()))
    };
    let nodes = if key.options.groups() {
        topology::summaries(rendered, key.view, &key.options)
            .into_iter()
            .map(|(id, node)| ShownNode {
                json: json(&node),
                id: Arc::from(id),
                digest: None,
            })
            .collect()
    } else {
        let all = rendered.views.get(&key.view).map_or(&[][..], Vec::as_slice);
        let index = Index::view(rendered, key.view);
        let shown = topology::shown_indices(rendered, key.view, &key.options);
        let is_shown = |id: &str| {
            all.binary_search_by(|n| n.id.as_str().cmp(id))
                .is_ok_and(|i| shown.binary_search(&i).is_ok())
        };
        let before = previous.map_or(&[][..], |p| p.nodes.as_slice());
        let (olds, flipped) = pair(before, shown.iter().map(|&i| all[i].id.as_str()));
        shown
            .iter()
            .zip(olds)
            .map(|(&i, old)| {
                let node = &all[i];
                let digest = index.digests[i];
                // An edge to a node the options hid is pruned: a node whose peer was shown
                // and is not (or the other way) summarises differently with the same digest.
                let reused = old.filter(|old| {
                    old.digest == Some(digest)
                        && (flipped.is_empty()
                            || !node.adjacency.iter().any(|p| flipped.contains(p.as_str())))
                });
                match reused {
                    Some(old) => ShownNode {
                        id: Arc::clone(&old.id),
                        digest: Some(digest),
                        json: Arc::clone(&old.json),
                    },
                    None => {
                        let mut summary = topology::summary(rendered, key.view, node);
                        summary.adjacency.retain(|peer| is_shown(peer));
                        ShownNode {
                            id: Arc::from(node.id.as_str()),
                            digest: Some(digest),
                            json: json(&summary),
                        }
                    }
                }
            })
            .collect()
    };
    Shown {
        key,
        nodes,
        listing: OnceLock::new(),
        reset: OnceLock::new(),
    }
}

/// Pairs each of `ids` (sorted) with the node of `before` (sorted) of the same id, and
/// lists the ids in only one of the two: the nodes shown now and not before, or before and
/// not now.
fn pair<'a>(
    before: &'a [ShownNode],
    ids: impl Iterator<Item = &'a str>,
) -> (Vec<Option<&'a ShownNode>>, HashSet<&'a str>) {
    let mut olds = Vec::new();
    let mut flipped = HashSet::new();
    let mut rest = before;
    for id in ids {
        while let Some((old, after)) = rest.split_first()
            && &*old.id < id
        {
            flipped.insert(&*old.id);
            rest = after;
        }
        match rest.split_first() {
            Some((old, after)) if &*old.id == id => {
                olds.push(Some(old));
                rest = after;
            }
            _ => {
                flipped.insert(id);
                olds.push(None);
            }
        }
    }
    flipped.extend(rest.iter().map(|old| &*old.id));
    (olds, flipped)
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
    use std::collections::BTreeMap;

    use scope_schemas::RenderedNode;

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
        with_nodes(time, host, cpu, View::Processes, processes)
    }

    /// `nodes` in `view`, on host `h` labelled `host`, `a`'s CPU at `cpu`.
    fn with_nodes(
        time: i64,
        host: &str,
        cpu: f64,
        view: View,
        nodes: Vec<RenderedNode>,
    ) -> Arc<Rendered> {
        let graph = Graph {
            metrics: [("a".into(), vec![("process_cpu_usage_percent".into(), cpu)])].into(),
            parents: nodes
                .iter()
                .map(|n| (n.id.clone(), vec![("hosts".into(), "h".into())]))
                .collect(),
            ..Graph::default()
        };
        let mut rendered = Rendered {
            snapshot_time_us: time,
            views: [
                (view, nodes),
                (View::Hosts, vec![node(View::Hosts, "h", host, &[])]),
            ]
            .into(),
            graphs: [(view, graph)].into(),
            connections: 1,
            files: Vec::new(),
            rejected_cidrs: Vec::new(),
            index: Index::default(),
        };
        rendered.index = Index::of(&rendered);
        Arc::new(rendered)
    }

    fn key(time: i64) -> Key {
        Key {
            snapshot_time_us: time,
            view: View::Processes,
            options: Options::default(),
        }
    }

    fn json<'a>(shown: &'a Shown, id: &str) -> &'a Arc<str> {
        &shown
            .nodes
            .iter()
            .find(|n| &*n.id == id)
            .expect("shown")
            .json
    }

    fn diff(now: &Shown, before: &Shown) -> serde_json::Value {
        serde_json::from_str(&now.diff_from(before).expect("a change")).unwrap()
    }

    #[test]
    fn only_changed_nodes_are_rebuilt_and_sent() {
        let first = rendered(1, "host", 1.0);
        let shown1 = build(key(1), &first, None);
        // a's CPU moved: a is rebuilt, b and c reuse their JSON, even with the snapshot
        // they were built from gone.
        drop(first);
        let second = rendered(2, "host", 2.0);
        let shown2 = build(key(2), &second, Some(&shown1));
        assert!(!Arc::ptr_eq(json(&shown1, "a"), json(&shown2, "a")));
        assert!(Arc::ptr_eq(json(&shown1, "b"), json(&shown2, "b")));
        assert_eq!(shown2.listing(), build(key(2), &second, None).listing());
        let diff2 = diff(&shown2, &shown1);
        assert_eq!(diff2["update"].as_array().unwrap().len(), 1, "{diff2}");
        assert_eq!(diff2["update"][0]["id"], "a");
        assert!(diff2["add"].is_null() && diff2["remove"].is_null());

        // The host's label is in every process's parents: all are rebuilt.
        let third = rendered(3, "renamed", 2.0);
        let shown3 = build(key(3), &third, Some(&shown2));
        assert_eq!(shown3.listing(), build(key(3), &third, None).listing());
        let diff3 = diff(&shown3, &shown2);
        assert_eq!(diff3["update"].as_array().unwrap().len(), 3, "{diff3}");
        assert_eq!(diff3["update"][0]["parents"][0]["label"], "renamed");

        // Nothing changed: no diff.
        let fourth = rendered(4, "renamed", 2.0);
        assert!(
            build(key(4), &fourth, Some(&shown3))
                .diff_from(&shown3)
                .is_none()
        );
    }

    #[test]
    fn nodes_that_come_and_go_are_added_and_removed_in_one_merge() {
        let shown1 = build(key(1), &rendered(1, "host", 1.0), None);
        let processes = vec![
            node(View::Processes, "a", "a", &["b"]),
            node(View::Processes, "b", "b", &[]),
            node(View::Processes, "bb", "bb", &[]),
            node(View::Processes, "d", "d", &[]),
        ];
        let second = with_nodes(2, "host", 1.0, View::Processes, processes);
        let shown2 = build(key(2), &second, Some(&shown1));
        assert!(Arc::ptr_eq(json(&shown1, "a"), json(&shown2, "a")));
        let diff2 = diff(&shown2, &shown1);
        let added: Vec<&str> = diff2["add"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(added, ["bb", "d"]);
        assert_eq!(diff2["remove"], serde_json::json!(["c"]));
        assert!(diff2["update"].is_null(), "{diff2}");
    }

    /// `b` turns pseudo, so `?pseudo=hide` hides it: `a`'s digest is the same, but its edge
    /// to `b` must go from what is shown.
    #[test]
    fn a_node_whose_peer_is_hidden_now_is_rebuilt() {
        let view = View::Endpoints;
        let key = |time| Key {
            snapshot_time_us: time,
            view,
            options: Options::from_query(view, &[("pseudo".into(), "hide".into())]),
        };
        let endpoints = |b_pseudo| {
            let mut nodes = vec![
                node(view, "a", "a", &["b"]),
                node(view, "b", "b", &[]),
                node(view, "c", "c", &[]),
            ];
            nodes[1].pseudo = b_pseudo;
            nodes
        };
        let shown1 = build(
            key(1),
            &with_nodes(1, "host", 1.0, view, endpoints(false)),
            None,
        );
        let a: serde_json::Value = serde_json::from_str(json(&shown1, "a")).unwrap();
        assert_eq!(a["adjacency"], serde_json::json!(["b"]));
        let second = with_nodes(2, "host", 1.0, view, endpoints(true));
        let shown2 = build(key(2), &second, Some(&shown1));
        assert_eq!(shown2.listing(), build(key(2), &second, None).listing());
        let diff2 = diff(&shown2, &shown1);
        assert_eq!(diff2["remove"], serde_json::json!(["b"]));
        assert_eq!(diff2["update"][0]["id"], "a", "{diff2}");
        assert!(diff2["update"][0]["adjacency"].is_null(), "{diff2}");
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
        let reset: serde_json::Value = serde_json::from_str(&shown.reset()).unwrap();
        assert_eq!(reset["reset"], true);
        assert_eq!(reset["add"].as_array().unwrap().len(), 3);
        assert!(reset["update"].is_null() && reset["remove"].is_null());
    }
}
