//! The Kubernetes views of `scope up`, end to end: a cluster collector (`scope collector
//! --role=cluster`) reads a local server speaking the Kubernetes API (no API server can run
//! here), and real processes, placed by the test in `kubepods` cgroups named after the pods'
//! uids as the kubelet names them, hold real TCP connections to each other. Needs root (it
//! makes cgroups).
//!
//! The cluster: namespaces `shop` and `tools`; deployment `web` (shop) mid-rollout, with
//! replica sets `web-old` and `web-new` and a pod each, selected by service `web`;
//! deployment `api` (tools) with replica set `api-1` and its pod; daemon set `agent` (tools)
//! and its pod; bare pod `debug` (shop). Both web pods and `debug` connect to the api pod,
//! and the agent to the new web pod.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::Duration,
};

use scope_schemas::report::kubernetes_node_id;
use scope_testkit::{
    Cgroup, Process,
    cgroup::{container_id, pod_uid},
    free_port,
    kube_api::{
        self, ApiServer, Change, DAEMON_SETS, DEPLOYMENTS, NAMESPACES, NODES, PODS, REPLICA_SETS,
        SERVICES, controlled_by, meta,
    },
    wait_for,
};
use serde_json::{Value, json};
use support::{SCOPE, Up, get_json, hostname};

const WAIT: Duration = Duration::from_secs(90);
const CLUSTER: &str = "e2e";

/// One pod's process: it listens on `port` (if any), and once cued connects to `peers`
/// (ports on loopback), holding every connection open until it is killed.
const POD_PROCESS: &str = "
import socket, sys, threading
port, peers = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
held = []
if port:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(('127.0.0.1', port))
    server.listen()
    def accept():
        while True:
            held.append(server.accept()[0])
    threading.Thread(target=accept, daemon=True).start()
print('ready', flush=True)
sys.stdin.readline()
for peer in peers:
    held.append(socket.create_connection(('127.0.0.1', peer)))
print('connected', flush=True)
sys.stdin.readline()
";

/// A pod of the cluster: its object, and how its process talks.
struct PodSpec {
    namespace: &'static str,
    name: &'static str,
    app: &'static str,
    /// Its controller: (kind, name, uid).
    owner: Option<(&'static str, &'static str, &'static str)>,
    listens: bool,
    /// The pods it connects to, by name.
    connects_to: &'static [&'static str],
}

const PODS_OF_THE_CLUSTER: [PodSpec; 5] = [
    PodSpec {
        namespace: "shop",
        name: "web-old-a",
        app: "web",
        owner: Some(("ReplicaSet", "web-old", "rs-web-old")),
        listens: true,
        connects_to: &["api-1-a"],
    },
    PodSpec {
        namespace: "shop",
        name: "web-new-a",
        app: "web",
        owner: Some(("ReplicaSet", "web-new", "rs-web-new")),
        listens: true,
        connects_to: &["api-1-a"],
    },
    PodSpec {
        namespace: "tools",
        name: "api-1-a",
        app: "api",
        owner: Some(("ReplicaSet", "api-1", "rs-api-1")),
        listens: true,
        connects_to: &[],
    },
    PodSpec {
        namespace: "tools",
        name: "agent-x",
        app: "agent",
        owner: Some(("DaemonSet", "agent", "ds-agent")),
        listens: false,
        connects_to: &["web-new-a"],
    },
    PodSpec {
        namespace: "shop",
        name: "debug",
        app: "debug",
        owner: None,
        listens: false,
        connects_to: &["api-1-a"],
    },
];

/// A pod's process in its container's cgroup. The process goes first (fields drop in
/// order): a cgroup with a process in it cannot be removed.
struct RunningPod {
    process: Process,
    _cgroup: Cgroup,
}

/// The uid of the pod at `index` in [`PODS_OF_THE_CLUSTER`]: a real UUID, as the cgroup
/// path names it.
fn uid_of(index: usize) -> String {
    pod_uid(index as u32 + 1)
}

fn index_of(name: &str) -> usize {
    PODS_OF_THE_CLUSTER
        .iter()
        .position(|pod| pod.name == name)
        .unwrap()
}

/// The cluster's objects. Its one node is this host, and its pods run on the host's
/// network (`hostNetwork`), as the test's processes do: their IP is the node's.
fn populate(server: &ApiServer) {
    use Change::Apply;
    let node = kube_api::kube_node(&hostname(), "127.0.0.1");
    server.change(
        NAMESPACES,
        vec![
            Apply(kube_api::namespace("shop")),
            Apply(kube_api::namespace("tools")),
        ],
    );
    server.change(NODES, vec![Apply(node.clone())]);
    let app = |name: &str| json!({ "app": name });
    let web = kube_api::deployment(meta("shop", "web", "dep-web", app("web")), 2);
    let api = kube_api::deployment(meta("tools", "api", "dep-api", app("api")), 1);
    server.change(DEPLOYMENTS, vec![Apply(web.clone()), Apply(api.clone())]);
    let replica_set = |deployment: &Value, name: &str| {
        Apply(kube_api::replica_set(
            deployment,
            name,
            &format!("rs-{name}"),
            1,
        ))
    };
    server.change(
        REPLICA_SETS,
        vec![
            replica_set(&web, "web-old"),
            replica_set(&web, "web-new"),
            replica_set(&api, "api-1"),
        ],
    );
    server.change(
        DAEMON_SETS,
        vec![Apply(kube_api::daemon_set(meta(
            "tools",
            "agent",
            "ds-agent",
            app("agent"),
        )))],
    );
    let pods = PODS_OF_THE_CLUSTER.iter().enumerate().map(|(index, pod)| {
        let mut meta = meta(pod.namespace, pod.name, &uid_of(index), app(pod.app));
        if let Some((kind, name, uid)) = pod.owner {
            meta = controlled_by(meta, "apps/v1", kind, name, uid);
        }
        Apply(kube_api::pod(
            meta,
            &node,
            "127.0.0.1",
            &container_id(index as u32 + 1),
        ))
    });
    server.change(PODS, pods.collect());
    server.change(
        SERVICES,
        vec![Apply(kube_api::service(
            meta("shop", "web", "svc-web", app("web")),
            app("web"),
        ))],
    );
}

/// Starts each pod's process in its container's cgroup (`/kubepods/besteffort/pod<uid>/<id>`,
/// containerd's cgroupfs naming), then connects them as [`PODS_OF_THE_CLUSTER`] says.
fn start_pods() -> Vec<RunningPod> {
    let ports: Vec<u16> = PODS_OF_THE_CLUSTER
        .iter()
        .map(|pod| if pod.listens { free_port() } else { 0 })
        .collect();
    let mut pods: Vec<RunningPod> = PODS_OF_THE_CLUSTER
        .iter()
        .enumerate()
        .map(|(index, pod)| {
            let mut args = vec![ports[index].to_string()];
            args.extend(
                pod.connects_to
                    .iter()
                    .map(|peer| ports[index_of(peer)].to_string()),
            );
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let process = Process::python(POD_PROCESS, &args);
            process.line(WAIT, "ready");
            let cgroup = Cgroup::create(&format!(
                "/kubepods/besteffort/pod{}/{}",
                uid_of(index),
                container_id(index as u32 + 1)
            ));
            cgroup.add(process.pid());
            RunningPod {
                process,
                _cgroup: cgroup,
            }
        })
        .collect();
    for pod in &mut pods {
        pod.process.write_line("connect");
        pod.process.line(WAIT, "connected");
    }
    pods
}

/// The nodes of a view's JSON that are not pseudo nodes, each with the nodes it has edges
/// to, and any pseudo node with an edge to one of them (an "Unmanaged" process talking to a
/// pod), with its edges.
fn graph(view: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let nodes = view["nodes"].as_object().cloned().unwrap_or_default();
    let adjacency = |node: &Value| -> BTreeSet<String> {
        node["adjacency"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect()
    };
    let real: BTreeSet<&String> = nodes
        .iter()
        .filter(|(_, node)| node["pseudo"] != true)
        .map(|(id, _)| id)
        .collect();
    nodes
        .iter()
        .map(|(id, node)| (id.clone(), adjacency(node)))
        .filter(|(id, to)| real.contains(id) || to.iter().any(|to| real.contains(to)))
        .collect()
}

/// Polls `url` until the graph of its view is `expected`. What it saw meanwhile is printed
/// each time it changes: a test's output is shown when it fails.
fn wait_for_graph(url: &str, expected: &BTreeMap<String, BTreeSet<String>>) -> Value {
    let mut last = None;
    wait_for(&format!("{url} to draw {expected:#?}"), WAIT, || {
        let view = get_json(url)?;
        let seen = graph(&view);
        if seen == *expected {
            return Some(view);
        }
        if last.as_ref() != Some(&seen) {
            eprintln!("{url} draws {seen:#?}");
            last = Some(seen);
        }
        None
    })
}

fn ids(nodes: &[&String]) -> BTreeSet<String> {
    nodes.iter().map(|id| (*id).clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_view_draws_deployments_daemon_sets_and_bare_pods_with_their_connections() {
    if !scope_collector::test_support::root_or_skip("making cgroups") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let up = Up::start(
        &listen,
        &dir.path().join("data"),
        &dir.path().join("up.log"),
    );

    let server = ApiServer::start().await;
    populate(&server);
    let mut cluster_collector = Command::new(SCOPE);
    cluster_collector
        .args(["collector", "--role", "cluster", "--cluster-id", CLUSTER])
        .args(["--brokers", &listen, "--publish-interval", "200ms"])
        .arg("--kubeconfig")
        .arg(server.kubeconfig(dir.path()))
        .env_remove("SCOPE_BROKERS");
    let cluster_collector = Process::spawn(cluster_collector);
    let _pods = start_pods();

    let id = |uid: &str, topology: &str| kubernetes_node_id(CLUSTER, uid, topology);
    let (web, api) = (id("dep-web", "deployment"), id("dep-api", "deployment"));
    let (agent, debug) = (
        id("ds-agent", "daemon_set"),
        id(&uid_of(index_of("debug")), "pod"),
    );
    // Exactly the 2 deployments, the daemon set and the bare pod: no replica set, no pod of a
    // controller.
    let controllers = BTreeMap::from([
        (web.clone(), ids(&[&api])),
        (api.clone(), ids(&[])),
        (agent.clone(), ids(&[&web])),
        (debug.clone(), ids(&[&api])),
    ]);
    let view = wait_for_graph(
        &format!("{}/api/topology/kube-controllers", up.api),
        &controllers,
    );
    let label = |id: &str| {
        view["nodes"][id]["label"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        [label(&web), label(&api), label(&agent), label(&debug)],
        ["web", "api", "agent", "debug"]
    );
    assert_eq!(view["nodes"][&web]["labelMinor"], "2 pods", "{view}");
    assert_eq!(view["nodes"][&agent]["rank"], "DaemonSet", "{view}");

    // The namespace filter is a union: both namespaces show all four, one only its own.
    let filtered = |query: &str| -> BTreeSet<String> {
        let url = format!("{}/api/topology/kube-controllers?{query}", up.api);
        let view = get_json(&url).unwrap_or_else(|| panic!("GET {url}"));
        graph(&view).into_keys().collect()
    };
    let all = ids(&[&web, &api, &agent, &debug]);
    assert_eq!(filtered("namespace=shop&namespace=tools"), all);
    assert_eq!(filtered("namespace=shop,tools"), all);
    assert_eq!(filtered("namespace=shop"), ids(&[&web, &debug]));
    assert_eq!(filtered("namespace=tools"), ids(&[&api, &agent]));

    // The pods view: all five pods, each in its namespace, with their own connections.
    let pod = |name: &str| id(&uid_of(index_of(name)), "pod");
    let pods: BTreeMap<String, BTreeSet<String>> = PODS_OF_THE_CLUSTER
        .iter()
        .map(|spec| {
            let to = spec.connects_to.iter().map(|peer| pod(peer)).collect();
            (pod(spec.name), to)
        })
        .collect();
    let view = wait_for_graph(&format!("{}/api/topology/pods", up.api), &pods);
    for spec in &PODS_OF_THE_CLUSTER {
        let node = &view["nodes"][&pod(spec.name)];
        assert_eq!(node["label"], spec.name, "{node}");
        assert_eq!(node["labelMinor"], spec.namespace, "{node}");
        let namespace = node["metadata"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["id"] == "kubernetes_namespace");
        assert_eq!(
            namespace.map(|row| &row["value"]),
            Some(&json!(spec.namespace)),
            "{node}"
        );
    }

    // The service is drawn, in its namespace.
    let services = get_json(&format!("{}/api/topology/services", up.api)).unwrap();
    let service = &services["nodes"][&id("svc-web", "service")];
    assert_eq!(
        (&service["label"], &service["labelMinor"]),
        (&json!("web"), &json!("shop")),
        "{services}"
    );
    // Before the broker it publishes to goes.
    drop(cluster_collector);
    up.stop();
}
