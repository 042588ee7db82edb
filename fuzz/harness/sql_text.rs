//! Fuzz target `sql_text`: SQL text as the renderer's endpoints parse it before anything
//! else: the read-only check of `scope sql` and `POST /api/sql` (DataFusion's parser, generic
//! dialect) and the Postgres endpoint (Postgres dialect), then printed again, as refusals
//! name the statement. Compiled by the fuzz target and, as the replay of
//! `fuzz/corpus/sql_text/`, by the renderer's tests.

use datafusion::sql::sqlparser::{
    dialect::{Dialect, GenericDialect, PostgreSqlDialect},
    parser::Parser,
};

/// Parses `input` in both dialects; any outcome but a panic is fine.
pub fn replay(input: &[u8]) {
    // Both endpoints take text: HTTP bodies and Postgres strings that are not UTF-8 are
    // refused before a parser sees them.
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let dialects: [&dyn Dialect; 2] = [&GenericDialect {}, &PostgreSqlDialect {}];
    for dialect in dialects {
        if let Ok(statements) = Parser::parse_sql(dialect, text) {
            for statement in statements {
                let _ = statement.to_string();
            }
        }
    }
}

// One crate's tests may load two harnesses (the collector's), each with this module.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "corpus.rs"]
mod corpus;

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    corpus::replay_all(env!("CARGO_MANIFEST_DIR"), "sql_text", replay);
}
