#![no_main]

#[allow(dead_code)] // What the decoder's crate uses beside it.
#[path = "../../collector/src/conntrack/codec.rs"]
mod codec;
#[path = "../harness/conntrack_replies.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::replay(input));
