//! [`ConnectionEvent`]: one change in a host's TCP connection table (`avro/connection_event.avsc`),
//! and [`ConnectionEvents`], many of one host's in one record (`avro/connection_events.avsc`).

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, EncodeError, Record, avro_record};

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

impl ConnectionEvent {
    /// The event that ends a full report's refreshes: the host's connection table, taken at
    /// `taken_us`, listed every connection open in it. A consumer closes, as of `taken_us`,
    /// each connection of the host that it learnt before and that neither the list nor
    /// anything since confirmed: one that closed unseen, e.g. while the collector was down.
    ///
    /// In the schema's terms a `close` flagged `refresh` (no refresh is otherwise a close),
    /// on an address no connection has, so a consumer that predates it ignores a close of an
    /// unknown connection.
    pub fn full_report_end(host_id: &str, taken_us: i64) -> Self {
        ConnectionEvent {
            host_id: host_id.to_owned(),
            kind: ConnectionEventKind::Close,
            timestamp_us: taken_us,
            refresh: true,
            netns: 0,
            pid: None,
            process_name: None,
            family: AddressFamily::Ipv4,
            local_addr: "0.0.0.0".to_owned(),
            local_port: 0,
            remote_addr: "0.0.0.0".to_owned(),
            remote_port: 0,
            source: EventSource::Procfs,
        }
    }

    /// Whether this is a [`Self::full_report_end`].
    pub fn is_full_report_end(&self) -> bool {
        self.refresh && self.kind == ConnectionEventKind::Close
    }
}

/// One host's connection events in the order they happened, as one record: what collectors
/// publish on `scope.connections`, so that the producer, the broker, the consumer and the
/// decoder pay their per-record costs once per batch rather than once per event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEvents {
    pub events: Vec<ConnectionEvent>,
}
avro_record!(ConnectionEvents, "connection_events", released: [1]);

/// [`ConnectionEvents`] over borrowed events: a producer encodes a slice of its buffer
/// without cloning every event into a batch first.
#[derive(Serialize)]
#[serde(rename = "ConnectionEvents")]
struct BorrowedEvents<'a> {
    events: &'a [ConnectionEvent],
}

impl ConnectionEvents {
    /// The most events Scope's collectors put in one record: about 40 kB of Avro, well
    /// within Kafka's default 1 MiB message limit. Consumers take batches of any length.
    pub const MAX_EVENTS: usize = 500;

    /// Encodes `events` as one [`ConnectionEvents`] record.
    pub fn encode_slice(events: &[ConnectionEvent]) -> Result<Vec<u8>, EncodeError> {
        Self::record_schema().encode(&BorrowedEvents { events })
    }

    /// Decodes a record of `scope.connections` in either form its writers use: a batch, or
    /// a single [`ConnectionEvent`] of any released version (what collectors wrote before
    /// batching), which comes back as a batch of one. The header's fingerprint says which.
    pub fn decode_any(bytes: &[u8]) -> Result<Self, DecodeError> {
        let batch = Self::record_schema();
        if batch.reads(bytes) {
            return batch.decode(bytes);
        }
        match ConnectionEvent::decode(bytes) {
            Ok(event) => Ok(ConnectionEvents {
                events: vec![event],
            }),
            Err(DecodeError::UnknownSchema { fingerprint, .. }) => {
                Err(DecodeError::UnknownSchema {
                    expected: "ConnectionEvents or ConnectionEvent",
                    fingerprint,
                })
            }
            Err(error) => Err(error),
        }
    }
}

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
