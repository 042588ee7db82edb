#![no_main]

#[allow(dead_code)] // The endpoint's other uses of the module.
#[path = "../../renderer/src/postgres/frames.rs"]
mod frames;
#[path = "../harness/postgres_wire.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::replay(input));
