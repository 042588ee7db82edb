//! Replays the fuzz corpus of SQL text (`fuzz/`, target `sql_text`).

#[path = "../../fuzz/harness/sql_text.rs"]
mod harness;
