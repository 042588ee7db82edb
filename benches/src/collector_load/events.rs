//! The bench's reader of what the collectors publish: one consumer for the whole run, assigned
//! to `scope.connections` and `scope.reports` from the beginning, tallying records by host id
//! (the key every collector record carries). Each cell's collector has its own host id, so
//! cells never mix.
//!
//! Of the connection events it keeps only the `connect`s to the load server that are not
//! refreshes (a full publish re-announces open connections): the client ports the collector
//! saw opening, which [`seen`] matches against the ports the load used. Of the reports it keeps
//! the container nodes, to tell whether the collector saw the bench's containers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use scope_schemas::report::keys;
use scope_schemas::{
    ConnectionEvent, ConnectionEventKind, ConnectionEvents, Record as _, ReportDelta, topics,
};

/// A `connect` event to the load server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect {
    pub local_port: u16,
    pub timestamp_us: i64,
}

/// What one host (one collector) published.
#[derive(Clone, Debug, Default)]
pub struct HostEvents {
    /// Records on either topic keyed by this host.
    pub records: u64,
    /// Connection events by kind and source, e.g. `("connect", "ebpf")`.
    pub by_kind: BTreeMap<(&'static str, &'static str), u64>,
    /// Non-refresh `connect`s whose remote is the load server's port, in arrival order.
    pub connects: Vec<Connect>,
    /// Other non-refresh `connect`s (not the load's), by process name and remote port: what
    /// else on the machine opened connections while the collector ran.
    pub other_connects: BTreeMap<(String, i32), u64>,
    /// Container node ids in this host's container reports: (named, with memory usage), each
    /// true once any report carried it.
    pub containers: HashMap<String, (bool, bool)>,
}

#[derive(Debug, Default)]
struct Shared {
    hosts: Mutex<HashMap<String, HostEvents>>,
    /// Next offset to read, per topic (partition 0).
    positions: Mutex<HashMap<String, i64>>,
    malformed: AtomicU64,
    stop: AtomicBool,
}

/// The running reader.
pub struct Events {
    shared: Arc<Shared>,
    bootstrap: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Events {
    /// Starts reading both topics of `bootstrap` from the beginning, keeping the connects to
    /// `server_port`. The topics must exist and have one partition.
    pub fn start(bootstrap: &str, server_port: u16) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set(
                "group.id",
                format!("scope-collector-load-{}", std::process::id()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .create()
            .context("creating the events reader")?;
        let mut assignment = TopicPartitionList::new();
        for topic in [topics::CONNECTIONS, topics::REPORTS] {
            assignment
                .add_partition_offset(topic, 0, Offset::Beginning)
                .context("assigning the events reader")?;
        }
        consumer
            .assign(&assignment)
            .context("assigning the events reader")?;
        let shared = Arc::new(Shared::default());
        let state = Arc::clone(&shared);
        let task = tokio::task::spawn_blocking(move || {
            while !state.stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(message)) => state.take(
                        message.topic(),
                        message.offset(),
                        message.key(),
                        message.payload(),
                        server_port,
                    ),
                    Some(Err(error)) => tracing::warn!(%error, "events reader: receive failed"),
                }
            }
        });
        Ok(Events {
            shared,
            bootstrap: bootstrap.to_owned(),
            task: Some(task),
        })
    }

    /// Records seen so far from `host_id`.
    pub fn records(&self, host_id: &str) -> u64 {
        self.shared
            .hosts
            .lock()
            .ok()
            .and_then(|hosts| hosts.get(host_id).map(|h| h.records))
            .unwrap_or(0)
    }

    /// Everything kept for `host_id` so far.
    pub fn host(&self, host_id: &str) -> HostEvents {
        self.shared
            .hosts
            .lock()
            .ok()
            .and_then(|hosts| hosts.get(host_id).cloned())
            .unwrap_or_default()
    }

    /// Records that did not decode, over the whole run.
    pub fn malformed(&self) -> u64 {
        self.shared.malformed.load(Ordering::SeqCst)
    }

    /// Waits until the reader has read everything on `scope.connections` up to its end now.
    pub async fn catch_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .context("creating a watermark client")?;
        let (_, high) = tokio::task::block_in_place(|| {
            probe.fetch_watermarks(topics::CONNECTIONS, 0, Duration::from_secs(10))
        })
        .with_context(|| format!("reading the end offset of {}", topics::CONNECTIONS))?;
        let deadline = Instant::now() + timeout;
        loop {
            let position = self
                .shared
                .positions
                .lock()
                .ok()
                .and_then(|p| p.get(topics::CONNECTIONS).copied())
                .unwrap_or(0);
            if position >= high {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the events reader is at offset {position} of {} after {}; the end is {high}",
                    topics::CONNECTIONS,
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the reader.
    pub async fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

impl Shared {
    fn take(
        &self,
        topic: &str,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        server_port: u16,
    ) {
        if let Ok(mut positions) = self.positions.lock() {
            positions.insert(topic.to_owned(), offset + 1);
        }
        let Some(host_id) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let payload = payload.unwrap_or_default();
        let decoded = if topic == topics::CONNECTIONS {
            ConnectionEvents::decode_any(payload).map(|batch| (batch.events, None))
        } else {
            ReportDelta::decode(payload).map(|delta| (Vec::new(), Some(delta)))
        };
        let (events, delta) = decoded.unwrap_or_else(|error| {
            if self.malformed.fetch_add(1, Ordering::SeqCst) == 0 {
                tracing::warn!(%error, host_id, topic, "events reader: undecodable record");
            }
            (Vec::new(), None)
        });
        let Ok(mut hosts) = self.hosts.lock() else {
            return;
        };
        let host = hosts.entry(host_id.to_owned()).or_default();
        host.records += 1;
        for node in delta
            .into_iter()
            .filter(|d| d.reporter == keys::CONTAINER)
            .flat_map(|d| d.upserts)
        {
            let seen = host.containers.entry(node.id).or_default();
            seen.0 |= node.latest.contains_key(keys::CONTAINER_NAME);
            seen.1 |= node.metrics.contains_key(keys::MEMORY_USAGE_BYTES);
        }
        for event in events {
            host.event(event, server_port);
        }
    }
}

impl HostEvents {
    /// Counts one connection event, and notes a fresh connect to the bench's server.
    fn event(&mut self, event: ConnectionEvent, server_port: u16) {
        *self
            .by_kind
            .entry((kind_str(event.kind), event.source.as_str()))
            .or_default() += 1;
        if event.kind != ConnectionEventKind::Connect || event.refresh {
            return;
        }
        match u16::try_from(event.local_port) {
            Ok(local_port) if event.remote_port == i32::from(server_port) => {
                self.connects.push(Connect {
                    local_port,
                    timestamp_us: event.timestamp_us,
                });
            }
            _ => {
                let process = event.process_name.unwrap_or_else(|| "?".to_owned());
                *self
                    .other_connects
                    .entry((process, event.remote_port))
                    .or_default() += 1;
            }
        }
    }
}

fn kind_str(kind: ConnectionEventKind) -> &'static str {
    match kind {
        ConnectionEventKind::Connect => "connect",
        ConnectionEventKind::Accept => "accept",
        ConnectionEventKind::Close => "close",
    }
}

/// How many of the connections made (client port → how many connections used it) the
/// collector announced: connects stamped within `[from_us, to_us]`, matched by client port,
/// each port counting at most as often as the load used it. Without port reuse this is the
/// number of distinct client ports seen among those made.
pub fn seen(made: &HashMap<u16, u32>, connects: &[Connect], from_us: i64, to_us: i64) -> u64 {
    let mut announced: HashMap<u16, u32> = HashMap::new();
    for c in connects {
        if (from_us..=to_us).contains(&c.timestamp_us) {
            *announced.entry(c.local_port).or_default() += 1;
        }
    }
    made.iter()
        .map(|(port, &n)| u64::from(n.min(announced.get(port).copied().unwrap_or(0))))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_matches_ports_within_the_span_at_most_as_often_as_used() {
        let made = HashMap::from([(40000, 1), (40002, 2), (40004, 1)]);
        let at = |local_port, timestamp_us| Connect {
            local_port,
            timestamp_us,
        };
        let connects = [
            at(40000, 100),
            at(40000, 150), // a duplicate announcement counts once
            at(40002, 120),
            at(40004, 99),  // before the span
            at(50000, 130), // not one of ours
        ];
        assert_eq!(seen(&made, &connects, 100, 200), 2);
        assert_eq!(seen(&made, &[], 0, 1), 0);
    }

    #[test]
    fn keeps_only_fresh_connects_to_the_server() {
        let shared = Shared::default();
        let event = |kind, refresh, remote_port| ConnectionEvent {
            host_id: "h".into(),
            kind,
            timestamp_us: 7,
            refresh,
            netns: 1,
            pid: Some(1),
            process_name: None,
            family: scope_schemas::AddressFamily::Ipv4,
            local_addr: "127.0.0.1".into(),
            local_port: 41000,
            remote_addr: "127.0.0.1".into(),
            remote_port,
            source: scope_schemas::EventSource::Ebpf,
        };
        let events = [
            event(ConnectionEventKind::Connect, false, 9000),
            event(ConnectionEventKind::Connect, true, 9000),
            event(ConnectionEventKind::Connect, false, 9001),
            event(ConnectionEventKind::Accept, false, 9000),
        ];
        // A batch, then an event as collectors published them before batching.
        let records = [
            ConnectionEvents::encode_slice(&events[..3]).unwrap(),
            events[3].encode().unwrap(),
        ];
        for (i, bytes) in records.iter().enumerate() {
            shared.take(topics::CONNECTIONS, i as i64, Some(b"h"), Some(bytes), 9000);
        }
        shared.take(topics::CONNECTIONS, 2, Some(b"h"), Some(b"junk"), 9000);
        shared.take(topics::REPORTS, 0, Some(b"h"), Some(b"junk"), 9000);
        let container = |id: &str, named: bool, measured: bool| {
            let mut node = scope_schemas::Node::new(keys::CONTAINER, id);
            if named {
                node = node.with_latest(keys::CONTAINER_NAME, "/c", 7);
            }
            if measured {
                node.metrics.insert(
                    keys::MEMORY_USAGE_BYTES.into(),
                    scope_schemas::Metric::single(7, 4096.0),
                );
            }
            node
        };
        for (i, (reporter, upserts)) in [
            (keys::CONTAINER, vec![container("a", true, false)]),
            (keys::CONTAINER, vec![container("a", false, true)]),
            (keys::PROCESS, vec![container("b", true, true)]),
        ]
        .into_iter()
        .enumerate()
        {
            let delta = ReportDelta {
                host_id: "h".into(),
                reporter: reporter.into(),
                seq: i as i64,
                full: false,
                timestamp_us: 7,
                upserts,
                removals: vec![],
            };
            let bytes = delta.encode().unwrap();
            shared.take(
                topics::REPORTS,
                1 + i as i64,
                Some(b"h"),
                Some(&bytes),
                9000,
            );
        }
        let hosts = shared.hosts.lock().unwrap();
        let host = &hosts["h"];
        assert_eq!(host.records, 7);
        assert_eq!(host.containers, HashMap::from([("a".into(), (true, true))]));
        assert_eq!(
            host.connects,
            [Connect {
                local_port: 41000,
                timestamp_us: 7
            }]
        );
        assert_eq!(host.by_kind[&("connect", "ebpf")], 3);
        assert_eq!(host.other_connects[&("?".to_owned(), 9001)], 1);
        assert_eq!(shared.malformed.load(Ordering::SeqCst), 2);
        assert_eq!(shared.positions.lock().unwrap()[topics::CONNECTIONS], 3);
    }
}
