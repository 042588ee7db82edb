//! Round trips of every record, and rejection of what is not ours.

use std::collections::BTreeMap;

use apache_avro::{Schema, reader::datum::GenericDatumReader, types::Value};
use scope_schemas::{
    AddressFamily, ConnectionEvent, ConnectionEventKind, DecodeError, EventSource, Metric, Node,
    Record, RenderedNode, ReportDelta, Snapshot, SnapshotFile, report::keys,
};

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
    let snapshot = Snapshot {
        snapshot_time_us: 1,
        window_us: 15_000_000,
        writer: "m1".into(),
        data_dir: "/d".into(),
        files: vec![SnapshotFile {
            table: "hosts".into(),
            path: "hosts/x.parquet".into(),
            rows: 3,
        }],
    };
    assert_eq!(
        Snapshot::decode(&snapshot.encode().unwrap()).unwrap(),
        snapshot
    );
    let node = RenderedNode {
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
    };
    assert_eq!(RenderedNode::decode(&node.encode().unwrap()).unwrap(), node);
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
        let _ = ReportDelta::decode(&random(ReportDelta::record_schema().header(), len));
        let _ = Snapshot::decode(&random(Snapshot::record_schema().header(), len));
    }
}
