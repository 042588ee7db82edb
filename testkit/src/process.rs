//! Child processes of a test: the real programs (Python servers and clients, the binaries
//! under test) that a collector must see, run as a user would run them.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use tokio::runtime::{Handle, RuntimeFlavor};

/// The system Python, not a pyenv shim in front of it: a shim is a shell script, so an early
/// spy would see a shell where the test expects a Python program.
pub fn python3() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// A loopback port that is free now, for a child process to listen on: a child cannot tell
/// its parent which port 0 gave it, except by printing it (see [`Process::line`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The resident memory of process `pid` now (`VmRSS`), in bytes: what a memory limit or a
/// leak shows as, measured on the real process.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status: {status}"));
    kib * 1024
}

/// Runs `args` (a program and its arguments) to set something up, failing the test with the
/// program's stderr if it fails: set-up that silently did nothing would fail the test later
/// and further from the cause.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?} starts: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a Python script as a user would (the `python3` on PATH, which scripts/setup installs
/// packages for, without cargo's `LD_LIBRARY_PATH`) and reads the JSON it prints; its
/// failure fails the test with its stderr.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the script printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A child process, killed when dropped so that a failing test leaves none behind, whose
/// stdout lines can be awaited (a server printing that it listens, a client the port it
/// connected from) and whose stdin takes lines (a cue to do the next step).
pub struct Process {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Runs `command` with stdin and stdout piped and without `LD_LIBRARY_PATH`: `cargo test`
    /// puts the build's own librdkafka there, which a user's programs (kcat) must not load.
    pub fn spawn(mut command: Command) -> Process {
        let mut child = command
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        // A thread reads, so that a wait for a line can time out.
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Process {
            child,
            stdin,
            lines,
        }
    }

    /// `python3 -c script args...`, with the interpreter of [`python3`].
    pub fn python(script: &str, args: &[&str]) -> Process {
        let mut command = Command::new(python3());
        command.arg("-c").arg(script).args(args);
        Process::spawn(command)
    }

    /// Its pid, which is what the collector reports it by.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints, without the line break, or a failed test after `limit`
    /// naming `what`. In a multi-threaded Tokio runtime it waits in `block_in_place`, so the
    /// components under test (and the embedded broker) keep running meanwhile.
    pub fn line(&self, limit: Duration, what: &str) -> String {
        let next = || self.lines.recv_timeout(limit);
        let received = match Handle::try_current() {
            Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(next)
            }
            _ => next(),
        };
        let pid = self.pid();
        match received {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no {what} from pid {pid} within {limit:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("pid {pid} closed its output before printing {what}")
            }
        }
    }

    /// Writes `line` and a line break to its stdin.
    pub fn write_line(&mut self, line: &str) {
        let pid = self.pid();
        writeln!(self.stdin, "{line}").unwrap_or_else(|e| panic!("writing to pid {pid}: {e}"));
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
