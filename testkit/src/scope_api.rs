//! Weave Scope's HTTP API as its clients use it: requests with Python's urllib, the scripts
//! in `testkit/scope_api/` (a walk of every route checked against Scope 1.13's recorded
//! responses, kept beside it; a websocket reader), run with a user's environment.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::python3;

/// A file of `testkit/scope_api/`: `walk.py`, `ws.py`, or a recorded response.
pub fn scope_api_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scope_api")
        .join(name)
}

/// `python3 testkit/scope_api/<script> args...`, without the build's `LD_LIBRARY_PATH`.
pub fn scope_api_script(script: &str, args: &[&str]) -> Command {
    let mut command = Command::new(python3());
    command
        .env_remove("LD_LIBRARY_PATH")
        .arg(scope_api_file(script))
        .args(args);
    command
}

/// One HTTP request sent by Python's urllib, as a script would send it: the status and the
/// body. An error status is an answer, not a failure, and so is no answer (status 0: nothing
/// listens yet); a client that cannot run fails the test.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Vec<u8>) {
    let headers: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let mut command = scope_api_script("request.py", &[method, url, body.unwrap_or("")]);
    command.args(&headers);
    let output = in_place(|| command.output()).unwrap_or_else(|e| panic!("python3 runs: {e}"));
    assert!(
        output.status.success(),
        "{method} {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let (status, hex) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let status = status
        .parse()
        .unwrap_or_else(|_| panic!("{method} {url}: no status in {text:?}"));
    let body = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    (status, body)
}

/// Runs a blocking call without stalling a multi-threaded Tokio runtime's other tasks (the
/// server under test may be one of them).
fn in_place<T>(call: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recordings beside `walk.py` are copies of `../shared/reference/weave-scope-api/`
    /// (kept in the repository so a clone without `../shared` runs its tests): equal, byte for
    /// byte, wherever the reference is there, as it is in CI.
    #[test]
    fn recordings_are_the_references() {
        let reference =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/weave-scope-api");
        if !reference.is_dir() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "{} is required under CI=true",
                reference.display()
            );
            eprintln!("skipped: no {}", reference.display());
            return;
        }
        let copies = std::fs::read_dir(scope_api_file("")).unwrap();
        let mut compared = 0;
        for copy in copies.map(Result::unwrap).map(|entry| entry.path()) {
            if copy.extension().is_some_and(|e| e == "json") {
                let name = copy.file_name().unwrap();
                let original = std::fs::read(reference.join(name))
                    .unwrap_or_else(|e| panic!("{name:?} is not a reference recording: {e}"));
                assert!(
                    std::fs::read(&copy).unwrap() == original,
                    "{} differs from the reference: copy it again",
                    copy.display()
                );
                compared += 1;
            }
        }
        assert!(compared >= 10, "{compared} recordings");
    }
}
