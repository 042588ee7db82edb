//! Replays the fuzz corpus of the record decoders (`fuzz/`, target `avro_records`).

#[path = "../../fuzz/harness/avro_records.rs"]
mod harness;
