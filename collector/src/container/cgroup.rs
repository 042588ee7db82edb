//! Containers from cgroup paths, and their usage from the cgroup files.
//!
//! Every runtime puts a container's processes in a cgroup whose last component names the
//! container, each in its own spelling:
//!
//! | runtime | cgroupfs driver | systemd driver |
//! |---|---|---|
//! | Docker | `/docker/<id>` | `/system.slice/docker-<id>.scope` |
//! | containerd (CRI) | `/kubepods/<qos>/pod<uid>/<id>` | `/kubepods.slice/…/cri-containerd-<id>.scope` |
//! | CRI-O | `/kubepods/<qos>/pod<uid>/crio-<id>` | `/kubepods.slice/…/crio-<id>.scope` |
//! | Podman | `/libpod_parent/libpod-<id>` | `/machine.slice/libpod-<id>.scope` |
//!
//! with `<id>` 64 hex digits. The monitors CRI-O and Podman run beside a container
//! (`crio-conmon-<id>`, `libpod-conmon-<id>`) are not in it. Under `kubepods` the pod's uid is
//! in the path too (`pod<uid>`, or `…-pod<uid with _ for ->.slice` with systemd), which ties a
//! container to its pod with no runtime socket.
//!
//! A line of `/proc/<pid>/cgroup` is `<hierarchy>:<controllers>:<path>`: with cgroup v2 one
//! line `0::<path>`, with v1 one per hierarchy, and both on a hybrid host. The container is
//! read from whichever line names one; usage from the v2 files where the host mounts v2 with
//! its controllers, else from the v1 `cpuacct` and `memory` hierarchies.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::Runtime;

/// The container a process runs in, as its cgroup names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    pub runtime: Runtime,
    /// 64 lowercase hex digits.
    pub id: String,
    /// The Kubernetes pod's uid, when the path is under `kubepods`.
    pub pod_uid: Option<String>,
    /// Where its usage is read: the cgroup paths of the `cpuacct` and `memory` hierarchies,
    /// and of the unified (v2) one.
    pub paths: CgroupPaths,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupPaths {
    pub unified: Option<String>,
    pub cpuacct: Option<String>,
    pub memory: Option<String>,
}

/// The container named by the text of `/proc/<pid>/cgroup`, if any.
pub fn parse_proc_cgroup(text: &str) -> Option<ContainerRef> {
    let mut found: Option<(Runtime, String, Option<String>)> = None;
    let mut paths = CgroupPaths::default();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(hierarchy), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if found.is_none() {
            found = container_of_path(path);
        }
        if hierarchy == "0" && controllers.is_empty() {
            paths.unified = Some(path.to_owned());
        }
        for controller in controllers.split(',') {
            match controller {
                "cpuacct" => paths.cpuacct = Some(path.to_owned()),
                "memory" => paths.memory = Some(path.to_owned()),
                _ => {}
            }
        }
    }
    let (runtime, id, pod_uid) = found?;
    Some(ContainerRef {
        runtime,
        id,
        pod_uid,
        paths,
    })
}

/// Runtime, container id and pod uid named by one cgroup path.
fn container_of_path(path: &str) -> Option<(Runtime, String, Option<String>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let kubepods = segments.iter().any(|s| s.starts_with("kubepods"));
    let pod_uid = segments.iter().rev().find_map(|s| pod_uid_of(s));
    let last = segments.last()?;
    let name = last.strip_suffix(".scope").unwrap_or(last);
    let (runtime, id) = if let Some(id) = name.strip_prefix("docker-") {
        (Runtime::Docker, id)
    } else if let Some(id) = name.strip_prefix("cri-containerd-") {
        (Runtime::Containerd, id)
    } else if let Some(id) = name.strip_prefix("crio-") {
        (Runtime::Crio, id)
    } else if let Some(id) = name.strip_prefix("libpod-") {
        (Runtime::Podman, id)
    } else {
        let parent = segments.len().checked_sub(2).map(|i| segments[i]);
        let runtime = match parent {
            Some("docker") => Runtime::Docker,
            Some("libpod_parent") => Runtime::Podman,
            _ if kubepods => Runtime::Containerd,
            _ => return None,
        };
        (runtime, name)
    };
    is_container_id(id).then(|| (runtime, id.to_owned(), pod_uid.filter(|_| kubepods)))
}

/// The uid in `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid_with_underscores>.slice`.
fn pod_uid_of(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".slice").unwrap_or(segment);
    let (_, uid) = segment.rsplit_once("pod")?;
    let uid = uid.replace('_', "-");
    let valid = uid.len() == 36 && uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    valid.then_some(uid)
}

fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A container's cumulative CPU time and current memory, read from its cgroup files under
/// `root` (the host's `/sys/fs/cgroup`). Either is `None` when its file cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub cpu_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
}

pub fn read_usage(root: &Path, paths: &CgroupPaths) -> Usage {
    // A host whose unified hierarchy holds the controllers (pure v2) has them at its root;
    // a hybrid one mounts it at `unified/` with no controllers of interest.
    let v2 = root.join("cgroup.controllers").exists();
    if v2 && let Some(path) = &paths.unified {
        let dir = under(root, path);
        return Usage {
            cpu_ns: read_to_string(&dir.join("cpu.stat")).and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|us| us * 1_000)
            }),
            memory_bytes: read_number(&dir.join("memory.current")),
        };
    }
    let cpu_ns = paths.cpuacct.as_ref().and_then(|path| {
        ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]
            .iter()
            .find_map(|mount| read_number(&under(&root.join(mount), path).join("cpuacct.usage")))
    });
    let memory_bytes = paths.memory.as_ref().and_then(|path| {
        read_number(&under(&root.join("memory"), path).join("memory.usage_in_bytes"))
    });
    Usage {
        cpu_ns,
        memory_bytes,
    }
}

fn under(root: &Path, cgroup_path: &str) -> PathBuf {
    root.join(cgroup_path.trim_start_matches('/'))
}

fn read_to_string(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn read_number(path: &Path) -> Option<u64> {
    read_to_string(path)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "54da098dbf083ded14da56f79eab42533cf2f278bc207674ae705904df38cdb4";
    const POD: &str = "1f5e3c2a-7b9d-4e8f-a1b2-c3d4e5f60718";

    fn parsed(text: &str) -> Option<(Runtime, String, Option<String>)> {
        parse_proc_cgroup(text).map(|c| (c.runtime, c.id, c.pod_uid))
    }

    #[test]
    fn every_runtime_and_driver_names_its_container() {
        let pod_systemd = POD.replace('-', "_");
        let cases = [
            (format!("4:memory:/docker/{ID}"), Runtime::Docker, None),
            (
                format!("0::/system.slice/docker-{ID}.scope"),
                Runtime::Docker,
                None,
            ),
            (
                format!(
                    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_systemd}.slice/cri-containerd-{ID}.scope"
                ),
                Runtime::Containerd,
                Some(POD),
            ),
            (
                format!("11:cpu,cpuacct:/kubepods/besteffort/pod{POD}/{ID}"),
                Runtime::Containerd,
                Some(POD),
            ),
            (
                format!("0::/kubepods.slice/kubepods-pod{pod_systemd}.slice/crio-{ID}.scope"),
                Runtime::Crio,
                Some(POD),
            ),
            (
                format!("5:memory:/kubepods/burstable/pod{POD}/crio-{ID}"),
                Runtime::Crio,
                Some(POD),
            ),
            (
                format!("0::/machine.slice/libpod-{ID}.scope"),
                Runtime::Podman,
                None,
            ),
            (
                format!(
                    "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
                ),
                Runtime::Podman,
                None,
            ),
            (
                format!("3:memory:/libpod_parent/libpod-{ID}"),
                Runtime::Podman,
                None,
            ),
        ];
        for (text, runtime, pod) in cases {
            assert_eq!(
                parsed(&text),
                Some((runtime, ID.to_owned(), pod.map(str::to_owned))),
                "{text}"
            );
        }
    }

    #[test]
    fn monitors_hosts_and_strangers_are_in_no_container() {
        for text in [
            "0::/".to_owned(),
            "0::/user.slice/user-0.slice/session-1.scope".to_owned(),
            format!("0::/machine.slice/libpod-conmon-{ID}.scope"),
            format!("0::/kubepods.slice/crio-conmon-{ID}.scope"),
            format!("0::/default/{ID}"),
            "4:memory:/process_api/e8e38a188d77e00f7a69617842484644".to_owned(),
            format!("0::/docker/{}", &ID[..12]),
            format!("0::/docker/{}", ID.to_uppercase()),
            "garbage".to_owned(),
            String::new(),
        ] {
            assert_eq!(parsed(&text), None, "{text}");
        }
    }

    #[test]
    fn a_hybrid_host_keeps_each_hierarchy_path() {
        let text = format!(
            "9:name=systemd:/docker/{ID}\n4:memory:/docker/{ID}\n2:cpuacct:/docker/{ID}\n1:cpu:/docker/{ID}\n0::/docker/{ID}\n"
        );
        let c = parse_proc_cgroup(&text).unwrap();
        let path = format!("/docker/{ID}");
        assert_eq!(
            c.paths,
            CgroupPaths {
                unified: Some(path.clone()),
                cpuacct: Some(path.clone()),
                memory: Some(path),
            }
        );
    }

    #[test]
    fn usage_reads_v1_and_v2_files() {
        let v1 = tempfile::tempdir().unwrap();
        let cpu = v1.path().join("cpu,cpuacct/docker/x");
        let mem = v1.path().join("memory/docker/x");
        fs::create_dir_all(&cpu).unwrap();
        fs::create_dir_all(&mem).unwrap();
        fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        fs::write(mem.join("memory.usage_in_bytes"), "4096\n").unwrap();
        let paths = CgroupPaths {
            unified: Some("/docker/x".into()),
            cpuacct: Some("/docker/x".into()),
            memory: Some("/docker/x".into()),
        };
        assert_eq!(
            read_usage(v1.path(), &paths),
            Usage {
                cpu_ns: Some(123_456_789),
                memory_bytes: Some(4096)
            }
        );

        let v2 = tempfile::tempdir().unwrap();
        fs::write(v2.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        let dir = v2.path().join("docker/x");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cpu.stat"), "usage_usec 250\nuser_usec 200\n").unwrap();
        fs::write(dir.join("memory.current"), "8192\n").unwrap();
        assert_eq!(
            read_usage(v2.path(), &paths),
            Usage {
                cpu_ns: Some(250_000),
                memory_bytes: Some(8192)
            }
        );
        // Unreadable files are unknown, not zero.
        assert_eq!(
            read_usage(Path::new("/nonexistent"), &paths),
            Usage::default()
        );
    }
}
