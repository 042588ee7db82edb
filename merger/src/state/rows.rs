//! The rows of the snapshot tables, and the socket identity and direction they carry.

use scope_schemas::{AddressFamily, EventSource};

/// Which end of a TCP connection a socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// This host connected (it is the client).
    Outbound,
    /// This host accepted (it is the server).
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Text of an [`AddressFamily`] in the `sockets` table.
pub fn family_str(family: AddressFamily) -> &'static str {
    match family {
        AddressFamily::Ipv4 => "ipv4",
        AddressFamily::Ipv6 => "ipv6",
    }
}

/// Identity of a socket within its host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SocketKey {
    pub netns: i64,
    pub family: AddressFamily,
    pub local_addr: String,
    pub local_port: i32,
    pub remote_addr: String,
    pub remote_port: i32,
}

/// One row of the `hosts` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRow {
    pub host_id: String,
    pub host_name: Option<String>,
    pub os: Option<String>,
    pub kernel_version: Option<String>,
    pub uptime_seconds: Option<i64>,
    pub load1: Option<f64>,
    pub cpu_usage_percent: Option<f64>,
    pub memory_usage_bytes: Option<i64>,
    pub memory_total_bytes: Option<i64>,
    pub tracker_mode: Option<String>,
    pub last_seen_us: i64,
}

/// One row of the `processes` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessRow {
    pub host_id: String,
    pub pid: i32,
    pub ppid: Option<i32>,
    pub name: Option<String>,
    pub cmdline: Option<String>,
    pub threads: Option<i32>,
    pub cpu_usage_percent: Option<f64>,
    pub memory_usage_bytes: Option<i64>,
    pub open_files_count: Option<i32>,
    pub last_seen_us: i64,
    pub container_id: Option<String>,
}

/// One row of the `containers` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRow {
    pub host_id: String,
    pub container_id: String,
    pub runtime: String,
    pub name: Option<String>,
    pub image_name: Option<String>,
    pub image_id: Option<String>,
    pub state: String,
    pub hostname: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_uid: Option<String>,
    /// `(key, value)`, sorted by key.
    pub labels: Vec<(String, String)>,
    pub ips: Vec<String>,
    pub ports: Vec<String>,
    pub cpu_usage_percent: Option<f64>,
    pub memory_usage_bytes: Option<i64>,
    pub last_seen_us: i64,
}

/// One row of the `kubernetes_objects` table, without `snapshot_time`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KubernetesObjectRow {
    pub cluster_id: String,
    /// The report topology: `pod`, `deployment`, ...
    pub kind: String,
    pub uid: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub owner_kind: Option<String>,
    pub owner_uid: Option<String>,
    pub owner_name: Option<String>,
    pub node_name: Option<String>,
    pub host_ip: Option<String>,
    pub pod_ip: Option<String>,
    pub cluster_ip: Option<String>,
    pub state: Option<String>,
    pub created_at: Option<String>,
    /// `(key, value)`, sorted by key.
    pub labels: Vec<(String, String)>,
    pub selector: Vec<(String, String)>,
    pub ports: Vec<String>,
    pub container_ids: Vec<String>,
    pub last_seen_us: i64,
}

/// One row of the `sockets` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq)]
pub struct SocketRow {
    pub host_id: String,
    pub key: SocketKey,
    pub pid: Option<i32>,
    pub process_name: Option<String>,
    pub direction: Direction,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    /// Set only when the socket was closed at or before the snapshot time.
    pub closed_at_us: Option<i64>,
    pub source: EventSource,
}

impl SocketRow {
    /// `open` or `closed`, at the snapshot time.
    pub fn state(&self) -> &'static str {
        if self.closed_at_us.is_some() {
            "closed"
        } else {
            "open"
        }
    }
}

/// One row of the `local_networks` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalNetworkRow {
    pub host_id: String,
    pub cidr: String,
    /// Its host named it host-local (`host_local_networks`): the network stays inside it.
    pub host_local: bool,
}
