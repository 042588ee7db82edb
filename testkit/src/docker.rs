//! A real Docker engine for the container tests: Debian's `dockerd`, started if none answers,
//! a busybox image built locally (no registry is reachable from here or CI), and containers
//! removed when dropped.

use std::{
    fs::File,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Where Debian's dockerd serves the Engine API, and where the collector looks by default.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The image [`Docker::start`] builds: `/bin/busybox` (static) and a symlink per applet,
/// so `nc`, `sleep` and `sh` run in it.
pub const BUSYBOX_IMAGE: &str = "local/busybox:1";
/// How long a cold dockerd (and the containerd it starts) may take to answer.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Serialises starting the daemon and building the image between test binaries run at once.
const LOCK_FILE: &str = "/tmp/scope-testkit-docker.lock";
/// The daemon's output, for when it does not come up.
const DAEMON_LOG: &str = "/tmp/scope-testkit-dockerd.log";
/// Marks the containers of a test process, so that those a killed run left behind are
/// removed by the next.
const OWNER_LABEL: &str = "scope.testkit.pid";

/// A Docker daemon that answers on [`DOCKER_SOCKET`], with [`BUSYBOX_IMAGE`] built.
pub struct Docker(());

impl Docker {
    /// Reaches the daemon, starting `dockerd` first if none answers (storage overlay2,
    /// cgroup driver cgroupfs, as FACTS.md found works here), and builds the busybox image
    /// if it is missing. `Err` says why Docker cannot run here (not root, not installed), for
    /// the test to skip, or fail under CI.
    ///
    /// A daemon this starts is left running when the test ends: every Docker test shares it,
    /// and starting one costs seconds.
    pub fn start() -> Result<Docker, String> {
        let lock = File::create(LOCK_FILE).map_err(|e| format!("creating {LOCK_FILE}: {e}"))?;
        lock.lock()
            .map_err(|e| format!("locking {LOCK_FILE}: {e}"))?;
        if !daemon_answers() {
            start_daemon()?;
        }
        remove_abandoned_containers();
        if docker(&["image", "inspect", BUSYBOX_IMAGE]).is_err() {
            build_busybox_image()?;
        }
        Ok(Docker(()))
    }

    pub fn socket(&self) -> &'static Path {
        Path::new(DOCKER_SOCKET)
    }

    /// `docker run -d --name <name> <args...>` (options, the image, then its command); `name`
    /// gets the test process's pid as a prefix, so runs at once do not collide.
    pub fn run(&self, name: &str, args: &[&str]) -> Container {
        let name = format!("scope-test-{}-{name}", std::process::id());
        let owner = format!("{OWNER_LABEL}={}", std::process::id());
        let mut argv = vec!["run", "-d", "--name", &name, "--label", &owner];
        argv.extend_from_slice(args);
        let id = docker_ok(&argv);
        Container { name, id }
    }
}

/// A container of a test, removed (forcibly, running or not) when dropped.
pub struct Container {
    name: String,
    id: String,
}

impl Container {
    /// The full 64-hex id, as cgroup paths and the Engine API name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `docker <command> <args...> <name>`: `stop`, `pause`, `rm`, ...; fails the test if it
    /// fails. Returns its output.
    pub fn docker(&self, command: &str, args: &[&str]) -> String {
        let mut argv = vec![command];
        argv.extend_from_slice(args);
        argv.push(&self.name);
        docker_ok(&argv)
    }

    /// `docker inspect -f <template>`, e.g. `{{.NetworkSettings.IPAddress}}`.
    pub fn inspect(&self, template: &str) -> String {
        self.docker("inspect", &["-f", template])
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// `docker <args>` against [`DOCKER_SOCKET`], whatever `DOCKER_HOST` says: its trimmed
/// stdout, or why it failed.
fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(["-H", &format!("unix://{DOCKER_SOCKET}")])
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("docker {args:?} starts: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// [`docker`], failing the test if it fails.
fn docker_ok(args: &[&str]) -> String {
    docker(args).unwrap_or_else(|error| panic!("{error}"))
}

fn daemon_answers() -> bool {
    Path::new(DOCKER_SOCKET).exists()
        && docker(&["version", "--format", "{{.Server.Version}}"]).is_ok()
}

fn start_daemon() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "no Docker daemon answers on {DOCKER_SOCKET} and starting dockerd needs root"
        ));
    }
    let log = File::create(DAEMON_LOG).map_err(|e| format!("creating {DAEMON_LOG}: {e}"))?;
    let stderr = log
        .try_clone()
        .map_err(|e| format!("duplicating {DAEMON_LOG}'s descriptor: {e}"))?;
    // Its own process group: a ^C of the test run must not take the shared daemon down
    // halfway through another test binary.
    let mut daemon = Command::new("dockerd")
        .args([
            "--storage-driver=overlay2",
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
        ])
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("dockerd could not start ({e}); scripts/setup installs docker.io"))?;
    let deadline = Instant::now() + START_LIMIT;
    while !daemon_answers() {
        let log_tail = || {
            let log = std::fs::read_to_string(DAEMON_LOG).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n")
        };
        if let Ok(Some(status)) = daemon.try_wait() {
            return Err(format!("dockerd exited ({status}):\n{}", log_tail()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "dockerd did not answer on {DOCKER_SOCKET} within {START_LIMIT:?}:\n{}",
                log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Removes the containers of test processes that no longer run (a killed or crashed run).
fn remove_abandoned_containers() {
    let listed = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={OWNER_LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}"),
    ])
    .unwrap_or_default();
    for line in listed.lines() {
        if let Some((id, pid)) = line.split_once(' ')
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}

/// Imports a root filesystem holding the host's static busybox and its applets' symlinks.
fn build_busybox_image() -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("no /bin/busybox; scripts/setup installs busybox-static".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let bin = dir.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("creating {}: {e}", bin.display()))?;
    std::fs::copy(busybox, bin.join("busybox"))
        .map_err(|e| format!("copying {}: {e}", busybox.display()))?;
    let applets = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("busybox --list: {e}"))?;
    for applet in String::from_utf8_lossy(&applets.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .map_err(|e| format!("linking {applet}: {e}"))?;
        }
    }
    let tar = dir.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir.path().join("rootfs"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err(format!(
            "tar of the busybox root filesystem failed: {status}"
        ));
    }
    docker(&["import", &tar.to_string_lossy(), BUSYBOX_IMAGE]).map(drop)
}
