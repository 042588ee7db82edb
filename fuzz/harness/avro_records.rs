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

// One crate's tests may load two harnesses (the collector's), each with this module.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "corpus.rs"]
mod corpus;

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    corpus::replay_all(env!("CARGO_MANIFEST_DIR"), "avro_records", replay);
}
