//! The Postgres endpoint as its users meet it: Debian's `psql` (the simple query protocol),
//! pg8000 (the extended one: Parse, Bind, Execute), password logins, and what it refuses.
//! Clients run as child processes with a user's environment (no `LD_LIBRARY_PATH`).

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command as StdCommand, Output},
    time::Duration,
};

use common::{Snapshot, rows};
use scope_renderer::{
    Error,
    postgres::{PostgresArgs, Secret},
    render::render,
};
use scope_testkit::{
    Process,
    postgres::{analyst_clients_found, client_available, pg8000_found, psql_command, psql_found},
};
use tokio::{process::Command, task::JoinHandle};
use tokio_util::sync::CancellationToken;

const T1: i64 = 1_700_000_001_000_000;
const T2: i64 = 1_700_000_002_000_000;
const LIMIT: Duration = Duration::from_secs(60);

/// One snapshot of h1's `client` (pid `pid`) connected to h2's postgres (pid 200), rendered.
async fn add_snapshot(dir: &Path, t: i64, pid: i32, client: &str) {
    Snapshot::new(t)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .process("h1", pid, client)
        .outbound("h1", Some(pid), ("10.0.0.1", 50000), ("10.0.0.2", 5432))
        .write(dir, "m1");
    Snapshot::new(t)
        .host("h2", "h2")
        .network("h2", "10.0.0.2/24")
        .process("h2", 200, "postgres")
        .inbound("h2", Some(200), ("10.0.0.2", 5432), ("10.0.0.1", 50000))
        .write(dir, "m2");
    render(dir, t, &[]).await.unwrap();
}

/// T1 (curl, pid 100) and T2 (wget, pid 101), both rendered.
async fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    add_snapshot(dir.path(), T1, 100, "curl").await;
    add_snapshot(dir.path(), T2, 101, "wget").await;
    dir
}

struct Endpoint {
    addr: SocketAddr,
    shutdown: CancellationToken,
    serving: JoinHandle<()>,
}

impl Endpoint {
    async fn start(data_dir: &Path, password: Option<&str>) -> Endpoint {
        let args = PostgresArgs {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            user: "scope".into(),
            password: password.map(Secret::new),
        };
        let bound = args
            .bind(data_dir.to_path_buf(), &[])
            .await
            .unwrap()
            .unwrap();
        let addr = bound.local_addr();
        assert_ne!(addr.port(), 0);
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(bound.serve(shutdown.clone()));
        Endpoint {
            addr,
            shutdown,
            serving,
        }
    }

    /// Stops it, checking that it does stop and closes its port.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(LIMIT, self.serving)
            .await
            .expect("serve returns after shutdown")
            .expect("serve does not panic");
        // A connect to a loopback port nobody listens on can pick that very port as its own
        // and connect to itself (TCP's simultaneous open): that is not the endpoint.
        let accepted = std::net::TcpStream::connect(self.addr)
            .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok());
        assert!(!accepted, "{} still accepts after shutdown", self.addr);
    }
}

/// Runs psql with each of `commands` as a `-c`, as user `scope` with `password`.
async fn psql_as(
    addr: SocketAddr,
    user: &str,
    password: Option<&str>,
    commands: &[&str],
) -> Output {
    let mut command = Command::from(psql_command(addr, user));
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    for sql in commands {
        command.args(["-c", sql]);
    }
    command.kill_on_drop(true);
    tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("psql {commands:?} did not finish within {LIMIT:?}"))
        .expect("psql starts")
}

/// The output of a psql that must succeed.
async fn psql(addr: SocketAddr, commands: &[&str]) -> String {
    let out = psql_as(addr, "scope", None, commands).await;
    assert!(
        out.status.success(),
        "psql {commands:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The stderr of a psql that must fail.
async fn psql_fails(addr: SocketAddr, user: &str, password: Option<&str>, sql: &str) -> String {
    let out = psql_as(addr, user, password, &[sql]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "psql {sql:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The data dir's files with their sizes: what a write would change.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                found.push((entry.path(), meta.len()));
            }
        }
    }
    found.sort();
    found
}

const TABLES: [&str; 7] = [
    "connections",
    "graph_edges",
    "graph_nodes",
    "hosts",
    "local_networks",
    "processes",
    "sockets",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_and_describes_the_tables() {
    if !psql_found() {
        return;
    }
    let dir = data_dir().await;
    let endpoint = Endpoint::start(dir.path(), None).await;

    let listed = psql(endpoint.addr, &["\\dt"]).await;
    for table in TABLES {
        assert!(
            listed.contains(&format!("public,{table},table,")),
            "\\dt lists {table}:\n{listed}"
        );
    }
    let history = psql(endpoint.addr, &["\\dt history.*"]).await;
    for table in TABLES {
        assert!(
            history.contains(&format!("history,{table},table,")),
            "\\dt history.* lists {table}:\n{history}"
        );
    }

    let described = psql(endpoint.addr, &["\\d graph_edges"]).await;
    for (column, pg_type) in [
        ("snapshot_time", "timestamp"),
        ("view", "text"),
        ("src", "text"),
        ("dst", "text"),
        ("connections", "bigint"),
    ] {
        let line = described
            .lines()
            .find(|line| line.starts_with(&format!("{column},")))
            .unwrap_or_else(|| panic!("\\d graph_edges shows {column}:\n{described}"));
        assert!(
            line.contains(pg_type),
            "{column} is {pg_type}: {line}\n{described}"
        );
    }
    endpoint.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_joins_the_latest_snapshot_and_reads_history() {
    if !psql_found() {
        return;
    }
    let dir = data_dir().await;
    let endpoint = Endpoint::start(dir.path(), None).await;

    let join = "SELECT e.src, n.label FROM graph_edges e \
        JOIN graph_nodes n ON n.id = e.dst AND n.\"view\" = e.\"view\" \
        WHERE e.\"view\" = 'processes' ORDER BY 1, 2";
    let joined = psql(endpoint.addr, &["\\pset tuples_only on", join]).await;
    let joined: Vec<String> = joined.lines().map(str::to_owned).collect();
    assert!(
        joined.contains(&"h1;101,postgres".to_owned()),
        "the latest snapshot's edge from wget to postgres: {joined:?}"
    );
    assert!(
        !joined.iter().any(|row| row.starts_with("h1;100,")),
        "no edge of the older snapshot: {joined:?}"
    );
    assert_eq!(
        joined,
        rows(dir.path(), join).await,
        "as `scope sql` answers"
    );

    let per_snapshot = psql(
        endpoint.addr,
        &[
            "\\pset tuples_only on",
            "SELECT CAST(snapshot_time AS BIGINT), count(*) FROM history.graph_nodes \
             WHERE \"view\" = 'processes' AND label IN ('curl', 'wget') GROUP BY 1 ORDER BY 1",
        ],
    )
    .await;
    assert_eq!(
        per_snapshot.lines().collect::<Vec<_>>(),
        vec![format!("{T1},1"), format!("{T2},1")],
        "history.graph_nodes has both snapshots"
    );
    endpoint.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_psql_session_sees_new_snapshots() {
    if !psql_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    add_snapshot(dir.path(), T1, 100, "curl").await;
    let endpoint = Endpoint::start(dir.path(), None).await;

    let mut command = psql_command(endpoint.addr, "scope");
    command.arg("-t");
    let mut session = Process::spawn(command);
    let latest = "SELECT CAST(max(snapshot_time) AS BIGINT) FROM graph_nodes;";
    session.write_line(latest);
    assert_eq!(session.line(LIMIT, "the latest snapshot"), T1.to_string());

    add_snapshot(dir.path(), T2, 101, "wget").await;
    session.write_line(latest);
    assert_eq!(
        session.line(LIMIT, "the newer snapshot"),
        T2.to_string(),
        "the same session, a new snapshot"
    );
    drop(session);
    endpoint.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_writes_are_refused_and_change_nothing() {
    if !psql_found() {
        return;
    }
    let dir = data_dir().await;
    let endpoint = Endpoint::start(dir.path(), None).await;
    let count = "SELECT count(*) FROM hosts";
    let before = psql(endpoint.addr, &["\\pset tuples_only on", count]).await;
    let files_before = files(dir.path());

    for write in [
        "DROP TABLE hosts",
        "INSERT INTO hosts (host_id) VALUES ('x')",
        "DELETE FROM hosts",
        "CREATE TABLE t AS SELECT 1 AS a",
        "SELECT * INTO t FROM processes",
        "COPY hosts TO STDOUT",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; DROP TABLE hosts",
    ] {
        let stderr = psql_fails(endpoint.addr, "scope", None, write).await;
        assert!(
            stderr.contains("ERROR:  25006: cannot execute") && stderr.contains("read-only"),
            "{write}: {stderr}"
        );
    }
    for garbage in ["SELEC 1 FROM", "SELECT (", "\u{1F600}"] {
        let stderr = psql_fails(endpoint.addr, "scope", None, garbage).await;
        assert!(stderr.contains("ERROR:  42601:"), "{garbage}: {stderr}");
    }
    let stderr = psql_fails(endpoint.addr, "scope", None, "SELECT * FROM nope").await;
    assert!(stderr.contains("ERROR:  42P01:"), "{stderr}");

    // What psql and drivers send around queries still works.
    let session = psql(
        endpoint.addr,
        &[
            "SET datestyle = 'ISO, MDY'",
            "SET client_encoding TO 'UTF8'",
            "SHOW search_path",
            "BEGIN",
            "SELECT 1",
            "COMMIT",
        ],
    )
    .await;
    assert!(session.contains("public"), "{session}");

    assert_eq!(
        psql(endpoint.addr, &["\\pset tuples_only on", count]).await,
        before
    );
    assert_eq!(files(dir.path()), files_before, "the data dir is untouched");
    endpoint.stop().await;
}

/// Runs the same reads and writes over the extended protocol, then a prepared statement
/// before and after a new snapshot lands (it is planned again when executed).
const PG8000: &str = r#"
import sys
import pg8000.native as pg

con = pg.Connection("scope", host="127.0.0.1", port=int(sys.argv[1]), database="scope", timeout=30)

def run(label, sql, **params):
    try:
        rows = con.run(sql, **params)
        shown = "-" if rows is None else ";".join(",".join(str(v) for v in row) for row in rows)
        print(label, "ok", shown, flush=True)
    except pg.DatabaseError as e:
        fields = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
        print(label, "error", fields.get("C", repr(e)), flush=True)

run("hosts", "SELECT host_id FROM hosts WHERE host_id = :h", h="h2")
run("drop", "DROP TABLE hosts")
run("insert", "INSERT INTO hosts (host_id) VALUES ('x')")
run("into", "SELECT * INTO t FROM processes")
run("set", "SET datafusion.execution.batch_size = 1")
run("garbage", "SELEC 1 FROM")
run("session", "SET datestyle = 'ISO, MDY'")
run("count", "SELECT count(*) FROM hosts")
latest = con.prepare("SELECT CAST(max(snapshot_time) AS BIGINT) FROM graph_nodes")
print("latest", latest.run()[0][0], flush=True)
sys.stdin.readline()
print("latest", latest.run()[0][0], flush=True)
con.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extended_protocol_is_read_only_too() {
    if !pg8000_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    add_snapshot(dir.path(), T1, 100, "curl").await;
    let endpoint = Endpoint::start(dir.path(), None).await;
    let files_before = files(dir.path());

    let mut command = StdCommand::new("python3");
    command
        .args(["-c", PG8000])
        .arg(endpoint.addr.port().to_string());
    let mut client = Process::spawn(command);
    for expected in [
        "hosts ok h2",
        "drop error 25006",
        "insert error 25006",
        "into error 25006",
        "set error 25006",
        "garbage error 42601",
        "session ok -",
        "count ok 2",
    ] {
        assert_eq!(client.line(LIMIT, expected), expected);
    }
    assert_eq!(files(dir.path()), files_before, "the data dir is untouched");

    assert_eq!(client.line(LIMIT, "latest"), format!("latest {T1}"));
    add_snapshot(dir.path(), T2, 101, "wget").await;
    client.write_line("next");
    assert_eq!(
        client.line(LIMIT, "latest again"),
        format!("latest {T2}"),
        "a statement prepared before the snapshot landed reads it"
    );
    drop(client);
    endpoint.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_need_the_user_and_its_password() {
    if !psql_found() {
        return;
    }
    let dir = data_dir().await;
    let open = Endpoint::start(dir.path(), None).await;
    // libpq prints no SQLSTATE for a refused login, so these match its message.
    let stderr = psql_fails(open.addr, "root", None, "SELECT 1").await;
    assert!(
        stderr.contains("role \"root\" does not exist: connect as \"scope\""),
        "{stderr}"
    );
    open.stop().await;

    let guarded = Endpoint::start(dir.path(), Some("s3cret")).await;
    let refused = "Password authentication failed for user";
    let stderr = psql_fails(guarded.addr, "scope", Some("wrong"), "SELECT 1").await;
    assert!(stderr.contains(refused), "wrong password: {stderr}");
    let stderr = psql_fails(guarded.addr, "scope", None, "SELECT 1").await;
    assert!(stderr.contains("password"), "no password: {stderr}");
    let stderr = psql_fails(guarded.addr, "root", Some("s3cret"), "SELECT 1").await;
    assert!(stderr.contains(refused), "another user: {stderr}");
    let out = psql_as(
        guarded.addr,
        "scope",
        Some("s3cret"),
        &["\\pset tuples_only on", "SELECT count(*) FROM hosts"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
    guarded.stop().await;
}

#[tokio::test]
async fn bind_fails_fast_on_a_port_in_use_and_off_binds_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let args = PostgresArgs {
        listen: Some(taken.local_addr().unwrap()),
        ..PostgresArgs::off()
    };
    let error = args
        .bind(PathBuf::from("/nonexistent"), &[])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Listen { .. }), "{error}");
    assert!(error.to_string().contains("Postgres"), "{error}");

    let bound = PostgresArgs::off()
        .bind(PathBuf::from("/nonexistent"), &[])
        .await;
    assert!(bound.unwrap().is_none());

    let open = PostgresArgs {
        listen: Some("0.0.0.0:0".parse().unwrap()),
        ..PostgresArgs::off()
    };
    let error = open
        .bind(PathBuf::from("/nonexistent"), &[])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error}");
}

/// What an analyst runs: pandas over SQLAlchemy (what notebooks, Superset and pandas.read_sql
/// go through) with psycopg 3, SQLAlchemy's inspector, a parameterised query, and psycopg2;
/// writes through each. One line per step: `<label> ok <rows>` or `<label> error <SQLSTATE>`.
const ANALYST: &str = r#"
import sys
import pandas as pd
import psycopg, psycopg2
import sqlalchemy as sa

port = int(sys.argv[1])
engine = sa.create_engine(f"postgresql+psycopg://scope@127.0.0.1:{port}/scope")

def run(label, step):
    try:
        print(label, "ok", step(), flush=True)
    except sa.exc.DBAPIError as e:
        print(label, "error", getattr(e.orig, "sqlstate", None) or getattr(e.orig, "pgcode", None), flush=True)
    except (psycopg.Error, psycopg2.Error) as e:
        print(label, "error", getattr(e, "sqlstate", None) or getattr(e, "pgcode", None), flush=True)
    except Exception as e:
        print(label, "exception", type(e).__name__, e, flush=True)

def version():
    with engine.connect():
        return engine.dialect.server_version_info[:1]
run("version", version)
run("read_sql", lambda: ",".join(pd.read_sql("SELECT host_id FROM hosts ORDER BY host_id", engine)["host_id"]))
run("param", lambda: pd.read_sql(sa.text("SELECT name FROM processes WHERE pid = :pid"), engine, params={"pid": 200})["name"][0])
run("tables", lambda: ",".join(sorted(sa.inspect(engine).get_table_names())))
def nested():
    with engine.connect() as con:
        with con.begin():
            with con.begin_nested():
                return con.execute(sa.text("SELECT count(*) FROM hosts")).scalar()
run("savepoint", nested)
def write(sql):
    with engine.connect() as con:
        return con.execute(sa.text(sql))
run("sa_drop", lambda: write("DROP TABLE hosts"))
run("sa_into", lambda: write("SELECT * INTO t FROM hosts"))
def old(sql, *params):
    con = psycopg2.connect(host="127.0.0.1", port=port, user="scope", dbname="scope")
    try:
        cur = con.cursor()
        cur.execute(sql, params)
        return cur.fetchall()[0][0]
    finally:
        con.close()
def chain(operators):
    sql = "SELECT 1" + "+1" * (operators - 1) + " AS n WHERE 1 = :one"
    with engine.connect() as con:
        return con.execute(sa.text(sql), {"one": 1}).scalar()
run("longest_chain", lambda: chain(1000))
run("too_long_chain", lambda: chain(1001))
run("psycopg2", lambda: old("SELECT name FROM processes WHERE pid = %s", 101))
run("psycopg2_insert", lambda: old("INSERT INTO hosts (host_id) VALUES (%s)", "x"))
"#;

/// A chain of 3,000 additions overflowed the planner's stack and aborted the process: over
/// the simple protocol, one of more than 1,000 operators is refused, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_operators_too_long_to_plan_is_refused_not_fatal() {
    if !psql_found() {
        return;
    }
    let dir = data_dir().await;
    let endpoint = Endpoint::start(dir.path(), None).await;
    let chain = format!("SELECT 1{} AS n", "+1".repeat(3_000));
    let out = psql_as(
        endpoint.addr,
        "scope",
        None,
        &["\\set VERBOSITY verbose", &chain],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("54001") && stderr.contains("statement too complex: 3000 operators"),
        "{stderr}"
    );
    let answer = psql(endpoint.addr, &["SELECT 1+1 AS n"]).await;
    assert!(answer.contains('2'), "{answer}");
    endpoint.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_connect_with_pandas_sqlalchemy_and_psycopg() {
    if !analyst_clients_found() {
        return;
    }
    let dir = data_dir().await;
    let endpoint = Endpoint::start(dir.path(), None).await;
    let files_before = files(dir.path());

    let mut command = StdCommand::new("python3");
    command
        .env_remove("LD_LIBRARY_PATH")
        .args(["-c", ANALYST])
        .arg(endpoint.addr.port().to_string());
    let client = Process::spawn(command);
    let tables = "connections,containers,graph_edges,graph_nodes,hosts,kubernetes_objects,\
                  local_networks,processes,sockets";
    for expected in [
        "version ok (16,)".to_owned(),
        "read_sql ok h1,h2".to_owned(),
        "param ok postgres".to_owned(),
        format!("tables ok {tables}"),
        "savepoint ok 2".to_owned(),
        "sa_drop error 25006".to_owned(),
        "sa_into error 25006".to_owned(),
        // Parsed by the extended protocol: too complex to plan past 1,000 operators.
        "longest_chain ok 1000".to_owned(),
        "too_long_chain error 54001".to_owned(),
        "psycopg2 ok wget".to_owned(),
        "psycopg2_insert error 25006".to_owned(),
    ] {
        assert_eq!(client.line(LIMIT, &expected), expected);
    }
    assert_eq!(files(dir.path()), files_before, "the data dir is untouched");
    drop(client);
    endpoint.stop().await;
}

/// Debian's pgjdbc, and the client that opens the endpoint with it (compiled as it runs, by
/// java's source launcher).
const PGJDBC: &str = "/usr/share/java/postgresql.jar";
const JDBC_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jdbc/ScopeJdbc.java");

fn jdbc_found() -> bool {
    client_available(
        "java",
        &["-cp", PGJDBC, JDBC_CLIENT, "--version"],
        "java with its compiler (default-jdk-headless) and pgjdbc (libpostgresql-jdbc-java)",
    )
}

/// What DBeaver and Metabase do when they open a Postgres connection through pgjdbc, with a
/// password: the server's name and version, the schema tree (schemas, tables, columns; keys
/// and indexes, of which there are none, asked for without failing), every table's rows, a
/// prepared statement past pgjdbc's server-side prepare threshold, transactions and read-only
/// mode; and writes, refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jdbc_tools_open_it_as_dbeaver_and_metabase_do() {
    if !jdbc_found() {
        return;
    }
    let dir = data_dir().await;
    let endpoint = Endpoint::start(dir.path(), Some("s3cret")).await;
    let files_before = files(dir.path());

    let mut command = StdCommand::new("java");
    // pgjdbc tells the server the JVM's time zone.
    command
        .args(["-Duser.timezone=Europe/Paris", "-cp", PGJDBC, JDBC_CLIENT])
        .arg(endpoint.addr.port().to_string())
        .arg("s3cret");
    let client = Process::spawn(command);
    // A line is its check and what came of it, and an error's message after a tab.
    let next = |what: &str| {
        let line = client.line(LIMIT, what);
        let (result, _) = line.split_once('\t').unwrap_or((&line, ""));
        (result.to_owned(), line)
    };
    let tables = "connections,containers,graph_edges,graph_nodes,hosts,kubernetes_objects,\
                  local_networks,processes,sockets";
    for expected in [
        "product ok PostgreSQL 16".to_owned(),
        "version".to_owned(),
        "timezone ok Europe/Paris".to_owned(),
        "show_version".to_owned(),
        "current_schema ok public,scope".to_owned(),
        "schemas ok history,pg_catalog,public".to_owned(),
        format!("tables ok {tables}"),
        format!("history ok {tables}"),
        "columns".to_owned(),
        "open ok 9".to_owned(),
        "keys ok 0,0,0,0".to_owned(),
        "prepared ok wget,postgres,wget,postgres,wget,postgres".to_owned(),
        "transaction ok 2,2".to_owned(),
        "read_only ok true,2".to_owned(),
        "read_only_insert error 25006".to_owned(),
        "insert error 25006".to_owned(),
        "create error 25006".to_owned(),
        "prepared_insert error 25006".to_owned(),
        "count ok 2".to_owned(),
    ] {
        let (result, line) = next(&expected);
        match expected.as_str() {
            "version" | "show_version" => assert!(
                result.starts_with(&format!("{expected} ok 16."))
                    && result.ends_with(&format!("(Weave Scope {})", env!("CARGO_PKG_VERSION"))),
                "{line}"
            ),
            // The first of processes' columns, with pgjdbc's names for their types.
            "columns" => assert!(
                result.starts_with("columns ok snapshot_time:timestamptz,host_id:text,pid:int4,")
                    && result.contains(",name:text,"),
                "{line}"
            ),
            _ => assert_eq!(result, expected, "{line}"),
        }
    }
    assert_eq!(files(dir.path()), files_before, "the data dir is untouched");
    drop(client);
    endpoint.stop().await;
}

/// The Postgres forms pgjdbc's catalog queries use, over the simple protocol as psql sends
/// them: `information_schema._pg_expandarray` (one row per element, with its position), a
/// field of a composite value, `(row).x`, and a subscript of a pg_catalog vector or array,
/// which are text here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_arrays_expand_and_subscript_as_in_postgres() {
    if !psql_found() {
        return;
    }
    let dir = data_dir().await;
    let endpoint = Endpoint::start(dir.path(), None).await;
    let expanded = psql(
        endpoint.addr,
        &[
            "\\pset tuples_only on",
            "SELECT (information_schema._pg_expandarray(v.k)).n, \
             (information_schema._pg_expandarray(v.k)).x, v.k[2] \
             FROM (VALUES ('8 9 2'), ('[4, 5]')) AS v(k) ORDER BY 1, 2",
        ],
    )
    .await;
    assert_eq!(
        expanded.lines().collect::<Vec<_>>(),
        ["1,4,5", "1,8,2", "2,5,5", "2,9,2", "3,2,2"],
        "a vector counts from 0, an array from 1"
    );
    endpoint.stop().await;
}

/// Maps (labels, selectors) have no Postgres type: each is sent as the text of a JSON object,
/// so that `SELECT *` of the tables that have them works in every client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_are_sent_as_json_text() {
    if !psql_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    Snapshot::new(T1)
        .host("h1", "h1")
        .container("h1", "abcdef0123456789", "web", "nginx:1")
        .label("app", "web")
        .label("tier", "front")
        .kube("pod", "u1", "default", "web-1", None, &["app=web"])
        .write(dir.path(), "m1");
    render(dir.path(), T1, &[]).await.unwrap();
    let endpoint = Endpoint::start(dir.path(), None).await;
    let rows = psql(
        endpoint.addr,
        &[
            "\\pset tuples_only on",
            "SELECT name, labels FROM containers",
            "SELECT name, labels, selector FROM history.kubernetes_objects",
        ],
    )
    .await;
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            r#"web,{"app":"web","tier":"front"}"#,
            r#"web-1,{"app":"web"},{}"#
        ]
    );
    for table in ["containers", "kubernetes_objects"] {
        let all = psql(endpoint.addr, &[&format!("SELECT * FROM {table}")]).await;
        assert!(all.contains(r#",{"app":"web""#), "{table}: {all}");
    }
    endpoint.stop().await;
}
