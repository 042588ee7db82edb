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
//!
//! Every query (HTTP, Postgres, `scope sql`) runs under [`QueryMemory`]: what its operators
//! buffer (sorts, hash aggregates and joins' build sides) may not pass `--query-memory-limit`,
//! nor may all queries together pass `--query-memory-total`. A query that would is stopped
//! with an out-of-memory-limit error (DataFusion's `ResourcesExhausted`) instead of spilling
//! to disk or taking the machine; the renderer's own rendering is outside these pools.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use arrow::record_batch::RecordBatch;
use datafusion::{
    catalog::MemorySchemaProvider,
    common::DataFusionError,
    execution::{
        SendableRecordBatchStream,
        context::SQLOptions,
        disk_manager::{DiskManagerBuilder, DiskManagerMode},
        memory_pool::{MemoryLimit, MemoryPool, MemoryReservation},
        runtime_env::{RuntimeEnv, RuntimeEnvBuilder},
        session_state::SessionStateBuilder,
    },
    prelude::SessionContext,
    sql::{
        parser::{DFParser, Statement as DfStatement},
        sqlparser::ast::{Query, SetExpr, Statement},
    },
};
use futures_util::TryStreamExt;
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
/// (`--local-networks`), under the default memory limits (see [`query_within`]).
pub async fn query(
    data_dir: &Path,
    local_networks: &[IpNetwork],
    sql: &str,
) -> Result<Vec<RecordBatch>, Error> {
    let memory = QueryArgs::default().memory();
    query_within(&memory, data_dir, local_networks, sql).await
}

/// Runs one read-only query as [`stream`] does, within `memory`, and collects its rows. The
/// result has at least one batch (an empty one when no row matched), so it always carries
/// the column names.
pub async fn query_within(
    memory: &QueryMemory,
    data_dir: &Path,
    local_networks: &[IpNetwork],
    sql: &str,
) -> Result<Vec<RecordBatch>, Error> {
    let stream = stream(memory, data_dir, local_networks, sql).await?;
    let schema = stream.schema();
    let mut batches: Vec<RecordBatch> = stream.try_collect().await.map_err(Error::Sql)?;
    batches.retain(|b| b.num_rows() > 0);
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// Plans one read-only query as [`query`] does and starts it: its rows come as the stream is
/// read, and dropping the stream cancels the query and returns its memory.
pub async fn stream(
    memory: &QueryMemory,
    data_dir: &Path,
    local_networks: &[IpNetwork],
    sql: &str,
) -> Result<SendableRecordBatchStream, Error> {
    check_read_only(sql)?;
    let ctx = context(memory, data_dir, local_networks).await?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(Error::Sql)?;
    frame.execute_stream().await.map_err(Error::Sql)
}

/// A session with the plain tables (the latest rendered snapshot) and `history.<table>`
/// registered, plus every function the view SQL uses (see [`crate::view`]), so a view's SQL
/// reruns here as it ran when rendering. Its queries run within `memory`.
pub async fn context(
    memory: &QueryMemory,
    data_dir: &Path,
    local_networks: &[IpNetwork],
) -> Result<SessionContext, Error> {
    let ctx = empty_context(memory)?;
    register(&ctx, &list(data_dir)?, local_networks).await?;
    Ok(ctx)
}

/// A session with the `history` schema but no table yet: [`register`] adds them, and a
/// long-lived session (the Postgres endpoint's) calls it again as snapshots land. Its
/// queries run within `memory`, one at a time.
pub fn empty_context(memory: &QueryMemory) -> Result<SessionContext, Error> {
    let state = SessionStateBuilder::new_from_existing(render::context().state())
        .with_runtime_env(memory.runtime()?)
        .build();
    let ctx = SessionContext::new_with_state(state);
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

impl Listing {
    /// The tables' names: each is registered under it and in `history`.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tables.iter().map(|table| table.name)
    }
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

/// The default of `--query-memory-limit`.
const QUERY_MEMORY_LIMIT: &str = "512MiB";
/// The default of `--query-memory-total`.
const QUERY_MEMORY_TOTAL: &str = "1GiB";

/// How much memory queries may hold (HTTP, Postgres, `scope sql`).
#[derive(clap::Args, Clone, Debug)]
pub struct QueryArgs {
    /// Memory one query may hold in what it buffers (sorts, aggregates, joins), e.g.
    /// `512MiB`; past it the query fails with an out-of-memory-limit error.
    #[arg(
        long = "query-memory-limit",
        env = "SCOPE_QUERY_MEMORY_LIMIT",
        default_value = QUERY_MEMORY_LIMIT,
        value_parser = parse_bytes,
        value_name = "BYTES"
    )]
    pub memory_limit: usize,
    /// Memory all queries running at once may hold together, e.g. `1GiB`.
    #[arg(
        long = "query-memory-total",
        env = "SCOPE_QUERY_MEMORY_TOTAL",
        default_value = QUERY_MEMORY_TOTAL,
        value_parser = parse_bytes,
        value_name = "BYTES"
    )]
    pub memory_total: usize,
}

impl Default for QueryArgs {
    fn default() -> Self {
        QueryArgs {
            memory_limit: parse_bytes(QUERY_MEMORY_LIMIT).expect("a valid default"),
            memory_total: parse_bytes(QUERY_MEMORY_TOTAL).expect("a valid default"),
        }
    }
}

impl QueryArgs {
    pub fn validate(&self) -> Result<(), Error> {
        if self.memory_limit == 0 || self.memory_limit > self.memory_total {
            return Err(Error::Config(format!(
                "--query-memory-limit ({}) must be above zero and at most --query-memory-total \
                 ({})",
                Bytes(self.memory_limit),
                Bytes(self.memory_total)
            )));
        }
        Ok(())
    }

    /// The pool of all queries of this process under these limits.
    pub fn memory(&self) -> QueryMemory {
        QueryMemory {
            limit: self.memory_limit,
            total: Arc::new(Total {
                limit: self.memory_total,
                used: AtomicUsize::new(0),
            }),
        }
    }
}

/// `512MiB`, `1GiB`, `100MB`, `4096`: binary (KiB, MiB, GiB) or decimal (kB, MB, GB) units.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} (use B, KiB, MiB, GiB, kB, MB or GB)"
            ));
        }
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{text:?} is not a size such as 512MiB"))
}

/// A byte count as a person reads it.
struct Bytes(usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 30 && n % (1 << 30) == 0 => write!(f, "{} GiB", n >> 30),
            n if n >= 1 << 20 => write!(f, "{} MiB", n >> 20),
            n => write!(f, "{n} bytes"),
        }
    }
}

/// The memory of every query of this process: each gets a pool of its own
/// ([`QueryMemory::runtime`]), limited to `limit` and drawing on one `total`.
#[derive(Clone, Debug)]
pub struct QueryMemory {
    limit: usize,
    total: Arc<Total>,
}

#[derive(Debug)]
struct Total {
    limit: usize,
    used: AtomicUsize,
}

impl QueryMemory {
    /// What all queries hold now, in bytes.
    pub fn used(&self) -> usize {
        self.total.used.load(Ordering::Relaxed)
    }

    /// A runtime for one query (or one session that runs its queries one at a time): its
    /// own pool within the total, and no spilling, so a query over its limit fails instead
    /// of filling the disk.
    pub fn runtime(&self) -> Result<Arc<RuntimeEnv>, Error> {
        let pool = QueryPool {
            limit: self.limit,
            used: AtomicUsize::new(0),
            total: Arc::clone(&self.total),
        };
        RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(Error::Sql)
    }
}

/// One query's pool: [`QueryArgs::memory_limit`] of its own, within the shared total.
#[derive(Debug)]
struct QueryPool {
    limit: usize,
    used: AtomicUsize,
    total: Arc<Total>,
}

/// Adds `additional` to `used` if the sum stays within `limit`.
fn try_add(used: &AtomicUsize, additional: usize, limit: usize) -> Result<usize, usize> {
    used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
        held.checked_add(additional).filter(|&sum| sum <= limit)
    })
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "scope query"
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.total.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.total.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(
        &self,
        _reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        let held = try_add(&self.used, additional, self.limit).map_err(|held| {
            out_of_memory(format!(
                "the query holds {} and needs {} more, over its memory limit of {} \
                 (--query-memory-limit, SCOPE_QUERY_MEMORY_LIMIT)",
                Bytes(held),
                Bytes(additional),
                Bytes(self.limit)
            ))
        })?;
        if let Err(all) = try_add(&self.total.used, additional, self.total.limit) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(out_of_memory(format!(
                "the queries running now hold {} of their total memory limit of {} \
                 (--query-memory-total, SCOPE_QUERY_MEMORY_TOTAL); this one holds {} and needs \
                 {} more",
                Bytes(all),
                Bytes(self.total.limit),
                Bytes(held),
                Bytes(additional)
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scope query pool ({} of {})",
            Bytes(self.reserved()),
            Bytes(self.limit)
        )
    }
}

fn out_of_memory(message: String) -> DataFusionError {
    DataFusionError::ResourcesExhausted(message)
}

impl QueryMemory {
    /// What a client is told when `error` is a query running out of the memory it may hold,
    /// or None for any other error. The operator that ran out may have replaced the pool's
    /// words with its own, and wraps them in advice about DataFusion's settings, which are
    /// not Scope's: so the limits are named here.
    pub fn explain(&self, error: &DataFusionError) -> Option<String> {
        let root = error.find_root();
        matches!(root, DataFusionError::ResourcesExhausted(_)).then(|| {
            format!(
                "out of memory: a query may hold {} (its memory limit, --query-memory-limit, \
                 SCOPE_QUERY_MEMORY_LIMIT) and all running queries {} together \
                 (--query-memory-total, SCOPE_QUERY_MEMORY_TOTAL); {root}",
                Bytes(self.limit),
                Bytes(self.total.limit)
            )
        })
    }
}

/// Operators one statement may hold. sqlparser parses a chain of them (`1+1+…`,
/// `a = 1 OR a = 2 OR …`) in a loop, within its recursion limit, but DataFusion plans and
/// evaluates the chain by recursion, a few stack frames a link: 3,000 overflowed a worker's
/// stack and aborted the whole process. 1,000 plan in the debug build, whose frames are the
/// largest. Postgres refuses what exceeds its stack with the same SQLSTATE, 54001.
pub(crate) const MAX_OPERATORS: usize = 1_000;

/// Refuses a statement with more than [`MAX_OPERATORS`] operators, counted on its tokens
/// (the tokenizer does not recurse), before anything parses or plans it. Text that does not
/// tokenize is left for the parser to refuse.
pub(crate) fn check_operators(sql: &str) -> Result<(), String> {
    use datafusion::sql::sqlparser::{
        dialect::GenericDialect,
        keywords::Keyword,
        tokenizer::{Token, Tokenizer},
    };
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(());
    };
    let operators = tokens
        .iter()
        .filter(|token| match token {
            Token::Word(word) => matches!(
                word.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::NOT
                    | Keyword::IS
                    | Keyword::LIKE
                    | Keyword::ILIKE
                    | Keyword::SIMILAR
                    | Keyword::BETWEEN
                    | Keyword::IN
                    | Keyword::COLLATE
                    | Keyword::AT
            ),
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::DuckIntDiv
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Spaceship
            | Token::DoubleColon
            | Token::LBracket
            | Token::Caret
            | Token::Ampersand
            | Token::Pipe
            | Token::Tilde
            | Token::Sharp
            | Token::ShiftLeft
            | Token::ShiftRight
            | Token::Arrow
            | Token::LongArrow
            | Token::HashArrow
            | Token::HashLongArrow
            | Token::AtArrow
            | Token::ArrowAt
            | Token::TildeEqual
            | Token::ExclamationMarkTilde
            | Token::DoubleTilde
            | Token::DoubleTildeAsterisk
            | Token::ExclamationMarkDoubleTilde
            | Token::ExclamationMarkDoubleTildeAsterisk
            | Token::TildeAsterisk
            | Token::ExclamationMarkTildeAsterisk => true,
            _ => false,
        })
        .count();
    if operators <= MAX_OPERATORS {
        return Ok(());
    }
    Err(format!(
        "statement too complex: {operators} operators, at most {MAX_OPERATORS} (a chain of \
         them is planned by recursion); split it, or list values with IN (...)"
    ))
}

/// Refuses anything but a single query, and a statement too complex to plan.
fn check_read_only(sql: &str) -> Result<(), Error> {
    check_operators(sql).map_err(|message| Error::Sql(DataFusionError::Plan(message)))?;
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
        let verb = match &statements[0] {
            DfStatement::Statement(statement) => verb(statement),
            other => first_words(&other.to_string()),
        };
        Err(Error::ReadOnly(verb))
    }
}

/// A query, `EXPLAIN` of one, or `SHOW TABLES/COLUMNS`: what reads and never writes.
/// `SELECT ... INTO t` parses as a query but creates a table, so it is not one.
pub(crate) fn is_query(statement: &Statement) -> bool {
    match statement {
        Statement::Query(query) => !selects_into(query),
        Statement::ShowTables { .. } | Statement::ShowColumns { .. } => true,
        Statement::Explain { statement, .. } => is_query(statement),
        _ => false,
    }
}

/// Whether a query, or a query it is made of (a CTE, a side of a `UNION`), is `SELECT INTO`.
fn selects_into(query: &Query) -> bool {
    fn body_selects_into(body: &SetExpr) -> bool {
        match body {
            SetExpr::Select(select) => select.into.is_some(),
            SetExpr::Query(query) => selects_into(query),
            SetExpr::SetOperation { left, right, .. } => {
                body_selects_into(left) || body_selects_into(right)
            }
            _ => false,
        }
    }
    let in_ctes = query
        .with
        .as_ref()
        .is_some_and(|with| with.cte_tables.iter().any(|cte| selects_into(&cte.query)));
    in_ctes || body_selects_into(&query.body)
}

/// What a refused statement is, for its error: `DELETE`, `CREATE TABLE`, `SELECT INTO`.
pub(crate) fn verb(statement: &Statement) -> String {
    match statement {
        Statement::Query(query) if selects_into(query) => "SELECT INTO".into(),
        other => first_words(&other.to_string()),
    }
}

fn first_words(text: &str) -> String {
    let mut words = text.split_whitespace().map(str::to_uppercase);
    let first = words.next().unwrap_or_else(|| "an empty statement".into());
    match (first.as_str(), words.next()) {
        ("CREATE" | "DROP" | "ALTER", Some(second)) => format!("{first} {second}"),
        _ => first,
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
                writer
                    .write(&nested_as_text(batch)?)
                    .map_err(Error::Format)?;
            }
            Ok(String::from_utf8_lossy(&writer.into_inner()).into_owned())
        }
    }
}

/// `batch` with every map, list and struct column as text (`{app: web}`, `[80, 443]`), as
/// a table shows it: CSV has no nested values, and Arrow's CSV writer refuses them.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch, Error> {
    use arrow::{
        array::{Array, StringArray},
        datatypes::{DataType, Field, Schema},
        util::display::{ArrayFormatter, FormatOptions},
    };
    if !batch.columns().iter().any(|c| c.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !column.data_type().is_nested() {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(column));
            continue;
        }
        let formatter = ArrayFormatter::try_new(column, &options).map_err(Error::Format)?;
        let text: StringArray = (0..column.len())
            .map(|row| {
                column
                    .is_valid(row)
                    .then(|| formatter.value(row).to_string())
            })
            .collect();
        fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
        columns.push(Arc::new(text) as _);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(Error::Format)
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
            "SELECT * INTO t FROM hosts",
            "WITH x AS (SELECT 1 INTO t) SELECT * FROM x",
            "SELECT 1 UNION ALL SELECT 2 INTO t",
            "EXPLAIN SELECT * INTO t FROM hosts",
        ] {
            let error = check_read_only(bad).expect_err(bad);
            assert!(matches!(error, Error::ReadOnly(_)), "{bad}: {error}");
        }
    }
}
