//! A read-only Postgres wire endpoint over the data dir: `psql`, drivers and BI tools query
//! the same tables as `scope sql` (the latest rendered snapshot under plain names, every
//! retained one under `history.<table>`), through datafusion-postgres and pgwire.
//!
//! Each connection has a DataFusion session of its own, whose tables are re-listed before
//! every statement and swapped when the data dir changed: a session that stays open sees
//! newer snapshots, and one statement reads one listing however many tables it joins (a
//! shared session would be swapped under one connection's join by another's refresh).
//! Statements prepared with the extended protocol are planned again when executed, for the
//! same reason.
//!
//! Only queries run: anything else (DDL, DML, `COPY`, a `SET` of DataFusion's settings,
//! `BEGIN READ WRITE`) is refused with SQLSTATE 25006 before it is planned, on the simple and
//! the extended protocol alike. What psql and drivers send around queries (`SET datestyle`,
//! `SHOW`, `BEGIN`/`COMMIT`, cursors) works.
//!
//! # Layout
//! - `frames`: bounds what a client sends before pgwire reads it;
//! - `functions`, `settings`, `show`, `savepoints`: what Postgres clients (psql, SQLAlchemy,
//!   pgjdbc) call or ask at start-up and for introspection, answered as Postgres does;
//! - `rewrite`, `vectors`: Postgres syntax of catalog queries that DataFusion does not plan;
//! - `maps`: map columns, which the wire cannot carry, as JSON text.

mod frames;
mod functions;
mod maps;
mod rewrite;
mod savepoints;
mod settings;
mod show;
mod vectors;

/// Replays the fuzz corpus of the wire readers (`fuzz/`, target `postgres_wire`).
#[cfg(test)]
#[path = "../../fuzz/harness/postgres_wire.rs"]
mod fuzz_corpus;

use std::{fmt, io, net::SocketAddr, path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use async_trait::async_trait;
use datafusion::{
    common::ParamValues,
    dataframe::DataFrame,
    error::DataFusionError,
    logical_expr::LogicalPlan,
    prelude::SessionContext,
    sql::{
        parser::Statement as DfStatement,
        sqlparser::{
            ast::{ObjectName, Set, Statement, TransactionAccessMode, TransactionMode},
            parser::ParserError,
        },
    },
};
use datafusion_postgres::{
    DfSessionService, QueryHook,
    arrow_pg::datatypes::df::encode_dataframe,
    auth::AuthManager,
    datafusion_pg_catalog::pg_catalog::setup_pg_catalog,
    hooks::{
        HookClient, cursor::CursorStatementHook, set_show::SetShowHook,
        transactions::TransactionStatementHook,
    },
    pgwire::{
        api::{
            ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers,
            Type,
            auth::{
                AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
                noop::NoopStartupHandler,
                sasl::{
                    SASLAuthStartupHandler,
                    scram::{SCRAM_ITERATIONS, ScramAuth, gen_salted_password, random_nonce},
                },
            },
            cancel::{CancelHandler, DefaultCancelHandler},
            portal::{Format, Portal},
            query::{ExtendedQueryHandler, SimpleQueryHandler},
            results::FieldInfo,
            results::Response,
            stmt::{QueryParser, StoredStatement},
            store::PortalStore,
        },
        error::{ErrorInfo, PgWireError, PgWireResult},
        messages::{PgWireBackendMessage, PgWireFrontendMessage, startup::ParameterStatus},
        tokio::process_socket_unix,
        types::format::FormatOptions,
    },
};
use futures_sink::Sink;
use ip_network::IpNetwork;
use scope_runtime::throttle::{LOG_EVERY, Throttle};
use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream, UnixStream},
    sync::{Mutex, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    Error, parse_listen,
    sql::{self, Listing},
};

const DEFAULT_LISTEN: &str = "127.0.0.1:5433";
const DEFAULT_USER: &str = "scope";
/// Connections served at once. Each holds a DataFusion session with pg_catalog (a few MB);
/// past this, new ones are closed at once rather than let them exhaust memory.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its startup packet; pgwire allows as long for the
/// login that follows.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// SQLSTATEs we answer with; the names are Postgres's.
mod sqlstate {
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const STATEMENT_TOO_COMPLEX: &str = "54001";
    pub const INSUFFICIENT_RESOURCES: &str = "53000";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const IO_ERROR: &str = "58030";
    pub const DATA_EXCEPTION: &str = "22000";
    pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// Settings of the Postgres endpoint.
#[derive(clap::Args, Clone, Debug)]
pub struct PostgresArgs {
    /// Where the read-only Postgres endpoint listens (IP:PORT), or `off`. Connect with
    /// `psql -h 127.0.0.1 -p 5433 -U scope`. Any address but loopback needs
    /// `--postgres-password`.
    #[arg(
        id = "postgres_listen",
        long = "postgres-listen",
        env = "SCOPE_POSTGRES_LISTEN",
        default_value = DEFAULT_LISTEN,
        value_parser = parse_listen,
    )]
    // Spelled out so that clap takes the whole `Option` from the parser (`off` is None)
    // instead of making the flag optional.
    pub listen: std::option::Option<SocketAddr>,
    /// The one user name the Postgres endpoint accepts.
    #[arg(
        id = "postgres_user",
        long = "postgres-user",
        env = "SCOPE_POSTGRES_USER",
        default_value = DEFAULT_USER
    )]
    pub user: String,
    /// Password of `--postgres-user` (SCRAM-SHA-256). Without one, any client that reaches
    /// the endpoint may query; required unless it listens on loopback only.
    #[arg(
        id = "postgres_password",
        long = "postgres-password",
        env = "SCOPE_POSTGRES_PASSWORD",
        hide_env_values = true,
        value_parser = parse_secret,
    )]
    pub password: Option<Secret>,
}

/// A password, kept out of `Debug` output (logged settings, `--check-config`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

impl PostgresArgs {
    /// No endpoint: what callers that serve no Postgres clients (tests, `scope sql`) use.
    pub fn off() -> Self {
        PostgresArgs {
            listen: None,
            user: DEFAULT_USER.into(),
            password: None,
        }
    }

    /// Checks the settings without touching the network.
    pub fn validate(&self) -> Result<(), Error> {
        let Some(addr) = self.listen else {
            return Ok(());
        };
        if self.user.trim().is_empty() {
            return Err(Error::Config("--postgres-user must not be empty".into()));
        }
        match &self.password {
            Some(password) if password.expose().is_empty() => Err(Error::Config(
                "--postgres-password (SCOPE_POSTGRES_PASSWORD) is empty: set one, or unset it \
                 to accept clients without a password on loopback"
                    .into(),
            )),
            None if !addr.ip().is_loopback() => Err(Error::Config(format!(
                "--postgres-listen {addr} is not a loopback address, so --postgres-password \
                 (SCOPE_POSTGRES_PASSWORD) is required: without one, anyone who reaches it \
                 reads every snapshot. Set a password, listen on 127.0.0.1, or use `off`"
            ))),
            _ => Ok(()),
        }
    }

    /// Listens on `--postgres-listen` (None when it is `off`), serving `data_dir` (with
    /// `local_networks` local in every snapshot) once [`Bound::serve`] runs: a port in use
    /// fails here, before anything else starts.
    pub async fn bind(
        &self,
        data_dir: PathBuf,
        local_networks: &[IpNetwork],
    ) -> Result<Option<Bound>, Error> {
        self.validate()?;
        let Some(addr) = self.listen else {
            return Ok(None);
        };
        let listen_error = |source| Error::Listen {
            what: "Postgres endpoint",
            addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let credentials = self.password.as_ref().map(|password| {
            // The salt is new at every start: a SCRAM verifier seen once is of no use later.
            let salt = random_nonce().into_bytes();
            let salted_password = gen_salted_password(password.expose(), &salt, SCRAM_ITERATIONS);
            Arc::new(Credentials {
                user: self.user.clone(),
                salt,
                salted_password,
            })
        });
        tracing::info!(
            addr = %local_addr,
            user = %self.user,
            password = credentials.is_some(),
            "Postgres endpoint listening (read-only)"
        );
        Ok(Some(Bound {
            listener,
            local_addr,
            shared: Shared {
                data_dir,
                local_networks: local_networks.into(),
                user: self.user.clone(),
                credentials,
                connections: Arc::new(ConnectionManager::new()),
                slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
                memory: sql::QueryArgs::default().memory(),
            },
        }))
    }
}

/// A listening endpoint, not yet accepting (see [`PostgresArgs::bind`]).
pub struct Bound {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Shared,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// The address it listens on (the port port 0 was given).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs every statement within `memory` (by default, a pool of its own with the default
    /// limits), which the renderer shares with the HTTP API.
    pub fn with_query_memory(mut self, memory: sql::QueryMemory) -> Self {
        self.shared.memory = memory;
        self
    }

    /// Accepts and serves clients until `shutdown`, then closes every connection: their
    /// sessions are read-only, so nothing is lost by not waiting for them.
    pub async fn serve(self, shutdown: CancellationToken) {
        let Bound {
            listener,
            local_addr,
            shared,
        } = self;
        let shared = Arc::new(shared);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = done
                        && error.is_panic()
                    {
                        tracing::error!(%error, "a Postgres connection panicked");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        connections.spawn(connection(Arc::clone(&shared), socket, peer));
                    }
                    Err(error) => {
                        // Out of file descriptors, usually: retrying at once would spin.
                        tracing::warn!(%error, "accepting a Postgres connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        let open = connections.len();
        connections.shutdown().await;
        tracing::info!(addr = %local_addr, closed = open, "Postgres endpoint stopped");
    }
}

/// What every connection of one endpoint shares.
struct Shared {
    data_dir: PathBuf,
    local_networks: Arc<[IpNetwork]>,
    user: String,
    credentials: Option<Arc<Credentials>>,
    /// Cancel requests arrive on a connection of their own and find their target here.
    connections: Arc<ConnectionManager>,
    slots: Arc<Semaphore>,
    /// Each connection's session runs its statements one at a time, within a pool of its
    /// own drawn from this one.
    memory: sql::QueryMemory,
}

async fn connection(shared: Arc<Shared>, mut socket: TcpStream, peer: SocketAddr) {
    let Ok(slot) = Arc::clone(&shared.slots).try_acquire_owned() else {
        tracing::warn!(%peer, limit = MAX_CONNECTIONS, "too many Postgres connections, closing a new one");
        let message = format!("sorry, too many clients already (at most {MAX_CONNECTIONS})");
        return frames::refuse(socket, sqlstate::TOO_MANY_CONNECTIONS, &message).await;
    };
    // Nothing is set up for a client before its startup packet is read and found sound.
    let startup = tokio::time::timeout(STARTUP_TIMEOUT, frames::read_startup(&mut socket)).await;
    let startup = match startup {
        Ok(Ok(packet)) => packet,
        Ok(Err(error)) => {
            ended(peer, &error);
            drop(slot);
            if let Some(why) = frames::refusal(&error) {
                frames::refuse(socket, sqlstate::PROTOCOL_VIOLATION, &why.to_string()).await;
            }
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no Postgres startup packet within {STARTUP_TIMEOUT:?}; closed");
            return;
        }
    };
    let handlers = match Handlers::new(&shared, peer).await {
        Ok(handlers) => handlers,
        Err(error) => {
            tracing::error!(%peer, %error, "setting up a Postgres session failed");
            return;
        }
    };
    tracing::debug!(%peer, "Postgres client connected");
    let _slot = slot;
    match serve_client(socket, &startup, handlers).await {
        Ok(()) => tracing::debug!(%peer, "Postgres client disconnected"),
        Err(error) => ended(peer, &error),
    }
}

/// Serves one client through pgwire, which reads what [`frames::relay_messages`] lets
/// through from one end of a socket pair and answers on it.
async fn serve_client(client: TcpStream, startup: &[u8], handlers: Handlers) -> io::Result<()> {
    let (ours, pgwire_end) = UnixStream::pair()?;
    let (mut from_pgwire, mut to_pgwire) = ours.into_split();
    let (from_client, mut to_client) = client.into_split();
    to_pgwire.write_all(startup).await?;
    let inbound = async {
        frames::relay_messages(BufReader::new(from_client), &mut to_pgwire).await?;
        // The client is done: pgwire sees the end of its input, and ends the connection
        // once it has answered what came before.
        to_pgwire.shutdown().await?;
        std::future::pending().await
    };
    let served = async {
        tokio::try_join!(process_socket_unix(pgwire_end, Arc::new(handlers)), async {
            tokio::io::copy(&mut from_pgwire, &mut to_client).await?;
            to_client.shutdown().await
        })
        .map(drop)
    };
    tokio::select! {
        ended = inbound => ended,
        ended = served => ended,
    }
}

/// Logs why a connection ended: a length out of bounds at most once per [`LOG_EVERY`] (a
/// port scanner sends many), anything else at debug level.
fn ended(peer: SocketAddr, error: &io::Error) {
    static REFUSALS: std::sync::Mutex<Throttle> = std::sync::Mutex::new(Throttle::new(LOG_EVERY));
    let Some(why) = frames::refusal(error) else {
        tracing::debug!(%peer, %error, "Postgres connection closed");
        return;
    };
    let allowed = REFUSALS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .allow();
    if let Some(held_back) = allowed {
        tracing::warn!(%peer, held_back, "closed a Postgres connection: {why}");
    }
}

/// One connection's session: its tables and the listing they were registered from.
struct Tables {
    data_dir: PathBuf,
    local_networks: Arc<[IpNetwork]>,
    ctx: Arc<SessionContext>,
    listed: Mutex<Option<Listing>>,
    visibility: Arc<functions::Visibility>,
}

impl Tables {
    /// Registers the data dir's tables again if it changed since the last statement.
    async fn refresh(&self) -> PgWireResult<()> {
        let mut listed = self.listed.lock().await;
        let now = sql::list(&self.data_dir).map_err(|e| session_error(&e))?;
        if listed.as_ref() != Some(&now) {
            sql::register(&self.ctx, &now, &self.local_networks)
                .await
                .map_err(|e| session_error(&e))?;
            let tables = now
                .names()
                .flat_map(|name| [name.to_owned(), format!("{}.{name}", sql::HISTORY_SCHEMA)]);
            maps::as_json(&self.ctx, tables).await.map_err(|source| {
                session_error(&Error::Query {
                    what: "the map columns as JSON".into(),
                    source,
                })
            })?;
            // A table's oid is stable by name: only new names change what is off the path.
            if listed
                .as_ref()
                .is_none_or(|before| !before.names().eq(now.names()))
            {
                self.visibility.update(&self.ctx).await.map_err(|source| {
                    session_error(&Error::Query {
                        what: "the tables off the search path".into(),
                        source,
                    })
                })?;
            }
            *listed = Some(now);
        }
        Ok(())
    }

    /// Plans `statement` over the tables registered now.
    async fn plan(&self, statement: Statement) -> PgWireResult<LogicalPlan> {
        self.ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))
    }
}

fn session_error(error: &Error) -> PgWireError {
    let code = match error {
        Error::ReadDir { .. } => sqlstate::IO_ERROR,
        _ => sqlstate::INTERNAL_ERROR,
    };
    user_error(code, format!("loading the snapshot tables: {error}"))
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(error_info(code, message))
}

fn error_info(code: &str, message: String) -> Box<ErrorInfo> {
    Box::new(ErrorInfo::new("ERROR".into(), code.into(), message))
}

/// The handlers of one connection.
struct Handlers {
    simple: Arc<Simple>,
    extended: Arc<Extended>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
    errors: Arc<Errors>,
}

impl Handlers {
    /// pgwire reads the client through a socket pair, so `peer` is told here, for the logs.
    async fn new(shared: &Shared, peer: SocketAddr) -> Result<Self, Error> {
        let ctx = vectors::install(sql::empty_context(&shared.memory)?);
        let pg_catalog = |source| Error::Register {
            table: "pg_catalog".into(),
            source,
        };
        setup_pg_catalog(&ctx, "datafusion", AuthManager::new())
            .map_err(|source| pg_catalog(*source))?;
        settings::install(&ctx).await.map_err(pg_catalog)?;
        let visibility = functions::register(&ctx, &shared.user);
        let ctx = Arc::new(ctx);
        let tables = Arc::new(Tables {
            data_dir: shared.data_dir.clone(),
            local_networks: Arc::clone(&shared.local_networks),
            ctx: Arc::clone(&ctx),
            listed: Mutex::new(None),
            visibility,
        });
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            // First, so that nothing else sees a statement it refuses.
            Arc::new(ReadOnly {
                tables: Arc::clone(&tables),
            }),
            Arc::new(savepoints::Savepoints),
            Arc::new(show::Show),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let service = Arc::new(DfSessionService::new_with_hooks(ctx, hooks));
        let auth = match &shared.credentials {
            None => Auth::Trust(Trust {
                connections: Arc::clone(&shared.connections),
            }),
            Some(credentials) => {
                let source: Arc<dyn AuthSource> = Arc::new(Login {
                    peer,
                    credentials: Arc::clone(credentials),
                });
                Auth::Password(
                    SASLAuthStartupHandler::new(Arc::new(server_parameters()))
                        .with_scram(ScramAuth::new(source))
                        .with_connection_manager(Arc::clone(&shared.connections)),
                )
            }
        };
        Ok(Handlers {
            simple: Arc::new(Simple {
                inner: Arc::clone(&service),
            }),
            extended: Arc::new(Extended {
                parser: Arc::new(Bounded(service.query_parser())),
                inner: service,
                tables,
            }),
            startup: Arc::new(Startup {
                user: shared.user.clone(),
                auth,
                peer,
            }),
            cancel: Arc::new(DefaultCancelHandler::new(Arc::clone(&shared.connections))),
            errors: Arc::new(Errors {
                peer,
                memory: shared.memory.clone(),
            }),
        })
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.simple)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.extended)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::clone(&self.errors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// Refuses what is not a query, and loads the newest tables before what reads them.
struct ReadOnly {
    tables: Arc<Tables>,
}

impl ReadOnly {
    async fn before(&self, statement: &Statement) -> PgWireResult<()> {
        refuse_writes(statement)?;
        let session_only = matches!(
            statement,
            Statement::Set(_)
                | Statement::ShowVariable { .. }
                | Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. }
                | Statement::Fetch { .. }
                | Statement::Close { .. }
        );
        if !session_only {
            self.tables.refresh().await?;
        }
        Ok(())
    }

    /// Runs a rewritten query of the simple protocol, answering as datafusion-postgres would.
    async fn run(&self, statement: Statement, client: &dyn HookClient) -> PgWireResult<Response> {
        let plan = self.tables.plan(statement).await?;
        let frame = self
            .tables
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        text_rows(frame, client).await
    }
}

/// `frame`'s rows as an answer of the simple protocol (in text), formatted as the client asked.
async fn text_rows(
    frame: DataFrame,
    client: &(dyn ClientInfo + Send + Sync),
) -> PgWireResult<Response> {
    let options = FormatOptions::from_client_metadata(client.metadata());
    let rows = encode_dataframe(frame, &Format::UnifiedText, Some(Arc::new(options))).await?;
    Ok(Response::Query(rows))
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Err(refused) = self.before(statement).await {
            return Some(Err(refused));
        }
        // What needs no rewrite runs as datafusion-postgres runs it.
        let rewritten = rewrite::rewrite(statement)?;
        Some(self.run(rewritten, client).await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if let Err(refused) = self.before(statement).await {
            return Some(Err(refused));
        }
        let rewritten = rewrite::rewrite(statement)?;
        Some(self.tables.plan(rewritten).await)
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Checked when parsed: a refused statement is never stored to execute.
        None
    }
}

/// Ok for statements that only read (queries, `SHOW`, cursors) or set up the client's own
/// session (`SET datestyle`, `BEGIN`); 25006 for the rest.
fn refuse_writes(statement: &Statement) -> PgWireResult<()> {
    let allowed = match statement {
        Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ExplainTable { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => true,
        Statement::StartTransaction {
            modes, statements, ..
        } => statements.is_empty() && !read_write(modes),
        Statement::Set(set) => is_session_setting(set),
        other => sql::is_query(other),
    };
    if allowed {
        return Ok(());
    }
    Err(user_error(
        sqlstate::READ_ONLY_SQL_TRANSACTION,
        format!(
            "cannot execute {} in a read-only session: Scope's Postgres endpoint only answers \
             queries (SELECT, WITH, VALUES, EXPLAIN, SHOW)",
            sql::verb(statement)
        ),
    ))
}

fn read_write(modes: &[TransactionMode]) -> bool {
    modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    })
}

/// What a client may set for itself. DataFusion's own settings (`datafusion.*`, dotted like
/// any engine setting) would change how this server runs, so they are refused; plain
/// Postgres names only reach the session (datafusion-postgres keeps them per client or
/// ignores them).
fn is_session_setting(set: &Set) -> bool {
    let plain = |name: &ObjectName| name.0.len() == 1 && !name.to_string().contains('.');
    match set {
        Set::SingleAssignment { variable, .. } => plain(variable),
        Set::MultipleAssignments { assignments } => assignments.iter().all(|a| plain(&a.name)),
        Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} => true,
        Set::SetTransaction { modes, .. } => !read_write(modes),
        _ => false,
    }
}

/// The simple protocol's handler: datafusion-postgres's, once the query's text is known not
/// to be too complex to plan ([`sql::check_operators`]).
struct Simple {
    inner: Arc<DfSessionService>,
}

#[async_trait]
impl SimpleQueryHandler for Simple {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Err(message) = sql::check_operators(query) {
            // As Postgres refuses a statement that would exceed its stack.
            let refused = error_info(sqlstate::STATEMENT_TOO_COMPLEX, message);
            return Ok(vec![Response::Error(refused)]);
        }
        SimpleQueryHandler::do_query(&*self.inner, client, query).await
    }
}

/// The extended protocol's parser: datafusion-postgres's, after the same check as [`Simple`].
struct Bounded<P>(P);

#[async_trait]
impl<P: QueryParser + Send + Sync> QueryParser for Bounded<P> {
    type Statement = P::Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        sql::check_operators(sql)
            .map_err(|message| user_error(sqlstate::STATEMENT_TOO_COMPLEX, message))?;
        self.0.parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.0.get_parameter_types(statement)
    }

    fn get_result_schema(
        &self,
        statement: &Self::Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.0.get_result_schema(statement, format)
    }
}

type DfQueryParser = <DfSessionService as ExtendedQueryHandler>::QueryParser;

/// The extended protocol's handler: datafusion-postgres's, planning a query again when it is
/// executed, over the tables of then (see the module docs).
struct Extended {
    inner: Arc<DfSessionService>,
    parser: Arc<Bounded<Arc<DfQueryParser>>>,
    tables: Arc<Tables>,
}

type DfPortalStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

#[async_trait]
impl ExtendedQueryHandler for Extended {
    type Statement = DfPortalStatement;
    type QueryParser = Bounded<Arc<DfQueryParser>>;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (text, Some((statement, _))) = &portal.statement.statement else {
            return <DfSessionService as ExtendedQueryHandler>::do_query(
                &self.inner,
                client,
                portal,
                max_rows,
            )
            .await;
        };
        if !matches!(statement, Statement::Query(_)) {
            return <DfSessionService as ExtendedQueryHandler>::do_query(
                &self.inner,
                client,
                portal,
                max_rows,
            )
            .await;
        }
        self.tables.refresh().await?;
        // Rewritten where DataFusion needs it, as when it was parsed.
        let planned = rewrite::rewrite(statement).unwrap_or_else(|| statement.clone());
        let plan = self.tables.plan(planned).await?;
        let mut fresh = Portal::default();
        fresh.name = portal.name.clone();
        fresh.statement = Arc::new(StoredStatement::new(
            portal.statement.id.clone(),
            (text.clone(), Some((statement.clone(), plan))),
            portal.statement.parameter_types.clone(),
        ));
        fresh.parameter_format = portal.parameter_format.clone();
        fresh.parameters = portal.parameters.clone();
        fresh.result_column_format = portal.result_column_format.clone();
        fresh.state = Arc::clone(&portal.state);
        <DfSessionService as ExtendedQueryHandler>::do_query(&self.inner, client, &fresh, max_rows)
            .await
    }
}

/// Gives DataFusion's errors the SQLSTATE a Postgres client expects (datafusion-postgres
/// sends them all as XX000), so that tools tell a typo from a server fault.
struct Errors {
    peer: SocketAddr,
    /// To name the limits when a statement runs out of memory.
    memory: sql::QueryMemory,
}

impl ErrorHandler for Errors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(source) = error
            && let Some(code) = classify(source.as_ref())
        {
            let message = source
                .downcast_ref::<DataFusionError>()
                .and_then(|e| self.memory.explain(e))
                .unwrap_or_else(|| source.to_string());
            *error = user_error(code, message);
        }
        tracing::debug!(peer = %self.peer, %error, "Postgres statement failed");
    }
}

fn classify(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    if let Some(error) = error.downcast_ref::<ParserError>() {
        return Some(parser_code(error));
    }
    let error = error.downcast_ref::<DataFusionError>()?.find_root();
    Some(match error {
        DataFusionError::SQL(error, _) => parser_code(error),
        DataFusionError::SchemaError(error, _) => {
            use datafusion::common::SchemaError;
            match error.as_ref() {
                SchemaError::FieldNotFound { .. } => sqlstate::UNDEFINED_COLUMN,
                _ => sqlstate::SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
            }
        }
        DataFusionError::Plan(message) => {
            if message.contains("table") && message.contains("not found") {
                sqlstate::UNDEFINED_TABLE
            } else if message.contains("Invalid function") {
                sqlstate::UNDEFINED_FUNCTION
            } else {
                sqlstate::SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION
            }
        }
        DataFusionError::NotImplemented(_) => sqlstate::FEATURE_NOT_SUPPORTED,
        DataFusionError::ResourcesExhausted(_) => sqlstate::OUT_OF_MEMORY,
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => sqlstate::IO_ERROR,
        DataFusionError::ArrowError(..) => sqlstate::DATA_EXCEPTION,
        _ => return None,
    })
}

fn parser_code(error: &ParserError) -> &'static str {
    match error {
        ParserError::RecursionLimitExceeded => sqlstate::INSUFFICIENT_RESOURCES,
        _ => sqlstate::SYNTAX_ERROR,
    }
}

/// What the server tells clients about itself: a read-only session of a plain user.
fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.default_transaction_read_only = true;
    parameters.is_superuser = false;
    parameters.server_version = settings::server_version();
    parameters
}

/// Accepts `user` only, with the password when one is set.
struct Startup {
    user: String,
    auth: Auth,
    peer: SocketAddr,
}

enum Auth {
    Trust(Trust),
    Password(SASLAuthStartupHandler<DefaultServerParameterProvider>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &self.auth {
            Auth::Trust(trust) => {
                if let PgWireFrontendMessage::Startup(startup) = &message {
                    let user = startup.parameters.get("user").map(String::as_str);
                    if user != Some(self.user.as_str()) {
                        tracing::info!(peer = %self.peer, user, "Postgres login refused");
                        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".into(),
                            sqlstate::INVALID_AUTHORIZATION_SPECIFICATION.into(),
                            format!(
                                "role \"{}\" does not exist: connect as \"{}\" (psql -U {})",
                                user.unwrap_or_default(),
                                self.user,
                                self.user
                            ),
                        ))));
                    }
                }
                trust.on_startup(client, message).await
            }
            Auth::Password(sasl) => sasl.on_startup(client, message).await,
        }
    }
}

/// No password: pgwire's no-op login, plus the parameters of [`server_parameters`] that
/// differ from its defaults.
struct Trust {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for Trust {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.connections))
    }

    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Later ParameterStatus messages override the defaults sent before them; the
        // ReadyForQuery that follows flushes them.
        for (name, value) in [
            ("default_transaction_read_only", "on"),
            ("is_superuser", "off"),
        ] {
            let message = PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name.into(),
                value.into(),
            ));
            std::future::poll_fn(|cx| Pin::new(&mut *client).poll_ready(cx)).await?;
            Pin::new(&mut *client).start_send(message)?;
        }
        Ok(())
    }
}

/// The SCRAM verifier of the one user.
struct Credentials {
    user: String,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The verifier, asked for by one connection's login.
#[derive(Debug)]
struct Login {
    peer: SocketAddr,
    credentials: Arc<Credentials>,
}

#[async_trait]
impl AuthSource for Login {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let credentials = &self.credentials;
        match login.user() {
            Some(user) if user == credentials.user => Ok(Password::new(
                Some(credentials.salt.clone()),
                credentials.salted_password.clone(),
            )),
            // The same answer as a wrong password, as Postgres gives: no probing for names.
            user => {
                tracing::info!(peer = %self.peer, user, "Postgres login refused");
                Err(PgWireError::InvalidPassword(
                    user.unwrap_or_default().to_owned(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use datafusion::sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser as SqlParser};

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: PostgresArgs,
    }

    fn parse(args: &[&str]) -> Result<PostgresArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags_parse_with_defaults_and_off() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen, Some("127.0.0.1:5433".parse().unwrap()));
        assert_eq!(args.user, "scope");
        assert!(args.password.is_none());
        args.validate().unwrap();
        assert_eq!(parse(&["--postgres-listen", "off"]).unwrap().listen, None);
        let args = parse(&[
            "--postgres-listen",
            "[::1]:6000",
            "--postgres-password",
            "pw",
        ]);
        let args = args.unwrap();
        assert_eq!(args.listen, Some("[::1]:6000".parse().unwrap()));
        assert_eq!(args.password.as_ref().map(Secret::expose), Some("pw"));
        assert!(!format!("{args:?}").contains("pw"), "{args:?}");
        let error = parse(&["--postgres-listen", "localhost"]).unwrap_err();
        assert!(error.to_string().contains("IP:PORT"), "{error}");
    }

    #[test]
    fn validate_wants_a_password_beyond_loopback() {
        let mut args = parse(&["--postgres-listen", "0.0.0.0:5433"]).unwrap();
        let error = args.validate().unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{error}");
        assert!(error.to_string().contains("--postgres-password"), "{error}");
        args.password = Some(Secret::new("pw"));
        args.validate().unwrap();
        args.password = Some(Secret::new(""));
        assert!(args.validate().is_err());
        let mut args = PostgresArgs::off();
        args.validate().unwrap();
        args.listen = Some("127.0.0.1:0".parse().unwrap());
        args.user = " ".into();
        assert!(args.validate().is_err());
    }

    fn statement(sql: &str) -> Statement {
        SqlParser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statement())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn only_reads_and_session_settings_pass() {
        for ok in [
            "SELECT 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "VALUES (1)",
            "EXPLAIN SELECT * FROM hosts",
            "SHOW TABLES",
            "SHOW search_path",
            "SET datestyle = 'ISO, MDY'",
            "SET client_encoding TO 'UTF8'",
            "SET TIME ZONE 'UTC'",
            "SET extra_float_digits = 3",
            "BEGIN",
            "BEGIN READ ONLY",
            "COMMIT",
            "ROLLBACK",
            "DECLARE c CURSOR FOR SELECT 1",
            "FETCH NEXT FROM c",
            "CLOSE c",
        ] {
            refuse_writes(&statement(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, verb) in [
            ("DROP TABLE hosts", "DROP TABLE"),
            ("INSERT INTO hosts VALUES (1)", "INSERT"),
            ("DELETE FROM hosts", "DELETE"),
            ("UPDATE hosts SET host_id = 'x'", "UPDATE"),
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("COPY hosts TO '/tmp/x'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("BEGIN READ WRITE", "BEGIN"),
            ("SET ROLE postgres", "SET"),
            ("TRUNCATE hosts", "TRUNCATE"),
            ("SELECT * INTO t FROM processes", "SELECT INTO"),
        ] {
            let error = refuse_writes(&statement(bad)).expect_err(bad);
            let PgWireError::UserError(info) = &error else {
                panic!("{bad}: {error}");
            };
            assert_eq!(info.code, "25006", "{bad}");
            assert!(
                info.message.starts_with(&format!("cannot execute {verb} ")),
                "{bad}: {}",
                info.message
            );
        }
    }

    #[test]
    fn errors_get_postgres_sqlstates() {
        let parse_error = ParserError::ParserError("Expected: an SQL statement".into());
        assert_eq!(classify(&parse_error), Some("42601"));
        let planned = DataFusionError::Plan("table 'datafusion.public.nope' not found".into());
        assert_eq!(classify(&planned), Some("42P01"));
        let wrapped = DataFusionError::Context("planning".into(), Box::new(planned));
        assert_eq!(classify(&wrapped), Some("42P01"));
        let execution = DataFusionError::Execution("boom".into());
        assert_eq!(classify(&execution), None);
    }
}
