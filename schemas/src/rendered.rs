//! [`RenderedNode`] (`avro/rendered_node.avsc`) and the views the renderer draws.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::avro_record;

/// See `avro/rendered_node.avsc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedNode {
    pub view: String,
    pub id: String,
    pub label: String,
    pub label_minor: String,
    pub rank: String,
    pub shape: String,
    pub pseudo: bool,
    pub adjacency: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub snapshot_time_us: i64,
}
avro_record!(RenderedNode, "rendered_node", released: [1]);

/// The topology views, by Weave Scope's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    Processes,
    ProcessesByName,
    Hosts,
    /// Connection ends (address and port), Weave Scope's raw endpoint topology: every
    /// connection, including those whose processes are unknown.
    Endpoints,
    /// One node per container; processes in none are their host's "Uncontained" node.
    Containers,
    /// Containers grouped by image (without its tag).
    ContainersByImage,
    /// Containers grouped by their hostname (a pod's containers share one).
    ContainersByHostname,
    /// One node per Kubernetes pod; what runs in none is its host's "Unmanaged" node.
    Pods,
    /// Pods grouped by controller: deployments, daemon sets, stateful sets, cron jobs,
    /// replica sets and jobs without one, and pods with none as themselves.
    KubeControllers,
    /// Pods grouped by the services that select them.
    Services,
}

impl View {
    pub const ALL: [View; 10] = [
        View::Processes,
        View::ProcessesByName,
        View::Hosts,
        View::Endpoints,
        View::Containers,
        View::ContainersByImage,
        View::ContainersByHostname,
        View::Pods,
        View::KubeControllers,
        View::Services,
    ];

    pub fn name(self) -> &'static str {
        match self {
            View::Processes => "processes",
            View::ProcessesByName => "processes-by-name",
            View::Hosts => "hosts",
            View::Endpoints => "endpoints",
            View::Containers => "containers",
            View::ContainersByImage => "containers-by-image",
            View::ContainersByHostname => "containers-by-hostname",
            View::Pods => "pods",
            View::KubeControllers => "kube-controllers",
            View::Services => "services",
        }
    }

    /// The topic this view is published on: `scope.rendered.<view>`.
    pub fn topic(self) -> String {
        format!("{}{}", crate::topics::RENDERED_PREFIX, self.name())
    }
}

/// Weave Scope's pseudo node ids for the Internet: one for traffic coming in, one going out.
pub const INTERNET_INBOUND_ID: &str = "in-theinternet";
pub const INTERNET_OUTBOUND_ID: &str = "out-theinternet";
