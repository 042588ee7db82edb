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
}

impl View {
    pub const ALL: [View; 4] = [
        View::Processes,
        View::ProcessesByName,
        View::Hosts,
        View::Endpoints,
    ];

    pub fn name(self) -> &'static str {
        match self {
            View::Processes => "processes",
            View::ProcessesByName => "processes-by-name",
            View::Hosts => "hosts",
            View::Endpoints => "endpoints",
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
