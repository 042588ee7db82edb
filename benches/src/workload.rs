//! Synthetic collectors: what `hosts x processes x connections` with churn publish.
//!
//! The traffic is generated once, before any timing, as the exact Avro single-object payloads
//! collectors publish (keyed by host id), so every phase measures the same bytes and none pays
//! for encoding. It follows the collector's rules (see the design): a connection seen by both
//! of its hosts yields a `connect` event on the client's host and an `accept` on the server's;
//! each second a fraction of the open connections closes (a `close` per end) and as many new
//! ones open; every 3 s each host publishes a host and a process report, every 5th of them
//! full, and with each full report every still-open connection is re-published with
//! `refresh = true` and its first-seen time. As collectors do, each host's connection events
//! go out in batches ([`ConnectionEvents`]): those within [`LINGER_US`] of the batch's first
//! (the eBPF tracker's drain interval), up to [`ConnectionEvents::MAX_EVENTS`], and a full
//! report's refreshes together. The generator emits each second's events in time order.
//!
//! Addresses: host `h` is `10.x.y.z` (`h` in the low 24 bits), in the shared local network
//! `10.0.0.0/8`, plus an IPv6 network of its own; Internet ends are `93.184.0.0/16` (servers)
//! and `198.51.0.0/16` (clients), outside every local network, so the renderer draws them as
//! the Internet pseudo nodes.

use scope_schemas::time::now_us;

use scope_merger::state::{Input, State};
use scope_schemas::report::{host_node_id, keys, process_node_id};
use scope_schemas::{
    AddressFamily, ConnectionEvent, ConnectionEventKind, ConnectionEvents, EventSource, Metric,
    Node, Record, ReportDelta,
};

const SECOND_US: i64 = 1_000_000;
/// Collectors publish reports every this many seconds ...
const PUBLISH_EVERY_S: u32 = 3;
/// ... and every this many publishes a full one.
const FULL_EVERY: u32 = 5;
/// Distinct process names, so processes-by-name groups many processes per node.
const PROCESS_NAMES: u32 = 40;
/// The initial network namespace's inode, as on most hosts.
const NETNS: i64 = 4_026_531_840;
const EPHEMERAL_PORTS: std::ops::Range<u32> = 20_000..65_000;
/// How long a collector gathers connection events into one record: the eBPF tracker's
/// ring-buffer drain interval.
const LINGER_US: i64 = 100_000;

/// What the synthetic collectors look like.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    pub hosts: u32,
    pub processes_per_host: u32,
    /// Connections open at the start (and, with churn, at any second).
    pub connections: u64,
    /// Fraction of connections with an Internet end.
    pub internet: f64,
    /// Fraction of open connections replaced each second.
    pub churn: f64,
    /// Seconds of traffic after the initial opens.
    pub seconds: u32,
    /// Partitions of the input topics: one completion sentinel per partition.
    pub partitions: i32,
    pub seed: u64,
}

/// One message as Kafka carries it: topic, key, an explicit partition or none, payload.
#[derive(Clone, Copy, Debug)]
pub struct Message {
    pub input: Input,
    key: u32,
    pub partition: Option<i32>,
    /// Connection events in it; 1 for a report delta.
    pub events: u32,
    start: usize,
    len: u32,
}

/// Encoded messages in one buffer (a million small `Vec`s would cost more than the bytes).
#[derive(Debug, Default)]
pub struct Encoded {
    messages: Vec<Message>,
    data: Vec<u8>,
    keys: Vec<String>,
}

impl Encoded {
    fn add_key(&mut self, key: String) -> u32 {
        self.keys.push(key);
        (self.keys.len() - 1) as u32
    }

    fn push(&mut self, m: Message, payload: &[u8]) {
        self.messages.push(Message {
            start: self.data.len(),
            len: payload.len() as u32,
            ..m
        });
        self.data.extend_from_slice(payload);
    }

    fn push_events(&mut self, key: u32, partition: Option<i32>, events: &[ConnectionEvent]) {
        let payload = ConnectionEvents::encode_slice(events)
            .unwrap_or_else(|e| panic!("encoding generated connection events: {e}"));
        let m = Message {
            input: Input::Connections,
            key,
            partition,
            events: events.len() as u32,
            start: 0,
            len: 0,
        };
        self.push(m, &payload);
    }

    fn push_delta(&mut self, key: u32, partition: Option<i32>, delta: &ReportDelta) {
        let m = Message {
            input: Input::Reports,
            key,
            partition,
            events: 1,
            start: 0,
            len: 0,
        };
        self.push(m, &encode(delta));
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Bytes of all payloads (keys not included).
    pub fn payload_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// Every message with its key and payload, in publishing order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&Message, &str, &[u8])> + ExactSizeIterator + '_ {
        self.messages.iter().map(|m| {
            let payload = &self.data[m.start..m.start + m.len as usize];
            (m, self.keys[m.key as usize].as_str(), payload)
        })
    }

    /// How many messages go to `input`.
    pub fn count(&self, input: Input) -> u64 {
        self.messages.iter().filter(|m| m.input == input).count() as u64
    }

    /// How many events the messages to `input` carry: what a merger counts.
    pub fn events(&self, input: Input) -> u64 {
        self.messages
            .iter()
            .filter(|m| m.input == input)
            .map(|m| u64::from(m.events))
            .sum()
    }

    /// One connection event and one report per partition of each input, each with an
    /// explicit partition, from hosts `<prefix>-c<p>` and `<prefix>-r<p>`, stamped now.
    pub fn markers(prefix: &str, partitions: i32) -> Self {
        let mut out = Encoded::default();
        let ts = now_us();
        for p in 0..partitions {
            let host = format!("{prefix}-c{p}");
            let key = out.add_key(host.clone());
            let ev = ConnectionEvent {
                host_id: host,
                kind: ConnectionEventKind::Connect,
                timestamp_us: ts,
                refresh: false,
                netns: NETNS,
                pid: Some(1),
                process_name: Some("marker".into()),
                family: AddressFamily::Ipv4,
                local_addr: "192.0.2.1".into(),
                local_port: 40_000,
                remote_addr: "192.0.2.2".into(),
                remote_port: 80,
                source: EventSource::Procfs,
            };
            out.push_events(key, Some(p), &[ev]);
            let host = format!("{prefix}-r{p}");
            let key = out.add_key(host.clone());
            let node =
                Node::new(keys::HOST, host_node_id(&host)).with_latest(keys::HOST_NAME, &host, ts);
            let delta = ReportDelta {
                host_id: host,
                reporter: keys::HOST.into(),
                seq: ts,
                full: true,
                timestamp_us: ts,
                upserts: vec![node],
                removals: vec![],
            };
            out.push_delta(key, Some(p), &delta);
        }
        out
    }
}

fn encode<R: Record>(record: &R) -> Vec<u8> {
    // The generator only builds records of its own schemas, which always encode.
    record
        .encode()
        .unwrap_or_else(|e| panic!("encoding a generated {}: {e}", R::NAME))
}

/// The collector traffic of phases 1 and 2, encoded.
#[derive(Debug)]
pub struct Workload {
    pub encoded: Encoded,
    pub connection_events: u64,
    pub report_deltas: u64,
    /// Host ids whose socket (connections topic) and host row (reports topic) are in a
    /// snapshot only once every message before them in their partition was applied: the
    /// last messages of each partition (each sent twice).
    pub sentinel_socket_hosts: Vec<String>,
    pub sentinel_report_hosts: Vec<String>,
}

impl Workload {
    /// Generates `traffic.seconds` of traffic ending about a second ago, then the sentinels.
    pub fn generate(traffic: &Traffic) -> Self {
        let base_us = now_us() - i64::from(traffic.seconds + 1) * SECOND_US;
        let mut encoded = Encoded::default();
        for h in 0..traffic.hosts {
            encoded.add_key(host_id(h));
        }
        let (mut connection_events, mut report_deltas) = (0, 0);
        let mut batches = Batches::new(traffic.hosts);
        Generator::new(traffic, base_us).run(&mut |host, item| match item {
            Item::Connection(ev) => {
                connection_events += 1;
                batches.push(&mut encoded, host, ev);
            }
            Item::Report(delta) => {
                report_deltas += 1;
                encoded.push_delta(host, None, &delta);
            }
        });
        batches.flush_all(&mut encoded);
        let sentinels = Encoded::markers("~sentinel", traffic.partitions);
        let sentinel_socket_hosts = (0..traffic.partitions)
            .map(|p| format!("~sentinel-c{p}"))
            .collect();
        let sentinel_report_hosts = (0..traffic.partitions)
            .map(|p| format!("~sentinel-r{p}"))
            .collect();
        // Each sentinel twice, one right after the other: the merger applies a repeat as a
        // duplicate, and one message lost by a consumer cannot hide the end of a partition.
        for (m, key, payload) in sentinels.iter().flat_map(|s| [s, s]) {
            let key = encoded.add_key(key.to_owned());
            encoded.push(Message { key, ..*m }, payload);
            match m.input {
                Input::Connections => connection_events += 1,
                Input::Reports => report_deltas += 1,
            }
        }
        Workload {
            encoded,
            connection_events,
            report_deltas,
            sentinel_socket_hosts,
            sentinel_report_hosts,
        }
    }

    pub fn len(&self) -> usize {
        self.encoded.len()
    }

    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    pub fn payload_bytes(&self) -> u64 {
        self.encoded.payload_bytes()
    }
}

/// Each host's connection events not yet in a record, gathered as its collector would.
struct Batches {
    pending: Vec<Vec<ConnectionEvent>>,
}

impl Batches {
    fn new(hosts: u32) -> Self {
        Batches {
            pending: (0..hosts).map(|_| Vec::new()).collect(),
        }
    }

    /// Adds `ev` of `host` to its batch, after writing the batch out if `ev` does not belong
    /// in it: the batch is full, `ev` came after its linger, or one is a refresh and the
    /// other not (a full report's refreshes are published together).
    fn push(&mut self, out: &mut Encoded, host: u32, ev: ConnectionEvent) {
        let batch = &mut self.pending[host as usize];
        if let Some(first) = batch.first() {
            let fits = batch.len() < ConnectionEvents::MAX_EVENTS
                && first.refresh == ev.refresh
                && (ev.refresh || ev.timestamp_us < first.timestamp_us + LINGER_US);
            if !fits {
                out.push_events(host, None, batch);
                batch.clear();
            }
        }
        batch.push(ev);
    }

    fn flush_all(&mut self, out: &mut Encoded) {
        for (host, batch) in self.pending.iter_mut().enumerate() {
            if !batch.is_empty() {
                out.push_events(host as u32, None, batch);
                batch.clear();
            }
        }
    }
}

/// The merged state of `traffic`'s topology with every connection open, as a merger holds it
/// just before cutting at `t_us`: full reports 9.5 s before, connections opened 10 s before.
pub fn merged_state(traffic: &Traffic, t_us: i64) -> State {
    let mut state = State::new();
    let quiet = Traffic {
        churn: 0.0,
        seconds: 0,
        ..traffic.clone()
    };
    Generator::new(&quiet, t_us - 10 * SECOND_US).run(&mut |_, item| {
        match item {
            Item::Connection(ev) => state.apply_connection(ev, None),
            Item::Report(delta) => state.apply_report(delta, None),
        };
    });
    state
}

/// A generated record, before encoding.
#[derive(Clone, Debug)]
pub enum Item {
    Connection(ConnectionEvent),
    Report(ReportDelta),
}

pub fn host_id(h: u32) -> String {
    format!("host-{h:05}")
}

fn host_addr(h: u32) -> String {
    format!("10.{}.{}.{}", (h >> 16) & 255, (h >> 8) & 255, h & 255)
}

fn ipv4(ip: u32) -> String {
    let [a, b, c, d] = ip.to_be_bytes();
    format!("{a}.{b}.{c}.{d}")
}

fn pid(p: u32) -> i32 {
    1000 + p as i32
}

fn process_name(p: u32) -> String {
    format!("svc-{:02}", p % PROCESS_NAMES)
}

/// The port process `p` listens on.
fn listen_port(p: u32) -> i32 {
    (1024 + p % 15_000) as i32
}

#[derive(Clone, Copy, Debug)]
enum End {
    Local { host: u32, process: u32, port: i32 },
    Internet { ip: u32, port: i32 },
}

impl End {
    fn addr(&self) -> String {
        match *self {
            End::Local { host, .. } => host_addr(host),
            End::Internet { ip, .. } => ipv4(ip),
        }
    }

    fn port(&self) -> i32 {
        match *self {
            End::Local { port, .. } | End::Internet { port, .. } => port,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    client: End,
    server: End,
    opened_us: i64,
}

/// SplitMix64: deterministic, fast, and enough for picking connections and addresses.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub(crate) fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Generator<'a> {
    traffic: &'a Traffic,
    rng: Rng,
    base_us: i64,
    /// Connections made so far: picks the client process round-robin, numbers Internet ends.
    made: u64,
    next_port: Vec<u32>,
    open: Vec<Conn>,
}

impl<'a> Generator<'a> {
    fn new(traffic: &'a Traffic, base_us: i64) -> Self {
        Generator {
            traffic,
            rng: Rng(traffic.seed),
            base_us,
            made: 0,
            next_port: vec![EPHEMERAL_PORTS.start; traffic.hosts as usize],
            open: Vec::with_capacity(traffic.connections as usize),
        }
    }

    /// Emits the whole timeline, each record with the index of the host that publishes it;
    /// each second's connection events in the order they happened, as a collector sees them.
    fn run(&mut self, emit: &mut impl FnMut(u32, Item)) {
        let mut second = Vec::new();
        let mut collect = |host, item| second.push((host, item));
        for _ in 0..self.traffic.connections {
            let ts = self.base_us + self.rng.below(SECOND_US as u64) as i64;
            self.open_one(ts, &mut collect);
        }
        in_time_order(&mut second, emit);
        self.reports(0, emit);
        let churn = (self.traffic.churn * self.traffic.connections as f64).round() as u64;
        for s in 1..=self.traffic.seconds {
            let second_us = self.base_us + i64::from(s) * SECOND_US;
            let mut collect = |host, item| second.push((host, item));
            for _ in 0..churn {
                if self.open.is_empty() {
                    break;
                }
                let i = self.rng.below(self.open.len() as u64) as usize;
                let conn = self.open.swap_remove(i);
                let ts = second_us + self.rng.below(SECOND_US as u64 / 2) as i64;
                self.events(&conn, ConnectionEventKind::Close, ts, false, &mut collect);
            }
            for _ in 0..churn {
                let ts = second_us + (SECOND_US / 2) + self.rng.below(SECOND_US as u64 / 2) as i64;
                self.open_one(ts, &mut collect);
            }
            in_time_order(&mut second, emit);
            if s.is_multiple_of(PUBLISH_EVERY_S) {
                self.reports(s, emit);
            }
        }
    }

    fn open_one(&mut self, ts: i64, emit: &mut impl FnMut(u32, Item)) {
        let t = self.traffic;
        let n = self.made;
        self.made += 1;
        let host = (n % u64::from(t.hosts)) as u32;
        let process = ((n / u64::from(t.hosts)) % u64::from(t.processes_per_host)) as u32;
        let local_server = End::Local {
            host,
            process,
            port: listen_port(process),
        };
        let roll = self.rng.fraction();
        let conn = if roll < t.internet / 2.0 {
            // Inbound from the Internet: a fresh client address and port per connection.
            let client = End::Internet {
                ip: 0xC633_0000 + (n / 40_000) as u32 % 65_536,
                port: 10_000 + (n % 40_000) as i32,
            };
            Conn {
                client,
                server: local_server,
                opened_us: ts,
            }
        } else {
            let port = self.next_port[host as usize];
            self.next_port[host as usize] = if port + 1 >= EPHEMERAL_PORTS.end {
                EPHEMERAL_PORTS.start
            } else {
                port + 1
            };
            let client = End::Local {
                host,
                process,
                port: port as i32,
            };
            let server = if roll < t.internet {
                End::Internet {
                    ip: 0x5DB8_0000 + self.rng.below(65_536) as u32,
                    port: 443,
                }
            } else {
                let other = if t.hosts > 1 {
                    (host + 1 + self.rng.below(u64::from(t.hosts - 1)) as u32) % t.hosts
                } else {
                    host
                };
                let process = self.rng.below(u64::from(t.processes_per_host)) as u32;
                End::Local {
                    host: other,
                    process,
                    port: listen_port(process),
                }
            };
            Conn {
                client,
                server,
                opened_us: ts,
            }
        };
        self.events(&conn, ConnectionEventKind::Connect, ts, false, emit);
        self.open.push(conn);
    }

    /// The events of `conn`'s local ends: `open` is `Connect` (client end as given, server end
    /// as `Accept`) or `Close` (both ends).
    fn events(
        &self,
        conn: &Conn,
        kind: ConnectionEventKind,
        ts: i64,
        refresh: bool,
        emit: &mut impl FnMut(u32, Item),
    ) {
        let ends = [
            (conn.client, conn.server, kind),
            (
                conn.server,
                conn.client,
                if kind == ConnectionEventKind::Connect {
                    ConnectionEventKind::Accept
                } else {
                    kind
                },
            ),
        ];
        for (local, remote, kind) in ends {
            let End::Local {
                host,
                process,
                port,
            } = local
            else {
                continue;
            };
            let ev = ConnectionEvent {
                host_id: host_id(host),
                kind,
                timestamp_us: ts,
                refresh,
                netns: NETNS,
                pid: Some(pid(process)),
                process_name: Some(process_name(process)),
                family: AddressFamily::Ipv4,
                local_addr: host_addr(host),
                local_port: port,
                remote_addr: remote.addr(),
                remote_port: remote.port(),
                source: EventSource::Procfs,
            };
            emit(host, Item::Connection(ev));
        }
    }

    /// The reports every host publishes at second `s`, and with full ones the refreshes.
    fn reports(&mut self, s: u32, emit: &mut impl FnMut(u32, Item)) {
        let t = self.traffic;
        let publish = s / PUBLISH_EVERY_S;
        let full = publish.is_multiple_of(FULL_EVERY);
        let ts = self.base_us + i64::from(s) * SECOND_US + SECOND_US / 2;
        let seq = self.base_us + i64::from(publish);
        for h in 0..t.hosts {
            let id = host_id(h);
            let host = host_node(h, ts, f64::from(s % 7) / 3.0);
            let delta = |reporter: &str, upserts| ReportDelta {
                host_id: id.clone(),
                reporter: reporter.into(),
                seq,
                full,
                timestamp_us: ts,
                upserts,
                removals: vec![],
            };
            emit(h, Item::Report(delta(keys::HOST, vec![host])));
            // Between full reports only the processes whose numbers changed: a tenth.
            let processes = (0..t.processes_per_host)
                .filter(|p| full || (p + publish).is_multiple_of(10))
                .map(|p| process_node(h, p, ts, s))
                .collect();
            emit(h, Item::Report(delta(keys::PROCESS, processes)));
        }
        if full {
            for conn in &self.open {
                self.events(
                    conn,
                    ConnectionEventKind::Connect,
                    conn.opened_us,
                    true,
                    emit,
                );
            }
        }
    }
}

/// Emits and empties `items` sorted by time; the sort is stable, so the two ends of one
/// connection keep their order.
fn in_time_order(items: &mut Vec<(u32, Item)>, emit: &mut impl FnMut(u32, Item)) {
    items.sort_by_key(|(_, item)| match item {
        Item::Connection(ev) => ev.timestamp_us,
        Item::Report(delta) => delta.timestamp_us,
    });
    for (host, item) in items.drain(..) {
        emit(host, item);
    }
}

fn host_node(h: u32, ts: i64, load: f64) -> Node {
    let id = host_id(h);
    let mut node = Node::new(keys::HOST, host_node_id(&id))
        .with_latest(keys::HOST_NAME, format!("{id}.bench.example"), ts)
        .with_latest(keys::OS, "Debian GNU/Linux 12 (bookworm)", ts)
        .with_latest(keys::KERNEL_VERSION, "6.18.0", ts)
        .with_latest(keys::UPTIME_SECONDS, 86_400 + ts / SECOND_US % 1000, ts)
        .with_latest(keys::TRACKER_MODE, "procfs", ts);
    node.metrics
        .insert(keys::LOAD1.into(), Metric::single(ts, load));
    node.metrics.insert(
        keys::CPU_USAGE_PERCENT.into(),
        Metric::single(ts, 12.5 + load),
    );
    node.metrics
        .insert(keys::MEMORY_USAGE_BYTES.into(), Metric::single(ts, 6.0e9));
    node.metrics
        .insert(keys::MEMORY_TOTAL_BYTES.into(), Metric::single(ts, 16.0e9));
    node.sets.insert(
        keys::LOCAL_NETWORKS.into(),
        vec![format!("{}/8", host_addr(h)), format!("fd00:{h:x}::1/64")],
    );
    node
}

fn process_node(h: u32, p: u32, ts: i64, s: u32) -> Node {
    let id = host_id(h);
    let name = process_name(p);
    let mut node = Node::new(keys::PROCESS, process_node_id(&id, pid(p)))
        .with_latest(keys::PID, pid(p), ts)
        .with_latest(keys::PPID, 1, ts)
        .with_latest(keys::NAME, &name, ts)
        .with_latest(
            keys::CMDLINE,
            format!("/usr/bin/{name} --listen :{}", listen_port(p)),
            ts,
        )
        .with_latest(keys::THREADS, 4 + p % 8, ts);
    node.metrics.insert(
        keys::CPU_USAGE_PERCENT.into(),
        Metric::single(ts, f64::from((p + s) % 100)),
    );
    node.metrics.insert(
        keys::MEMORY_USAGE_BYTES.into(),
        Metric::single(ts, f64::from(p % 64 + 1) * 1.0e6),
    );
    node.metrics.insert(
        keys::OPEN_FILES_COUNT.into(),
        Metric::single(ts, f64::from(8 + p % 32)),
    );
    node.parents
        .insert(keys::HOST.into(), vec![host_node_id(&id)]);
    node
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use scope_merger::window::Window;

    use super::*;

    fn small() -> Traffic {
        Traffic {
            hosts: 3,
            processes_per_host: 4,
            connections: 60,
            internet: 0.2,
            churn: 0.1,
            seconds: 15,
            partitions: 2,
            seed: 7,
        }
    }

    #[test]
    fn every_message_decodes_and_applies_cleanly() {
        let workload = Workload::generate(&small());
        assert_eq!(
            workload.encoded.events(Input::Connections),
            workload.connection_events
        );
        assert_eq!(
            workload.encoded.count(Input::Reports),
            workload.report_deltas
        );
        // Batched, as collectors publish: fewer records than events.
        assert!(workload.encoded.count(Input::Connections) < workload.connection_events);
        let mut state = State::new();
        let mut outcomes: HashMap<_, u64> = HashMap::new();
        let mut count = |input: Input, outcome| {
            *outcomes.entry(format!("{input:?}{outcome:?}")).or_default() += 1;
        };
        for (m, key, payload) in workload.encoded.iter() {
            match m.input {
                Input::Connections => {
                    let batch = ConnectionEvents::decode(payload).unwrap();
                    assert_eq!(batch.events.len(), m.events as usize);
                    assert!(batch.events.len() <= ConnectionEvents::MAX_EVENTS);
                    for ev in batch.events {
                        assert_eq!(ev.host_id, key);
                        scope_merger::state::check_connection(&ev).unwrap();
                        count(m.input, state.apply_connection(ev, Some(now_us())));
                    }
                }
                Input::Reports => {
                    let delta = ReportDelta::decode(payload).unwrap();
                    assert_eq!(delta.host_id, key);
                    count(m.input, state.apply_report(delta, Some(now_us())));
                }
            }
        }
        // Closes always find their socket; a refresh of a socket
        // already known changes only its last-seen time, which may already be as late.
        assert!(
            !outcomes.keys().any(|k| k.ends_with("Ignored")),
            "{outcomes:?}"
        );
        // Only the repeated report sentinel of each partition is a replay.
        assert_eq!(
            outcomes.get("ReportsDuplicate").copied().unwrap_or(0),
            small().partitions as u64,
            "{outcomes:?}"
        );
        // The sentinels are the last message of each partition.
        let last: Vec<_> = workload
            .encoded
            .iter()
            .rev()
            .take(4)
            .map(|(m, _, _)| m.partition)
            .collect();
        assert!(last.iter().all(|p| p.is_some()));
    }

    #[test]
    fn churn_keeps_the_number_of_open_connections() {
        let traffic = small();
        let workload = Workload::generate(&traffic);
        let churned = (traffic.churn * traffic.connections as f64).round() as u64
            * u64::from(traffic.seconds);
        // Every connection has one or two local ends: at most two events per open and close.
        let opens_and_closes = traffic.connections + 2 * churned;
        assert!(workload.connection_events > opens_and_closes);
        let t = now_us();
        let mut state = State::new();
        for (m, _, payload) in workload.encoded.iter() {
            if m.input == Input::Connections {
                for ev in ConnectionEvents::decode(payload).unwrap().events {
                    state.apply_connection(ev, Some(t));
                }
            }
        }
        // Open connections keep their count; closed ones stay until they leave the window.
        let window = Window::new(Duration::from_secs(15), Duration::from_secs(15));
        let open = state
            .cut(t, &window)
            .sockets
            .iter()
            .filter(|s| s.closed_at_us.is_none())
            .count();
        // Both ends of local connections, one end of Internet ones, plus the sentinels.
        assert!(
            open as u64 >= traffic.connections && open as u64 <= 2 * traffic.connections + 2,
            "{open}"
        );
    }

    #[test]
    fn merged_state_has_the_topology() {
        let traffic = Traffic {
            hosts: 4,
            processes_per_host: 5,
            connections: 100,
            ..small()
        };
        let t = now_us();
        let mut state = merged_state(&traffic, t);
        let tables = state.cut(
            t,
            &Window::new(Duration::from_secs(15), Duration::from_secs(15)),
        );
        assert_eq!(tables.hosts.len(), 4);
        assert_eq!(tables.processes.len(), 20);
        assert!(tables.sockets.len() >= 100 && tables.sockets.len() <= 200);
        assert!(tables.sockets.iter().all(|s| s.closed_at_us.is_none()));
        assert_eq!(tables.local_networks.len(), 8);
    }
}
