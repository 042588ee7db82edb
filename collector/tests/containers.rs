//! The container reporter without any runtime: real processes placed by the test in real
//! cgroups named as containerd (CRI), CRI-O and Podman name theirs, read by a real collector
//! publishing to an embedded broker. Needs root (it makes cgroups).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use rdkafka::Message;
use scope_collector::{CollectorArgs, Stats, TrackerChoice};
use scope_schemas::{
    Node, Record, ReportDelta,
    report::{container_node_id, host_node_id, keys, process_node_id},
    topics,
};
use scope_testkit::{
    Broker, Cgroup, Process, Running,
    cgroup::{container_id, pod_uid},
    wait_for_async,
};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_in_runtime_cgroups_are_their_containers() {
    if !scope_collector::test_support::root_or_skip("making cgroups") {
        return;
    }
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let host_id = format!("containers-test-{}", std::process::id());

    let (containerd, crio, podman) = (container_id(1), container_id(2), container_id(3));
    let (pod1, pod2) = (pod_uid(1), pod_uid(2));
    let cases = [
        (
            format!("/kubepods/besteffort/pod{pod1}/{containerd}"),
            &containerd,
            "containerd",
            Some(&pod1),
        ),
        (
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{crio}.scope",
                pod2.replace('-', "_")
            ),
            &crio,
            "crio",
            Some(&pod2),
        ),
        (
            format!("/machine.slice/libpod-{podman}.scope"),
            &podman,
            "podman",
            None,
        ),
    ];
    let mut held = Vec::new();
    for (path, _, _, _) in &cases {
        let cgroup = Cgroup::create(path);
        let process = Process::python("import time; print(1, flush=True); time.sleep(3600)", &[]);
        process.line(WAIT, "started");
        cgroup.add(process.pid());
        // A tuple drops its fields in order: the process leaves before its cgroup goes.
        held.push((process, cgroup));
    }
    let outside = Process::python("import time; print(1, flush=True); time.sleep(3600)", &[]);
    outside.line(WAIT, "started");

    let mut args = CollectorArgs::new(kafka.clone());
    args.tracker = TrackerChoice::Procfs;
    args.host_id = Some(host_id.clone());
    args.spy_interval = Duration::from_millis(100);
    args.publish_interval = Duration::from_millis(300);
    let stats = Arc::new(Stats::default());
    let counted = Arc::clone(&stats);
    let _collector =
        Running::start(|shutdown| scope_collector::run_with_stats(args, shutdown, counted));
    wait_for_async("the collector's first spy", WAIT, || {
        (stats.spies.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;

    let consumer = scope_testkit::consumer_from_start(&kafka, &[topics::REPORTS]);
    let mut nodes: Vec<Node> = Vec::new();
    let wanted: Vec<String> = cases
        .iter()
        .map(|(_, id, _, _)| container_node_id(id))
        .collect();
    scope_testkit::consume_until(
        &consumer,
        WAIT,
        &mut nodes,
        |nodes, message| {
            let delta = ReportDelta::decode(message.payload().unwrap()).unwrap();
            if delta.host_id == host_id {
                nodes.extend(delta.upserts);
            }
        },
        |nodes| wanted.iter().all(|id| nodes.iter().any(|n| &n.id == id)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e} waiting for the container nodes; saw {nodes:#?}"));

    let latest = |id: &str| nodes.iter().rfind(|n| n.id == id).unwrap();
    for ((_, id, runtime, pod), (process, _)) in cases.iter().zip(&held) {
        let node = latest(&container_node_id(id));
        assert_eq!(node.topology, keys::CONTAINER);
        assert_eq!(node.latest(keys::CONTAINER_ID), Some(id.as_str()));
        assert_eq!(node.latest(keys::CONTAINER_RUNTIME), Some(*runtime));
        assert_eq!(node.latest(keys::CONTAINER_STATE), Some("running"));
        assert_eq!(
            node.latest(keys::POD_UID),
            pod.map(String::as_str),
            "{runtime}"
        );
        assert!(
            node.metric(keys::MEMORY_USAGE_BYTES).is_some(),
            "memory from the cgroup files of {runtime}: {node:#?}"
        );
        assert_eq!(node.parents[keys::HOST], vec![host_node_id(&host_id)]);

        let process = latest(&process_node_id(&host_id, process.pid() as i32));
        assert_eq!(process.latest(keys::CONTAINER_ID), Some(id.as_str()));
        assert_eq!(
            process.parents[keys::CONTAINER],
            vec![container_node_id(id)]
        );
    }
    let outside = latest(&process_node_id(&host_id, outside.pid() as i32));
    assert_eq!(outside.latest(keys::CONTAINER_ID), None);
    assert!(!outside.parents.contains_key(keys::CONTAINER));
    drop(held);
}
