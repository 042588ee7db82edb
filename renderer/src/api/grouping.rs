//! Labels of a node as Weave Scope shows them (a table of the node: a container's Docker
//! labels, a pod's Kubernetes labels), and grouping a view by any one label (`?group=app`),
//! which Scope's users asked for (its issue 3112): Scope grouped only by fixed keys (image,
//! DNS name, controller). Nodes carrying the label become one node per value, drawn as a stack
//! with its members' edges; nodes without it stay as they are, as a controller view keeps a
//! pod with no controller.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::scope_json::{MetadataRow, NodeSummary, Table, TableEntries, TableRow};

/// The option: `?group=<label key>`.
pub const GROUP_OPTION: &str = "group";

/// Ends the id of a group node: `app=web;<group>`.
const GROUP_SUFFIX: &str = ";<group>";

/// Where a view's nodes keep their labels: the metadata prefix the view's SQL gives them
/// (`crate::view::META_MAP_SUFFIX`), which is also Scope's id of their table.
pub struct Labels {
    pub prefix: &'static str,
    title: &'static str,
    /// What one node of the view is, for a group's minor label: ("pod", "pods").
    noun: (&'static str, &'static str),
}

pub const CONTAINER_LABELS: Labels = Labels {
    prefix: "docker_label_",
    title: "Docker labels",
    noun: ("container", "containers"),
};

pub const POD_LABELS: Labels = Labels {
    prefix: KUBERNETES_PREFIX,
    title: "Kubernetes labels",
    noun: ("pod", "pods"),
};

pub const CONTROLLER_LABELS: Labels = Labels {
    prefix: KUBERNETES_PREFIX,
    title: "Kubernetes labels",
    noun: ("controller", "controllers"),
};

pub const SERVICE_LABELS: Labels = Labels {
    prefix: KUBERNETES_PREFIX,
    title: "Kubernetes labels",
    noun: ("service", "services"),
};

const KUBERNETES_PREFIX: &str = "kubernetes_labels_";

impl Labels {
    /// A node's labels from its metadata, as Scope's table; none when it has no label.
    pub fn table<'a>(&self, metadata: impl Iterator<Item = (&'a str, &'a str)>) -> Option<Table> {
        let rows: Vec<TableRow> = metadata
            .filter_map(|(key, value)| Some((key.strip_prefix(self.prefix)?, value)))
            .map(|(label, value)| TableRow {
                id: format!("label_{label}"),
                entries: TableEntries {
                    label: label.to_owned(),
                    value: value.to_owned(),
                },
            })
            .collect();
        (!rows.is_empty()).then_some(Table {
            id: self.prefix,
            label: self.title,
            table_type: "property-list",
            columns: None,
            rows,
        })
    }

    /// Whether a metadata key is one of the labels (shown in their table, not as metadata).
    pub fn holds(&self, key: &str) -> bool {
        key.starts_with(self.prefix)
    }

    /// The value of label `key` of a summarised node.
    pub fn value<'a>(&self, node: &'a NodeSummary, key: &str) -> Option<&'a str> {
        node.tables
            .iter()
            .filter(|table| table.id == self.prefix)
            .flat_map(|table| &table.rows)
            .find(|row| row.entries.label == key)
            .map(|row| row.entries.value.as_str())
    }

    /// The label keys among nodes' metadata keys: what `?group=` can pick.
    pub fn keys<'a>(&self, metadata_keys: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
        metadata_keys
            .filter_map(|key| key.strip_prefix(self.prefix))
            .collect()
    }

    /// `nodes` with those carrying label `key` replaced by one node per value, and every
    /// edge redrawn to the groups (an edge between two members is the group's edge to itself).
    pub fn group(
        &self,
        nodes: BTreeMap<String, NodeSummary>,
        key: &str,
    ) -> BTreeMap<String, NodeSummary> {
        let group_of: HashMap<String, String> = nodes
            .iter()
            .filter_map(|(id, node)| Some((id.clone(), group_id(key, self.value(node, key)?))))
            .collect();
        let redraw = |adjacency: Vec<String>| -> Vec<String> {
            adjacency
                .into_iter()
                .map(|peer| group_of.get(&peer).cloned().unwrap_or(peer))
                .collect()
        };
        let mut members: HashMap<String, usize> = HashMap::new();
        let mut out: BTreeMap<String, NodeSummary> = BTreeMap::new();
        for (id, node) in nodes {
            let Some(group) = group_of.get(&id) else {
                let adjacency = redraw(node.adjacency.clone());
                out.insert(id, NodeSummary { adjacency, ..node });
                continue;
            };
            *members.entry(group.clone()).or_default() += 1;
            let value = self.value(&node, key).unwrap_or_default().to_owned();
            let entry = out
                .entry(group.clone())
                .or_insert_with(|| group_node(group, key, value, node.shape.clone()));
            entry.adjacency.extend(redraw(node.adjacency));
        }
        for (id, count) in members {
            if let Some(node) = out.get_mut(&id) {
                let (one, many) = self.noun;
                node.label_minor = format!("{count} {}", if count == 1 { one } else { many });
            }
        }
        for node in out.values_mut() {
            node.adjacency.sort();
            node.adjacency.dedup();
        }
        out
    }
}

fn group_id(key: &str, value: &str) -> String {
    format!("{key}={value}{GROUP_SUFFIX}")
}

/// The label key and value of a group node's id.
pub fn parse_group_id(id: &str) -> Option<(&str, &str)> {
    id.strip_suffix(GROUP_SUFFIX)?.split_once('=')
}

fn group_node(id: &str, key: &str, value: String, shape: String) -> NodeSummary {
    NodeSummary {
        id: id.to_owned(),
        label: value.clone(),
        label_minor: String::new(),
        rank: key.to_owned(),
        shape,
        pseudo: false,
        stack: true,
        metadata: vec![MetadataRow {
            id: "label".into(),
            label: "Label".into(),
            value: format!("{key}={value}"),
            priority: 1.0,
            data_type: "",
        }],
        parents: Vec::new(),
        metrics: Vec::new(),
        adjacency: Vec::new(),
        tables: Vec::new(),
    }
}
