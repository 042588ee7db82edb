//! The merger end to end against an embedded broker: messages in, Parquet files and
//! announcements out. Each test has its own broker, data directory and consumer groups.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use scope_kafka::{EmbeddedBroker, KafkaArgs};
use scope_merger::{MergerArgs, Stats, run_with_stats};
use scope_renderer::RendererArgs;
use scope_schemas::report::{host_node_id, keys, process_node_id};
use scope_schemas::snapshot::table;
use scope_schemas::{
    AddressFamily, ConnectionEvent, ConnectionEventKind, ConnectionEvents, EventSource, Metric,
    Node, Record, ReportDelta, Snapshot, View, topics,
};
use scope_testkit::{Broker, Running, consume_until, now_us, wait_for_async};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(90);

fn merger_args(kafka: &KafkaArgs, dir: &Path, group: &str, writer: &str) -> MergerArgs {
    MergerArgs {
        group_id: group.into(),
        writer: writer.into(),
        window: Duration::from_secs(60),
        tick: Duration::from_millis(250),
        // Ticks that only move metrics are skipped here too, for at most four ticks.
        idle_interval: Duration::from_secs(1),
        full_interval: Duration::from_secs(5),
        ..MergerArgs::new(kafka.clone(), dir)
    }
}

/// A merger running in the test, counting into stats of its own.
struct Merger {
    running: Running<scope_merger::Error>,
    stats: Arc<Stats>,
}

fn start(args: MergerArgs) -> Merger {
    let stats = Arc::new(Stats::default());
    let counted = Arc::clone(&stats);
    let running = Running::start(|shutdown| run_with_stats(args, shutdown, counted));
    Merger { running, stats }
}

impl Merger {
    async fn stop(self) {
        self.running.stop(TIMEOUT).await;
    }
}

fn producer(kafka: &KafkaArgs) -> FutureProducer {
    kafka
        .client_config(&[("enable.idempotence", "true")])
        .create()
        .unwrap()
}

async fn send(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    send_at(producer, topic, key, payload, None).await;
}

/// Publishes with an explicit message timestamp, as a replay of an earlier message carries.
async fn send_at(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    ts_ms: Option<i64>,
) {
    let mut record = FutureRecord::to(topic).key(key).payload(payload);
    if let Some(ts_ms) = ts_ms {
        record = record.timestamp(ts_ms);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

fn snapshot_consumer(kafka: &KafkaArgs, group: &str) -> StreamConsumer {
    let consumer: StreamConsumer = kafka
        .client_config(&[
            ("group.id", group),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
        ])
        .create()
        .unwrap();
    consumer.subscribe(&[topics::SNAPSHOTS]).unwrap();
    consumer
}

fn connection(
    kind: ConnectionEventKind,
    ts: i64,
    local_port: i32,
    remote_port: i32,
) -> ConnectionEvent {
    ConnectionEvent {
        host_id: "h1".into(),
        kind,
        timestamp_us: ts,
        refresh: false,
        netns: 4026531840,
        pid: Some(100),
        process_name: Some("curl".into()),
        family: AddressFamily::Ipv4,
        local_addr: "10.0.0.1".into(),
        local_port,
        remote_addr: "10.0.0.2".into(),
        remote_port,
        source: EventSource::Procfs,
    }
}

fn host_delta(seq: i64, ts: i64) -> ReportDelta {
    host_delta_of("h1", seq, ts, true)
}

/// The host reporter's delta of `host_id`: its host node, whole when `full`.
fn host_delta_of(host_id: &str, seq: i64, ts: i64, full: bool) -> ReportDelta {
    let mut host = Node::new(keys::HOST, host_node_id(host_id))
        .with_latest(keys::HOST_NAME, "node-1", ts)
        .with_latest(keys::OS, "Debian GNU/Linux 12", ts);
    host.metrics
        .insert(keys::LOAD1.into(), Metric::single(ts, 0.75));
    host.sets
        .insert(keys::LOCAL_NETWORKS.into(), vec!["10.0.0.1/24".into()]);
    ReportDelta {
        host_id: host_id.into(),
        reporter: "host".into(),
        seq,
        full,
        timestamp_us: ts,
        upserts: vec![host],
        removals: vec![],
    }
}

fn process_delta(seq: i64, ts: i64) -> ReportDelta {
    let process = |pid: i32, name: &str| {
        Node::new(keys::PROCESS, process_node_id("h1", pid))
            .with_latest(keys::PID, pid, ts)
            .with_latest(keys::NAME, name, ts)
    };
    ReportDelta {
        host_id: "h1".into(),
        reporter: "process".into(),
        seq,
        full: true,
        timestamp_us: ts,
        upserts: vec![process(1, "init"), process(100, "curl")],
        removals: vec![],
    }
}

/// One host's reports and four connections: two open, one opened and closed inside the
/// window, and a close of a socket never seen open. Every message is published twice with the
/// same message timestamp, as a replay would deliver it again. The connections go out one
/// event a record, as collectors wrote them before batching (`connection_event.v1`).
async fn publish_scenario(producer: &FutureProducer) {
    let t = now_us();
    let at = Some(t / 1000);
    let connections = [
        connection(ConnectionEventKind::Connect, t - 3_000_000, 40000, 80),
        connection(ConnectionEventKind::Accept, t - 3_000_000, 22, 50000),
        connection(ConnectionEventKind::Connect, t - 2_000_000, 40001, 443),
        connection(ConnectionEventKind::Close, t - 1_000_000, 40001, 443),
        connection(ConnectionEventKind::Close, t - 1_000_000, 1, 1),
    ];
    for _ in 0..2 {
        for ev in &connections {
            send_at(
                producer,
                topics::CONNECTIONS,
                "h1",
                &ev.encode().unwrap(),
                at,
            )
            .await;
        }
        send_at(
            producer,
            topics::REPORTS,
            "h1",
            &host_delta(1000, t).encode().unwrap(),
            at,
        )
        .await;
        send_at(
            producer,
            topics::REPORTS,
            "h1",
            &process_delta(2000, t).encode().unwrap(),
            at,
        )
        .await;
    }
}

/// The merged tables of one announced snapshot, read back from its Parquet files.
struct Tables {
    snapshot: Snapshot,
    batches: BTreeMap<String, RecordBatch>,
}

impl Tables {
    fn read(snapshot: Snapshot) -> Tables {
        let mut batches = BTreeMap::new();
        for file in &snapshot.files {
            let path = Path::new(&snapshot.data_dir).join(&file.path);
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
            let schema = reader.schema().clone();
            let parts: Vec<RecordBatch> =
                reader.build().unwrap().collect::<Result<_, _>>().unwrap();
            let batch = arrow::compute::concat_batches(&schema, &parts).unwrap();
            assert_eq!(batch.num_rows() as i64, file.rows, "{}", file.path);
            assert_eq!(
                batch.schema(),
                scope_schemas::tables::schema(&file.table).unwrap()
            );
            batches.insert(file.table.clone(), batch);
        }
        Tables { snapshot, batches }
    }

    fn rows(&self, table: &str) -> usize {
        self.batches[table].num_rows()
    }

    /// The given columns of every row, as display strings.
    fn columns(&self, table: &str, columns: &[&str]) -> Vec<Vec<String>> {
        let batch = &self.batches[table];
        let options = FormatOptions::default().with_null("NULL");
        // Timestamps lose their "UTC" zone first: naming it needs arrow's chrono-tz feature.
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|c| {
                let array = batch.column_by_name(c).unwrap();
                match array.data_type() {
                    DataType::Timestamp(unit, Some(_)) => {
                        cast(array, &DataType::Timestamp(*unit, None)).unwrap()
                    }
                    _ => Arc::clone(array),
                }
            })
            .collect();
        let formatters: Vec<ArrayFormatter<'_>> = arrays
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &options).unwrap())
            .collect();
        (0..batch.num_rows())
            .map(|i| formatters.iter().map(|f| f.value(i).to_string()).collect())
            .collect()
    }
}

/// Partition 0's committed offset of each input topic, for `group`.
async fn committed_offsets(kafka: &KafkaArgs, group: &str) -> Vec<(String, i64)> {
    let consumer: BaseConsumer = kafka
        .client_config(&[("group.id", group)])
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for topic in topics::MERGER_INPUTS {
        tpl.add_partition(topic, 0);
    }
    let committed = tokio::task::spawn_blocking(move || {
        consumer.committed_offsets(tpl, Duration::from_secs(10))
    })
    .await
    .unwrap()
    .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.topic().to_owned(), o),
            other => panic!("{}: no committed offset ({other:?})", e.topic()),
        })
        .collect()
}

/// Reads announcements until one from `writer` satisfies `done`.
async fn wait_snapshot(
    consumer: &StreamConsumer,
    writer: &str,
    done: impl Fn(&Tables) -> bool,
) -> Tables {
    // The latest announcement of `writer`.
    let mut latest = None;
    let fold = |latest: &mut Option<Tables>, message: &BorrowedMessage<'_>| {
        let snapshot = Snapshot::decode(message.payload().unwrap()).unwrap();
        assert_eq!(message.key(), Some(snapshot.writer.as_bytes()));
        if snapshot.writer == writer {
            *latest = Some(Tables::read(snapshot));
        }
    };
    consume_until(consumer, TIMEOUT, &mut latest, fold, |latest| {
        latest.as_ref().is_some_and(&done)
    })
    .await
    .unwrap_or_else(|timed_out| panic!("{timed_out}: no matching snapshot of {writer} announced"));
    latest.expect("a matching snapshot")
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    wait_for_async(what, TIMEOUT, || condition().then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merges_events_and_reports_into_parquet_snapshots() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let announcements = snapshot_consumer(&kafka, "test-announcements-1");
    let producer = producer(&kafka);
    publish_scenario(&producer).await;

    let merger = start(merger_args(&kafka, dir.path(), "merger-1", "m1"));
    let tables = wait_snapshot(&announcements, "m1", |t| {
        t.rows(table::SOCKETS) == 3 && t.rows(table::HOSTS) == 1
    })
    .await;

    let names: Vec<&str> = tables
        .snapshot
        .files
        .iter()
        .map(|f| f.table.as_str())
        .collect();
    assert_eq!(names, table::MERGED);
    assert_eq!(tables.snapshot.window_us, 60_000_000);
    assert_eq!(
        tables.snapshot.snapshot_time_us % 250_000,
        0,
        "aligned to the tick"
    );
    assert_eq!(
        tables.columns(table::HOSTS, &["host_id", "host_name", "os", "load1"]),
        vec![vec!["h1", "node-1", "Debian GNU/Linux 12", "0.75"]]
    );
    assert_eq!(
        tables.columns(table::PROCESSES, &["host_id", "pid", "name"]),
        vec![vec!["h1", "1", "init"], vec!["h1", "100", "curl"]]
    );
    assert_eq!(
        tables.columns(table::LOCAL_NETWORKS, &["host_id", "cidr"]),
        vec![vec!["h1", "10.0.0.1/24"]]
    );
    let sockets = tables.columns(
        table::SOCKETS,
        &[
            "local_port",
            "remote_port",
            "direction",
            "state",
            "pid",
            "process_name",
            "family",
            "source",
        ],
    );
    assert_eq!(
        sockets,
        vec![
            vec![
                "22", "50000", "inbound", "open", "100", "curl", "ipv4", "procfs"
            ],
            vec![
                "40000", "80", "outbound", "open", "100", "curl", "ipv4", "procfs"
            ],
            vec![
                "40001", "443", "outbound", "closed", "100", "curl", "ipv4", "procfs"
            ],
        ]
    );
    let closed = tables.columns(table::SOCKETS, &["closed_at"]);
    assert_eq!(closed.iter().filter(|c| c[0] == "NULL").count(), 2);

    // Every message was published twice: the second copies are counted as duplicates.
    let stats = Arc::clone(&merger.stats);
    wait_until("duplicates counted", || {
        stats.connections.duplicates.load(Ordering::Relaxed) == 4
            && stats.connections.ignored.load(Ordering::Relaxed) == 2
            && stats.reports.duplicates.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(stats.connections.applied.load(Ordering::Relaxed), 4);
    assert_eq!(stats.reports.applied.load(Ordering::Relaxed), 2);
    assert_eq!(stats.connections.malformed.load(Ordering::Relaxed), 0);
    assert!(stats.snapshots_written.load(Ordering::Relaxed) >= 1);
    assert!(stats.bytes_written.load(Ordering::Relaxed) > 0);
    merger.stop().await;
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_are_counted_and_skipped() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let announcements = snapshot_consumer(&kafka, "test-announcements-2");
    let producer = producer(&kafka);

    let merger = start(merger_args(&kafka, dir.path(), "merger-2", "m2"));
    // The merger is up and writing before the garbage arrives.
    wait_snapshot(&announcements, "m2", |_| true).await;

    let valid_event = connection(ConnectionEventKind::Connect, now_us(), 40000, 80)
        .encode()
        .unwrap();
    let valid_report = host_delta(1, now_us()).encode().unwrap();
    let mut garbage: Vec<Vec<u8>> = (0..20)
        .map(|i| noise(i + 1, 1 + (i as usize * 7) % 200))
        .collect();
    // Right header, broken bodies; an empty value; a valid record of the other topic's type.
    garbage.push(valid_event[..valid_event.len() - 3].to_vec());
    garbage.push([&valid_event[..], &[0u8, 1, 2][..]].concat());
    garbage.push(Vec::new());
    for payload in &garbage {
        send(&producer, topics::CONNECTIONS, "h1", payload).await;
        send(&producer, topics::REPORTS, "h1", payload).await;
    }
    send(&producer, topics::CONNECTIONS, "h1", &valid_report).await;
    send(&producer, topics::REPORTS, "h1", &valid_event).await;
    let invalid = ConnectionEvent {
        local_port: -1,
        ..connection(ConnectionEventKind::Connect, now_us(), 0, 80)
    };
    send(
        &producer,
        topics::CONNECTIONS,
        "h1",
        &invalid.encode().unwrap(),
    )
    .await;
    // Valid messages after the garbage still get through.
    send(&producer, topics::CONNECTIONS, "h1", &valid_event).await;
    send(&producer, topics::REPORTS, "h1", &valid_report).await;

    let expected = garbage.len() as u64 + 1;
    let stats = Arc::clone(&merger.stats);
    wait_until("malformed messages counted", || {
        stats.connections.malformed.load(Ordering::Relaxed) == expected + 1
            && stats.reports.malformed.load(Ordering::Relaxed) == expected
    })
    .await;
    let written = stats.snapshots_written.load(Ordering::Relaxed);
    let tables = wait_snapshot(&announcements, "m2", |t| {
        t.rows(table::SOCKETS) == 1 && t.rows(table::HOSTS) == 1
    })
    .await;
    assert_eq!(
        tables.columns(table::SOCKETS, &["local_port"]),
        vec![vec!["40000"]]
    );
    // And snapshots keep coming.
    wait_until("more snapshots", || {
        stats.snapshots_written.load(Ordering::Relaxed) >= written + 3
    })
    .await;
    assert_eq!(stats.connections.applied.load(Ordering::Relaxed), 1);
    assert_eq!(stats.reports.applied.load(Ordering::Relaxed), 1);
    merger.stop().await;
}

/// At rest every host still reports each tick, with other metrics and its sockets confirmed
/// again: the merger writes no file and announces nothing for those ticks, and writes at
/// once, with the latest metrics, when a connection appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merger_at_rest_writes_nothing_until_the_graph_changes() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let announcements = snapshot_consumer(&kafka, "test-announcements-rest");
    let producer = producer(&kafka);
    let merger = start(MergerArgs {
        idle_interval: Duration::from_secs(600),
        ..merger_args(&kafka, dir.path(), "merger-rest", "rest")
    });
    let first_seen = now_us();
    let report = |seq: i64| {
        let ts = now_us();
        let mut delta = host_delta(seq, ts);
        delta.upserts[0]
            .metrics
            .insert(keys::LOAD1.into(), Metric::single(ts, seq as f64));
        delta.encode().unwrap()
    };
    let open = |port: i32, refresh: bool| {
        let ev = ConnectionEvent {
            refresh,
            ..connection(ConnectionEventKind::Connect, first_seen, port, 80)
        };
        ConnectionEvents::encode_slice(&[ev]).unwrap()
    };
    send(&producer, topics::REPORTS, "h1", &report(1)).await;
    send(&producer, topics::CONNECTIONS, "h1", &open(40000, false)).await;
    wait_snapshot(&announcements, "rest", |t| {
        t.rows(table::SOCKETS) == 1 && t.rows(table::HOSTS) == 1
    })
    .await;

    let stats = Arc::clone(&merger.stats);
    let written = stats.snapshots_written.load(Ordering::Relaxed);
    let files = || {
        std::fs::read_dir(dir.path().join(table::HOSTS))
            .unwrap()
            .count()
    };
    let files_before = files();
    let mut seq = 1;
    for _ in 0..8 {
        seq += 1;
        send(&producer, topics::REPORTS, "h1", &report(seq)).await;
        send(&producer, topics::CONNECTIONS, "h1", &open(40000, true)).await;
        // Counts are added up at each tick: the report is in a cut once it is counted.
        wait_until("the report applied", || {
            stats.reports.applied.load(Ordering::Relaxed) >= seq as u64
        })
        .await;
        let unchanged = stats.unchanged_ticks.load(Ordering::Relaxed);
        wait_until("an unchanged tick after it", || {
            stats.unchanged_ticks.load(Ordering::Relaxed) > unchanged
        })
        .await;
    }
    assert_eq!(stats.reports.applied.load(Ordering::Relaxed), seq as u64);
    assert_eq!(stats.snapshots_written.load(Ordering::Relaxed), written);
    assert_eq!(files(), files_before, "no file written at rest");

    send(&producer, topics::CONNECTIONS, "h1", &open(40001, false)).await;
    let changed = wait_snapshot(&announcements, "rest", |t| t.rows(table::SOCKETS) == 2).await;
    assert_eq!(
        changed.columns(table::HOSTS, &["load1"]),
        vec![vec![format!("{seq}.0")]],
        "the metrics moved along"
    );
    assert_eq!(files(), files_before + 1);
    merger.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_events_are_applied_in_order_and_counted_one_by_one() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let announcements = snapshot_consumer(&kafka, "test-announcements-batches");
    let producer = producer(&kafka);
    let t = now_us();
    let event = |kind, dt: i64, port| connection(kind, t + dt, port, 80);
    // A socket opened and closed within one batch: applied out of order, the close would
    // find nothing to close and the socket would stay open.
    let first = [
        event(ConnectionEventKind::Connect, -3_000_000, 40000),
        event(ConnectionEventKind::Close, -2_000_000, 40000),
        event(ConnectionEventKind::Connect, -2_000_000, 40001),
    ];
    // An invalid event costs only itself.
    let second = [
        event(ConnectionEventKind::Connect, -1_000_000, 40002),
        event(ConnectionEventKind::Connect, -1_000_000, -1),
        event(ConnectionEventKind::Connect, -1_000_000, 40003),
    ];
    let truncated = ConnectionEvents::encode_slice(&first).unwrap();
    let records = [
        ConnectionEvents::encode_slice(&first).unwrap(),
        truncated[..truncated.len() - 5].to_vec(),
        ConnectionEvents::encode_slice(&second).unwrap(),
        // A collector from before batching, on the same topic.
        event(ConnectionEventKind::Connect, 0, 40004)
            .encode()
            .unwrap(),
    ];
    for payload in &records {
        send(&producer, topics::CONNECTIONS, "h1", payload).await;
    }
    send(
        &producer,
        topics::REPORTS,
        "h1",
        &host_delta(1, t).encode().unwrap(),
    )
    .await;

    let merger = start(merger_args(&kafka, dir.path(), "merger-batches", "mb"));
    let tables = wait_snapshot(&announcements, "mb", |t| t.rows(table::SOCKETS) == 5).await;
    assert_eq!(
        tables.columns(table::SOCKETS, &["local_port", "state"]),
        [
            ["40000", "closed"],
            ["40001", "open"],
            ["40002", "open"],
            ["40003", "open"],
            ["40004", "open"],
        ]
    );
    let stats = Arc::clone(&merger.stats);
    wait_until("every event counted", || {
        stats.connections.applied.load(Ordering::Relaxed) == 6
            && stats.connections.malformed.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(stats.connections.ignored.load(Ordering::Relaxed), 0);
    assert_eq!(stats.connections.duplicates.load(Ordering::Relaxed), 0);
    merger.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_merger_rebuilds_its_state_from_the_recent_past() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let announcements = snapshot_consumer(&kafka, "test-announcements-3");
    let producer = producer(&kafka);
    publish_scenario(&producer).await;

    let first = start(merger_args(&kafka, dir.path(), "merger-3", "first"));
    let before = wait_snapshot(&announcements, "first", |t| {
        t.rows(table::SOCKETS) == 3 && t.rows(table::HOSTS) == 1
    })
    .await;
    first.stop().await;

    // Everything was applied and committed (10 connection events, 4 report deltas); nothing
    // new is published. A merger that started from the committed offsets would have an empty
    // state.
    let committed = committed_offsets(&kafka, "merger-3").await;
    assert_eq!(
        committed,
        vec![
            (topics::CONNECTIONS.to_owned(), 10),
            (topics::REPORTS.to_owned(), 4)
        ]
    );
    let second = start(merger_args(&kafka, dir.path(), "merger-3", "second"));
    let after = wait_snapshot(&announcements, "second", |t| {
        t.rows(table::SOCKETS) == 3 && t.rows(table::HOSTS) == 1
    })
    .await;
    let columns = [
        "host_id",
        "local_port",
        "remote_port",
        "direction",
        "state",
        "first_seen",
        "closed_at",
    ];
    assert_eq!(
        after.columns(table::SOCKETS, &columns),
        before.columns(table::SOCKETS, &columns)
    );
    assert_eq!(
        after.columns(table::PROCESSES, &["pid", "name"]),
        before.columns(table::PROCESSES, &["pid", "name"])
    );
    assert!(second.stats.connections.applied.load(Ordering::Relaxed) >= 4);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_messages_is_applied_completely() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let announcements = snapshot_consumer(&kafka, "test-announcements-4");
    let producer = producer(&kafka);
    // More than the loop handles per wake-up, all waiting when the merger starts.
    const N: i32 = 12_000;
    let t = now_us();
    let mut deliveries = Vec::with_capacity(N as usize);
    for port in 0..N {
        let ev = connection(ConnectionEventKind::Connect, t, 10_000 + port, 80);
        let payload = ev.encode().unwrap();
        let record = FutureRecord::to(topics::CONNECTIONS)
            .key("h1")
            .payload(&payload);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }

    let merger = start(merger_args(&kafka, dir.path(), "merger-4", "m4"));
    let tables = wait_snapshot(&announcements, "m4", |t| {
        t.rows(table::SOCKETS) == N as usize
    })
    .await;
    let ports = tables.columns(table::SOCKETS, &["local_port"]);
    assert_eq!(ports.first().unwrap()[0], "10000");
    assert_eq!(ports.last().unwrap()[0], (10_000 + N - 1).to_string());
    assert_eq!(
        merger.stats.connections.applied.load(Ordering::Relaxed),
        N as u64
    );
    merger.stop().await;
}

/// Every topic the merger needs to exist, it creates at start-up: the announcement topic
/// too, where the broker does not auto-create topics. The tick is an hour, so no announcement
/// is made (and could create the topic) while the test looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_up_creates_the_announcement_topic() {
    // A bare broker, not the kit's: the merger is to create the topics itself.
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kafka = KafkaArgs::new(broker.bootstrap());
    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    let mut args = MergerArgs {
        window: hour,
        tick: hour,
        ..merger_args(&kafka, dir.path(), "merger-5", "m5")
    };
    args.storage.retention = hour;
    let merger = start(args);

    let metadata: BaseConsumer = kafka.client_config(&[]).create().unwrap();
    let created = format!(
        "the merger to create {} and {:?}",
        topics::SNAPSHOTS,
        topics::MERGER_INPUTS
    );
    wait_for_async(&created, Duration::from_secs(30), || {
        // All topics: a request naming the topic might auto-create it. A blocking call, made
        // in place so that the runtime's other threads run the broker and the merger meanwhile.
        let topics = tokio::task::block_in_place(|| {
            metadata
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| {
                    m.topics()
                        .iter()
                        .filter(|t| t.error().is_none())
                        .map(|t| (t.name().to_owned(), t.partitions().len()))
                        .collect::<BTreeMap<_, _>>()
                })
        });
        let topics = topics.ok()?;
        (topics.get(topics::SNAPSHOTS) == Some(&1)
            && topics::MERGER_INPUTS
                .iter()
                .all(|t| topics.contains_key(*t)))
        .then_some(())
    })
    .await;
    assert_eq!(merger.stats.snapshots_written.load(Ordering::Relaxed), 0);
    merger.stop().await;
}

/// Hosts of the steady workload: two per input partition, so that a snapshot holding part
/// of a partition (a replay cut short) shows.
const HOSTS: usize = 8;
const PARTITIONS: i32 = 4;

fn workload_host(i: usize) -> String {
    format!("w{i}")
}

/// Publishes, like a fleet of collectors, a report delta of every host every 200 ms (a full
/// one every second) and with each full one a refresh of one long-lived connection per host,
/// each host pinned to partition `i / 2`. Counts finished rounds.
fn steady_workload(
    kafka: &KafkaArgs,
    rounds: Arc<std::sync::atomic::AtomicU64>,
) -> Running<Infallible> {
    let producer = producer(kafka);
    Running::start(|stop| async move {
        let opened = now_us();
        let mut seq = 0;
        let mut last_full = i64::MIN;
        while !stop.is_cancelled() {
            let t = now_us();
            let full = t.saturating_sub(last_full) >= 1_000_000;
            if full {
                last_full = t;
            }
            seq += 1;
            for i in 0..HOSTS {
                let host = workload_host(i);
                let partition = (i / 2) as i32;
                let mut messages = vec![(
                    topics::REPORTS,
                    host_delta_of(&host, seq, t, full).encode().unwrap(),
                )];
                if full {
                    let refresh = ConnectionEvent {
                        host_id: host.clone(),
                        refresh: true,
                        ..connection(ConnectionEventKind::Connect, opened, 40000, 80)
                    };
                    messages.push((topics::CONNECTIONS, refresh.encode().unwrap()));
                }
                for (topic, payload) in messages {
                    let record = FutureRecord::to(topic)
                        .key(&host)
                        .partition(partition)
                        .payload(&payload);
                    producer
                        .send(record, Duration::from_secs(10))
                        .await
                        .map_err(|(e, _)| e)
                        .unwrap();
                }
            }
            rounds.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    })
}

/// What one announcement said: its writer, time, hosts, and hosts with an open socket.
#[derive(Debug)]
struct Seen {
    writer: String,
    t: i64,
    hosts: std::collections::BTreeSet<String>,
    open_socket_hosts: std::collections::BTreeSet<String>,
}

/// Reads every announcement into `seen`, files and all, until `stop`.
fn collect_announcements(
    kafka: &KafkaArgs,
    group: &str,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
) -> Running<Infallible> {
    read_until_stopped(snapshot_consumer(kafka, group), move |message| {
        let snapshot = Snapshot::decode(message.payload().unwrap()).unwrap();
        let (writer, t) = (snapshot.writer.clone(), snapshot.snapshot_time_us);
        let tables = Tables::read(snapshot);
        let hosts = tables
            .columns(table::HOSTS, &["host_id"])
            .into_iter()
            .map(|row| row[0].clone())
            .collect();
        let open_socket_hosts = tables
            .columns(table::SOCKETS, &["host_id", "state"])
            .into_iter()
            .filter(|row| row[1] == "open")
            .map(|row| row[0].clone())
            .collect();
        seen.lock().unwrap().push(Seen {
            writer,
            t,
            hosts,
            open_socket_hosts,
        });
    })
}

/// Hands every message of `consumer` to `record` until stopped.
fn read_until_stopped(
    consumer: StreamConsumer,
    mut record: impl FnMut(&BorrowedMessage<'_>) + Send + 'static,
) -> Running<Infallible> {
    Running::start(|stop| async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = consumer.recv() => record(&message.unwrap()),
            }
        }
    })
}

/// Waits until one snapshot time has announcements of exactly `writers`, each holding some
/// hosts, which together hold every host of the workload: the group has settled.
async fn wait_settled(seen: &std::sync::Mutex<Vec<Seen>>, writers: &[&str]) {
    let mut expected = writers.to_vec();
    expected.sort_unstable();
    let settled = || {
        let seen = seen.lock().unwrap();
        let mut by_t: BTreeMap<i64, Vec<&Seen>> = BTreeMap::new();
        for s in seen.iter() {
            by_t.entry(s.t).or_default().push(s);
        }
        by_t.values().any(|at_t| {
            let mut names: Vec<&str> = at_t.iter().map(|s| s.writer.as_str()).collect();
            names.sort_unstable();
            let hosts: std::collections::BTreeSet<&String> =
                at_t.iter().flat_map(|s| &s.hosts).collect();
            names == expected && at_t.iter().all(|s| !s.hosts.is_empty()) && hosts.len() == HOSTS
        })
    };
    wait_until(
        &format!("mergers {writers:?} to share out every host"),
        settled,
    )
    .await;
}

/// What a renderer published on the hosts and processes views: the latest value of each key,
/// and every key that was ever tombstoned.
#[derive(Debug, Default)]
struct Views {
    live: BTreeMap<String, bool>,
    tombstoned: Vec<String>,
}

fn collect_views(kafka: &KafkaArgs, views: Arc<std::sync::Mutex<Views>>) -> Running<Infallible> {
    let consumer: StreamConsumer = kafka
        .client_config(&[
            ("group.id", "test-views-6"),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .unwrap();
    let topics = [View::Hosts.topic(), View::Processes.topic()];
    consumer
        .subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    read_until_stopped(consumer, move |message| {
        let key = String::from_utf8_lossy(message.key().unwrap()).into_owned();
        let mut views = views.lock().unwrap();
        let value = message.payload().is_some();
        if !value {
            views.tombstoned.push(key.clone());
        }
        views.live.insert(key, value);
    })
}

/// Under a steady workload, a merger joining the group and a merger crashing and being
/// replaced never announce a snapshot that leaves out live hosts of what they own: every
/// announcement holds whole partitions (both hosts of each, with their open connection), and
/// none is empty (a merger owning nothing, or still replaying, announces nothing). A renderer
/// reading the announcements never tombstones a live node: it renders a snapshot time only
/// once its announcements cover every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_are_announced_only_when_complete_across_rebalances() {
    let (_broker, kafka) = Broker::start_with_topics(PARTITIONS).await;
    let dir = tempfile::tempdir().unwrap();
    let args = |writer: &str| MergerArgs {
        window: Duration::from_secs(3),
        full_interval: Duration::from_secs(2),
        ..merger_args(&kafka, dir.path(), "merger-6", writer)
    };

    let mut renderer_args = RendererArgs::new(kafka.clone(), dir.path());
    renderer_args.group_id = "renderer-6".into();
    let renderer = Running::start(|shutdown| scope_renderer::run(renderer_args, shutdown));
    let views = Arc::new(std::sync::Mutex::new(Views::default()));
    let view_reader = collect_views(&kafka, Arc::clone(&views));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let collector = collect_announcements(&kafka, "test-announcements-6", Arc::clone(&seen));
    let rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workload = steady_workload(&kafka, Arc::clone(&rounds));
    // Every host has published before the first merger replays.
    wait_until("the workload's first rounds", || {
        rounds.load(Ordering::Relaxed) >= 2
    })
    .await;

    // A bare task, not a `Running` (which only stops cleanly): it is crashed below.
    let a = tokio::spawn(run_with_stats(
        args("a"),
        CancellationToken::new(),
        Arc::new(Stats::default()),
    ));
    wait_settled(&seen, &["a"]).await;
    let b = start(args("b"));
    wait_settled(&seen, &["a", "b"]).await;

    // A crash: no final snapshot, no commit.
    a.abort();
    let _ = a.await;
    let a2 = start(args("a2"));
    wait_settled(&seen, &["a2", "b"]).await;
    // The renderer has drawn what the group settled on.
    let rendered = scope_renderer::stats()
        .snapshots_rendered
        .load(Ordering::Relaxed);
    wait_until("two more renders", || {
        scope_renderer::stats()
            .snapshots_rendered
            .load(Ordering::Relaxed)
            >= rendered + 2
    })
    .await;
    renderer.stop(TIMEOUT).await;

    let withheld = [&b, &a2].map(|m| m.stats.snapshots_withheld.load(Ordering::Relaxed));
    b.stop().await;
    a2.stop().await;
    workload.stop(TIMEOUT).await;
    collector.stop(TIMEOUT).await;
    view_reader.stop(TIMEOUT).await;

    let views = views.lock().unwrap();
    assert!(
        views.tombstoned.is_empty(),
        "live nodes tombstoned: {:?}",
        views.tombstoned
    );
    for i in 0..HOSTS {
        let prefix = format!("{};", workload_host(i));
        assert!(
            views
                .live
                .iter()
                .any(|(k, live)| *live && k.starts_with(&prefix)),
            "host {i} missing from the views: {views:?}"
        );
    }

    let seen = seen.lock().unwrap();
    assert!(seen.len() > 10, "{seen:?}");
    for s in seen.iter() {
        assert!(!s.hosts.is_empty(), "an empty snapshot announced: {s:?}");
        for p in 0..PARTITIONS as usize {
            let present = [2 * p, 2 * p + 1].map(|i| s.hosts.contains(&workload_host(i)));
            assert!(
                present[0] == present[1],
                "partition {p} announced in part: {s:?}"
            );
        }
        assert_eq!(
            s.open_socket_hosts, s.hosts,
            "live connections missing: {s:?}"
        );
    }
    // The mergers that joined a running group did wait before announcing.
    assert!(withheld.iter().all(|w| *w > 0), "{withheld:?}");
}

/// Hosts whose clocks run ten minutes ahead and ten minutes behind the merger's, each with one
/// long-lived connection and a full report every 200 ms, as a collector on such a host
/// publishes them (its clock in the records and in the message timestamps): both stay in the
/// snapshots with their connection, once the merger has heard them live, and are counted.
/// Without the correction, the one ahead is in no window yet and the one behind in none any
/// more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hosts_with_a_skewed_clock_stay_in_the_snapshots_and_are_counted() {
    const SKEWS: [(&str, i64); 3] = [
        ("ahead", 600_000_000),
        ("behind", -600_000_000),
        ("in-step", 0),
    ];
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let consumer = snapshot_consumer(&kafka, "test-announcements-skew");
    let merger = start(MergerArgs {
        window: Duration::from_secs(5),
        full_interval: Duration::from_secs(1),
        ..merger_args(&kafka, dir.path(), "merger-skew", "m1")
    });

    let workload = {
        let producer = producer(&kafka);
        Running::start(|stop| async move {
            let opened = now_us();
            let mut seq = 0;
            while !stop.is_cancelled() {
                seq += 1;
                for (host, skew) in SKEWS {
                    let t = now_us() + skew;
                    let report = host_delta_of(host, seq, t, true).encode().unwrap();
                    send_at(&producer, topics::REPORTS, host, &report, Some(t / 1000)).await;
                    let refresh = ConnectionEvent {
                        host_id: host.into(),
                        refresh: seq > 1,
                        ..connection(ConnectionEventKind::Connect, opened + skew, 40000, 80)
                    }
                    .encode()
                    .unwrap();
                    send_at(
                        &producer,
                        topics::CONNECTIONS,
                        host,
                        &refresh,
                        Some(t / 1000),
                    )
                    .await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok::<(), Infallible>(())
        })
    };

    let every_host = |tables: &Tables| {
        let hosts: Vec<String> = tables
            .columns(table::HOSTS, &["host_id"])
            .into_iter()
            .map(|row| row[0].clone())
            .collect();
        let open: Vec<String> = tables
            .columns(table::SOCKETS, &["host_id", "state"])
            .into_iter()
            .filter(|row| row[1] == "open")
            .map(|row| row[0].clone())
            .collect();
        SKEWS
            .iter()
            .all(|(h, _)| hosts.iter().any(|x| x == h) && open.iter().any(|x| x == h))
    };
    wait_snapshot(&consumer, "m1", every_host).await;
    assert!(merger.stats.skew_corrected.load(Ordering::Relaxed) > 0);
    assert_eq!(merger.stats.skewed_hosts.load(Ordering::Relaxed), 2);
    workload.stop(TIMEOUT).await;
    merger.stop().await;
}
