//! Fuzz target `avro_records`: a Kafka value as the merger and renderer decode it, whatever
//! topic it came from (the header's fingerprint picks the schema, so one input reaches every
//! decoder). Compiled by the fuzz target and, as the replay of `fuzz/corpus/avro_records/`,
//! by scope-schemas' tests.

use scope_schemas::{ConnectionEvents, Record, RenderedNode, ReportDelta, Snapshot};

/// Decodes `input` as a record of each topic; any outcome but a panic is fine.
pub fn replay(input: &[u8]) {
    let _ = ConnectionEvents::decode_any(input);
    let _ = ReportDelta::decode(input);
    let _ = Snapshot::decode(input);
    let _ = RenderedNode::decode(input);
}

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/avro_records");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).expect(dir) {
        let path = entry.expect(dir).path();
        // Printed only if the test fails: the input that panicked.
        eprintln!("replaying {}", path.display());
        replay(&std::fs::read(&path).expect("a corpus file"));
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus in {dir}");
}
