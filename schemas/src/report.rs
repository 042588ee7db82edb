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

/// Weave Scope's node id of a container: `<container_id>;<container>`.
pub fn container_node_id(container_id: &str) -> String {
    format!("{container_id};<container>")
}

/// Node id of a Kubernetes object of `topology` (one of [`keys::KUBERNETES_TOPOLOGIES`]):
/// Weave Scope's `<uid>;<pod>` (`<deployment>`, ...), prefixed with the cluster id so that
/// two clusters' objects never collide in one snapshot: `<cluster_id>/<uid>;<pod>`.
pub fn kubernetes_node_id(cluster_id: &str, uid: &str, topology: &str) -> String {
    format!("{cluster_id}/{uid};<{topology}>")
}

/// The host id a cluster collector reports under: `cluster:<cluster_id>`. It names no
/// machine, so it has no `host` node and no `hosts` row.
pub fn cluster_host_id(cluster_id: &str) -> String {
    format!("cluster:{cluster_id}")
}

/// Topology and reporter names, and the keys of each topology's nodes.
pub mod keys {
    pub const HOST: &str = "host";
    pub const PROCESS: &str = "process";
    /// Reporter and topology of a node's containers (any runtime).
    pub const CONTAINER: &str = "container";
    /// Reporter name of the cluster collector (`--role=cluster`); its nodes have the
    /// Kubernetes topologies below.
    pub const KUBERNETES: &str = "kubernetes";
    pub const POD: &str = "pod";
    pub const REPLICA_SET: &str = "replica_set";
    pub const DEPLOYMENT: &str = "deployment";
    pub const DAEMON_SET: &str = "daemon_set";
    pub const STATEFUL_SET: &str = "stateful_set";
    pub const JOB: &str = "job";
    pub const CRON_JOB: &str = "cron_job";
    pub const SERVICE: &str = "service";
    pub const NAMESPACE: &str = "namespace";
    /// A Kubernetes node (a machine of the cluster), not a report node.
    pub const KUBE_NODE: &str = "kube_node";
    /// Every topology the cluster collector reports.
    pub const KUBERNETES_TOPOLOGIES: [&str; 10] = [
        POD,
        REPLICA_SET,
        DEPLOYMENT,
        DAEMON_SET,
        STATEFUL_SET,
        JOB,
        CRON_JOB,
        SERVICE,
        NAMESPACE,
        KUBE_NODE,
    ];

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
    /// The CIDRs of `local_networks` whose network stays inside this host (a container
    /// bridge: the same range may be on every host), so their addresses are scoped to it.
    /// Absent from collectors older than the key: none of their networks is host-local.
    pub const HOST_LOCAL_NETWORKS: &str = "host_local_networks";
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
    /// The container a process runs in (also its `container` parent); absent when it runs
    /// in none.
    pub const CONTAINER_ID: &str = "container_id";

    // container: latest (also CONTAINER_ID)
    pub const CONTAINER_NAME: &str = "container_name";
    /// `docker`, `containerd`, `crio` or `podman`: whose cgroup path named the container.
    pub const CONTAINER_RUNTIME: &str = "container_runtime";
    pub const IMAGE_NAME: &str = "image_name";
    pub const IMAGE_ID: &str = "image_id";
    /// `running`, `paused`, `exited`, ... as the runtime says; `running` when only the
    /// cgroup is known.
    pub const CONTAINER_STATE: &str = "container_state";
    pub const CONTAINER_HOSTNAME: &str = "container_hostname";
    /// The pod of a Kubernetes container, from its CRI labels (`io.kubernetes.pod.*`).
    pub const POD_NAME: &str = "pod_name";
    pub const POD_NAMESPACE: &str = "pod_namespace";
    pub const POD_UID: &str = "pod_uid";
    // container: sets
    /// Labels as `key=value` (for Kubernetes objects too).
    pub const LABELS: &str = "labels";
    pub const CONTAINER_IPS: &str = "container_ips";
    /// Published ports as `[host_ip:host_port->]port/proto`, as `docker ps` prints them.
    pub const CONTAINER_PORTS: &str = "container_ports";
    // container: metrics CPU_USAGE_PERCENT, MEMORY_USAGE_BYTES (from the cgroup)

    // Kubernetes objects: latest
    pub const CLUSTER_ID: &str = "cluster_id";
    pub const UID: &str = "uid";
    pub const KUBE_NAME: &str = "kube_name";
    pub const KUBE_NAMESPACE: &str = "kube_namespace";
    /// The controlling owner reference: its kind (`ReplicaSet`, ...), uid and name.
    pub const OWNER_KIND: &str = "owner_kind";
    pub const OWNER_UID: &str = "owner_uid";
    pub const OWNER_NAME: &str = "owner_name";
    /// Pod: the Kubernetes node it is scheduled on, and that node's and its own address.
    pub const NODE_NAME: &str = "node_name";
    pub const HOST_IP: &str = "host_ip";
    pub const POD_IP: &str = "pod_ip";
    /// Pod phase, or a controller's `<ready>/<desired>` replicas.
    pub const KUBE_STATE: &str = "kube_state";
    /// Service: its virtual IP (`None` for a headless service).
    pub const CLUSTER_IP: &str = "cluster_ip";
    pub const CREATED_AT: &str = "created_at";
    // Kubernetes objects: sets (also LABELS)
    /// Service: its label selector as `key=value`.
    pub const SELECTOR: &str = "selector";
    /// Service: `port/protocol`; pod: its containers' ids (`containerd://<id>` stripped).
    pub const PORTS: &str = "ports";
    pub const CONTAINER_IDS: &str = "container_ids";
}
