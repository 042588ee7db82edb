//! The SQL of every rendered table, in one place: the `.sql` files beside this module.
//!
//! Why SQL: the views are joins and groupings over the snapshot tables, which is what SQL says
//! best, and the same text is what a user reruns with `scope sql` to see why an edge exists.
//! Rendering one snapshot runs, in this order (see [`crate::render`]):
//!
//! 1. [`CONNECTIONS`] over `sockets` → the `connections` table;
//! 2. the [`DERIVED`] relations, registered as views: `host_info`, `process_info`,
//!    `container_info`, `pod_info`, `pod_services`, `process_parents`, `host_addrs`,
//!    `conn_ends`, `end_nodes`, and `edges` (the edges of every view);
//! 3. per [`View`]: its [`ViewSql::edges`] (its rows of `edges`, registered as
//!    `view_edges`) and [`NODE_CONNECTIONS`] over them (`view_node_connections`), then its
//!    [`ViewSql::nodes`] and [`PSEUDO_NODES`] (the pseudo nodes at the ends of its edges).
//!
//! `scope_selects(selector, labels)` ([`crate::selector`]) matches a service's selector. Scalar
//! functions from [`crate::network`] are available too: `scope_is_loopback(addr)`,
//! `scope_is_local(snapshot_time, addr)` (inside a local network of that snapshot, or
//! loopback), `scope_local_network(snapshot_time, addr)` (the CIDR of its most specific
//! local network: the id of the pseudo node for an unreported peer there) and
//! `scope_host_local_network(snapshot_time, host_id, addr)` (the host-local network of that
//! host, such as a container bridge, that the address is in); `scope sql` registers them too.
//! Every join matches `snapshot_time`, so each query reruns unchanged over `history.*` (tables
//! and derived relations pointed there), one answer per snapshot, as `renderer/tests/sql.rs`
//! checks.
//!
//! Edge queries return `graph_edges`' columns plus `src_pseudo` and `dst_pseudo`; node queries
//! return `graph_nodes`' columns plus any `meta_<key>` columns, which become the published
//! node's metadata. Extra columns are not written to the tables.

use scope_schemas::View;

/// Pairs the two ends of each TCP connection: the `connections` table.
pub const CONNECTIONS: &str = include_str!("connections.sql");

/// Relations every view builds on, registered as SQL views in this order.
pub const DERIVED: [(&str, &str); 10] = [
    ("host_info", include_str!("host_info.sql")),
    ("process_info", include_str!("process_info.sql")),
    ("container_info", include_str!("container_info.sql")),
    ("pod_info", include_str!("pod_info.sql")),
    ("pod_services", include_str!("pod_services.sql")),
    ("process_parents", include_str!("process_parents.sql")),
    ("host_addrs", include_str!("host_addrs.sql")),
    ("conn_ends", include_str!("conn_ends.sql")),
    ("end_nodes", include_str!("end_nodes.sql")),
    ("edges", include_str!("edges.sql")),
];

/// The pseudo nodes (the Internet, local networks) at the ends of `view_edges`.
pub const PSEUDO_NODES: &str = include_str!("pseudo_nodes.sql");

/// The name under which a view's edges are registered while its nodes are computed.
pub const VIEW_EDGES: &str = "view_edges";

/// The connections at either end of each node's edges in one view (`view_edges`), the
/// `connections_count` metric of its nodes; registered as [`VIEW_NODE_CONNECTIONS`].
pub const NODE_CONNECTIONS: &str = include_str!("node_connections.sql");

/// The name under which [`NODE_CONNECTIONS`] is registered while a view's nodes are computed.
pub const VIEW_NODE_CONNECTIONS: &str = "view_node_connections";

/// The queries of one view.
#[derive(Clone, Debug)]
pub struct ViewSql {
    pub view: View,
    /// The view's real (non-pseudo) nodes.
    pub nodes: &'static str,
    /// The view's edges, client to server: its rows of the derived `edges`.
    pub edges: String,
}

/// The queries of `view`.
pub fn sql(view: View) -> ViewSql {
    let nodes = match view {
        View::Processes => include_str!("processes.nodes.sql"),
        View::ProcessesByName => include_str!("processes-by-name.nodes.sql"),
        View::Hosts => include_str!("hosts.nodes.sql"),
        View::Endpoints => include_str!("endpoints.nodes.sql"),
        View::Containers => include_str!("containers.nodes.sql"),
        View::ContainersByImage => include_str!("containers-by-image.nodes.sql"),
        View::ContainersByHostname => include_str!("containers-by-hostname.nodes.sql"),
        View::Pods => include_str!("pods.nodes.sql"),
        View::KubeControllers => include_str!("kube-controllers.nodes.sql"),
        View::Services => include_str!("services.nodes.sql"),
    };
    let edges = format!(
        "SELECT snapshot_time, \"view\", src, dst, src_pseudo, dst_pseudo, connections, ports \
         FROM edges WHERE \"view\" = '{}' ORDER BY src, dst",
        view.name()
    );
    ViewSql { view, nodes, edges }
}

/// The metric samples of one node of `view` over several snapshots: the merged table the query
/// reads besides `graph_edges` (both registered with the snapshots wanted) and the query,
/// whose `$1` is the node id and
/// whose columns are `snapshot_time` and one per metric id. None for views without metrics.
pub fn samples(view: View) -> Option<(&'static str, &'static str)> {
    match view {
        View::Processes => Some((
            scope_schemas::snapshot::table::PROCESSES,
            include_str!("processes.samples.sql"),
        )),
        View::Hosts => Some((
            scope_schemas::snapshot::table::HOSTS,
            include_str!("hosts.samples.sql"),
        )),
        _ => None,
    }
}

/// Prefix of node query columns that become metadata.
pub const META_PREFIX: &str = "meta_";

/// Ends the name of a metadata column that is a map (`MAP(VARCHAR, VARCHAR)`): each entry
/// becomes metadata `<prefix><key>`, so `labels AS "meta_docker_label_*"` gives a container
/// `docker_label_app`. Weave Scope shows such keys as a table of the node (its labels).
pub const META_MAP_SUFFIX: &str = "*";

/// Prefix of node query columns that are a metric of the node (`DOUBLE`), by Weave Scope's
/// metric id: `metric_process_cpu_usage_percent`.
pub const METRIC_PREFIX: &str = "metric_";

/// Prefix of node query columns that name the node's parent in another view:
/// `parent_hosts` is the id of the process's host node.
pub const PARENT_PREFIX: &str = "parent_";

#[cfg(test)]
mod tests {
    use super::*;
    use scope_schemas::rendered::{INTERNET_INBOUND_ID, INTERNET_OUTBOUND_ID};

    fn derived(name: &str) -> &'static str {
        DERIVED.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn internet_ids_match_the_contract() {
        for text in [derived("conn_ends"), PSEUDO_NODES] {
            assert!(text.contains(&format!("'{INTERNET_INBOUND_ID}'")));
            assert!(text.contains(&format!("'{INTERNET_OUTBOUND_ID}'")));
        }
    }

    #[test]
    fn local_network_pseudo_nodes_use_the_registered_function() {
        // Per snapshot, so the same SQL reruns over `history.*`.
        let call = format!("{}(snapshot_time, ", crate::network::LOCAL_NETWORK);
        assert!(derived("conn_ends").contains(&call));
    }

    #[test]
    fn every_view_names_itself() {
        for view in View::ALL {
            let q = sql(view);
            let literal = format!("'{}' AS view", view.name());
            assert!(q.nodes.contains(&literal), "{view:?} nodes");
            assert!(derived("edges").contains(&literal), "{view:?} edges");
            assert!(q.edges.contains(&format!("\"view\" = '{}'", view.name())));
        }
    }
}
