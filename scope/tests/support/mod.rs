//! What the tests of the `scope` binary share: running `scope up`, real helper processes,
//! `scope sql`, and polling with a deadline.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

pub const SCOPE: &str = env!("CARGO_BIN_EXE_scope");

/// A running `scope up`, killed when dropped.
pub struct Up {
    child: Child,
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
        let child = command
            .arg("up")
            .env("SCOPE_EMBEDDED_LISTEN", listen)
            .env("SCOPE_DATA_DIR", data_dir)
            .env_remove("SCOPE_BROKERS")
            .env_remove("SCOPE_TRACKER")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("scope up starts");
        Up { child }
    }

    /// SIGTERM, then wait: the components shut down in order.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("scope up did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A helper process, killed when dropped.
pub struct Killed(pub Child);

impl Killed {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Polls `check` every 500 ms until it returns Some, or fails the test after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `python3 -c code`, its output discarded.
pub fn python(code: &str) -> Killed {
    Killed(
        Command::new("python3")
            .args(["-c", code])
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/setup installs it)"),
    )
}

/// A process whose stdout lines can be awaited.
pub struct Talking {
    pub process: Killed,
    lines: mpsc::Receiver<String>,
}

impl Talking {
    /// Runs `command` with stdout piped.
    pub fn spawn(mut command: Command) -> Talking {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Talking {
            process: Killed(child),
            lines,
        }
    }

    /// The next line it prints, or a failed test after `limit`.
    pub fn line(&self, limit: Duration, what: &str) -> String {
        let pid = self.process.pid();
        match self.lines.recv_timeout(limit) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no {what} from pid {pid} within {limit:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("pid {pid} closed its output before printing {what}")
            }
        }
    }
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
