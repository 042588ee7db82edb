//! The renderer against a real (embedded) Kafka broker: announcements in, view changelogs out.

mod common;

use std::{collections::BTreeMap, path::Path, sync::atomic::Ordering, time::Duration};

use common::{Snapshot as Tables, recent_time};
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
    message::BorrowedMessage,
    producer::{FutureProducer, FutureRecord},
};
use scope_kafka::KafkaArgs;
use scope_renderer::RendererArgs;
use scope_schemas::{
    Record, RenderedNode, Snapshot, SnapshotFile, SnapshotInput, View, snapshot::table, topics,
};
use scope_testkit::{Broker, Running, wait_for_async};

const WAIT: Duration = Duration::from_secs(60);

fn announcement(data_dir: &Path, t: i64) -> Vec<u8> {
    announcement_of(data_dir, t, "m1", &[0], 1)
}

/// The announcement of `writer`'s part of `t`: `partitions` of `partition_count`, of both
/// input topics.
fn announcement_of(
    data_dir: &Path,
    t: i64,
    writer: &str,
    partitions: &[i32],
    partition_count: i32,
) -> Vec<u8> {
    Snapshot {
        snapshot_time_us: t,
        window_us: 15_000_000,
        writer: writer.into(),
        data_dir: data_dir.display().to_string(),
        files: table::MERGED
            .iter()
            .map(|t2| SnapshotFile {
                table: (*t2).into(),
                path: scope_store::file_path(t2, t, writer),
                rows: 1,
            })
            .collect(),
        inputs: topics::MERGER_INPUTS
            .iter()
            .map(|topic| SnapshotInput {
                topic: (*topic).into(),
                partition_count,
                partitions: partitions.to_vec(),
            })
            .collect(),
    }
    .encode()
    .unwrap()
}

async fn produce(producer: &FutureProducer, key: &str, payload: Option<&[u8]>) {
    let mut record = FutureRecord::<str, [u8]>::to(topics::SNAPSHOTS).key(key);
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Consumes `topic` into `state` (key -> value or tombstone) until `done` holds.
async fn consume_until(
    consumer: &StreamConsumer,
    state: &mut BTreeMap<String, Option<RenderedNode>>,
    done: impl Fn(&BTreeMap<String, Option<RenderedNode>>) -> bool,
) {
    let fold = |state: &mut BTreeMap<_, _>, message: &BorrowedMessage<'_>| {
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let value = message.payload().map(|p| RenderedNode::decode(p).unwrap());
        state.insert(key, value);
    };
    scope_testkit::consume_until(consumer, WAIT, state, fold, done)
        .await
        .unwrap_or_else(|timed_out| panic!("{timed_out}; have {state:#?}"));
}

/// Runs a renderer of `group` over `data_dir` in the test. A group without committed offsets
/// reads the announcements from the start if `earliest`.
fn start(
    kafka: &KafkaArgs,
    data_dir: &Path,
    group: &str,
    earliest: bool,
) -> Running<scope_renderer::Error> {
    let mut args = RendererArgs::new(kafka.clone(), data_dir);
    args.group_id = group.into();
    if earliest {
        args.kafka
            .properties
            .push(("auto.offset.reset".into(), "earliest".into()));
    }
    Running::start(|shutdown| scope_renderer::run(args, shutdown))
}

/// A reader of the processes view from its start, in consumer group `group`.
fn processes_view(kafka: &KafkaArgs, group: &str) -> StreamConsumer {
    let consumer: StreamConsumer = kafka
        .client_config(&[("group.id", group), ("auto.offset.reset", "earliest")])
        .create()
        .unwrap();
    consumer.subscribe(&[&View::Processes.topic()]).unwrap();
    consumer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renders_announced_snapshots_and_publishes_changes() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer: FutureProducer = kafka.client_config(&[]).create().unwrap();

    // Snapshot 1: curl -> nginx over loopback on h1.
    let t1 = recent_time(-2);
    Tables::new(t1)
        .host("h1", "h1")
        .process("h1", 100, "curl")
        .process("h1", 200, "nginx")
        .outbound("h1", Some(100), ("127.0.0.1", 40000), ("127.0.0.1", 80))
        .inbound("h1", Some(200), ("127.0.0.1", 80), ("127.0.0.1", 40000))
        .write(dir.path(), "m1");
    let malformed_before = scope_renderer::stats()
        .malformed_announcements
        .load(Ordering::Relaxed);
    produce(&producer, "m1", Some(b"\x00\x01 definitely not avro")).await;
    produce(&producer, "m1", None).await;
    produce(&producer, "m1", Some(&announcement(dir.path(), t1))).await;

    let renderer = start(&kafka, dir.path(), "renderer-test", true);
    let consumer = processes_view(&kafka, "view-reader");
    let mut state = BTreeMap::new();
    consume_until(&consumer, &mut state, |s| {
        s.contains_key("h1;100") && s.contains_key("h1;200")
    })
    .await;
    let curl = state["h1;100"].clone().expect("a value, not a tombstone");
    assert_eq!(curl.label, "curl");
    assert_eq!(curl.label_minor, "h1 (100)");
    assert_eq!(curl.view, "processes");
    assert_eq!(curl.adjacency, vec!["h1;200"]);
    assert_eq!(curl.snapshot_time_us, t1);
    let nginx = state["h1;200"].clone().unwrap();
    assert_eq!(nginx.label, "nginx");
    assert_eq!(state.len(), 2, "{state:#?}");
    assert!(
        scope_renderer::stats()
            .malformed_announcements
            .load(Ordering::Relaxed)
            >= malformed_before + 2
    );

    // Snapshot 2: nginx is gone, and so is the connection.
    let t2 = recent_time(-1);
    Tables::new(t2)
        .host("h1", "h1")
        .process("h1", 100, "curl")
        .write(dir.path(), "m1");
    produce(&producer, "m1", Some(&announcement(dir.path(), t2))).await;
    consume_until(&consumer, &mut state, |s| {
        s.get("h1;200").is_some_and(Option::is_none)
    })
    .await;
    consume_until(&consumer, &mut state, |s| {
        s.get("h1;100")
            .is_some_and(|n| n.as_ref().is_some_and(|n| n.adjacency.is_empty()))
    })
    .await;

    // The rendered tables of both snapshots are on disk.
    assert_eq!(
        scope_renderer::sql::latest_rendered(dir.path()).unwrap(),
        Some(t2)
    );

    renderer.stop(WAIT).await;

    // A restarted renderer reads back what was published: curl leaving while it was down
    // still gets its tombstone.
    let t3 = recent_time(0);
    Tables::new(t3).host("h1", "h1").write(dir.path(), "m1");
    produce(&producer, "m1", Some(&announcement(dir.path(), t3))).await;
    let renderer = start(&kafka, dir.path(), "renderer-test", false);
    consume_until(&consumer, &mut state, |s| {
        s.get("h1;100").is_some_and(Option::is_none)
    })
    .await;
    renderer.stop(WAIT).await;
}

/// Rendered tables of `t` on disk.
fn rendered(dir: &Path, t: i64) -> bool {
    !scope_renderer::store::files_at(dir, table::GRAPH_NODES, t)
        .unwrap()
        .is_empty()
}

/// Two mergers share two partitions: `a` owns host ha (partition 0), `b` host hb (1). While
/// the renderer is down, five snapshots queue up: it renders only the newest, skipping the
/// rest. Then a time only `a` announces (b replaying after a restart) is never rendered: hb
/// is never tombstoned, and the next time both announce is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renderer_behind_renders_the_newest_complete_snapshot_and_never_a_partial_one() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    // Lingering, so that the queued announcements reach the broker as one batch and the
    // renderer reads them in one go.
    let producer: FutureProducer = kafka
        .client_config(&[("linger.ms", "200")])
        .create()
        .unwrap();
    let write = |t: i64, writers: &[&str]| {
        for writer in writers {
            let host = format!("h{writer}");
            Tables::new(t)
                .host(&host, &host)
                .process(&host, 7, "sleep")
                .write(dir.path(), writer);
        }
    };
    let announce = |t: i64, writer: &str| {
        let partition = i32::from(writer != "a");
        announcement_of(dir.path(), t, writer, &[partition], 2)
    };

    let queued: Vec<i64> = (0..5).map(|i| recent_time(i - 10)).collect();
    let mut sends = Vec::new();
    for &t in &queued {
        write(t, &["a", "b"]);
        for writer in ["a", "b"] {
            let payload = announce(t, writer);
            let record = FutureRecord::<str, [u8]>::to(topics::SNAPSHOTS)
                .key(writer)
                .payload(&payload);
            sends.push(producer.send_result(record).unwrap());
        }
    }
    for send in sends {
        send.await.unwrap().unwrap();
    }
    let skipped_before = scope_renderer::stats()
        .snapshots_skipped
        .load(Ordering::Relaxed);

    let renderer = start(&kafka, dir.path(), "renderer-behind", true);
    let consumer = processes_view(&kafka, "view-reader-behind");
    let mut state = BTreeMap::new();
    let newest = queued[4];
    consume_until(&consumer, &mut state, |s| {
        ["ha;7", "hb;7"].iter().all(|id| {
            s.get(*id)
                .is_some_and(|n| n.as_ref().is_some_and(|n| n.snapshot_time_us == newest))
        })
    })
    .await;
    assert!(rendered(dir.path(), newest));
    for &t in &queued[..4] {
        assert!(!rendered(dir.path(), t), "{t} was rendered, not skipped");
    }
    assert!(
        scope_renderer::stats()
            .snapshots_skipped
            .load(Ordering::Relaxed)
            >= skipped_before + 4
    );

    // b restarts and replays: only a announces `partial`, with ha alone on disk.
    let partial = recent_time(-3);
    write(partial, &["a"]);
    produce(&producer, "a", Some(&announce(partial, "a"))).await;
    let complete = recent_time(-2);
    write(complete, &["a", "b"]);
    produce(&producer, "a", Some(&announce(complete, "a"))).await;
    produce(&producer, "b", Some(&announce(complete, "b"))).await;
    // The views are read for tombstones until the complete snapshot is on disk, which is polled
    // as well: rendering it may publish nothing (its nodes are unchanged), so no message need
    // come after it.
    let mut tombstoned = Vec::new();
    let record_tombstone = |tombstoned: &mut Vec<String>, message: &BorrowedMessage<'_>| {
        if message.payload().is_none() {
            tombstoned.push(String::from_utf8_lossy(message.key().unwrap()).into_owned());
        }
    };
    let is_rendered = || rendered(dir.path(), complete);
    let read_views =
        scope_testkit::consume_until(&consumer, WAIT, &mut tombstoned, record_tombstone, |_| {
            is_rendered()
        });
    tokio::select! {
        () = wait_for_async("the complete snapshot to be rendered", WAIT, || {
            is_rendered().then_some(())
        }) => {}
        read = read_views => read.expect("the complete snapshot is rendered"),
    }
    assert!(
        !rendered(dir.path(), partial),
        "a partial snapshot was rendered"
    );
    assert!(
        tombstoned.is_empty(),
        "live nodes tombstoned: {tombstoned:?}"
    );

    renderer.stop(WAIT).await;
}
