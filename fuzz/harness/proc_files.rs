//! Fuzz target `proc_files`: the procfs text the collector parses, `/proc/<pid>/net/tcp` and
//! `tcp6` ([`crate::tcp`]). Compiled by the fuzz target and, as the replay of
//! `fuzz/corpus/proc_files/`, by the collector's tests.

use crate::tcp;

/// Parses `input` as a socket table; any outcome but a panic is fine.
pub fn replay(input: &[u8]) {
    // procfs text is ASCII; the collector reads it with `read_to_string`, which refuses
    // anything but UTF-8 before a parser sees it.
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let _ = tcp::parse_table(text);
}

// One crate's tests may load two harnesses (the collector's), each with this module.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "corpus.rs"]
mod corpus;

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    corpus::replay_all(env!("CARGO_MANIFEST_DIR"), "proc_files", replay);
}
