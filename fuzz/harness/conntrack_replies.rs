//! Fuzz target `conntrack_replies`: a datagram on the collector's ctnetlink socket, split
//! into netlink messages and each decoded as a conntrack entry, as a lookup reads the
//! kernel's reply ([`super::codec`]). Compiled by the fuzz target and, as the replay of
//! `fuzz/corpus/conntrack_replies/`, by the collector's tests.

use super::codec::{decode_entry, messages};

/// Decodes `input` as a reply datagram; any outcome but a panic is fine.
pub fn replay(input: &[u8]) {
    let Ok(messages) = messages(input) else {
        return;
    };
    for message in messages {
        let _ = decode_entry(message.payload);
    }
}

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/conntrack_replies"
    );
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
