//! A local server speaking the Kubernetes API over real HTTP, for the cluster collector: no
//! API server can run here. It serves what kube-runtime's watchers ask of every collection
//! the collector watches (lists, watch streams resuming from a resource version, a watch that
//! ends, one expired with `410 Gone`), and objects in the API's JSON shapes.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, Uri, header},
    response::Response,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const PODS: &str = "/api/v1/pods";
pub const SERVICES: &str = "/api/v1/services";
pub const NAMESPACES: &str = "/api/v1/namespaces";
pub const NODES: &str = "/api/v1/nodes";
pub const REPLICA_SETS: &str = "/apis/apps/v1/replicasets";
pub const DEPLOYMENTS: &str = "/apis/apps/v1/deployments";
pub const DAEMON_SETS: &str = "/apis/apps/v1/daemonsets";

/// Each collection the cluster collector watches: its path, kind and API version.
const COLLECTIONS: [(&str, &str, &str); 10] = [
    (PODS, "Pod", "v1"),
    (SERVICES, "Service", "v1"),
    (NAMESPACES, "Namespace", "v1"),
    (NODES, "Node", "v1"),
    (REPLICA_SETS, "ReplicaSet", "apps/v1"),
    (DEPLOYMENTS, "Deployment", "apps/v1"),
    (DAEMON_SETS, "DaemonSet", "apps/v1"),
    ("/apis/apps/v1/statefulsets", "StatefulSet", "apps/v1"),
    ("/apis/batch/v1/jobs", "Job", "batch/v1"),
    ("/apis/batch/v1/cronjobs", "CronJob", "batch/v1"),
];

/// A change to a collection.
pub enum Change {
    /// Adds the object, or replaces the one with its uid.
    Apply(Value),
    /// Deletes the object with this uid.
    Delete(&'static str),
}

/// One collection of the server.
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

/// The server, on a free loopback port, stopped when dropped. It runs in the Tokio runtime
/// that starts it: a multi-threaded one keeps serving while the test blocks.
pub struct ApiServer {
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
    pub async fn start() -> ApiServer {
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
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        write_kubeconfig(dir, &format!("http://{}", self.addr))
    }

    /// Applies `changes` to the collection at `path`, each sent to its watchers.
    pub fn change(&self, path: &str, changes: Vec<Change>) {
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
    pub fn change_unseen_and_expire(&self, path: &str, changes: Vec<Change>) {
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
    pub fn close_watches(&self, path: &str) {
        self.collection(path, |c| c.watchers.clear());
    }

    /// How many lists and watches of the collection were served.
    pub fn requests(&self, path: &str) -> (usize, usize) {
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

/// A kubeconfig under `dir` whose one context is the API server at `server` (a URL), with
/// no credentials.
pub fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
         clusters:\n- name: test\n  cluster:\n    server: {server}\n\
         contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
         users:\n- name: test\n  user: {{}}\n"
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
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

// Objects, in the API's JSON shapes. A namespaced object starts from its `meta`, which
// `controlled_by` gives an owner; each controller selects the labels of its `meta`.

/// The metadata of a namespaced object.
pub fn meta(namespace: &str, name: &str, uid: &str, labels: Value) -> Value {
    json!({
        "name": name, "namespace": namespace, "uid": uid, "labels": labels,
        "creationTimestamp": "2026-12-01T10:00:00Z",
        // The collector strips them before storing: its nodes never carry them.
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}],
    })
}

/// `meta` with a controlling owner: a pod's replica set or daemon set, a replica set's
/// deployment.
pub fn controlled_by(
    mut meta: Value,
    api_version: &str,
    kind: &str,
    name: &str,
    uid: &str,
) -> Value {
    meta["ownerReferences"] = json!([{
        "apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    }]);
    meta
}

/// An active namespace, whose uid is `ns-<name>`.
pub fn namespace(name: &str) -> Value {
    json!({"metadata": {"name": name, "uid": format!("ns-{name}")}, "status": {"phase": "Active"}})
}

/// A ready node with one internal address, whose uid is `<name>-uid`.
pub fn kube_node(name: &str, ip: &str) -> Value {
    json!({
        "metadata": {"name": name, "uid": format!("{name}-uid")},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": ip}],
        },
    })
}

fn selector(meta: &Value) -> Value {
    json!({"matchLabels": meta["labels"]})
}

/// A deployment with all its `replicas` ready.
pub fn deployment(meta: Value, replicas: i32) -> Value {
    json!({
        "spec": {"replicas": replicas, "selector": selector(&meta), "template": {}},
        "status": {"replicas": replicas, "readyReplicas": replicas},
        "metadata": meta,
    })
}

/// A replica set of `deployment` (a [`deployment`]) with all its `replicas` ready: in its
/// namespace, with its labels, controlled by it.
pub fn replica_set(deployment: &Value, name: &str, uid: &str, replicas: i32) -> Value {
    let owner = &deployment["metadata"];
    let text = |key: &str| owner[key].as_str().expect("a deployment's metadata");
    let meta = meta(text("namespace"), name, uid, owner["labels"].clone());
    let meta = controlled_by(meta, "apps/v1", "Deployment", text("name"), text("uid"));
    json!({
        "spec": {"replicas": replicas, "selector": selector(&meta)},
        "status": {"replicas": replicas, "readyReplicas": replicas},
        "metadata": meta,
    })
}

/// A daemon set with one pod, ready.
pub fn daemon_set(meta: Value) -> Value {
    json!({
        "spec": {"selector": selector(&meta), "template": {}},
        "status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                   "numberMisscheduled": 0, "numberReady": 1},
        "metadata": meta,
    })
}

/// A running pod on `node` (a [`kube_node`]) with one container, `main`, whose id (as the
/// runtime names it, without `containerd://`) is `container_id`.
pub fn pod(meta: Value, node: &Value, ip: &str, container_id: &str) -> Value {
    json!({
        "metadata": meta,
        "spec": {"nodeName": node["metadata"]["name"],
                 "containers": [{"name": "main", "image": "busybox"}]},
        "status": {
            "phase": "Running", "hostIP": node["status"]["addresses"][0]["address"], "podIP": ip,
            "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": true,
                                   "restartCount": 0, "containerID": format!("containerd://{container_id}")}],
        },
    })
}

/// A service of cluster IP 10.96.0.10, port 80 to the pods' 8080.
pub fn service(meta: Value, selector: Value) -> Value {
    json!({
        "metadata": meta,
        "spec": {"clusterIP": "10.96.0.10", "selector": selector,
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]},
    })
}
