//! Round trips of every record, and rejection of what is not ours.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use apache_avro::{Schema, rabin::Rabin, reader::datum::GenericDatumReader, types::Value};
use scope_schemas::{
    AddressFamily, ConnectionEvent, ConnectionEventKind, ConnectionEvents, DecodeError,
    EventSource, Metric, Node, Record, RenderedNode, ReportDelta, Snapshot, SnapshotFile,
    SnapshotInput, codec::RecordSchema, report::keys,
};
use serde::Serialize;

fn event() -> ConnectionEvent {
    ConnectionEvent {
        host_id: "h1".into(),
        kind: ConnectionEventKind::Accept,
        timestamp_us: 1_700_000_000_000_000,
        refresh: false,
        netns: 4_026_531_840,
        pid: Some(42),
        process_name: None,
        family: AddressFamily::Ipv6,
        local_addr: "::1".into(),
        local_port: 8080,
        remote_addr: "::1".into(),
        remote_port: 50_000,
        source: EventSource::Procfs,
    }
}

/// Three events of one host, in order: a connect, an accept, a close.
fn events() -> Vec<ConnectionEvent> {
    let connect = ConnectionEvent {
        kind: ConnectionEventKind::Connect,
        process_name: Some("curl".into()),
        family: AddressFamily::Ipv4,
        local_addr: "10.0.0.1".into(),
        remote_addr: "10.0.0.2".into(),
        source: EventSource::Ebpf,
        ..event()
    };
    let close = ConnectionEvent {
        kind: ConnectionEventKind::Close,
        timestamp_us: event().timestamp_us + 1,
        pid: None,
        ..event()
    };
    vec![connect, event(), close]
}

fn delta() -> ReportDelta {
    let mut node = Node::new(keys::HOST, "h1;<host>").with_latest(keys::OS, "Debian", 5);
    node.sets.insert(
        keys::LOCAL_NETWORKS.into(),
        vec!["10.0.0.5/24".into(), "::1/128".into()],
    );
    node.metrics
        .insert(keys::LOAD1.into(), Metric::single(5, 0.25));
    node.parents.insert("host".into(), vec![]);
    ReportDelta {
        host_id: "h1".into(),
        reporter: "host".into(),
        seq: 7,
        full: true,
        timestamp_us: 5,
        upserts: vec![node],
        removals: vec!["h1;9".into()],
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        snapshot_time_us: 1,
        window_us: 15_000_000,
        writer: "m1".into(),
        data_dir: "/d".into(),
        files: vec![SnapshotFile {
            table: "hosts".into(),
            path: "hosts/x.parquet".into(),
            rows: 3,
        }],
        inputs: vec![SnapshotInput {
            topic: "scope.reports".into(),
            partition_count: 4,
            partitions: vec![0, 2],
        }],
    }
}

fn rendered_node() -> RenderedNode {
    RenderedNode {
        view: "processes".into(),
        id: "h1;42".into(),
        label: "nc".into(),
        label_minor: "h1 (42)".into(),
        rank: "nc".into(),
        shape: "square".into(),
        pseudo: false,
        adjacency: vec!["h1;43".into()],
        metadata: BTreeMap::from([("pid".into(), "42".into())]),
        snapshot_time_us: 9,
    }
}

#[test]
fn records_round_trip() {
    assert_eq!(
        ConnectionEvent::decode(&event().encode().unwrap()).unwrap(),
        event()
    );
    assert_eq!(
        ReportDelta::decode(&delta().encode().unwrap()).unwrap(),
        delta()
    );
    let batch = ConnectionEvents { events: events() };
    let bytes = batch.encode().unwrap();
    assert_eq!(ConnectionEvents::decode(&bytes).unwrap(), batch);
    assert_eq!(ConnectionEvents::encode_slice(&events()).unwrap(), bytes);
    assert_eq!(
        Snapshot::decode(&snapshot().encode().unwrap()).unwrap(),
        snapshot()
    );
    assert_eq!(
        RenderedNode::decode(&rendered_node().encode().unwrap()).unwrap(),
        rendered_node()
    );
}

#[test]
fn a_generic_avro_reader_decodes_with_the_avsc_file_alone() {
    // What any Avro library does: skip the 10-byte header, read the datum with the .avsc.
    let bytes = event().encode().unwrap();
    let schema = Schema::parse_str(include_str!("../avro/connection_event.avsc")).unwrap();
    let value = GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut &bytes[10..])
        .unwrap();
    let Value::Record(fields) = value else {
        panic!("not a record: {value:?}")
    };
    assert!(fields.contains(&("kind".into(), Value::Enum(1, "accept".into()))));
    assert!(fields.contains(&("local_port".into(), Value::Int(8080))));
}

#[test]
fn garbage_and_foreign_records_are_rejected_with_a_reason() {
    assert!(matches!(
        ConnectionEvent::decode(b"hello"),
        Err(DecodeError::NotSingleObject)
    ));
    assert!(matches!(
        ConnectionEvent::decode(&[]),
        Err(DecodeError::NotSingleObject)
    ));
    let other = delta().encode().unwrap();
    assert!(matches!(
        ConnectionEvent::decode(&other),
        Err(DecodeError::UnknownSchema { .. })
    ));
    let mut truncated = event().encode().unwrap();
    truncated.truncate(14);
    assert!(matches!(
        ConnectionEvent::decode(&truncated),
        Err(DecodeError::Avro(_))
    ));
    let mut long = event().encode().unwrap();
    long.push(0);
    assert!(matches!(
        ConnectionEvent::decode(&long),
        Err(DecodeError::TrailingBytes(1))
    ));
}

#[test]
fn random_bytes_never_panic() {
    // A tiny deterministic xorshift stands in for fuzzing: decoding must return, not panic.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut random = |header: &[u8; 10], len: usize| {
        let mut buf = header.to_vec();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        buf
    };
    for len in 0..400 {
        let _ = ConnectionEvent::decode(&random(ConnectionEvent::record_schema().header(), len));
        let _ =
            ConnectionEvents::decode_any(&random(ConnectionEvents::record_schema().header(), len));
        let _ = ReportDelta::decode(&random(ReportDelta::record_schema().header(), len));
        let _ = Snapshot::decode(&random(Snapshot::record_schema().header(), len));
    }
}

/// A test-only older `ConnectionEvent` schema: no `refresh`, no `process_name` (both have
/// defaults now), and an `EventSource` without `conntrack`.
const OLDER_EVENT: &str = include_str!("fixtures/connection_event.v0.avsc");

#[derive(Serialize)]
struct OlderEvent {
    host_id: String,
    kind: ConnectionEventKind,
    timestamp_us: i64,
    netns: i64,
    pid: Option<i32>,
    family: AddressFamily,
    local_addr: String,
    local_port: i32,
    remote_addr: String,
    remote_port: i32,
    source: EventSource,
}

/// [`event()`] in the fixture's older shape.
fn older_event() -> OlderEvent {
    let e = event();
    OlderEvent {
        host_id: e.host_id,
        kind: e.kind,
        timestamp_us: e.timestamp_us,
        netns: e.netns,
        pid: e.pid,
        family: e.family,
        local_addr: e.local_addr,
        local_port: e.local_port,
        remote_addr: e.remote_addr,
        remote_port: e.remote_port,
        source: e.source,
    }
}

#[test]
fn a_record_written_with_an_older_released_schema_is_resolved_to_the_current_one() {
    let e = event();
    let older = older_event();
    let bytes = RecordSchema::parse(OLDER_EVENT, &[])
        .encode(&older)
        .unwrap();
    assert_ne!(&bytes[..10], ConnectionEvent::record_schema().header());

    let with_older_released = RecordSchema::parse(ConnectionEvent::AVSC, &[OLDER_EVENT]);
    let decoded: ConnectionEvent = with_older_released.decode(&bytes).unwrap();
    assert_eq!(
        decoded,
        ConnectionEvent {
            refresh: false,
            process_name: None,
            ..e
        }
    );
    // The current schema's own records still take the direct path through the same decoder.
    assert_eq!(
        with_older_released
            .decode::<ConnectionEvent>(&event().encode().unwrap())
            .unwrap(),
        event()
    );
    // The fixture is no released version of the real decoder: named, not guessed at.
    let err = ConnectionEvent::decode(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::UnknownSchema {
                expected: "ConnectionEvent",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn connection_records_decode_in_either_form() {
    // A batch comes back whole and in order.
    let batch = ConnectionEvents::encode_slice(&events()).unwrap();
    assert_eq!(
        ConnectionEvents::decode_any(&batch).unwrap().events,
        events()
    );
    // A single event as released version 1 wrote it, as collectors did before batching.
    let released_v1 = include_str!("../avro/released/connection_event.v1.avsc");
    let single = RecordSchema::parse(released_v1, &[])
        .encode(&event())
        .unwrap();
    assert_eq!(&single[..10], ConnectionEvent::record_schema().header());
    assert_eq!(
        ConnectionEvents::decode_any(&single).unwrap().events,
        vec![event()]
    );
    // A single event of a schema no release has (the test's fixture) is named, not guessed at.
    let older = RecordSchema::parse(OLDER_EVENT, &[]);
    let foreign = older.encode(&older_event()).unwrap();
    let err = ConnectionEvents::decode_any(&foreign).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::UnknownSchema {
                expected: "ConnectionEvents or ConnectionEvent",
                ..
            }
        ),
        "{err}"
    );
    // Another record type on the topic, and garbage, are refused with their reason.
    assert!(matches!(
        ConnectionEvents::decode_any(&delta().encode().unwrap()),
        Err(DecodeError::UnknownSchema { .. })
    ));
    assert!(matches!(
        ConnectionEvents::decode_any(b"hello"),
        Err(DecodeError::NotSingleObject)
    ));
    assert!(matches!(
        ConnectionEvents::decode_any(&batch[..batch.len() - 3]),
        Err(DecodeError::Avro(_))
    ));
    assert!(matches!(
        ConnectionEvents::decode_any(&[&batch[..], &[0]].concat()),
        Err(DecodeError::TrailingBytes(1))
    ));
}

#[test]
fn a_batch_claiming_more_events_than_it_holds_is_refused_without_allocating_them() {
    // An array block of 2^40 events (zigzag varint), then nothing.
    let mut bytes = ConnectionEvents::record_schema().header().to_vec();
    let mut count = (1u64 << 40) << 1;
    while count >= 0x80 {
        bytes.push((count as u8) | 0x80);
        count >>= 7;
    }
    bytes.push(count as u8);
    assert!(matches!(
        ConnectionEvents::decode_any(&bytes),
        Err(DecodeError::Avro(_))
    ));
}

#[test]
fn the_batch_carries_the_current_connection_event_schema() {
    // connection_events.avsc writes the event record out in full (so it decodes alone): it
    // must be the very schema of connection_event.avsc, or the two forms drift apart.
    let batch: serde_json::Value = serde_json::from_str(ConnectionEvents::AVSC).unwrap();
    let items = batch["fields"][0]["type"]["items"].to_string();
    assert_eq!(
        RecordSchema::parse(&items, &[]).header(),
        ConnectionEvent::record_schema().header(),
        "the item of connection_events.avsc differs from connection_event.avsc: change both, \
         and release both"
    );
}

/// A `Snapshot` as released version 1 wrote it, before announcements named their partitions.
#[derive(Serialize)]
struct SnapshotV1 {
    snapshot_time_us: i64,
    window_us: i64,
    writer: String,
    data_dir: String,
    files: Vec<SnapshotFile>,
}

#[test]
fn an_announcement_of_a_merger_that_predates_partitions_decodes_with_none() {
    let s = snapshot();
    let v1 = SnapshotV1 {
        snapshot_time_us: s.snapshot_time_us,
        window_us: s.window_us,
        writer: s.writer.clone(),
        data_dir: s.data_dir.clone(),
        files: s.files.clone(),
    };
    let released_v1 = include_str!("../avro/released/snapshot.v1.avsc");
    let bytes = RecordSchema::parse(released_v1, &[]).encode(&v1).unwrap();
    assert_ne!(&bytes[..10], Snapshot::record_schema().header());
    let decoded = Snapshot::decode(&bytes).unwrap();
    assert_eq!(
        decoded,
        Snapshot {
            inputs: vec![],
            ..s
        }
    );
}

#[test]
fn headers_written_before_the_fingerprint_fix_are_still_read() {
    // Earlier builds wrote apache-avro 0.22's fingerprint, which no other library computes.
    let node = rendered_node();
    let mut bytes = node.encode().unwrap();
    let legacy = Schema::parse_str(RenderedNode::AVSC)
        .unwrap()
        .fingerprint::<Rabin>()
        .bytes;
    assert_eq!(legacy, [0x9a, 0x2b, 0x83, 0x8c, 0x81, 0x7d, 0xd2, 0x88]);
    assert_ne!(&bytes[2..10], &legacy[..]);
    bytes[2..10].copy_from_slice(&legacy);
    assert_eq!(RenderedNode::decode(&bytes).unwrap(), node);
}

/// Computes each schema's fingerprint with fastavro, and decodes each message as a foreign
/// consumer would: check `C3 01` and the fingerprint, then read the datum with the `.avsc`.
const FASTAVRO: &str = r#"
import datetime, io, json, sys
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

def micros(value):
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(microseconds=1)
    raise TypeError(repr(value))

request = json.load(sys.stdin)
schemas = {path: json.load(open(path)) for path in request["schemas"]}
prints = {path: fingerprint(to_parsing_canonical_form(s), "CRC-64-AVRO") for path, s in schemas.items()}
decoded = []
for message in request["messages"]:
    data = bytes.fromhex(message["hex"])
    if data[:2] != bytes.fromhex("c301") or data[2:10].hex() != prints[message["schema"]]:
        decoded.append({"rejected": data[:10].hex()})
        continue
    body = io.BytesIO(data[10:])
    record = schemaless_reader(body, parse_schema(schemas[message["schema"]]))
    if body.read():
        decoded.append({"rejected": "trailing bytes"})
        continue
    decoded.append(record)
print(json.dumps({"fingerprints": prints, "decoded": decoded}, default=micros))
"#;

fn every_avsc() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["avro", "avro/released", "tests/fixtures"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "avsc") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn python_with_fastavro() -> bool {
    let found = Command::new("python3")
        .env_remove("LD_LIBRARY_PATH")
        .args(["-c", "import fastavro"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("python3 with fastavro is required under CI=true (scripts/setup installs it)");
    }
    found
}

#[test]
fn fastavro_computes_our_fingerprints_and_reads_our_messages() {
    if !python_with_fastavro() {
        eprintln!("skipped: python3 with fastavro not found (scripts/setup installs it)");
        return;
    }
    let files = every_avsc();
    let avro = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
    let message = |file: &str, bytes: Vec<u8>| {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        serde_json::json!({"schema": avro.join(file), "hex": hex})
    };
    let messages = [
        message("connection_event.avsc", event().encode().unwrap()),
        message(
            "connection_events.avsc",
            ConnectionEvents::encode_slice(&events()).unwrap(),
        ),
        message("report_delta.avsc", delta().encode().unwrap()),
        message("snapshot.avsc", snapshot().encode().unwrap()),
        message("rendered_node.avsc", rendered_node().encode().unwrap()),
    ];
    let expected = [
        serde_json::to_value(event()).unwrap(),
        serde_json::json!({ "events": events() }),
        serde_json::to_value(delta()).unwrap(),
        serde_json::to_value(snapshot()).unwrap(),
        serde_json::to_value(rendered_node()).unwrap(),
    ];
    let request = serde_json::json!({"schemas": files, "messages": messages});

    let mut child = Command::new("python3")
        .env_remove("LD_LIBRARY_PATH")
        .args(["-c", FASTAVRO])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the fastavro script failed");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    for file in &files {
        let ours: String = RecordSchema::parse(&std::fs::read_to_string(file).unwrap(), &[])
            .header()[2..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let theirs = &answer["fingerprints"][file.to_str().unwrap()];
        assert_eq!(theirs.as_str(), Some(ours.as_str()), "{}", file.display());
    }
    assert_eq!(answer["decoded"].as_array().unwrap(), &expected);
}
