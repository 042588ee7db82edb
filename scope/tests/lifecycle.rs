//! `scope up` as a process: what it logs by default, and how it stops (a signal during
//! start-up, one component failing while the others still shut down cleanly).

mod support;

use std::{
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use scope_testkit::{free_port, wait_for};
use support::SCOPE;

/// `scope up` with `rust_log` (None: unset) logging to `log`; killed by the caller's guard.
fn spawn_up(data_dir: &Path, log: &Path, rust_log: Option<&str>) -> Child {
    let mut command = Command::new(SCOPE);
    command
        .arg("up")
        .env(
            "SCOPE_EMBEDDED_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("SCOPE_DATA_DIR", data_dir)
        .env("SCOPE_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "SCOPE_POSTGRES_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env_remove("SCOPE_BROKERS")
        .env_remove("SCOPE_TRACKER")
        .env_remove("RUST_LOG")
        // The banner on stdout says the signal handlers are in place and the components are
        // about to join their consumer groups.
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    command.spawn().expect("scope up starts")
}

fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    wait_for("scope up to exit", limit, || child.try_wait().unwrap())
}

/// Runs `scope up` until two snapshots have been written, stops it, returns its stderr.
fn log_of_a_few_snapshots(rust_log: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("up.log");
    let mut child = spawn_up(&data_dir, &log, rust_log);
    let first = wait_for("a snapshot", Duration::from_secs(60), || {
        support::latest_snapshot_time(&data_dir)
    });
    wait_for("a later snapshot", Duration::from_secs(30), || {
        support::latest_snapshot_time(&data_dir).filter(|t| *t != first)
    });
    terminate(&child);
    let status = exit_within(&mut child, Duration::from_secs(30));
    assert!(status.success(), "scope up exited with {status}");
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn the_default_log_is_the_pipelines_own_and_rust_log_still_overrides() {
    let quiet = log_of_a_few_snapshots(None);
    assert!(
        quiet.contains("merger started"),
        "the pipeline's own info is missing: {quiet}"
    );
    assert!(
        !quiet.contains("tansu"),
        "broker lines at the default level: {}",
        &quiet[..quiet.len().min(2000)]
    );
    assert!(
        quiet.len() < 16_000,
        "{} bytes logged by default",
        quiet.len()
    );

    let loud = log_of_a_few_snapshots(Some("debug"));
    assert!(
        loud.len() > 4 * quiet.len(),
        "RUST_LOG=debug logged {} bytes, the default {}",
        loud.len(),
        quiet.len()
    );
}

#[test]
fn sigterm_during_start_up_exits_promptly_and_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("up.log");
    let mut child = spawn_up(&dir.path().join("data"), &log, None);
    // A SIGTERM before the handlers are installed would kill it by the default action.
    wait_for("the scope up banner", Duration::from_secs(60), || {
        let out = std::fs::read_to_string(log.with_extension("out")).ok()?;
        out.contains("scope up").then_some(())
    });
    terminate(&child);
    let sent = Instant::now();
    let status = exit_within(&mut child, Duration::from_secs(10));
    assert!(status.success(), "scope up exited with {status}");
    assert!(sent.elapsed() < Duration::from_secs(10));
}

#[test]
fn one_component_failing_stops_the_others_cleanly_and_fails_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // A file where the merger's table directory goes: only the merger cannot start.
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("hosts"), b"").unwrap();
    let log = dir.path().join("up.log");
    let mut child = spawn_up(&data_dir, &log, None);
    let status = exit_within(&mut child, Duration::from_secs(60));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "scope up succeeded: {text}");
    assert!(text.contains("merger failed"), "{text}");
    // The collector was told to stop and ran its final flush, not dropped mid-flight. (The
    // renderer, still reading back its views, returns without a line: it has nothing to commit.)
    assert!(text.contains("collector stopping; flushing"), "{text}");
    assert!(text.contains("collector stopped"), "{text}");
}
