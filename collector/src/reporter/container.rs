//! The container reporter: one Weave Scope `container` node per container of the host.
//!
//! A container is known from the cgroups of its processes (any runtime, no socket needed) or
//! from a runtime's API (the [`MetaCache`], which also knows stopped containers). Its CPU and
//! memory come from its cgroup files; CPU is a rate, so the reporter keeps each container's
//! CPU time from the previous spy. Kubernetes containers name their pod in their CRI labels
//! (`io.kubernetes.pod.*`), and in their cgroup path (the pod's uid) when no runtime answers.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::Instant,
};

use scope_schemas::{
    Metric, Node,
    report::{container_node_id, host_node_id, keys},
};

use crate::{
    container::{
        ContainerMeta, MetaCache, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL, Runtime,
        cgroup::{self, ContainerRef},
    },
    scan::Scan,
};

#[derive(Debug)]
pub struct ContainerReporter {
    host_id: String,
    /// The host's `/sys/fs/cgroup`.
    cgroup_root: PathBuf,
    meta: MetaCache,
    /// Container id -> (CPU time in ns, when sampled).
    previous: HashMap<String, (u64, Instant)>,
    nodes: Vec<Node>,
}

impl ContainerReporter {
    pub fn new(host_id: impl Into<String>, cgroup_root: PathBuf, meta: MetaCache) -> Self {
        ContainerReporter {
            host_id: host_id.into(),
            cgroup_root,
            meta,
            previous: HashMap::new(),
            nodes: Vec::new(),
        }
    }

    /// Feeds one spy; the nodes describe it until the next one.
    pub fn observe(&mut self, scan: &Scan) {
        let mut running: BTreeMap<&str, &ContainerRef> = BTreeMap::new();
        for p in &scan.processes {
            if let Some(c) = &p.container {
                running.entry(c.id.as_str()).or_insert(c);
            }
        }
        // A poisoned lock only means a watcher panicked mid-update; what it holds is still
        // the best we know.
        let meta = self.meta.read().unwrap_or_else(|e| e.into_inner());
        let host = host_node_id(&self.host_id);
        let mut previous = HashMap::with_capacity(running.len());
        let mut nodes = Vec::with_capacity(running.len().max(meta.len()));
        for (&id, c) in &running {
            let usage = cgroup::read_usage(&self.cgroup_root, &c.paths);
            let cpu = usage.cpu_ns.and_then(|now_ns| {
                previous.insert(id.to_owned(), (now_ns, scan.at));
                let &(before_ns, at) = self.previous.get(id)?;
                let seconds = scan.at.saturating_duration_since(at).as_secs_f64();
                (seconds > 0.0)
                    .then(|| 100.0 * now_ns.saturating_sub(before_ns) as f64 / 1e9 / seconds)
            });
            let mut node = container_node(
                id,
                c.runtime,
                meta.get(id),
                c.pod_uid.as_deref(),
                &host,
                scan.timestamp_us,
            );
            if let Some(cpu) = cpu {
                node.metrics.insert(
                    keys::CPU_USAGE_PERCENT.into(),
                    Metric::single(scan.timestamp_us, cpu),
                );
            }
            if let Some(bytes) = usage.memory_bytes {
                node.metrics.insert(
                    keys::MEMORY_USAGE_BYTES.into(),
                    Metric::single(scan.timestamp_us, bytes as f64),
                );
            }
            nodes.push(node);
        }
        // Containers the runtime knows but no process of which is running: stopped ones, as
        // Scope shows them (its views hide them by default).
        let mut known: Vec<(&String, &ContainerMeta)> = meta
            .iter()
            .filter(|(id, _)| !running.contains_key(id.as_str()))
            .collect();
        known.sort_by_key(|(id, _)| *id);
        for (id, m) in known {
            nodes.push(container_node(
                id,
                m.runtime.unwrap_or(Runtime::Docker),
                Some(m),
                None,
                &host,
                scan.timestamp_us,
            ));
        }
        self.previous = previous;
        self.nodes = nodes;
    }

    /// The nodes of the latest spy.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
}

fn container_node(
    id: &str,
    runtime: Runtime,
    meta: Option<&ContainerMeta>,
    cgroup_pod_uid: Option<&str>,
    host_node: &str,
    now_us: i64,
) -> Node {
    let mut node = Node::new(keys::CONTAINER, container_node_id(id))
        .with_latest(keys::CONTAINER_ID, id, now_us)
        .with_latest(keys::CONTAINER_RUNTIME, runtime.as_str(), now_us);
    let default = ContainerMeta::default();
    let m = meta.unwrap_or(&default);
    let state = m.state.as_deref().unwrap_or("running");
    node = node.with_latest(keys::CONTAINER_STATE, state, now_us);
    let label = |key: &str| m.labels.get(key).map(String::as_str);
    let optional = [
        (keys::CONTAINER_NAME, m.name.as_deref()),
        (keys::IMAGE_NAME, m.image_name.as_deref()),
        (keys::IMAGE_ID, m.image_id.as_deref()),
        (keys::CONTAINER_HOSTNAME, m.hostname.as_deref()),
        (keys::POD_NAME, label(POD_NAME_LABEL)),
        (keys::POD_NAMESPACE, label(POD_NAMESPACE_LABEL)),
        (keys::POD_UID, label(POD_UID_LABEL).or(cgroup_pod_uid)),
    ];
    for (key, value) in optional {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            node = node.with_latest(key, value, now_us);
        }
    }
    let sets = [
        (
            keys::LABELS,
            m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        ),
        (keys::CONTAINER_IPS, m.ips.clone()),
        (keys::CONTAINER_PORTS, m.ports.clone()),
    ];
    for (key, values) in sets {
        if !values.is_empty() {
            node.sets.insert(key.into(), values);
        }
    }
    node.parents
        .insert(keys::HOST.into(), vec![host_node.to_owned()]);
    node
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{BTreeMap, HashMap},
        sync::{Arc, RwLock},
        time::Duration,
    };

    use super::*;
    use crate::{container::cgroup::CgroupPaths, scan::ProcessSample};

    const ID: &str = "54da098dbf083ded14da56f79eab42533cf2f278bc207674ae705904df38cdb4";
    const STOPPED: &str = "23d400aa9d0ca29084aec04ead9205f2b829d9b26cfb9420603c3a5583088b7a";

    fn process(pid: i32, container: Option<ContainerRef>) -> ProcessSample {
        ProcessSample {
            container,
            ..ProcessSample::example(pid, 1, 0)
        }
    }

    #[test]
    fn containers_from_cgroups_and_the_runtime_with_usage_from_cgroup_files() {
        let root = tempfile::tempdir().unwrap();
        let cpu = root.path().join(format!("cpuacct/docker/{ID}"));
        let mem = root.path().join(format!("memory/docker/{ID}"));
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "1000000000").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "65536").unwrap();
        let path = format!("/docker/{ID}");
        let container = ContainerRef {
            runtime: Runtime::Docker,
            id: ID.into(),
            pod_uid: None,
            paths: CgroupPaths {
                unified: None,
                cpuacct: Some(path.clone()),
                memory: Some(path),
            },
        };
        let meta: MetaCache = Arc::new(RwLock::new(HashMap::new()));
        {
            let mut m = meta.write().unwrap();
            m.insert(
                ID.into(),
                ContainerMeta {
                    name: Some("nginx".into()),
                    image_name: Some("local/busybox:1".into()),
                    labels: BTreeMap::from([
                        (POD_NAME_LABEL.into(), "web-1".into()),
                        ("app".into(), "web".into()),
                    ]),
                    ips: vec!["172.17.0.2".into()],
                    ..Default::default()
                },
            );
            m.insert(
                STOPPED.into(),
                ContainerMeta {
                    name: Some("old".into()),
                    state: Some("exited".into()),
                    ..Default::default()
                },
            );
        }
        let mut reporter = ContainerReporter::new("h1", root.path().to_owned(), meta);
        let t0 = Instant::now();
        reporter.observe(&Scan::example(
            t0,
            vec![
                process(10, Some(container.clone())),
                process(11, Some(container.clone())),
                process(12, None),
            ],
        ));
        let nodes = reporter.nodes();
        assert_eq!(nodes.len(), 2, "{nodes:#?}");
        let running = &nodes[0];
        assert_eq!(running.id, format!("{ID};<container>"));
        assert_eq!(running.latest(keys::CONTAINER_NAME), Some("nginx"));
        assert_eq!(running.latest(keys::CONTAINER_STATE), Some("running"));
        assert_eq!(running.latest(keys::CONTAINER_RUNTIME), Some("docker"));
        assert_eq!(running.latest(keys::POD_NAME), Some("web-1"));
        assert_eq!(
            running.sets[keys::LABELS],
            vec!["app=web", "io.kubernetes.pod.name=web-1"]
        );
        assert_eq!(running.sets[keys::CONTAINER_IPS], vec!["172.17.0.2"]);
        assert_eq!(running.metric(keys::MEMORY_USAGE_BYTES), Some(65536.0));
        assert_eq!(
            running.metric(keys::CPU_USAGE_PERCENT),
            None,
            "a rate needs two samples"
        );
        assert_eq!(running.parents[keys::HOST], vec!["h1;<host>"]);
        assert_eq!(nodes[1].latest(keys::CONTAINER_STATE), Some("exited"));

        // Half a second of CPU over one second: 50 %.
        std::fs::write(cpu.join("cpuacct.usage"), "1500000000").unwrap();
        reporter.observe(&Scan::example(
            t0 + Duration::from_secs(1),
            vec![process(10, Some(container))],
        ));
        let cpu = reporter.nodes()[0].metric(keys::CPU_USAGE_PERCENT).unwrap();
        assert!((cpu - 50.0).abs() < 1e-9, "{cpu}");
    }

    #[test]
    fn a_pod_uid_from_the_cgroup_path_stands_in_for_missing_labels() {
        let meta: MetaCache = Arc::new(RwLock::new(HashMap::new()));
        let mut reporter = ContainerReporter::new("h1", "/nonexistent".into(), meta);
        let container = ContainerRef {
            runtime: Runtime::Crio,
            id: ID.into(),
            pod_uid: Some("1f5e3c2a-7b9d-4e8f-a1b2-c3d4e5f60718".into()),
            paths: CgroupPaths::default(),
        };
        reporter.observe(&Scan::example(
            Instant::now(),
            vec![process(10, Some(container))],
        ));
        let node = &reporter.nodes()[0];
        assert_eq!(
            node.latest(keys::POD_UID),
            Some("1f5e3c2a-7b9d-4e8f-a1b2-c3d4e5f60718")
        );
        assert_eq!(node.latest(keys::CONTAINER_RUNTIME), Some("crio"));
        assert!(node.metrics.is_empty(), "no cgroup files, no metrics");
    }
}
