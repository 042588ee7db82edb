//! Containers: which container each process runs in, and what its runtime says about it.
//!
//! The cgroup path of a process names its container for every runtime we know (`cgroup`),
//! so a process maps to its container with no runtime socket at all. Names, images, labels and
//! addresses come from the runtime's API where it is reachable (`docker`: the Docker Engine
//! API, which Podman serves too), watched by a task of its own and shared with the spy through
//! a [`MetaCache`].
//!
//! # Layout
//! - `cgroup`: container ids from `/proc/<pid>/cgroup`, CPU and memory from the cgroup files.
//! - `docker`: the Docker Engine API watcher filling the [`MetaCache`].

pub mod cgroup;
pub mod docker;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

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
