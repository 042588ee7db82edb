//! Fuzz target `ebpf_records`: a record of the tracker's ring buffer, as the collector
//! decodes it ([`crate::event::Event::decode`]). Compiled by the fuzz target and, as the
//! replay of `fuzz/corpus/ebpf_records/`, by scope-ebpf's tests.

use crate::event::Event;

/// Decodes `input` as one ring record; any outcome but a panic is fine.
pub fn replay(input: &[u8]) {
    let _ = Event::decode(input);
}

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/ebpf_records");
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
