//! `GET /api/report` in Weave Scope's report shape (its `report.Report` as JSON), which Scope's
//! own tooling and tests read (`.Process.nodes`): one key per Scope topology (`Endpoint`,
//! `Process`, `Host`, `Container`, `ContainerImage`, `Pod`, `Service`, `Deployment`, ...),
//! each with its nodes keyed by Scope's node ids, and each node's `latest` (metadata with its
//! time), `sets`, `metrics` (samples), `parents` (by Scope topology) and `adjacency`.
//!
//! Scope's report is what its probes sent, before rendering; ours is made from the rendered
//! views of one snapshot, so what it holds is what the views hold: pseudo nodes are left out
//! (they are not reported by anyone), and an endpoint's id keeps its host
//! (`<host>;<addr>;<port>`), since this pipeline scopes every end to the host that saw it.

use std::collections::{BTreeMap, HashSet};

use scope_schemas::{RenderedNode, View};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{samples::rfc3339, topology::view_by_id};
use crate::render::Rendered;

/// A topology of Scope's report.
struct Topology {
    /// Its key in the report: `Process`.
    key: &'static str,
    /// Its name in a node's `topology` and in `parents`: `process`.
    name: &'static str,
    label: &'static str,
    label_plural: &'static str,
    shape: &'static str,
}

const fn topology(
    key: &'static str,
    name: &'static str,
    label: &'static str,
    label_plural: &'static str,
    shape: &'static str,
) -> Topology {
    Topology {
        key,
        name,
        label,
        label_plural,
        shape,
    }
}

const ENDPOINT: Topology = topology("Endpoint", "endpoint", "", "", "");
const PROCESS: Topology = topology("Process", "process", "process", "processes", "square");
const HOST: Topology = topology("Host", "host", "host", "hosts", "circle");
const CONTAINER: Topology = topology(
    "Container",
    "container",
    "container",
    "containers",
    "hexagon",
);
const CONTAINER_IMAGE: Topology = topology(
    "ContainerImage",
    "container_image",
    "image",
    "images",
    "hexagon",
);
const POD: Topology = topology("Pod", "pod", "pod", "pods", "heptagon");
const SERVICE: Topology = topology("Service", "service", "service", "services", "heptagon");
/// The controllers of the `kube-controllers` view, by the kind in their node id
/// (`<cluster>/<uid>;<deployment>`).
const CONTROLLERS: [Topology; 6] = [
    topology(
        "Deployment",
        "deployment",
        "deployment",
        "deployments",
        "heptagon",
    ),
    topology(
        "DaemonSet",
        "daemon_set",
        "daemonset",
        "daemonsets",
        "pentagon",
    ),
    topology(
        "StatefulSet",
        "stateful_set",
        "stateful set",
        "stateful sets",
        "octagon",
    ),
    topology("CronJob", "cron_job", "cron job", "cron jobs", "triangle"),
    topology("Job", "job", "job", "jobs", "triangle"),
    topology(
        "ReplicaSet",
        "replica_set",
        "replica set",
        "replica sets",
        "triangle",
    ),
];

/// The report topology of a node of `view`; none for views Scope renders but does not
/// report (processes by name, containers by DNS name) and for a bare pod in the controllers
/// view (it is in `Pod`).
fn topology_of(view: View, id: &str) -> Option<&'static Topology> {
    match view {
        View::Endpoints => Some(&ENDPOINT),
        View::Processes => Some(&PROCESS),
        View::Hosts => Some(&HOST),
        View::Containers => Some(&CONTAINER),
        View::ContainersByImage => Some(&CONTAINER_IMAGE),
        View::Pods => Some(&POD),
        View::Services => Some(&SERVICE),
        View::KubeControllers => {
            let kind = id.rsplit_once(";<")?.1.strip_suffix('>')?;
            CONTROLLERS.iter().find(|t| t.name == kind)
        }
        View::ProcessesByName | View::ContainersByHostname => None,
    }
}

/// Metadata Scope reports as a set (several values), which we render joined by ", ".
const SET_KEYS: [&str; 3] = [
    "local_networks",
    "docker_container_ips",
    "docker_container_ports",
];

#[derive(Serialize)]
struct Latest {
    timestamp: String,
    value: String,
}

#[derive(Serialize)]
struct Sample {
    date: String,
    value: f64,
}

#[derive(Serialize)]
struct Metric {
    samples: Vec<Sample>,
    min: f64,
    max: f64,
}

#[derive(Serialize)]
struct ReportNode {
    id: String,
    topology: &'static str,
    /// Scope's `children` are its probes' own grouping, always null in its reports.
    children: Option<()>,
    latest: BTreeMap<String, Latest>,
    sets: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metrics: BTreeMap<String, Metric>,
    parents: Option<BTreeMap<&'static str, Vec<String>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    adjacency: Vec<String>,
}

/// The report of one rendered snapshot (or of none: every topology empty).
pub fn report(rendered: Option<&Rendered>) -> Value {
    let mut nodes: BTreeMap<&'static str, BTreeMap<String, ReportNode>> = BTreeMap::new();
    if let Some(rendered) = rendered {
        let at = rfc3339(rendered.snapshot_time_us);
        for (&view, rendered_nodes) in &rendered.views {
            let pseudo: HashSet<&str> = rendered_nodes
                .iter()
                .filter(|n| n.pseudo)
                .map(|n| n.id.as_str())
                .collect();
            for node in rendered_nodes.iter().filter(|n| !n.pseudo) {
                if let Some(topology) = topology_of(view, &node.id) {
                    let reported = report_node(rendered, view, node, topology, &at, &pseudo);
                    nodes
                        .entry(topology.key)
                        .or_default()
                        .insert(node.id.clone(), reported);
                }
            }
        }
    }
    let mut report = Map::new();
    for topology in [
        &ENDPOINT,
        &PROCESS,
        &HOST,
        &CONTAINER,
        &CONTAINER_IMAGE,
        &POD,
        &SERVICE,
    ]
    .into_iter()
    .chain(&CONTROLLERS)
    {
        let mut entry = json!({ "nodes": nodes.remove(topology.key).unwrap_or_default() });
        if !topology.label.is_empty() {
            entry["label"] = topology.label.into();
            entry["label_plural"] = topology.label_plural.into();
            entry["shape"] = topology.shape.into();
        }
        report.insert(topology.key.into(), entry);
    }
    let ts = rendered.map_or_else(String::new, |r| rfc3339(r.snapshot_time_us));
    report.insert("ID".into(), ts.clone().into());
    report.insert("TS".into(), ts.into());
    report.insert("Plugins".into(), json!([]));
    report.insert("Sampling".into(), json!({ "Count": 0, "Total": 0 }));
    Value::Object(report)
}

fn report_node(
    rendered: &Rendered,
    view: View,
    node: &RenderedNode,
    topology: &'static Topology,
    at: &str,
    pseudo: &HashSet<&str>,
) -> ReportNode {
    let graph = rendered.graphs.get(&view);
    let mut latest = BTreeMap::new();
    let mut sets = BTreeMap::new();
    for (key, value) in node.metadata.iter().filter(|(_, v)| !v.is_empty()) {
        if SET_KEYS.contains(&key.as_str()) {
            sets.insert(key.clone(), value.split(", ").map(str::to_owned).collect());
        } else {
            let value = value.clone();
            let timestamp = at.to_owned();
            latest.insert(key.clone(), Latest { timestamp, value });
        }
    }
    let metrics = graph
        .and_then(|g| g.metrics.get(&node.id))
        .into_iter()
        .flatten()
        .map(|(id, value)| {
            let samples = vec![Sample {
                date: at.to_owned(),
                value: *value,
            }];
            let metric = Metric {
                samples,
                min: value.min(0.0),
                max: value.max(0.0),
            };
            (id.clone(), metric)
        })
        .collect();
    let mut parents: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let of = graph.and_then(|g| g.parents.get(&node.id)).into_iter();
    for (parent_view, id) in of.flatten() {
        let parent_topology = view_by_id(parent_view).and_then(|v| topology_of(v, id));
        if let Some(parent_topology) = parent_topology {
            parents
                .entry(parent_topology.name)
                .or_default()
                .push(id.clone());
        }
    }
    // Scope's reporters stamp every node with its host's node id.
    let host = match view {
        View::Hosts => Some(node.id.clone()),
        _ => parents
            .get(HOST.name)
            .and_then(|hosts| hosts.first())
            .cloned(),
    };
    if let Some(host) = host {
        let timestamp = at.to_owned();
        latest.insert(
            "host_node_id".into(),
            Latest {
                timestamp,
                value: host,
            },
        );
    }
    ReportNode {
        id: node.id.clone(),
        topology: topology.name,
        children: None,
        latest,
        sets: (!sets.is_empty()).then_some(sets),
        metrics,
        parents: (!parents.is_empty()).then_some(parents),
        adjacency: node
            .adjacency
            .iter()
            .filter(|peer| !pseudo.contains(peer.as_str()))
            .cloned()
            .collect(),
    }
}
