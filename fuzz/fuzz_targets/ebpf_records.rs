#![no_main]

#[allow(dead_code)] // What the decoder's crate uses beside it.
#[path = "../../ebpf/src/event.rs"]
mod event;
#[path = "../harness/ebpf_records.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::replay(input));
