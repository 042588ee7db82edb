#![no_main]

#[allow(dead_code)] // The proxy's listener and metrics.
#[path = "../../kafka/src/api_versions.rs"]
mod api_versions;
#[path = "../harness/kafka_frames.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::replay(input));
