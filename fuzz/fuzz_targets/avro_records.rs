#![no_main]

#[path = "../harness/avro_records.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::replay(input));
