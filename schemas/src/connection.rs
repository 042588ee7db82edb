//! [`ConnectionEvent`]: one change in a host's TCP connection table (`avro/connection_event.avsc`).

use serde::{Deserialize, Serialize};

use crate::codec::avro_record;

/// See `avro/connection_event.avsc` for the meaning of each field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    pub host_id: String,
    pub kind: ConnectionEventKind,
    pub timestamp_us: i64,
    pub refresh: bool,
    pub netns: i64,
    pub pid: Option<i32>,
    pub process_name: Option<String>,
    pub family: AddressFamily,
    pub local_addr: String,
    pub local_port: i32,
    pub remote_addr: String,
    pub remote_port: i32,
    pub source: EventSource,
}
avro_record!(ConnectionEvent, "connection_event", released: [1]);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionEventKind {
    /// This host opened the connection (it is the client).
    Connect,
    /// This host accepted the connection on a listening socket (it is the server).
    Accept,
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    Procfs,
    Ebpf,
    Conntrack,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Procfs => "procfs",
            EventSource::Ebpf => "ebpf",
            EventSource::Conntrack => "conntrack",
        }
    }
}
