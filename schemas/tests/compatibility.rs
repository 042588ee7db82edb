//! Every released version of every schema (`avro/released/<name>.v<N>.avsc`) must stay readable
//! by the current one, and the decoder must take its records: a consumer upgraded first still
//! decodes what older collectors publish.

use std::{collections::BTreeMap, path::Path};

use apache_avro::{Schema, schema_compatibility::SchemaCompatibility};
use scope_schemas::{
    ConnectionEvent, ConnectionEvents, Record, RenderedNode, ReportDelta, Snapshot,
    codec::RecordSchema,
};

fn fingerprint(avsc: &str) -> u64 {
    let header = *RecordSchema::parse(avsc, &[]).header();
    u64::from_le_bytes(header[2..].try_into().unwrap())
}

/// `<name>.v<N>.avsc` in `avro/released/`, by name, oldest first.
fn released_versions(avro: &Path) -> BTreeMap<String, Vec<(u32, String)>> {
    let mut released: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for entry in std::fs::read_dir(avro.join("released")).expect("schemas/avro/released exists") {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let version = file
            .strip_suffix(".avsc")
            .and_then(|stem| stem.rsplit_once(".v"))
            .and_then(|(name, n)| Some((name.to_string(), n.parse::<u32>().ok()?)));
        let Some((name, n)) = version else {
            panic!("released/{file} is not named <record>.v<N>.avsc");
        };
        let text = std::fs::read_to_string(&path).unwrap();
        released.entry(name).or_default().push((n, text));
    }
    for versions in released.values_mut() {
        versions.sort_by_key(|(n, _)| *n);
    }
    released
}

#[test]
fn every_released_version_is_read_by_the_current_schema() {
    let avro = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
    let mut released = released_versions(&avro);
    let records: [(&str, &RecordSchema, &str); 5] = [
        (
            "connection_event",
            ConnectionEvent::record_schema(),
            ConnectionEvent::AVSC,
        ),
        (
            "connection_events",
            ConnectionEvents::record_schema(),
            ConnectionEvents::AVSC,
        ),
        (
            "report_delta",
            ReportDelta::record_schema(),
            ReportDelta::AVSC,
        ),
        ("snapshot", Snapshot::record_schema(), Snapshot::AVSC),
        (
            "rendered_node",
            RenderedNode::record_schema(),
            RenderedNode::AVSC,
        ),
    ];
    let mut checked = 0;
    for (name, decoder, avsc) in records {
        let current = Schema::parse_str(avsc).unwrap();
        let versions = released
            .remove(name)
            .unwrap_or_else(|| panic!("{name}: no released version in avro/released/"));
        let numbers: Vec<u32> = versions.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            numbers,
            (1..=versions.len() as u32).collect::<Vec<_>>(),
            "{name}: released versions must be numbered 1, 2, ..."
        );
        for (n, text) in &versions {
            let old = Schema::parse_str(text)
                .unwrap_or_else(|e| panic!("{name}.v{n}.avsc does not parse: {e}"));
            if let Err(e) = SchemaCompatibility::can_read(&old, &current) {
                panic!("{name}: the current schema cannot read data written with v{n}: {e}");
            }
            let fp = fingerprint(text);
            assert!(
                decoder.writer_fingerprints().any(|known| known == fp),
                "{name}.v{n}.avsc is not among the decoder's writers: list {n} in its avro_record!"
            );
            checked += 1;
        }
        let (newest, text) = versions.last().unwrap();
        assert_eq!(
            fingerprint(text),
            fingerprint(avsc),
            "{name}: the current schema differs from v{newest}; release it as \
             avro/released/{name}.v{}.avsc and list it in its avro_record!",
            newest + 1
        );
    }
    assert!(
        released.is_empty(),
        "released versions of no record: {:?}",
        released.keys()
    );
    eprintln!("{checked} released schema versions checked");
}

#[test]
fn the_checker_rejects_a_breaking_change() {
    // Guards the test above: a new field without a default must be refused.
    let old = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#,
    )
    .unwrap();
    let breaking = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#,
    )
    .unwrap();
    let compatible = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#,
    )
    .unwrap();
    assert!(SchemaCompatibility::can_read(&old, &breaking).is_err());
    assert!(SchemaCompatibility::can_read(&old, &compatible).is_ok());
}
