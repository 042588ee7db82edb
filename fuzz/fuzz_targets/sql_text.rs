#![no_main]

#[path = "../harness/sql_text.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::replay(input));
