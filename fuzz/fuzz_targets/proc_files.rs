#![no_main]

#[path = "../harness/proc_files.rs"]
mod harness;
#[allow(dead_code)] // The collector's other uses of the module.
#[path = "../../collector/src/tcp.rs"]
mod tcp;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::replay(input));
