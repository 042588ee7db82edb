//! The pipeline as an operator deploys it: the collector, the merger and the renderer each a
//! `scope` process of its own, against a broker they reach over TCP, so that any one of them
//! can be killed with SIGKILL and started again while the others keep running.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use scope_testkit::{Broker, now_us, wait_for};

use crate::support::SCOPE;

/// Partitions of the input topics: more than one, so the renderer's completeness rule (every
/// partition announced) is exercised.
const INPUT_PARTITIONS: i32 = 2;
/// Lines of each log a failing assertion shows.
const LOG_TAIL: usize = 30;

/// How a stage is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL, as the OOM killer or a node failure ends it: no flush, no commit, no goodbye
    /// to the consumer group.
    Kill,
    /// SIGTERM, as a supervisor's restart or a rolling deploy ends it: it shuts down in order.
    Term,
}

/// One stage's process, killed when dropped. Each start logs to a file of its own, so a
/// restart's log does not overwrite what the killed process said.
pub struct Stage {
    name: &'static str,
    args: Vec<String>,
    dir: PathBuf,
    starts: u32,
    child: Child,
}

impl Stage {
    fn start(name: &'static str, args: Vec<String>, dir: &Path) -> Stage {
        let child = spawn(name, &args, dir, 1);
        Stage {
            name,
            args,
            dir: dir.to_owned(),
            starts: 1,
            child,
        }
    }

    /// Stops it by `stop`, and waits for it to be gone.
    fn stop(&mut self, stop: Stop) {
        match stop {
            Stop::Kill => self.child.kill().expect("SIGKILL is delivered"),
            Stop::Term => {
                // SAFETY: kill(2) on the pid of a child this stage has not reaped yet.
                let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
                assert_eq!(sent, 0, "SIGTERM to {}", self.name);
            }
        }
        let status = wait_for(
            &format!("{} to exit after {stop:?}", self.name),
            Duration::from_secs(30),
            || self.child.try_wait().expect("the stage is waited for"),
        );
        assert!(
            stop == Stop::Kill || status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            self.name,
            self.logs()
        );
    }

    /// Stops it by `stop`, runs `during` (what happens while it is down), and restarts it
    /// once it has been down for `downtime`, the fault's length (not a wait for anything):
    /// the times of the stop and of the restart, in µs, and what `during` returned.
    pub fn stop_then_restart<T>(
        &mut self,
        stop: Stop,
        downtime: Duration,
        during: impl FnOnce() -> T,
    ) -> (i64, i64, T) {
        self.stop(stop);
        let stopped = now_us();
        let done = during();
        std::thread::sleep(downtime.saturating_sub(Duration::from_micros(
            (now_us() - stopped).try_into().unwrap_or(0),
        )));
        self.restart();
        (stopped, now_us(), done)
    }

    /// Starts it again with the same command line, as a supervisor would.
    pub fn restart(&mut self) {
        self.starts += 1;
        self.child = spawn(self.name, &self.args, &self.dir, self.starts);
    }

    /// The end of what each start of it logged, in order, for a failing assertion to show.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                let log =
                    std::fs::read_to_string(log_path(&self.dir, self.name, n)).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
                format!("--- {} start {n}\n{tail}\n", self.name)
            })
            .collect()
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_path(dir: &Path, name: &str, start: u32) -> PathBuf {
    dir.join(format!("{name}.{start}.log"))
}

fn spawn(name: &str, args: &[String], dir: &Path, start: u32) -> Child {
    let log = File::create(log_path(dir, name, start)).expect("the stage's log file");
    let mut command = Command::new(SCOPE);
    command.arg(name).args(args);
    // The test's own environment must not configure the stages behind the test's back.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SCOPE_") {
            command.env_remove(key);
        }
    }
    command
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("scope {name} starts: {e}"))
}

/// A broker in the test process (it outlives every stage's fault), and the three stages as
/// processes, with the snapshots under a data dir of the test's own.
pub struct Pipeline {
    pub collector: Stage,
    pub merger: Stage,
    pub renderer: Stage,
    pub brokers: String,
    pub data_dir: PathBuf,
    _broker: Broker,
    dir: tempfile::TempDir,
}

impl Pipeline {
    /// Starts the broker with the pipeline's topics, then the three stages with their
    /// default intervals and window, as `scope up` would run them but apart.
    pub async fn start() -> Pipeline {
        let (broker, kafka) = Broker::start_with_topics(INPUT_PARTITIONS).await;
        let dir = tempfile::tempdir().expect("a scratch dir");
        let data_dir = dir.path().join("data");
        let brokers = kafka.brokers.clone();
        let kafka = vec!["--brokers".to_owned(), brokers.clone()];
        let stored = [
            kafka.clone(),
            vec!["--data-dir".to_owned(), data_dir.display().to_string()],
        ]
        .concat();
        let renderer = [
            stored.clone(),
            ["--http-listen", "off", "--postgres-listen", "off"]
                .map(String::from)
                .to_vec(),
        ]
        .concat();
        Pipeline {
            collector: Stage::start("collector", kafka, dir.path()),
            merger: Stage::start("merger", stored, dir.path()),
            renderer: Stage::start("renderer", renderer, dir.path()),
            brokers,
            data_dir,
            _broker: broker,
            dir,
        }
    }

    /// A path in the test's scratch dir.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every stage's logs, for a failing assertion.
    pub fn logs(&self) -> String {
        [&self.collector, &self.merger, &self.renderer]
            .map(Stage::logs)
            .concat()
    }
}
