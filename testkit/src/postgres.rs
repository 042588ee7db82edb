//! Postgres clients as a user runs them against the Postgres endpoint: Debian's `psql` (the
//! simple query protocol) and Python's pg8000 (the extended one: Parse, Bind, Execute).

use std::{net::SocketAddr, process::Command};

/// Whether `program args` runs here (a client's `--version`, say). Under `CI=true` it must:
/// a test that cannot run there fails rather than pass without testing anything.
pub fn client_available(program: &str, args: &[&str], what: &str) -> bool {
    let found = Command::new(program)
        .env_remove("LD_LIBRARY_PATH")
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success());
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required under CI=true (scripts/setup installs it)");
    }
    if !found {
        eprintln!("skipped: {what} not found (scripts/setup installs it)");
    }
    found
}

pub fn psql_found() -> bool {
    client_available("psql", &["--version"], "psql (postgresql-client)")
}

pub fn pg8000_found() -> bool {
    client_available(
        "python3",
        &["-c", "import pg8000.native"],
        "python3 with pg8000",
    )
}

/// What analysts and BI tools connect through: pandas over SQLAlchemy 2 with psycopg 3, and
/// psycopg2.
pub fn analyst_clients_found() -> bool {
    client_available(
        "python3",
        &["-c", "import pandas, sqlalchemy, psycopg, psycopg2"],
        "python3 with pandas, SQLAlchemy, psycopg and psycopg2",
    )
}

/// psql to database `scope` at `addr` as `user`, with the options every test runs it with:
/// no ~/.psqlrc, never a password prompt, stop at the first error, SQLSTATEs in error
/// messages, unaligned comma-separated rows; and a user's environment (no `LD_LIBRARY_PATH`,
/// no `PGPASSWORD` unless the caller sets one).
pub fn psql_command(addr: SocketAddr, user: &str) -> Command {
    let mut command = Command::new("psql");
    command
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "30")
        .args(["-X", "-w", "-q", "-A", "-F", ","])
        .args(["-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"])
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-U", user, "-d", "scope"]);
    command
}
