//! Fuzz target `kafka_frames`: what a client sends the embedded broker's port, as the proxy
//! in front of tansu reads it ([`crate::api_versions`]): request frames bounded before they
//! are forwarded, SyncGroup requests parsed and rewritten. Whatever follows a refused frame is read as the broker's responses, so that
//! the ApiVersions rewriter parses bodies the fuzzer chose, after the requests it registered.
//! Compiled by the fuzz target and, as the replay of `fuzz/corpus/kafka_frames/`, by
//! scope-kafka's tests.

use crate::api_versions::{Pending, requests, responses};

/// Feeds `input` to the proxy's readers; any outcome but a panic is fine.
pub fn replay(mut input: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime needs no resources");
    runtime.block_on(async {
        let pending = Pending::default();
        if requests(&mut input, tokio::io::sink(), pending.clone())
            .await
            .is_err()
        {
            let _ = responses(input, tokio::io::sink(), pending).await;
        }
    });
}

// One crate's tests may load two harnesses (the collector's), each with this module.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "corpus.rs"]
mod corpus;

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    corpus::replay_all(env!("CARGO_MANIFEST_DIR"), "kafka_frames", replay);
}
