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

// One crate's tests may load two harnesses (the collector's), each with this module.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "corpus.rs"]
mod corpus;

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    corpus::replay_all(env!("CARGO_MANIFEST_DIR"), "conntrack_replies", replay);
}
