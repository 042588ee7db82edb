//! Real cgroups named as container runtimes name theirs, for real processes the collector
//! must map to their containers (and pods) from `/proc/<pid>/cgroup`. Needs root.

use std::{
    fs,
    path::{Path, PathBuf},
};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A cgroup made by the test in every hierarchy the container reporter reads, removed when
/// dropped (after its processes are gone).
pub struct Cgroup {
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// Makes `path` in the unified hierarchy of a pure cgroup v2 host, else in the v1
    /// `memory` and `cpuacct` hierarchies.
    pub fn create(path: &str) -> Cgroup {
        let root = Path::new(CGROUP_ROOT);
        let mounts: Vec<PathBuf> = if root.join("cgroup.controllers").exists() {
            vec![root.to_owned()]
        } else {
            let cpuacct = ["cpuacct", "cpu,cpuacct"]
                .iter()
                .map(|m| root.join(m))
                .find(|m| m.join("cgroup.procs").exists())
                .expect("a cpuacct hierarchy");
            vec![root.join("memory"), cpuacct]
        };
        let dirs = mounts
            .iter()
            .map(|mount| {
                let dir = mount.join(path.trim_start_matches('/'));
                fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                dir
            })
            .collect();
        Cgroup { dirs }
    }

    /// Moves process `pid` into it.
    pub fn add(&self, pid: u32) {
        for dir in &self.dirs {
            fs::write(dir.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", dir.display()));
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // Only the leaf: its ancestors may be shared with other runs; an empty
            // ancestor left behind is harmless.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// A container id unique to this test process and `n`: 64 hex digits, as runtimes make them.
pub fn container_id(n: u32) -> String {
    format!("{:056x}{:08x}", std::process::id(), n)
}

/// A pod uid (a UUID, as Kubernetes makes them) unique to this test process and `n`.
pub fn pod_uid(n: u32) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), n)
}
