//! The renderer against a real (embedded) Kafka broker: announcements in, view changelogs out.

mod common;

use std::{collections::BTreeMap, net::SocketAddr, sync::atomic::Ordering, time::Duration};

use common::{Snapshot as Tables, recent_time};
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};
use scope_kafka::{EmbeddedBroker, KafkaArgs};
use scope_renderer::RendererArgs;
use scope_schemas::{Record, RenderedNode, Snapshot, SnapshotFile, View, snapshot::table, topics};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

fn announcement(data_dir: &std::path::Path, t: i64) -> Vec<u8> {
    Snapshot {
        snapshot_time_us: t,
        window_us: 15_000_000,
        writer: "m1".into(),
        data_dir: data_dir.display().to_string(),
        files: table::MERGED
            .iter()
            .map(|t2| SnapshotFile {
                table: (*t2).into(),
                path: scope_schemas::snapshot::file_path(t2, t, "m1"),
                rows: 1,
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
    tokio::time::timeout(WAIT, async {
        while !done(state) {
            let message = consumer.recv().await.unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let value = message.payload().map(|p| RenderedNode::decode(p).unwrap());
            state.insert(key, value);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; have {state:#?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renders_announced_snapshots_and_publishes_changes() {
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let kafka = KafkaArgs::new(broker.bootstrap());
    scope_kafka::ensure_topics(&kafka, &topics::all(1))
        .await
        .unwrap();
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

    let mut args = RendererArgs::new(kafka.clone(), dir.path());
    args.group_id = "renderer-test".into();
    args.kafka
        .properties
        .push(("auto.offset.reset".into(), "earliest".into()));
    let shutdown = CancellationToken::new();
    let renderer = tokio::spawn(scope_renderer::run(args, shutdown.clone()));

    let consumer: StreamConsumer = kafka
        .client_config(&[
            ("group.id", "view-reader"),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .unwrap();
    consumer.subscribe(&[&View::Processes.topic()]).unwrap();
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

    shutdown.cancel();
    tokio::time::timeout(WAIT, renderer)
        .await
        .expect("renderer stops")
        .unwrap()
        .unwrap();

    // A restarted renderer reads back what was published: curl leaving while it was down
    // still gets its tombstone.
    let t3 = recent_time(0);
    Tables::new(t3).host("h1", "h1").write(dir.path(), "m1");
    produce(&producer, "m1", Some(&announcement(dir.path(), t3))).await;
    let mut args = RendererArgs::new(kafka.clone(), dir.path());
    args.group_id = "renderer-test".into();
    let shutdown = CancellationToken::new();
    let renderer = tokio::spawn(scope_renderer::run(args, shutdown.clone()));
    consume_until(&consumer, &mut state, |s| {
        s.get("h1;100").is_some_and(Option::is_none)
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(WAIT, renderer)
        .await
        .expect("renderer stops")
        .unwrap()
        .unwrap();
}
