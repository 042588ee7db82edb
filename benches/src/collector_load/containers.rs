//! The containers that run beside the collector: busybox containers that sleep, started and
//! removed with the test kit's Docker harness (Debian's dockerd and the `docker` CLI, the
//! image built locally), so that the collector's spy maps their processes to containers,
//! reads their cgroup files and watches their metadata on the Engine API socket.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use anyhow::{Context as _, anyhow};
use scope_schemas::report::container_node_id;
use scope_testkit::docker::{BUSYBOX_IMAGE, Container, Docker};

use crate::events::HostEvents;

/// A running Docker engine and the bench's containers on it; dropping it removes them.
pub struct Fleet {
    docker: Docker,
    running: Vec<Container>,
}

/// Of the bench's containers, how many a collector reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reported {
    pub running: usize,
    /// With a name, which only the Engine API gives.
    pub named: usize,
    /// With memory usage, read from its cgroup.
    pub measured: usize,
    /// Container nodes that are not the bench's (other users of this Docker).
    pub others: usize,
}

impl Fleet {
    /// Reaches dockerd, starting it if none answers, and builds the image if it is missing.
    pub fn start() -> anyhow::Result<Fleet> {
        let docker = blocking(Docker::start)?
            .map_err(|reason| anyhow!(reason))
            .context("starting Docker for --containers")?;
        Ok(Fleet {
            docker,
            running: Vec::new(),
        })
    }

    pub fn socket(&self) -> &Path {
        self.docker.socket()
    }

    /// Starts or removes containers until `count` run; the ones kept keep running.
    pub fn resize(&mut self, count: usize) -> anyhow::Result<()> {
        let (docker, running) = (&self.docker, &mut self.running);
        blocking(|| {
            running.truncate(count);
            for i in running.len()..count {
                let name = format!("collector-load-{i}");
                running.push(docker.run(&name, &[BUSYBOX_IMAGE, "sleep", "86400"]));
            }
        })
        .with_context(|| format!("starting {count} containers"))
    }

    /// How many of the running containers `host` reported.
    pub fn reported(&self, host: &HostEvents) -> Reported {
        let ours: Vec<String> = self
            .running
            .iter()
            .map(|c| container_node_id(c.id()))
            .collect();
        let seen = |pick: fn(&(bool, bool)) -> bool| {
            ours.iter()
                .filter(|id| host.containers.get(*id).is_some_and(pick))
                .count()
        };
        Reported {
            running: ours.len(),
            named: seen(|(named, _)| *named),
            measured: seen(|(_, measured)| *measured),
            others: host
                .containers
                .keys()
                .filter(|id| !ours.contains(id))
                .count(),
        }
    }
}

/// Runs `f`, which blocks on the Docker CLI, off the async workers, turning the test kit's
/// panics (a failed `docker run`) into an error.
fn blocking<T>(f: impl FnOnce() -> T) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| catch_unwind(AssertUnwindSafe(f))).map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic with no message");
        anyhow!("{reason}")
    })
}
