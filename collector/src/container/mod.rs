//! Containers: which container each process runs in, and what its runtime says about it.
//!
//! The cgroup path of a process names its container for every runtime we know (`cgroup`),
//! so a process maps to its container with no runtime socket at all. Names, images, labels and
//! addresses come from the runtime's API where it is reachable (`docker`: the Docker Engine
//! API, which Podman serves too; `cri`: the Kubernetes CRI of containerd and CRI-O), each
//! watched by a task of its own and shared with the spy through a [`MetaCache`].
//!
//! # Layout
//! - `cgroup`: container ids from `/proc/<pid>/cgroup`, CPU and memory from the cgroup files.
//! - `docker`: the Docker Engine API watcher filling the [`MetaCache`].
//! - `cri`: the CRI watcher filling the same [`MetaCache`] (ids never collide: each runtime
//!   makes its own 64-hex ids).

pub mod cgroup;
pub mod cri;
pub mod docker;

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Display,
    path::Path,
    sync::{Arc, RwLock, atomic::AtomicU64},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use crate::stats::Stats;

/// The CRI labels naming a Kubernetes container's pod (kubelet sets them on every container;
/// the CRI watcher fills them from the pod's sandbox when a client did not).
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// Which runtime's naming a cgroup path follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
        }
    }
}

/// What a runtime's API says about one container. Every field is optional: a container
/// known only from its cgroup has none of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerMeta {
    /// The runtime that said it, for containers no running process names (stopped ones);
    /// `None` reads as Docker, whose API Podman serves too.
    pub runtime: Option<Runtime>,
    pub name: Option<String>,
    pub image_name: Option<String>,
    pub image_id: Option<String>,
    /// `running`, `paused`, `exited`, ...
    pub state: Option<String>,
    pub hostname: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<String>,
    /// As `docker ps` prints them: `[host_ip:host_port->]port/proto`.
    pub ports: Vec<String>,
}

/// Container id (the full 64-hex id) to its metadata, written by the runtime watchers and
/// read by the container reporter at each spy.
pub type MetaCache = Arc<RwLock<HashMap<String, ContainerMeta>>>;

/// How a runtime watcher lives with an API that is not there (a host without Docker, or
/// without containerd and CRI-O, is normal): it says so once, when an outage starts, and
/// retries with a backoff doubling from [`Outage::FIRST_RETRY`] to [`Outage::MAX_RETRY`].
struct Outage {
    /// Names the API in the log lines: `Docker API`, `CRI runtime`.
    api: &'static str,
    said: bool,
    retry: Duration,
}

impl Outage {
    const FIRST_RETRY: Duration = Duration::from_millis(250);
    const MAX_RETRY: Duration = Duration::from_secs(30);

    fn new(api: &'static str) -> Self {
        Outage {
            api,
            said: false,
            retry: Self::FIRST_RETRY,
        }
    }

    /// Logs the failure if it starts an outage (a watch `lost`, or none yet), and returns how
    /// long to wait.
    fn failed(&mut self, socket: &Path, error: &dyn Display, lost: bool) -> Duration {
        let (api, socket) = (self.api, socket.display());
        if !self.said {
            self.said = true;
            if lost {
                tracing::warn!(%socket, %error, "lost the {api} at {socket}: {error}; retrying in the background");
            } else {
                tracing::info!(%socket, %error, "no {api} at {socket}: {error}; retrying in the background");
            }
        } else {
            tracing::debug!(%socket, %error, "{api} still unreachable");
        }
        let wait = self.retry;
        self.retry = (self.retry * 2).min(Self::MAX_RETRY);
        wait
    }

    /// Counts the failure in `failures`, logs it as [`Outage::failed`] does, and waits out the
    /// backoff: false when `shutdown` came first.
    async fn back_off(
        &mut self,
        failures: &AtomicU64,
        socket: &Path,
        error: impl Display,
        lost: bool,
        shutdown: &CancellationToken,
    ) -> bool {
        Stats::add(failures, 1);
        let wait = self.failed(socket, &error, lost);
        shutdown
            .run_until_cancelled(tokio::time::sleep(wait))
            .await
            .is_some()
    }

    fn reconnected(&mut self, socket: &Path, containers: usize) {
        let (api, socket) = (self.api, socket.display());
        if self.said {
            tracing::info!(%socket, containers, "the {api} is back; containers relisted");
        } else {
            tracing::info!(%socket, containers, "watching the {api}");
        }
        self.said = false;
        self.retry = Self::FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_resets_on_reconnect() {
        let mut outage = Outage::new("test API");
        let error = "refused";
        let waits: Vec<Duration> = (0..10)
            .map(|_| outage.failed(Path::new("/x"), &error, false))
            .collect();
        assert_eq!(waits[0], Outage::FIRST_RETRY);
        assert_eq!(waits[1], Outage::FIRST_RETRY * 2);
        assert_eq!(*waits.last().unwrap(), Outage::MAX_RETRY);
        assert!(outage.said);
        outage.reconnected(Path::new("/x"), 0);
        assert!(!outage.said);
        assert_eq!(
            outage.failed(Path::new("/x"), &error, true),
            Outage::FIRST_RETRY
        );
    }
}
