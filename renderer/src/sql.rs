//! `scope sql`: read-only SQL over the data dir.
//!
//! Tables, by name (see `scope_schemas::snapshot::table`):
//! - `hosts`, `processes`, `sockets`, `local_networks`, `connections`, `graph_nodes`,
//!   `graph_edges`: the latest snapshot that has been rendered, so the merged and the rendered
//!   tables describe the same moment (the same `snapshot_time`);
//! - `history.<table>`: every snapshot still retained, for questions over time.
//!
//! The data dir is opened afresh for each query: what is listed is what the query reads.
//! Only queries run: the statement is parsed first and anything but `SELECT` (`WITH`,
//! `VALUES`, set operations), `EXPLAIN` of one, or `SHOW TABLES/COLUMNS` is refused, and
//! DataFusion is told to refuse DDL, DML and other statements as well.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow::record_batch::RecordBatch;
use datafusion::{
    catalog::MemorySchemaProvider,
    execution::context::SQLOptions,
    prelude::SessionContext,
    sql::{
        parser::{DFParser, Statement as DfStatement},
        sqlparser::ast::Statement,
    },
};
use ip_network::IpNetwork;
use scope_schemas::snapshot::table;

use crate::{Error, render, store};

/// The schema holding every retained snapshot.
pub const HISTORY_SCHEMA: &str = "history";

/// Output formats of [`format()`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    #[default]
    Table,
    /// A JSON array of row objects (nulls explicit).
    Json,
    /// CSV with a header line.
    Csv,
}

/// Runs one read-only query over `data_dir`, with `local_networks` local in every snapshot
/// (`--local-networks`). The result has at least one batch (an empty one when no row
/// matched), so it always carries the column names.
pub async fn query(
    data_dir: &Path,
    local_networks: &[IpNetwork],
    sql: &str,
) -> Result<Vec<RecordBatch>, Error> {
    check_read_only(sql)?;
    let ctx = context(data_dir, local_networks).await?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(Error::Sql)?;
    let schema = Arc::clone(frame.schema().inner());
    let mut batches = frame.collect().await.map_err(Error::Sql)?;
    batches.retain(|b| b.num_rows() > 0);
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// A session with the plain tables (the latest rendered snapshot) and `history.<table>`
/// registered, plus every function the view SQL uses (see [`crate::view`]), so a view's SQL
/// reruns here as it ran when rendering.
pub async fn context(
    data_dir: &Path,
    local_networks: &[IpNetwork],
) -> Result<SessionContext, Error> {
    let ctx = empty_context()?;
    register(&ctx, &list(data_dir)?, local_networks).await?;
    Ok(ctx)
}

/// A session with the `history` schema but no table yet: [`register`] adds them, and a
/// long-lived session (the Postgres endpoint's) calls it again as snapshots land.
pub fn empty_context() -> Result<SessionContext, Error> {
    let ctx = render::context();
    let catalog = ctx.catalog("datafusion").ok_or_else(|| Error::Register {
        table: HISTORY_SCHEMA.into(),
        source: datafusion::error::DataFusionError::Internal("no default catalog".into()),
    })?;
    catalog
        .register_schema(HISTORY_SCHEMA, Arc::new(MemorySchemaProvider::new()))
        .map_err(|source| Error::Register {
            table: HISTORY_SCHEMA.into(),
            source,
        })?;
    Ok(ctx)
}

/// The files every table reads at one moment: the latest rendered snapshot's under the plain
/// names, every retained one under `history`. Two listings are equal when the data dir has
/// not changed in between, so a session re-registers only when it did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    tables: Vec<TableFiles>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct TableFiles {
    name: &'static str,
    latest: Vec<PathBuf>,
    history: Vec<PathBuf>,
}

/// Lists the data dir: what [`register`] would make every table read now.
pub fn list(data_dir: &Path) -> Result<Listing, Error> {
    let latest = latest_rendered(data_dir)?;
    let mut tables = Vec::with_capacity(table::MERGED.len() + table::RENDERED.len());
    // All tables, merged then rendered.
    for name in table::MERGED.into_iter().chain(table::RENDERED) {
        let all = store::list(data_dir, name)?;
        let latest_files = all
            .iter()
            .filter(|f| Some(f.snapshot_time_us) == latest)
            .map(|f| f.path.clone())
            .collect();
        let history = all.into_iter().map(|f| f.path).collect();
        tables.push(TableFiles {
            name,
            latest: latest_files,
            history,
        });
    }
    Ok(Listing { tables })
}

/// Registers every table of `listing` in `ctx` (a session from [`empty_context`]), replacing
/// the ones an earlier call registered, and the SQL functions over its networks and
/// `local_networks`.
pub async fn register(
    ctx: &SessionContext,
    listing: &Listing,
    local_networks: &[IpNetwork],
) -> Result<(), Error> {
    for table in &listing.tables {
        let schema = render::schema_of(table.name);
        let history_name = format!("{HISTORY_SCHEMA}.{}", table.name);
        for (name, files) in [
            (table.name.to_owned(), &table.latest),
            (history_name, &table.history),
        ] {
            // Registering over an existing name is refused, so the old table goes first.
            ctx.deregister_table(name.as_str())
                .map_err(|source| Error::Register {
                    table: name.clone(),
                    source,
                })?;
            render::register_files(ctx, &name, &schema, files)?;
        }
    }
    // History holds every snapshot the plain tables show, so its networks serve both.
    let history_networks = format!("{HISTORY_SCHEMA}.{}", table::LOCAL_NETWORKS);
    render::register_functions(ctx, &history_networks, local_networks).await?;
    Ok(())
}

/// The newest snapshot time for which all rendered tables exist.
pub fn latest_rendered(data_dir: &Path) -> Result<Option<i64>, Error> {
    let mut common: Option<std::collections::BTreeSet<i64>> = None;
    for name in table::RENDERED {
        let times: std::collections::BTreeSet<i64> = store::list(data_dir, name)?
            .into_iter()
            .map(|f| f.snapshot_time_us)
            .collect();
        common = Some(match common {
            None => times,
            Some(previous) => previous.intersection(&times).copied().collect(),
        });
    }
    Ok(common.and_then(|times| times.last().copied()))
}

/// Refuses anything but a single query.
fn check_read_only(sql: &str) -> Result<(), Error> {
    let statements = DFParser::parse_sql(sql).map_err(Error::Sql)?;
    if statements.len() != 1 {
        return Err(Error::ReadOnly(format!(
            "{} statements (one query expected)",
            statements.len()
        )));
    }
    let allowed = match &statements[0] {
        DfStatement::Statement(statement) => is_query(statement),
        DfStatement::Explain(explain) => {
            matches!(&*explain.statement, DfStatement::Statement(s) if is_query(s))
        }
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        let text = statements[0].to_string();
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or("an empty statement");
        Err(Error::ReadOnly(verb.to_uppercase()))
    }
}

/// A query, `EXPLAIN` of one, or `SHOW TABLES/COLUMNS`: what reads and never writes.
pub(crate) fn is_query(statement: &Statement) -> bool {
    match statement {
        Statement::Query(_) | Statement::ShowTables { .. } | Statement::ShowColumns { .. } => true,
        Statement::Explain { statement, .. } => is_query(statement),
        _ => false,
    }
}

/// Formats query results for a terminal or another program.
pub fn format(batches: &[RecordBatch], format: Format) -> Result<String, Error> {
    match format {
        Format::Table => arrow::util::pretty::pretty_format_batches(batches)
            .map(|t| t.to_string())
            .map_err(Error::Format),
        Format::Json => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(Vec::new());
            for batch in batches {
                writer.write(batch).map_err(Error::Format)?;
            }
            writer.finish().map_err(Error::Format)?;
            let mut text = String::from_utf8_lossy(&writer.into_inner()).into_owned();
            if text.is_empty() {
                text.push_str("[]");
            }
            text.push('\n');
            Ok(text)
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(Vec::new());
            for batch in batches {
                writer.write(batch).map_err(Error::Format)?;
            }
            Ok(String::from_utf8_lossy(&writer.into_inner()).into_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_check() {
        for ok in [
            "SELECT 1",
            "select * from hosts",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "SELECT 1 UNION ALL SELECT 2",
            "SHOW TABLES",
        ] {
            check_read_only(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "DELETE FROM hosts",
            "INSERT INTO hosts VALUES (1)",
            "CREATE TABLE t (a INT)",
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/tmp/x'",
            "COPY hosts TO '/tmp/x.parquet'",
            "DROP TABLE hosts",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; SELECT 2",
        ] {
            let error = check_read_only(bad).expect_err(bad);
            assert!(matches!(error, Error::ReadOnly(_)), "{bad}: {error}");
        }
    }
}
