//! Weave Scope 1.13's JSON shapes, field for field (its `render/detailed` and `app` packages):
//! what its UI, its integration tests and the scripts written against it read. Empty lists and
//! `false` are left out where Scope leaves them out (`omitempty`), so a node without edges has
//! no `adjacency` key, as in the recorded responses (`../shared/reference/weave-scope-api/`).

use serde::Serialize;

fn is_false(value: &bool) -> bool {
    !value
}

/// `GET /api`.
#[derive(Debug, Serialize)]
pub struct ApiInfo {
    pub id: String,
    pub version: String,
    pub hostname: String,
    pub plugins: Vec<()>,
    pub capabilities: Capabilities,
}

#[derive(Debug, Serialize)]
pub struct Capabilities {
    /// Scope's flag for time travel (`?timestamp=`), which Scope itself only had with its
    /// multi-tenant storage.
    pub historic_reports: bool,
}

/// One row of `GET /api/probes`: a reporting collector.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub id: String,
    pub hostname: String,
    pub version: String,
    #[serde(rename = "lastSeen")]
    pub last_seen: String,
}

/// One entry of `GET /api/topology`.
#[derive(Debug, Serialize)]
pub struct TopologyDesc {
    pub name: &'static str,
    pub url: String,
    pub rank: u32,
    pub hide_if_empty: bool,
    pub options: Vec<OptionGroup>,
    pub stats: TopologyStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_topologies: Vec<TopologyDesc>,
}

#[derive(Debug, Serialize)]
pub struct OptionGroup {
    pub id: &'static str,
    #[serde(rename = "defaultValue")]
    pub default_value: &'static str,
    /// `union` where any number of values may be picked together (Scope's namespaces).
    #[serde(rename = "selectType", skip_serializing_if = "Option::is_none")]
    pub select_type: Option<&'static str>,
    /// What the UI shows when no value of a union is picked.
    #[serde(rename = "noneLabel", skip_serializing_if = "Option::is_none")]
    pub none_label: Option<&'static str>,
    pub options: Vec<OptionValue>,
}

#[derive(Debug, Serialize)]
pub struct OptionValue {
    pub value: String,
    pub label: String,
}

#[derive(Debug, Default, Serialize)]
pub struct TopologyStats {
    pub node_count: usize,
    pub nonpseudo_node_count: usize,
    pub edge_count: usize,
    pub filtered_nodes: usize,
}

/// A node as the graph draws it; `GET /api/topology/{view}` answers `{"nodes": {id: node}}`
/// (written by `super::shown`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSummary {
    pub id: String,
    pub label: String,
    #[serde(rename = "labelMinor")]
    pub label_minor: String,
    pub rank: String,
    pub shape: String,
    #[serde(skip_serializing_if = "is_false")]
    pub pseudo: bool,
    /// Drawn as a stack: a node standing for several (a label group).
    #[serde(skip_serializing_if = "is_false")]
    pub stack: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<MetadataRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<Parent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adjacency: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<Table>,
}

/// A table of a node, as Scope shows a container's Docker labels or a pod's Kubernetes
/// labels: `property-list` rows of a label and a value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Table {
    /// The metadata prefix of its rows (`docker_label_`).
    pub id: &'static str,
    pub label: &'static str,
    #[serde(rename = "type")]
    pub table_type: &'static str,
    pub columns: Option<()>,
    pub rows: Vec<TableRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableRow {
    /// `label_<key>`, as Scope's rows.
    pub id: String,
    pub entries: TableEntries,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableEntries {
    pub label: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetadataRow {
    pub id: String,
    pub label: String,
    pub value: String,
    pub priority: f64,
    #[serde(rename = "dataType", skip_serializing_if = "str::is_empty")]
    pub data_type: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricRow {
    pub id: String,
    pub label: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub format: &'static str,
    pub value: f64,
    pub min: f64,
    pub max: f64,
    pub priority: f64,
    /// Null in summaries (as Scope's); the retained history in details.
    pub samples: Option<Vec<Sample>>,
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// RFC 3339.
    pub date: String,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Parent {
    pub id: String,
    pub label: String,
    #[serde(rename = "topologyId")]
    pub topology_id: String,
}

/// `GET /api/topology/{view}/{node}`.
#[derive(Debug, Serialize)]
pub struct Node {
    pub node: NodeDetails,
}

#[derive(Debug, Serialize)]
pub struct NodeDetails {
    #[serde(flatten)]
    pub summary: NodeSummary,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<NodeSummaryGroup>,
    pub connections: Vec<ConnectionsSummary>,
    /// Scope's controls (exec shell, restart...): none, the collectors take no commands.
    pub controls: Vec<()>,
}

/// A table of child nodes in a node's details (a host's processes).
#[derive(Debug, Serialize)]
pub struct NodeSummaryGroup {
    pub id: String,
    pub label: &'static str,
    #[serde(rename = "topologyId")]
    pub topology_id: &'static str,
    pub columns: Vec<Column>,
    pub nodes: Vec<NodeSummary>,
}

#[derive(Debug, Serialize)]
pub struct Column {
    pub id: &'static str,
    pub label: &'static str,
    #[serde(rename = "dataType", skip_serializing_if = "str::is_empty")]
    pub data_type: &'static str,
    #[serde(rename = "defaultSort")]
    pub default_sort: bool,
}

/// The inbound or outbound connections table of a node's details.
#[derive(Debug, Serialize)]
pub struct ConnectionsSummary {
    pub id: &'static str,
    #[serde(rename = "topologyId")]
    pub topology_id: String,
    pub label: &'static str,
    pub columns: Vec<Column>,
    pub connections: Vec<Connection>,
}

/// A row of a connections table: the peer node, and how many connections.
#[derive(Debug, Serialize)]
pub struct Connection {
    pub id: String,
    #[serde(rename = "nodeId")]
    pub node_id: String,
    pub label: String,
    #[serde(rename = "labelMinor", skip_serializing_if = "String::is_empty")]
    pub label_minor: String,
    pub metadata: Vec<MetadataRow>,
}

/// The body of an error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: String,
}
