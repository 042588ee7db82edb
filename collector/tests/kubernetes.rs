//! The cluster collector (`--role=cluster`) against a local server speaking the Kubernetes
//! API over real HTTP (no API server can run here): lists, watch streams, a watch that ends
//! and one the server expires (410 Gone). The collector binary runs as a user runs it and
//! publishes to an embedded broker; the test decodes `scope.reports`.

use std::{
    collections::{BTreeMap, BTreeSet},
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, Uri, header},
    response::Response,
};
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
    message::BorrowedMessage,
};
use scope_kafka::KafkaArgs;
use scope_schemas::{
    Node, Record, ReportDelta,
    report::{cluster_host_id, keys, kubernetes_node_id},
    topics,
};
use scope_testkit::{Broker, Process, free_port, http_request, wait_for_async};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);
const CLUSTER: &str = "c1";

const PODS: &str = "/api/v1/pods";
const SERVICES: &str = "/api/v1/services";
const REPLICA_SETS: &str = "/apis/apps/v1/replicasets";

/// Each collection the cluster collector watches: its path, kind and API version.
const COLLECTIONS: [(&str, &str, &str); 10] = [
    (PODS, "Pod", "v1"),
    (SERVICES, "Service", "v1"),
    ("/api/v1/namespaces", "Namespace", "v1"),
    ("/api/v1/nodes", "Node", "v1"),
    (REPLICA_SETS, "ReplicaSet", "apps/v1"),
    ("/apis/apps/v1/deployments", "Deployment", "apps/v1"),
    ("/apis/apps/v1/daemonsets", "DaemonSet", "apps/v1"),
    ("/apis/apps/v1/statefulsets", "StatefulSet", "apps/v1"),
    ("/apis/batch/v1/jobs", "Job", "batch/v1"),
    ("/apis/batch/v1/cronjobs", "CronJob", "batch/v1"),
];

/// A change to a collection.
enum Change {
    Apply(Value),
    Delete(&'static str),
}

/// One collection of the fake API server.
struct Collection {
    kind: &'static str,
    api_version: &'static str,
    /// By uid, as the API returns them in a list (without kind and apiVersion).
    objects: BTreeMap<String, Value>,
    /// Watch events (lines) after `compacted`, replayed to a watch resuming from a version
    /// at or above it, as the API server serves them from its watch cache.
    log: Vec<(u64, Bytes)>,
    compacted: u64,
    watchers: Vec<mpsc::UnboundedSender<Bytes>>,
    lists: usize,
    watches: usize,
}

#[derive(Default)]
struct ApiState {
    /// The cluster's resource version (etcd's revision), one counter for every collection.
    version: u64,
    collections: BTreeMap<&'static str, Collection>,
}

/// A local HTTP server serving the Kubernetes API's list and watch responses, stopped when
/// dropped.
struct ApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<ApiState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    async fn start() -> ApiServer {
        let mut state = ApiState::default();
        for (path, kind, api_version) in COLLECTIONS {
            state.collections.insert(
                path,
                Collection {
                    kind,
                    api_version,
                    objects: BTreeMap::new(),
                    log: Vec::new(),
                    compacted: 0,
                    watchers: Vec::new(),
                    lists: 0,
                    watches: 0,
                },
            );
        }
        let state = Arc::new(Mutex::new(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(serve).with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ApiServer { addr, state, task }
    }

    /// A kubeconfig naming this server, written under `dir`.
    fn kubeconfig(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters:\n- name: test\n  cluster:\n    server: http://{}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
             users:\n- name: test\n  user: {{}}\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Applies `changes` to the collection at `path`, each sent to its watchers.
    fn change(&self, path: &str, changes: Vec<Change>) {
        let mut state = self.state.lock().unwrap();
        for change in changes {
            let (event_type, object) = apply(&mut state, path, change);
            let collection = state.collections.get_mut(path).unwrap();
            let line = event_line(event_type, collection, object);
            let version = state.version;
            let collection = state.collections.get_mut(path).unwrap();
            collection.log.push((version, line.clone()));
            collection
                .watchers
                .retain(|watcher| watcher.send(line.clone()).is_ok());
        }
    }

    /// Applies `changes` unseen by any watcher, then expires every watch of the collection
    /// (an ERROR event with code 410, as the API server sends when its watch cache moved
    /// past a watcher): only a relist can learn them.
    fn change_unseen_and_expire(&self, path: &str, changes: Vec<Change>) {
        let mut state = self.state.lock().unwrap();
        for change in changes {
            apply(&mut state, path, change);
        }
        let version = state.version;
        let collection = state.collections.get_mut(path).unwrap();
        collection.compacted = version;
        collection.log.clear();
        let gone = gone_line(version);
        for watcher in collection.watchers.drain(..) {
            let _ = watcher.send(gone.clone());
        }
    }

    /// Ends every watch of the collection cleanly, as the API server does at the watch's
    /// timeout: a client resumes from the last version it saw.
    fn close_watches(&self, path: &str) {
        self.collection(path, |c| c.watchers.clear());
    }

    /// How many lists and watches of the collection were served.
    fn requests(&self, path: &str) -> (usize, usize) {
        self.collection(path, |c| (c.lists, c.watches))
    }

    fn collection<T>(&self, path: &str, f: impl FnOnce(&mut Collection) -> T) -> T {
        f(self
            .state
            .lock()
            .unwrap()
            .collections
            .get_mut(path)
            .unwrap())
    }
}

/// Applies one change under a new resource version; returns the watch event it makes.
fn apply(state: &mut ApiState, path: &str, change: Change) -> (&'static str, Value) {
    state.version += 1;
    let version = state.version.to_string();
    let collection = state.collections.get_mut(path).unwrap();
    match change {
        Change::Apply(mut object) => {
            object["metadata"]["resourceVersion"] = json!(version);
            let uid = object["metadata"]["uid"].as_str().unwrap().to_owned();
            let event = match collection.objects.insert(uid, object.clone()) {
                Some(_) => "MODIFIED",
                None => "ADDED",
            };
            (event, object)
        }
        Change::Delete(uid) => {
            let mut object = collection.objects.remove(uid).expect("a stored object");
            object["metadata"]["resourceVersion"] = json!(version);
            ("DELETED", object)
        }
    }
}

/// A watch event line: watch events carry their object's kind and apiVersion.
fn event_line(event_type: &str, collection: &Collection, mut object: Value) -> Bytes {
    object["kind"] = json!(collection.kind);
    object["apiVersion"] = json!(collection.api_version);
    line(&json!({"type": event_type, "object": object}))
}

fn gone_line(version: u64) -> Bytes {
    line(&json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {version}"),
        "reason": "Expired", "code": 410,
    }}))
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// `GET <collection>` (a list) or `GET <collection>?watch=true&resourceVersion=N` (a
/// watch), as kube-runtime's watcher sends them for every namespace.
async fn serve(State(state): State<Arc<Mutex<ApiState>>>, uri: Uri) -> Response {
    let query: BTreeMap<&str, &str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let mut state = state.lock().unwrap();
    let version = state.version;
    let Some(collection) = state.collections.get_mut(uri.path()) else {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"});
        return json_response(StatusCode::NOT_FOUND, Body::from(status.to_string()));
    };
    if matches!(query.get("watch"), Some(&"true" | &"1")) {
        collection.watches += 1;
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (tx, rx) = mpsc::unbounded_channel();
        if from < collection.compacted {
            let _ = tx.send(gone_line(version));
        } else {
            for (_, line) in collection.log.iter().filter(|(v, _)| *v > from) {
                let _ = tx.send(line.clone());
            }
            collection.watchers.push(tx);
        }
        let lines = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
        });
        return json_response(StatusCode::OK, Body::from_stream(lines));
    }
    collection.lists += 1;
    let list = json!({
        "kind": format!("{}List", collection.kind),
        "apiVersion": collection.api_version,
        "metadata": {"resourceVersion": version.to_string()},
        "items": collection.objects.values().collect::<Vec<_>>(),
    });
    json_response(StatusCode::OK, Body::from(list.to_string()))
}

fn json_response(status: StatusCode, body: Body) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap()
}

// Objects, in the API's JSON shapes.

fn meta(namespace: &str, name: &str, uid: &str, labels: Value) -> Value {
    json!({
        "name": name, "namespace": namespace, "uid": uid, "labels": labels,
        "creationTimestamp": "2026-12-01T10:00:00Z",
        // Stripped before storing: the nodes never carry them.
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}],
    })
}

fn controlled_by(mut meta: Value, api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
    meta["ownerReferences"] = json!([{
        "apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    }]);
    meta
}

fn namespace(name: &str) -> Value {
    json!({"metadata": {"name": name, "uid": format!("ns-{name}")}, "status": {"phase": "Active"}})
}

fn kube_node() -> Value {
    json!({
        "metadata": {"name": "node-1", "uid": "node-1-uid"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
        },
    })
}

fn deployment(namespace: &str, name: &str, replicas: i32) -> Value {
    json!({
        "metadata": meta(namespace, name, &format!("dep-{name}"), json!({"app": name})),
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {}},
        "status": {"replicas": replicas, "readyReplicas": replicas},
    })
}

fn replica_set(namespace: &str, deployment: &str, name: &str, replicas: i32) -> Value {
    let meta = meta(
        namespace,
        name,
        &format!("rs-{name}"),
        json!({"app": deployment}),
    );
    json!({
        "metadata": controlled_by(meta, "apps/v1", "Deployment", deployment, &format!("dep-{deployment}")),
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": deployment}}},
        "status": {"replicas": replicas, "readyReplicas": replicas},
    })
}

fn daemon_set(namespace: &str, name: &str) -> Value {
    json!({
        "metadata": meta(namespace, name, &format!("ds-{name}"), json!({"app": name})),
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {}},
        "status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                   "numberMisscheduled": 0, "numberReady": 1},
    })
}

/// A running pod on node-1; `owner` is its controller's (kind, name, uid).
fn pod(namespace: &str, name: &str, labels: Value, owner: Option<(&str, &str, &str)>) -> Value {
    let mut meta = meta(namespace, name, &format!("pod-{name}"), labels);
    if let Some((kind, owner_name, uid)) = owner {
        meta = controlled_by(meta, "apps/v1", kind, owner_name, uid);
    }
    json!({
        "metadata": meta,
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "busybox"}]},
        "status": {
            "phase": "Running", "hostIP": "10.0.0.5", "podIP": format!("10.244.0.{}", name.len()),
            "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": true,
                                   "restartCount": 0, "containerID": format!("containerd://c-{name}")}],
        },
    })
}

fn service(namespace: &str, name: &str, selector: Value) -> Value {
    json!({
        "metadata": meta(namespace, name, &format!("svc-{name}"), json!({"app": name})),
        "spec": {"clusterIP": "10.96.0.10", "selector": selector,
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]},
    })
}

/// 2 namespaces; deployment `web` mid-rollout (replica sets `web-old` and `web-new`, a pod
/// each) and its service in `shop`; deployment `api` and daemon set `agent` in `tools`; a
/// bare pod `debug`; a node.
fn populate(server: &ApiServer) {
    use Change::Apply;
    server.change(
        "/api/v1/namespaces",
        vec![Apply(namespace("shop")), Apply(namespace("tools"))],
    );
    server.change("/api/v1/nodes", vec![Apply(kube_node())]);
    server.change(
        "/apis/apps/v1/deployments",
        vec![
            Apply(deployment("shop", "web", 2)),
            Apply(deployment("tools", "api", 1)),
        ],
    );
    server.change(
        REPLICA_SETS,
        vec![
            Apply(replica_set("shop", "web", "web-old", 1)),
            Apply(replica_set("shop", "web", "web-new", 1)),
            Apply(replica_set("tools", "api", "api-1", 1)),
        ],
    );
    server.change(
        "/apis/apps/v1/daemonsets",
        vec![Apply(daemon_set("tools", "agent"))],
    );
    server.change(
        PODS,
        vec![
            Apply(pod(
                "shop",
                "web-old-a",
                json!({"app": "web"}),
                Some(("ReplicaSet", "web-old", "rs-web-old")),
            )),
            Apply(pod(
                "shop",
                "web-new-a",
                json!({"app": "web"}),
                Some(("ReplicaSet", "web-new", "rs-web-new")),
            )),
            Apply(pod(
                "tools",
                "api-1-a",
                json!({"app": "api"}),
                Some(("ReplicaSet", "api-1", "rs-api-1")),
            )),
            Apply(pod(
                "tools",
                "agent-x",
                json!({"app": "agent"}),
                Some(("DaemonSet", "agent", "ds-agent")),
            )),
            Apply(pod("shop", "debug", json!({"run": "debug"}), None)),
        ],
    );
    server.change(
        SERVICES,
        vec![Apply(service("shop", "web", json!({"app": "web"})))],
    );
}

fn id(uid: &str, topology: &str) -> String {
    kubernetes_node_id(CLUSTER, uid, topology)
}

/// The cluster's nodes as a consumer rebuilds them from the deltas (as the merger does), and
/// every removal a delta carried.
#[derive(Default)]
struct Cluster {
    deltas: Vec<ReportDelta>,
    nodes: BTreeMap<String, Node>,
    removed: Vec<String>,
}

impl Cluster {
    fn fold(&mut self, message: &BorrowedMessage<'_>) {
        let host_id = cluster_host_id(CLUSTER);
        assert_eq!(message.key(), Some(host_id.as_bytes()));
        let delta = ReportDelta::decode(message.payload().unwrap()).expect("a valid ReportDelta");
        assert_eq!(
            (delta.host_id.as_str(), delta.reporter.as_str()),
            (host_id.as_str(), keys::KUBERNETES)
        );
        if delta.full {
            self.nodes.clear();
        }
        for removed in &delta.removals {
            self.nodes.remove(removed);
            self.removed.push(removed.clone());
        }
        for node in &delta.upserts {
            self.nodes.insert(node.id.clone(), node.clone());
        }
        self.deltas.push(delta);
    }

    fn node(&self, uid: &str, topology: &str) -> &Node {
        let id = id(uid, topology);
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id} in {:#?}", self.nodes.keys()))
    }

    fn ids(&self) -> BTreeSet<String> {
        self.nodes.keys().cloned().collect()
    }
}

fn subscribe(kafka: &KafkaArgs) -> StreamConsumer {
    let group = format!(
        "kubernetes-test-{}-{:?}",
        std::process::id(),
        Instant::now()
    );
    let consumer: StreamConsumer = kafka
        .client_config(&[
            ("group.id", group.as_str()),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
        ])
        .create()
        .unwrap();
    consumer.subscribe(&[topics::REPORTS]).unwrap();
    consumer
}

async fn consume_until(
    consumer: &StreamConsumer,
    cluster: &mut Cluster,
    what: &str,
    done: impl Fn(&Cluster) -> bool,
) {
    scope_testkit::consume_until(consumer, WAIT, cluster, Cluster::fold, done)
        .await
        .unwrap_or_else(|timed_out| {
            panic!(
                "{timed_out} waiting for {what}; {} deltas, nodes {:#?}",
                cluster.deltas.len(),
                cluster.nodes.keys()
            )
        });
}

/// The collector binary in cluster role, with its metrics on a free port.
fn cluster_collector(kafka: &KafkaArgs, kubeconfig: &Path, metrics: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scope-collector"));
    command
        .args([
            "--role",
            "cluster",
            "--cluster-id",
            CLUSTER,
            "--brokers",
            &kafka.brokers,
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--publish-interval", "200ms", "--full-every", "1000"])
        .args(["--metrics-addr", metrics]);
    command
}

/// The value of the sample `series` at the collector's /metrics, once it satisfies `ok`.
async fn wait_for_metric(addr: &str, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    wait_for_async(series, WAIT, || {
        let (status, body) = http_request("GET", &format!("http://{addr}/metrics"), &[], None);
        (status == 200).then_some(())?;
        String::from_utf8_lossy(&body).lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            (name == series && ok(value)).then_some(value)
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_the_cluster_and_follows_its_changes_through_a_relist() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let server = ApiServer::start().await;
    populate(&server);
    let dir = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let consumer = subscribe(&kafka);
    let _collector = Process::spawn(cluster_collector(
        &kafka,
        &server.kubeconfig(dir.path()),
        &metrics,
    ));

    // Everything listed: 2 namespaces, the node, 2 deployments, 3 replica sets, the daemon
    // set, 5 pods and the service.
    let mut expected: BTreeSet<String> = [
        ("ns-shop", keys::NAMESPACE),
        ("ns-tools", keys::NAMESPACE),
        ("node-1-uid", keys::KUBE_NODE),
        ("dep-web", keys::DEPLOYMENT),
        ("dep-api", keys::DEPLOYMENT),
        ("rs-web-old", keys::REPLICA_SET),
        ("rs-web-new", keys::REPLICA_SET),
        ("rs-api-1", keys::REPLICA_SET),
        ("ds-agent", keys::DAEMON_SET),
        ("pod-web-old-a", keys::POD),
        ("pod-web-new-a", keys::POD),
        ("pod-api-1-a", keys::POD),
        ("pod-agent-x", keys::POD),
        ("pod-debug", keys::POD),
        ("svc-web", keys::SERVICE),
    ]
    .into_iter()
    .map(|(uid, topology)| id(uid, topology))
    .collect();
    let mut cluster = Cluster::default();
    consume_until(&consumer, &mut cluster, "every object", |c| {
        c.ids() == expected
    })
    .await;
    assert!(cluster.deltas[0].full, "the first delta is full");
    assert!(
        cluster
            .nodes
            .values()
            .all(|n| n.latest(keys::CLUSTER_ID) == Some(CLUSTER))
    );

    let web_pod = cluster.node("pod-web-new-a", keys::POD);
    let latest = |node: &Node, key: &str| node.latest(key).map(str::to_owned);
    assert_eq!(
        latest(web_pod, keys::KUBE_NAME).as_deref(),
        Some("web-new-a")
    );
    assert_eq!(
        latest(web_pod, keys::KUBE_NAMESPACE).as_deref(),
        Some("shop")
    );
    assert_eq!(latest(web_pod, keys::UID).as_deref(), Some("pod-web-new-a"));
    assert_eq!(
        latest(web_pod, keys::OWNER_KIND).as_deref(),
        Some("ReplicaSet")
    );
    assert_eq!(
        latest(web_pod, keys::OWNER_UID).as_deref(),
        Some("rs-web-new")
    );
    assert_eq!(
        latest(web_pod, keys::OWNER_NAME).as_deref(),
        Some("web-new")
    );
    assert_eq!(
        web_pod.parents[keys::REPLICA_SET],
        [id("rs-web-new", keys::REPLICA_SET)]
    );
    assert_eq!(latest(web_pod, keys::NODE_NAME).as_deref(), Some("node-1"));
    assert_eq!(latest(web_pod, keys::HOST_IP).as_deref(), Some("10.0.0.5"));
    assert_eq!(latest(web_pod, keys::POD_IP).as_deref(), Some("10.244.0.9"));
    assert_eq!(
        latest(web_pod, keys::KUBE_STATE).as_deref(),
        Some("Running")
    );
    assert_eq!(
        latest(web_pod, keys::CREATED_AT).as_deref(),
        Some("2026-12-01T10:00:00Z")
    );
    assert_eq!(web_pod.sets[keys::LABELS], ["app=web"]);
    assert_eq!(web_pod.sets[keys::CONTAINER_IDS], ["c-web-new-a"]);

    let agent_pod = cluster.node("pod-agent-x", keys::POD);
    assert_eq!(
        latest(agent_pod, keys::OWNER_KIND).as_deref(),
        Some("DaemonSet")
    );
    assert_eq!(
        agent_pod.parents[keys::DAEMON_SET],
        [id("ds-agent", keys::DAEMON_SET)]
    );
    let bare = cluster.node("pod-debug", keys::POD);
    assert_eq!(latest(bare, keys::OWNER_KIND), None);
    assert!(bare.parents.is_empty());
    assert_eq!(bare.sets[keys::LABELS], ["run=debug"]);

    // Mid-rollout: both replica sets belong to the deployment.
    for rs in ["rs-web-old", "rs-web-new"] {
        let node = cluster.node(rs, keys::REPLICA_SET);
        assert_eq!(
            latest(node, keys::OWNER_KIND).as_deref(),
            Some("Deployment")
        );
        assert_eq!(latest(node, keys::OWNER_UID).as_deref(), Some("dep-web"));
        assert_eq!(
            node.parents[keys::DEPLOYMENT],
            [id("dep-web", keys::DEPLOYMENT)]
        );
        assert_eq!(latest(node, keys::KUBE_STATE).as_deref(), Some("1/1"));
    }
    let web = cluster.node("dep-web", keys::DEPLOYMENT);
    assert_eq!(latest(web, keys::KUBE_STATE).as_deref(), Some("2/2"));
    assert_eq!(latest(web, keys::OWNER_KIND), None);
    assert_eq!(
        latest(cluster.node("ds-agent", keys::DAEMON_SET), keys::KUBE_STATE).as_deref(),
        Some("1/1")
    );
    let svc = cluster.node("svc-web", keys::SERVICE);
    assert_eq!(svc.sets[keys::SELECTOR], ["app=web"]);
    assert_eq!(svc.sets[keys::PORTS], ["80/TCP"]);
    assert_eq!(latest(svc, keys::CLUSTER_IP).as_deref(), Some("10.96.0.10"));
    assert_eq!(
        latest(cluster.node("ns-tools", keys::NAMESPACE), keys::KUBE_STATE).as_deref(),
        Some("Active")
    );
    let node = cluster.node("node-1-uid", keys::KUBE_NODE);
    assert_eq!(latest(node, keys::KUBE_STATE).as_deref(), Some("Ready"));
    assert_eq!(latest(node, keys::HOST_IP).as_deref(), Some("10.0.0.5"));

    // The rollout goes on, watched: the old replica set scales to 0 (MODIFIED) and its pod
    // goes (DELETED).
    server.change(
        REPLICA_SETS,
        vec![Change::Apply(replica_set("shop", "web", "web-old", 0))],
    );
    server.change(PODS, vec![Change::Delete("pod-web-old-a")]);
    let web_old_pod = id("pod-web-old-a", keys::POD);
    expected.remove(&web_old_pod);
    consume_until(
        &consumer,
        &mut cluster,
        "the scale-down and the deletion",
        |c| {
            c.ids() == expected
                && c.node("rs-web-old", keys::REPLICA_SET)
                    .latest(keys::KUBE_STATE)
                    == Some("0/0")
        },
    )
    .await;
    assert_eq!(cluster.removed, std::slice::from_ref(&web_old_pod));

    // The pods' watch is expired (410 Gone) after changes it never delivered: the bare pod
    // went, a new web pod came, another changed its labels. A relist learns all three.
    server.change_unseen_and_expire(
        PODS,
        vec![
            Change::Delete("pod-debug"),
            Change::Apply(pod(
                "shop",
                "web-new-b",
                json!({"app": "web"}),
                Some(("ReplicaSet", "web-new", "rs-web-new")),
            )),
            Change::Apply(pod(
                "shop",
                "web-new-a",
                json!({"app": "web", "canary": "yes"}),
                Some(("ReplicaSet", "web-new", "rs-web-new")),
            )),
        ],
    );
    let debug_pod = id("pod-debug", keys::POD);
    expected.remove(&debug_pod);
    expected.insert(id("pod-web-new-b", keys::POD));
    consume_until(&consumer, &mut cluster, "the relisted pods", |c| {
        c.ids() == expected
            && c.node("pod-web-new-a", keys::POD).sets[keys::LABELS] == ["app=web", "canary=yes"]
    })
    .await;
    // Nothing else was ever removed, during the relist or after.
    assert_eq!(cluster.removed, [web_old_pod, debug_pod]);
    assert!(server.requests(PODS).0 >= 2, "the pods were listed again");
    wait_for_metric(&metrics, "scope_collector_kube_relists_total", |n| n >= 1.0).await;

    // The services' watch ends (a watch timeout) and a change comes before the collector
    // watches again: it resumes from the last version it saw, without a relist, and misses
    // nothing.
    server.close_watches(SERVICES);
    server.change(
        SERVICES,
        vec![Change::Apply(service(
            "shop",
            "web",
            json!({"app": "web", "tier": "front"}),
        ))],
    );
    consume_until(&consumer, &mut cluster, "the service's new selector", |c| {
        c.node("svc-web", keys::SERVICE).sets[keys::SELECTOR] == ["app=web", "tier=front"]
    })
    .await;
    let (lists, watches) = server.requests(SERVICES);
    assert_eq!(lists, 1, "a resumed watch needs no list");
    assert!(watches >= 2, "{watches} watches");
    assert_eq!(cluster.ids(), expected);
    assert!(cluster.deltas[1..].iter().all(|d| !d.full));
    assert_eq!(
        wait_for_metric(&metrics, "scope_collector_kube_api_errors_total", |_| true).await,
        0.0
    );
    // The 4 pods left, as the last publish counted them.
    wait_for_metric(
        &metrics,
        "scope_collector_kube_objects{topology=\"pod\"}",
        |n| n == 4.0,
    )
    .await;
}

/// A cluster collector whose API server does not answer says so once, counts every failed
/// attempt, and keeps running and publishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_said_once_and_retried() {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let kubeconfig = dir.path().join("kubeconfig");
    let closed = free_port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:{closed}\n\
             contexts:\n- name: t\n  context:\n    cluster: t\n    user: t\nusers:\n- name: t\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let log_path = dir.path().join("stderr");
    let mut command = cluster_collector(&kafka, &kubeconfig, &metrics);
    command
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let _collector = Process::spawn(command);

    // Ten watchers, each retried with backoff: well past the first round of failures.
    wait_for_metric(&metrics, "scope_collector_kube_api_errors_total", |n| {
        n >= 25.0
    })
    .await;
    let published = wait_for_metric(&metrics, "scope_collector_deltas_published_total", |n| {
        n >= 1.0
    })
    .await;
    wait_for_metric(&metrics, "scope_collector_deltas_published_total", |n| {
        n > published
    })
    .await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot use the Kubernetes API server"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
