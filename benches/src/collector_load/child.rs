//! The collector under test, as a child process: started with explicit flags (none of this
//! process's `SCOPE_*` variables leak into it), its stderr forwarded line by line with a prefix
//! and its last lines kept for error messages, stopped with SIGTERM.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::args::Mode;

/// Lines of stderr kept for error messages.
const TAIL_LINES: usize = 8;

pub struct Collector {
    child: Child,
    pub pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Collector {
    /// Starts `path --brokers <bootstrap> --host-id <host_id> --tracker <mode>`, plus
    /// `--docker-socket` if given, RUST_LOG=warn. The child is killed if this value is dropped
    /// before [`Collector::stop`].
    pub fn spawn(
        path: &Path,
        mode: Mode,
        bootstrap: &str,
        host_id: &str,
        docker_socket: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(path);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SCOPE_") {
                command.env_remove(name);
            }
        }
        command
            .args(["--brokers", bootstrap, "--host-id", host_id])
            .args(["--tracker", mode.as_str()])
            .args(
                docker_socket
                    .iter()
                    .flat_map(|socket| [Path::new("--docker-socket"), socket]),
            )
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let pid = child
            .id()
            .context("the collector exited before its pid was read")?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let forwarder = child.stderr.take().map(|stderr| {
            let tail = Arc::clone(&tail);
            let prefix = format!("[collector {host_id}]");
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = strip_ansi(&line);
                    eprintln!("{prefix} {line}");
                    if let Ok(mut tail) = tail.lock() {
                        if tail.len() == TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            })
        });
        Ok(Collector {
            child,
            pid,
            tail,
            forwarder,
        })
    }

    /// Fails if the collector has exited, with its status and last stderr lines.
    pub async fn check_running(&mut self) -> anyhow::Result<()> {
        match self
            .child
            .try_wait()
            .context("checking whether the collector runs")?
        {
            None => Ok(()),
            Some(status) => Err(self.exited(status).await),
        }
    }

    /// Waits `duration`, failing at once if the collector exits meanwhile.
    pub async fn run_for(&mut self, duration: Duration) -> anyhow::Result<()> {
        tokio::select! {
            status = self.child.wait() => {
                let status = status.context("waiting for the collector")?;
                Err(self.exited(status).await)
            }
            () = tokio::time::sleep(duration) => Ok(()),
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the collector to flush and exit; kills it
    /// after that. Returns its exit status, or an error if it had to be killed.
    pub async fn stop(mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.pid).context("the collector's pid")?;
        // SAFETY: kill(2) has no memory preconditions; the pid is our own unreaped child.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            let error = std::io::Error::last_os_error();
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Ok(status);
            }
            bail!("sending SIGTERM to the collector (pid {pid}): {error}");
        }
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.context("waiting for the collector to exit")?,
            Err(_) => {
                let _ = self.child.kill().await;
                bail!(
                    "the collector (pid {pid}) did not exit within {} of SIGTERM; killed it",
                    humantime::format_duration(timeout)
                );
            }
        };
        if let Some(forwarder) = self.forwarder.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), forwarder).await;
        }
        Ok(status)
    }

    /// The last stderr lines, joined.
    pub fn stderr_tail(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(" | "))
            .unwrap_or_default()
    }

    /// Why the collector is gone, once its stderr has been read to the end.
    async fn exited(&mut self, status: ExitStatus) -> anyhow::Error {
        if let Some(forwarder) = self.forwarder.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), forwarder).await;
        }
        let tail = self.stderr_tail();
        if tail.is_empty() {
            anyhow::anyhow!("the collector exited ({status}) and wrote nothing on stderr")
        } else {
            anyhow::anyhow!("the collector exited ({status}); its last words: {tail}")
        }
    }
}

/// `line` without ANSI escape sequences (colours), for a collector that writes them anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_colours() {
        assert_eq!(
            super::strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m x"),
            "2026 ERROR x"
        );
        assert_eq!(super::strip_ansi("plain"), "plain");
    }
}
