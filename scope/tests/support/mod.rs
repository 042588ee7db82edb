//! What the tests of the `scope` binary share: running `scope up` and `scope sql`.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use scope_testkit::{Process, http_request, wait_for};

pub const SCOPE: &str = env!("CARGO_BIN_EXE_scope");

/// A running `scope up`, killed when dropped.
pub struct Up {
    child: Child,
    /// Its HTTP API, `http://127.0.0.1:<free port>` (tests run in parallel: not 4040).
    pub api: String,
    /// Its Postgres endpoint, on a free port too.
    pub postgres: std::net::SocketAddr,
}

impl Up {
    pub fn start(listen: &str, data_dir: &Path, log: &Path) -> Up {
        Up::start_under(&[], listen, data_dir, log)
    }

    /// `scope up` run by `wrapper` (e.g. `setpriv ...`), which must exec its arguments.
    pub fn start_under(wrapper: &[&str], listen: &str, data_dir: &Path, log: &Path) -> Up {
        let log = std::fs::File::create(log).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(SCOPE);
                command
            }
            None => Command::new(SCOPE),
        };
        let api = format!("127.0.0.1:{}", scope_testkit::free_port());
        let postgres = std::net::SocketAddr::from(([127, 0, 0, 1], scope_testkit::free_port()));
        let child = command
            .arg("up")
            .env("SCOPE_HTTP_LISTEN", &api)
            .env("SCOPE_POSTGRES_LISTEN", postgres.to_string())
            .env("SCOPE_EMBEDDED_LISTEN", listen)
            .env("SCOPE_DATA_DIR", data_dir)
            .env_remove("SCOPE_BROKERS")
            .env_remove("SCOPE_TRACKER")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("scope up starts");
        Up {
            child,
            api: format!("http://{api}"),
            postgres,
        }
    }

    /// Its pid, to measure its memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait: the components shut down in order.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        wait_for(
            "scope up to stop after SIGTERM",
            Duration::from_secs(30),
            || self.child.try_wait().unwrap(),
        );
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scope sql --format <format> <query>`: (success, stdout, stderr).
pub fn sql(data_dir: &Path, format: &str, query: &str) -> (bool, String, String) {
    let out = Command::new(SCOPE)
        .args(["sql", "--format", format, query])
        .env("SCOPE_DATA_DIR", data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first column of the first row of a query, when it succeeds and has one.
pub fn sql_value(data_dir: &Path, query: &str) -> Option<String> {
    let (ok, out, _) = sql(data_dir, "csv", query);
    ok.then(|| {
        out.lines()
            .nth(1)
            .map(|l| l.split(',').next().unwrap_or("").to_owned())
    })
    .flatten()
    .filter(|v| !v.is_empty())
}

/// Runs `command` (a binary this workspace builds, then its arguments) with `--check-config`
/// in exactly `environment` (and `PATH`), failing the test with its output if it rejects it:
/// how deployment files are kept in step with the flags. `source` names where the command
/// line comes from.
pub fn assert_config_accepted(command: &[String], environment: &[(String, String)], source: &str) {
    let binary = Path::new(SCOPE).parent().unwrap().join(&command[0]);
    assert!(
        binary.exists(),
        "{source} runs {}, which this workspace does not build ({})",
        command[0],
        binary.display()
    );
    let out = Command::new(&binary)
        .args(&command[1..])
        .arg("--check-config")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(environment.iter().cloned())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{source}: `{}` rejected its command line:\n{}{}",
        command.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

pub fn latest_snapshot_time(data_dir: &Path) -> Option<String> {
    sql_value(data_dir, "select max(snapshot_time) as t from hosts")
}

/// The JSON body of `GET url` when it answers 200 with JSON; `None` otherwise (not yet up).
pub fn get_json(url: &str) -> Option<serde_json::Value> {
    let (status, body) = http_request("GET", url, &[], None);
    (status == 200)
        .then(|| serde_json::from_slice(&body).ok())
        .flatten()
}

/// A Python process listening on `addr:port` that accepts and holds every connection, once it
/// listens.
pub fn listening_server(addr: &str, port: u16) -> Process {
    let server = Process::python(
        &format!(
            "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('{addr}',{port}));s.listen()\nprint('listening',flush=True)\n\
             held=[]\nwhile True: held.append(s.accept()[0])"
        ),
        &[],
    );
    assert_eq!(
        server.line(Duration::from_secs(10), "listening"),
        "listening"
    );
    server
}

/// A Python process holding one connection to 127.0.0.1:`port`, once it is connected.
pub fn connected_client(port: u16) -> Process {
    let client = Process::python(
        &format!(
            "import socket,time\nc=socket.create_connection(('127.0.0.1',{port}))\n\
             print('connected',flush=True)\ntime.sleep(600)"
        ),
        &[],
    );
    assert_eq!(
        client.line(Duration::from_secs(10), "connected"),
        "connected"
    );
    client
}
