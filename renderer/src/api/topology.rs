//! The views as Weave Scope's API presents them: their names, ranks and options
//! (`GET /api/topology`), and a rendered view's nodes as `NodeSummary`s and `NodeDetails`.
//!
//! What a node is comes from the view SQL (`crate::view`): its label, metadata (`meta_`),
//! metrics (`metric_`) and parents (`parent_`). What Scope's UI needs on top is presentation,
//! kept here in one table per kind: the label, priority and type of each metadata key and
//! metric, Scope's own where Scope had the key.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use scope_schemas::{RenderedNode, View};

use super::grouping::{
    CONTAINER_LABELS, CONTROLLER_LABELS, GROUP_OPTION, Labels, POD_LABELS, SERVICE_LABELS,
    parse_group_id,
};
use super::scope_json::{
    Column, Connection, ConnectionsSummary, MetadataRow, MetricRow, NodeDetails, NodeSummary,
    NodeSummaryGroup, OptionGroup, OptionValue, Parent, Sample, TopologyDesc, TopologyStats,
};
use crate::{
    index::{Index, find, parent_label},
    render::{Edge, Rendered},
};

/// How Scope lists a view.
struct Listing {
    view: View,
    name: &'static str,
    rank: u32,
    /// Listed under this view's entry, as Scope's "by name" under "Processes".
    under: Option<View>,
    hide_if_empty: bool,
    options: &'static [Choice],
    /// Offers a union of the namespaces its nodes are in (Scope's Kubernetes views).
    namespaced: bool,
    /// Where its nodes' labels are, for their table and `?group=`; none for views whose
    /// nodes have no labels.
    labels: Option<&'static Labels>,
}

/// One option of a view: `?<id>=<value>`.
struct Choice {
    id: &'static str,
    default: &'static str,
    values: &'static [(&'static str, &'static str)],
}

const UNCONNECTED: Choice = Choice {
    id: "unconnected",
    default: "hide",
    values: &[("show", "Unconnected nodes"), ("hide", "No unconnected")],
};

const PSEUDO: Choice = Choice {
    id: "pseudo",
    default: "show",
    values: &[
        ("show", "Show unknown peers"),
        ("hide", "Hide unknown peers"),
    ],
};

const SYSTEM: Choice = Choice {
    id: "system",
    default: "application",
    values: &[
        ("all", "All"),
        ("system", "System containers"),
        ("application", "Application containers"),
    ],
};

const STOPPED: Choice = Choice {
    id: "stopped",
    default: "running",
    values: &[
        ("stopped", "Stopped containers"),
        ("running", "Running containers"),
        ("both", "Both"),
    ],
};

const UNCONTAINED: Choice = Choice {
    id: "pseudo",
    default: "hide",
    values: &[("show", "Show uncontained"), ("hide", "Hide uncontained")],
};

const UNMANAGED: Choice = Choice {
    id: "pseudo",
    default: "hide",
    values: &[("show", "Show unmanaged"), ("hide", "Hide unmanaged")],
};

/// The options of Scope's container views, in its order.
const CONTAINER_OPTIONS: &[Choice] = &[SYSTEM, STOPPED, UNCONTAINED];

fn listing(view: View) -> Listing {
    match view {
        View::Processes => Listing {
            view,
            name: "Processes",
            rank: 1,
            under: None,
            hide_if_empty: true,
            options: &[UNCONNECTED],
            namespaced: false,
            labels: None,
        },
        View::ProcessesByName => Listing {
            view,
            name: "by name",
            rank: 0,
            under: Some(View::Processes),
            hide_if_empty: true,
            options: &[UNCONNECTED],
            namespaced: false,
            labels: None,
        },
        View::Hosts => Listing {
            view,
            name: "Hosts",
            rank: 4,
            under: None,
            hide_if_empty: false,
            options: &[PSEUDO],
            namespaced: false,
            labels: None,
        },
        // Not listed by Weave Scope 1.13's API; ranked after its views.
        View::Endpoints => Listing {
            view,
            name: "Endpoints",
            rank: 5,
            under: None,
            hide_if_empty: true,
            options: &[PSEUDO],
            namespaced: false,
            labels: None,
        },
        View::Containers => Listing {
            view,
            name: "Containers",
            rank: 2,
            under: None,
            hide_if_empty: false,
            options: CONTAINER_OPTIONS,
            namespaced: false,
            labels: Some(&CONTAINER_LABELS),
        },
        View::ContainersByHostname => Listing {
            view,
            name: "by DNS name",
            rank: 0,
            under: Some(View::Containers),
            hide_if_empty: false,
            options: CONTAINER_OPTIONS,
            namespaced: false,
            labels: None,
        },
        View::ContainersByImage => Listing {
            view,
            name: "by image",
            rank: 0,
            under: Some(View::Containers),
            hide_if_empty: false,
            options: CONTAINER_OPTIONS,
            namespaced: false,
            labels: None,
        },
        View::Pods => Listing {
            view,
            name: "Pods",
            rank: 3,
            under: None,
            hide_if_empty: true,
            options: &[UNMANAGED],
            namespaced: true,
            labels: Some(&POD_LABELS),
        },
        View::KubeControllers => Listing {
            view,
            name: "Controllers",
            rank: 0,
            under: Some(View::Pods),
            hide_if_empty: true,
            options: &[UNMANAGED],
            namespaced: true,
            labels: Some(&CONTROLLER_LABELS),
        },
        View::Services => Listing {
            view,
            name: "Services",
            rank: 0,
            under: Some(View::Pods),
            hide_if_empty: true,
            options: &[UNMANAGED],
            namespaced: true,
            labels: Some(&SERVICE_LABELS),
        },
    }
}

/// A view by the id in its URL (`processes-by-name`).
pub fn view_by_id(id: &str) -> Option<View> {
    View::ALL.into_iter().find(|view| view.name() == id)
}

/// The options a request picked: Scope applies every default as soon as the query has any
/// parameter, and none when it has none (its recorded `GET /api/topology/processes` shows
/// unconnected processes, `?system=show` hides them). Unknown ids and values are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Options {
    hide_unconnected: bool,
    hide_pseudo: bool,
    /// Containers: `system` or `application` shows only those; `all` (or none) both.
    system: Option<&'static str>,
    /// Containers: `stopped` or `running` shows only those; `both` (or none) both.
    stopped: Option<&'static str>,
    /// Kubernetes views: the namespaces picked (`?namespace=a,b` or repeated); none picked
    /// shows all. Pseudo nodes belong to no namespace and stay.
    namespaces: BTreeSet<String>,
    /// Labelled views: the label whose values group the nodes (`?group=app`).
    group: Option<String>,
}

impl Options {
    pub fn from_query(view: View, query: &[(String, String)]) -> Options {
        if query.is_empty() {
            return Options::default();
        }
        let pick = |choice: &Choice| -> &'static str {
            query
                .iter()
                .find_map(|(key, value)| {
                    (key == choice.id)
                        .then(|| choice.values.iter().find(|(v, _)| v == value))
                        .flatten()
                })
                .map_or(choice.default, |(value, _)| value)
        };
        let mut options = Options::default();
        if listing(view).namespaced {
            options.namespaces = query
                .iter()
                .filter(|(key, _)| key == NAMESPACE_OPTION)
                .flat_map(|(_, value)| value.split(','))
                .filter(|namespace| !namespace.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if listing(view).labels.is_some() {
            options.group = query
                .iter()
                .find(|(key, value)| key == GROUP_OPTION && !value.is_empty())
                .map(|(_, value)| value.clone());
        }
        for choice in listing(view).options {
            match choice.id {
                "unconnected" => options.hide_unconnected = pick(choice) == "hide",
                "pseudo" => options.hide_pseudo = pick(choice) == "hide",
                "system" => options.system = Some(pick(choice)),
                "stopped" => options.stopped = Some(pick(choice)),
                _ => {}
            }
        }
        options
    }

    /// Whether the nodes are grouped by a label (`?group=`).
    pub fn groups(&self) -> bool {
        self.group.is_some()
    }

    /// Whether a node passes the container options, by its `system` and state metadata.
    fn shows_container(&self, node: &RenderedNode) -> bool {
        let system = node.metadata.get(SYSTEM_KEY).is_some_and(|v| v == "true");
        let stopped = node
            .metadata
            .get(CONTAINER_STATE_KEY)
            .is_some_and(|state| !RUNNING_STATES.contains(&state.as_str()));
        let system_ok = match self.system {
            Some("system") => system,
            Some("application") => !system,
            _ => true,
        };
        let stopped_ok = match self.stopped {
            Some("stopped") => stopped,
            Some("running") => !stopped,
            _ => true,
        };
        let namespace_ok = self.namespaces.is_empty()
            || node.pseudo
            || node
                .metadata
                .get(NAMESPACE_KEY)
                .is_some_and(|namespace| self.namespaces.contains(namespace));
        system_ok && stopped_ok && namespace_ok
    }
}

/// The union option of the Kubernetes views, and the metadata key it reads.
const NAMESPACE_OPTION: &str = "namespace";
const NAMESPACE_KEY: &str = "kubernetes_namespace";

/// Metadata keys the container options read (set by the container views' SQL).
const SYSTEM_KEY: &str = "system";
const CONTAINER_STATE_KEY: &str = "docker_container_state";
/// States of a container that count as running for `?stopped=`, as Docker names them.
const RUNNING_STATES: [&str; 3] = ["running", "paused", "restarting"];

/// `GET /api/topology`: every view with its options and the counts of `rendered`.
pub fn descriptions(rendered: Option<&Rendered>) -> Vec<TopologyDesc> {
    let describe = |listing: &Listing| {
        let stats = rendered.map(|r| stats(r, listing.view)).unwrap_or_default();
        TopologyDesc {
            name: listing.name,
            url: format!("/api/topology/{}", listing.view.name()),
            rank: listing.rank,
            hide_if_empty: listing.hide_if_empty,
            options: listing
                .options
                .iter()
                .map(|choice| OptionGroup {
                    id: choice.id,
                    default_value: choice.default,
                    select_type: None,
                    none_label: None,
                    options: choice
                        .values
                        .iter()
                        .map(|&(value, label)| OptionValue {
                            value: value.to_owned(),
                            label: label.to_owned(),
                        })
                        .collect(),
                })
                .chain(listing.namespaced.then(|| namespace_group(rendered)))
                .chain(
                    listing
                        .labels
                        .map(|labels| label_group(rendered, listing.view, labels)),
                )
                .collect(),
            stats,
            sub_topologies: Vec::new(),
        }
    };
    let listings: Vec<Listing> = View::ALL.into_iter().map(listing).collect();
    let mut top: Vec<TopologyDesc> = Vec::new();
    for parent in listings.iter().filter(|l| l.under.is_none()) {
        let mut desc = describe(parent);
        desc.sub_topologies = listings
            .iter()
            .filter(|l| l.under == Some(parent.view))
            .map(describe)
            .collect();
        top.push(desc);
    }
    top
}

/// Scope's namespace filter: every namespace a Kubernetes view's node is in, any number of
/// which may be picked together.
fn namespace_group(rendered: Option<&Rendered>) -> OptionGroup {
    let namespaces: BTreeSet<&str> = rendered
        .into_iter()
        .flat_map(|r| r.views.values().flatten())
        .filter_map(|n| n.metadata.get(NAMESPACE_KEY))
        .map(String::as_str)
        .filter(|namespace| !namespace.is_empty())
        .collect();
    OptionGroup {
        id: NAMESPACE_OPTION,
        default_value: "",
        select_type: Some("union"),
        none_label: Some("All namespaces"),
        options: namespaces
            .into_iter()
            .map(|namespace| OptionValue {
                value: namespace.to_owned(),
                label: namespace.to_owned(),
            })
            .collect(),
    }
}

/// Grouping by a label: every label key of the view's nodes, one of which may be picked.
fn label_group(rendered: Option<&Rendered>, view: View, labels: &Labels) -> OptionGroup {
    let nodes = rendered.and_then(|r| r.views.get(&view));
    let keys = labels.keys(
        nodes
            .into_iter()
            .flatten()
            .flat_map(|n| n.metadata.keys())
            .map(String::as_str),
    );
    OptionGroup {
        id: GROUP_OPTION,
        default_value: "",
        select_type: None,
        none_label: Some("Not grouped"),
        options: keys
            .into_iter()
            .map(|key| OptionValue {
                value: key.to_owned(),
                label: format!("By {key}"),
            })
            .collect(),
    }
}

/// Scope's stats of a view: all its nodes and edges, and how many its default options hide.
fn stats(rendered: &Rendered, view: View) -> TopologyStats {
    let nodes = rendered.views.get(&view).map(Vec::as_slice).unwrap_or(&[]);
    let shown = shown_nodes(
        rendered,
        view,
        &Options::from_query(view, &[default_marker()]),
    );
    TopologyStats {
        node_count: nodes.len(),
        nonpseudo_node_count: nodes.iter().filter(|n| !n.pseudo).count(),
        edge_count: nodes.iter().map(|n| n.adjacency.len()).sum(),
        filtered_nodes: nodes.len().saturating_sub(shown.len()),
    }
}

/// A query parameter no view has, which makes [`Options::from_query`] apply the defaults.
fn default_marker() -> (String, String) {
    (String::new(), String::new())
}

/// The nodes of `view` in `rendered` that `options` show, by id, as Scope summarises them.
pub fn summaries(
    rendered: &Rendered,
    view: View,
    options: &Options,
) -> BTreeMap<String, NodeSummary> {
    let shown = shown_nodes(rendered, view, options);
    // As Scope's filters do: an edge to a node the options hid goes with it.
    let ids: HashSet<&str> = shown.iter().map(|n| n.id.as_str()).collect();
    let own_labels = listing(view).labels;
    let shown = shown
        .into_iter()
        .map(|n| {
            let mut node = summary(rendered, view, n);
            node.adjacency.retain(|peer| ids.contains(peer.as_str()));
            (n.id.clone(), node)
        })
        .collect();
    match (own_labels, &options.group) {
        (Some(own_labels), Some(key)) => own_labels.group(shown, key),
        _ => shown,
    }
}

/// The nodes of `view` that `options` show (before any grouping), in id order.
pub fn shown_nodes<'a>(
    rendered: &'a Rendered,
    view: View,
    options: &Options,
) -> Vec<&'a RenderedNode> {
    shown_indices(rendered, view, options)
        .into_iter()
        .map(|i| &rendered.views[&view][i])
        .collect()
}

/// Where the nodes [`shown_nodes`] lists are in the view's nodes.
pub fn shown_indices(rendered: &Rendered, view: View, options: &Options) -> Vec<usize> {
    let Some(nodes) = rendered.views.get(&view) else {
        return Vec::new();
    };
    // Only `?unconnected=hide` needs to know which nodes have an edge.
    let index = options
        .hide_unconnected
        .then(|| Index::view(rendered, view));
    nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| index.as_ref().is_none_or(|index| index.connected[*i]))
        .filter(|(_, n)| !options.hide_pseudo || !n.pseudo)
        .filter(|(_, n)| options.shows_container(n))
        .map(|(i, _)| i)
        .collect()
}

/// `node` of `view` as Scope summarises it, its adjacency not yet pruned to the shown nodes.
pub fn summary(rendered: &Rendered, view: View, node: &RenderedNode) -> NodeSummary {
    let graph = rendered.graphs.get(&view);
    let own_labels = listing(view).labels;
    let is_label = |key: &str| own_labels.is_some_and(|own| own.holds(key));
    let mut metadata: Vec<MetadataRow> = node
        .metadata
        .iter()
        .filter(|(key, value)| !value.is_empty() && !is_label(key))
        .map(|(key, value)| {
            let (label, priority, data_type) = metadata_template(key);
            MetadataRow {
                id: key.clone(),
                label: label.to_owned(),
                value: value.clone(),
                priority,
                data_type,
            }
        })
        .collect();
    metadata.sort_by(|a, b| a.priority.total_cmp(&b.priority).then(a.id.cmp(&b.id)));
    let metrics = graph
        .and_then(|g| g.metrics.get(&node.id))
        .map(|values| {
            values
                .iter()
                .map(|(id, value)| metric_row(id, *value, None))
                .collect()
        })
        .unwrap_or_default();
    let parents = graph
        .and_then(|g| g.parents.get(&node.id))
        .map(|parents| {
            parents
                .iter()
                .map(|(view, id)| Parent {
                    id: id.clone(),
                    label: parent_label(rendered, view, id).to_owned(),
                    topology_id: view.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    NodeSummary {
        id: node.id.clone(),
        label: node.label.clone(),
        label_minor: node.label_minor.clone(),
        rank: node.rank.clone(),
        shape: node.shape.clone(),
        pseudo: node.pseudo,
        stack: false,
        metadata,
        parents,
        metrics,
        adjacency: node.adjacency.clone(),
        tables: own_labels
            .and_then(|own| {
                own.table(
                    node.metadata
                        .iter()
                        .map(|(key, value)| (key.as_str(), value.as_str())),
                )
            })
            .into_iter()
            .collect(),
    }
}

/// Label, priority (Scope's order in the details panel) and data type of a metadata key.
fn metadata_template(key: &str) -> (&str, f64, &'static str) {
    match key {
        "pid" => ("PID", 1.0, "number"),
        "cmdline" => ("Command", 2.0, ""),
        "ppid" => ("Parent PID", 3.0, "number"),
        "threads" => ("# Threads", 4.0, "number"),
        "kernel_version" => ("Kernel version", 1.0, ""),
        "host_name" => ("Hostname", 11.0, ""),
        "os" => ("OS", 12.0, ""),
        "local_networks" => ("Local networks", 13.0, ""),
        "tracker_mode" => ("Connection tracker", 14.0, ""),
        "host_id" => ("Host ID", 15.0, ""),
        "docker_image_tag" => ("Image tag", 1.0, ""),
        "docker_image_name" => ("Image name", 2.0, ""),
        "docker_container_state" => ("State", 4.0, ""),
        "docker_container_hostname" => ("Hostname", 7.0, ""),
        "docker_container_ips" => ("IPs", 8.0, ""),
        "docker_container_ports" => ("Ports", 9.0, ""),
        "docker_container_id" => ("ID", 11.0, ""),
        "container_runtime" => ("Runtime", 12.0, ""),
        "kubernetes_pod_name" => ("Pod", 13.0, ""),
        "kubernetes_namespace" => ("Namespace", 14.0, ""),
        other => (other, 20.0, ""),
    }
}

/// Label, format and priority of a metric, by Scope's metric ids.
fn metric_template(id: &str) -> (&str, &'static str, f64) {
    match id {
        "process_cpu_usage_percent" | "host_cpu_usage_percent" => ("CPU", "percent", 1.0),
        "process_memory_usage_bytes" | "host_mem_usage_bytes" => ("Memory", "filesize", 2.0),
        "docker_cpu_total_usage" => ("CPU", "percent", 1.0),
        "docker_memory_usage" => ("Memory", "filesize", 2.0),
        "open_files_count" => ("Open files", "integer", 3.0),
        "connections_count" => ("Connections", "integer", 4.0),
        "load1" => ("Load (1m)", "", 11.0),
        other => (other, "", 20.0),
    }
}

/// A metric row; `min` and `max` span the samples when there are some, else 0 and the value
/// (100 for a percentage).
pub(super) fn metric_row(id: &str, value: f64, samples: Option<Vec<Sample>>) -> MetricRow {
    let (label, format, priority) = metric_template(id);
    let (mut min, mut max) = (0.0_f64, value.max(0.0));
    if format == "percent" {
        max = max.max(100.0);
    }
    if let Some(samples) = &samples {
        for sample in samples {
            min = min.min(sample.value);
            max = max.max(sample.value);
        }
    }
    MetricRow {
        id: id.to_owned(),
        label: label.to_owned(),
        format,
        value,
        min,
        max,
        priority,
        samples,
        url: String::new(),
    }
}

/// `GET /api/topology/{view}/{node}` without its samples ([`super::samples`] adds them).
pub fn details(rendered: &Rendered, view: View, id: &str) -> Option<NodeDetails> {
    if let Some((key, value)) = parse_group_id(id) {
        return group_details(rendered, view, id, key, value);
    }
    // The default options hide nothing, so the node keeps all its adjacency.
    let summary = summary(rendered, view, find(rendered, view, id)?);
    let graph = rendered.graphs.get(&view);
    let edges = graph.map(|g| g.edges.as_slice()).unwrap_or(&[]);
    let cell = |id: &str, value: String| MetadataRow {
        id: id.into(),
        label: String::new(),
        value,
        priority: 0.0,
        data_type: "",
    };
    // One row per peer and server port, as Scope's tables have (`<peer>---<port>`).
    let table = |id: &'static str, label: &'static str, peers: Vec<(&str, &Edge)>| {
        let connections = peers
            .into_iter()
            .flat_map(|(peer, edge)| {
                // Every edge has its ports; one without would still get its row.
                let ports: Vec<(String, i64)> = if edge.ports.is_empty() {
                    vec![(String::new(), edge.connections)]
                } else {
                    edge.ports
                        .iter()
                        .map(|(p, c)| (p.to_string(), *c))
                        .collect()
                };
                ports
                    .into_iter()
                    .map(move |(port, count)| (peer, port, count))
            })
            .map(|(peer, port, count)| {
                let node = find(rendered, view, peer);
                Connection {
                    id: format!("{peer}---{port}"),
                    node_id: peer.to_owned(),
                    label: node.map_or(peer, |n| n.label.as_str()).to_owned(),
                    label_minor: node.map(|n| n.label_minor.clone()).unwrap_or_default(),
                    metadata: vec![cell("port", port), cell("count", count.to_string())],
                }
            })
            .collect();
        ConnectionsSummary {
            id,
            topology_id: view.name().to_owned(),
            label,
            columns: vec![
                Column {
                    id: "port",
                    label: "Port",
                    data_type: "number",
                    default_sort: false,
                },
                Column {
                    id: "count",
                    label: "Count",
                    data_type: "number",
                    default_sort: true,
                },
            ],
            connections,
        }
    };
    let inbound = edges
        .iter()
        .filter(|e| e.dst == id && e.src != id)
        .map(|e| (e.src.as_str(), e))
        .collect();
    let outbound = edges
        .iter()
        .filter(|e| e.src == id)
        .map(|e| (e.dst.as_str(), e))
        .collect();
    Some(NodeDetails {
        children: children(rendered, view, id),
        summary,
        connections: vec![
            table("incoming-connections", "Inbound", inbound),
            table("outgoing-connections", "Outbound", outbound),
        ],
        controls: Vec::new(),
    })
}

/// A label group's details: the group, and its members as children.
fn group_details(
    rendered: &Rendered,
    view: View,
    id: &str,
    key: &str,
    value: &str,
) -> Option<NodeDetails> {
    let listing = listing(view);
    let labels = listing.labels?;
    let all = summaries(rendered, view, &Options::default());
    let members: Vec<NodeSummary> = all
        .values()
        .filter(|node| labels.value(node, key) == Some(value))
        .cloned()
        .collect();
    let summary = labels.group(all, key).remove(id)?;
    Some(NodeDetails {
        summary,
        children: vec![NodeSummaryGroup {
            id: String::new(),
            label: listing.name,
            topology_id: view.name(),
            columns: Vec::new(),
            nodes: members,
        }],
        connections: Vec::new(),
        controls: Vec::new(),
    })
}

/// The nodes of other views whose parent is this node: a host's processes, containers and
/// pods, a container's processes, a controller's pods.
fn children(rendered: &Rendered, view: View, id: &str) -> Vec<NodeSummaryGroup> {
    let mut groups = Vec::new();
    for child_view in View::ALL {
        let Some(graph) = rendered.graphs.get(&child_view) else {
            continue;
        };
        let ids: BTreeSet<&str> = graph
            .parents
            .iter()
            .filter(|(_, parents)| parents.iter().any(|(v, p)| v == view.name() && p == id))
            .map(|(child, _)| child.as_str())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let (label, topology_id, columns) = match child_view {
            View::Processes => (
                "Processes",
                "processes",
                vec![
                    ("pid", "PID"),
                    ("process_cpu_usage_percent", "CPU"),
                    ("process_memory_usage_bytes", "Memory"),
                ],
            ),
            View::Containers => (
                "Containers",
                "containers",
                vec![
                    ("docker_cpu_total_usage", "CPU"),
                    ("docker_memory_usage", "Memory"),
                ],
            ),
            View::Pods => ("Pods", "pods", vec![("connections_count", "Connections")]),
            _ => continue,
        };
        groups.push(NodeSummaryGroup {
            id: String::new(),
            label,
            topology_id,
            columns: columns
                .into_iter()
                .map(|(id, label)| Column {
                    id,
                    label,
                    data_type: "number",
                    default_sort: false,
                })
                .collect(),
            nodes: ids
                .into_iter()
                .filter_map(|child| find(rendered, child_view, child))
                .map(|child| summary(rendered, child_view, child))
                .collect(),
        });
    }
    groups
}
