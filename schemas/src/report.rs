//! [`ReportDelta`]: what one reporter of one host changed (`avro/report_delta.avsc`).
//!
//! Nodes keep the shape of Weave Scope's report nodes (`latest`, `sets`, `parents`, `metrics`),
//! so Scope users and plugin authors recognise them. The keys each reporter fills are listed
//! here, as constants, so producer and consumers cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::avro_record;

/// See `avro/report_delta.avsc`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportDelta {
    pub host_id: String,
    pub reporter: String,
    pub seq: i64,
    pub full: bool,
    pub timestamp_us: i64,
    pub upserts: Vec<Node>,
    pub removals: Vec<String>,
}
avro_record!(ReportDelta, "report_delta", released: [1]);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub topology: String,
    pub id: String,
    pub latest: BTreeMap<String, LatestValue>,
    pub sets: BTreeMap<String, Vec<String>>,
    pub parents: BTreeMap<String, Vec<String>>,
    pub metrics: BTreeMap<String, Metric>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatestValue {
    pub value: String,
    pub timestamp_us: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub samples: Vec<Sample>,
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub timestamp_us: i64,
    pub value: f64,
}

impl Node {
    pub fn new(topology: &str, id: impl Into<String>) -> Self {
        Node {
            topology: topology.to_owned(),
            id: id.into(),
            ..Default::default()
        }
    }

    /// Sets a latest value, stamped with `timestamp_us`.
    pub fn with_latest(mut self, key: &str, value: impl ToString, timestamp_us: i64) -> Self {
        self.latest.insert(
            key.to_owned(),
            LatestValue {
                value: value.to_string(),
                timestamp_us,
            },
        );
        self
    }

    pub fn latest(&self, key: &str) -> Option<&str> {
        self.latest.get(key).map(|v| v.value.as_str())
    }

    /// The most recent sample of a metric.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics
            .get(key)
            .and_then(|m| m.samples.last())
            .map(|s| s.value)
    }
}

impl Metric {
    /// A metric with one sample.
    pub fn single(timestamp_us: i64, value: f64) -> Self {
        Metric {
            samples: vec![Sample {
                timestamp_us,
                value,
            }],
            min: value.min(0.0),
            max: value,
        }
    }
}

/// Weave Scope's node id of a host: `<host_id>;<host>`.
pub fn host_node_id(host_id: &str) -> String {
    format!("{host_id};<host>")
}

/// Weave Scope's node id of a process: `<host_id>;<pid>`.
pub fn process_node_id(host_id: &str, pid: i32) -> String {
    format!("{host_id};{pid}")
}

/// Topology and reporter names, and the keys of each topology's nodes.
pub mod keys {
    pub const HOST: &str = "host";
    pub const PROCESS: &str = "process";

    // host: latest
    pub const HOST_NAME: &str = "host_name";
    pub const OS: &str = "os";
    pub const KERNEL_VERSION: &str = "kernel_version";
    pub const UPTIME_SECONDS: &str = "uptime_seconds";
    /// How the collector learns connections: `procfs` or `ebpf`.
    pub const TRACKER_MODE: &str = "tracker_mode";
    // host: sets
    /// CIDRs of every interface address, IPv4 and IPv6, e.g. `10.0.0.5/24`.
    pub const LOCAL_NETWORKS: &str = "local_networks";
    // host: metrics
    pub const LOAD1: &str = "load1";
    pub const CPU_USAGE_PERCENT: &str = "cpu_usage_percent";
    pub const MEMORY_USAGE_BYTES: &str = "memory_usage_bytes";
    pub const MEMORY_TOTAL_BYTES: &str = "memory_total_bytes";

    // process: latest
    pub const PID: &str = "pid";
    pub const PPID: &str = "ppid";
    pub const NAME: &str = "name";
    pub const CMDLINE: &str = "cmdline";
    pub const THREADS: &str = "threads";
    // process: metrics (also CPU_USAGE_PERCENT, MEMORY_USAGE_BYTES)
    pub const OPEN_FILES_COUNT: &str = "open_files_count";
}
