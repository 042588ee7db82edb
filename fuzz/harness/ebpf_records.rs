//! Fuzz target `ebpf_records`: a record of the tracker's ring buffer, as the collector
//! decodes it ([`crate::event::Event::decode`]). Compiled by the fuzz target and, as the
//! replay of `fuzz/corpus/ebpf_records/`, by scope-ebpf's tests.

use crate::event::Event;

/// Decodes `input` as one ring record; any outcome but a panic is fine.
pub fn replay(input: &[u8]) {
    let _ = Event::decode(input);
}

// One crate's tests may load two harnesses (the collector's), each with this module.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "corpus.rs"]
mod corpus;

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    corpus::replay_all(env!("CARGO_MANIFEST_DIR"), "ebpf_records", replay);
}
