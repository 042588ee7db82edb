use serde_json::json;

use super::*;

const NOW: i64 = 1_700_000_000_000_000;

fn from<K: k8s_openapi::serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

fn owner(
    api_version: &str,
    kind: &str,
    name: &str,
    uid: &str,
    controller: bool,
) -> serde_json::Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": controller})
}

#[test]
fn a_pod_names_its_controller_node_and_containers() {
    let pod: Pod = from(json!({
        "metadata": {
            "name": "web-7d4b9-abcde", "namespace": "shop", "uid": "p-1",
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"pod-template-hash": "7d4b9", "app": "web"},
            "ownerReferences": [
                owner("v1", "ConfigMap", "not-the-controller", "cm-1", false),
                owner("apps/v1", "ReplicaSet", "web-7d4b9", "rs-1", true),
            ],
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "web"}]},
        "status": {
            "phase": "Running", "hostIP": "10.0.0.5", "podIP": "",
            "initContainerStatuses": [{"name": "init", "containerID": "cri-o://aaa", "image": "i", "imageID": "", "ready": true, "restartCount": 0}],
            "containerStatuses": [
                {"name": "web", "containerID": "containerd://bbb", "image": "i", "imageID": "", "ready": true, "restartCount": 0},
                {"name": "waiting", "image": "i", "imageID": "", "ready": false, "restartCount": 0},
            ],
        },
    }));
    let node = node_of(&pod, "c1", NOW).unwrap();
    assert_eq!(
        (node.topology.as_str(), node.id.as_str()),
        ("pod", "c1/p-1;<pod>")
    );
    let latest = |key| node.latest(key);
    assert_eq!(latest(keys::CLUSTER_ID), Some("c1"));
    assert_eq!(latest(keys::UID), Some("p-1"));
    assert_eq!(latest(keys::KUBE_NAME), Some("web-7d4b9-abcde"));
    assert_eq!(latest(keys::KUBE_NAMESPACE), Some("shop"));
    assert_eq!(latest(keys::CREATED_AT), Some("2026-12-01T10:00:00Z"));
    assert_eq!(latest(keys::OWNER_KIND), Some("ReplicaSet"));
    assert_eq!(latest(keys::OWNER_UID), Some("rs-1"));
    assert_eq!(latest(keys::OWNER_NAME), Some("web-7d4b9"));
    assert_eq!(latest(keys::NODE_NAME), Some("node-1"));
    assert_eq!(latest(keys::HOST_IP), Some("10.0.0.5"));
    assert_eq!(latest(keys::POD_IP), None, "an empty address is unset");
    assert_eq!(latest(keys::KUBE_STATE), Some("Running"));
    assert_eq!(
        node.sets[keys::LABELS],
        ["app=web", "pod-template-hash=7d4b9"]
    );
    assert_eq!(node.sets[keys::CONTAINER_IDS], ["aaa", "bbb"]);
    assert_eq!(node.parents[keys::REPLICA_SET], ["c1/rs-1;<replica_set>"]);
    assert_eq!(node.parents.len(), 1);
    assert!(node.latest.values().all(|v| v.timestamp_us == NOW));
}

#[test]
fn an_owner_of_another_api_group_is_named_but_not_a_parent() {
    let pod: Pod = from(
        json!({"metadata": {"name": "x", "uid": "p-2", "ownerReferences": [
            owner("example.com/v1", "Deployment", "mine", "cr-1", true)
        ]}}),
    );
    let node = node_of(&pod, "c1", NOW).unwrap();
    assert_eq!(node.latest(keys::OWNER_KIND), Some("Deployment"));
    assert!(node.parents.is_empty());
    assert!(!node.sets.contains_key(keys::LABELS));

    let bare: Pod = from(json!({"metadata": {"name": "bare", "uid": "p-3"}}));
    let node = node_of(&bare, "c1", NOW).unwrap();
    assert_eq!(node.latest(keys::OWNER_KIND), None);
    assert!(node.parents.is_empty());
}

#[test]
fn an_object_without_a_uid_has_no_node() {
    let pod: Pod = from(json!({"metadata": {"name": "x"}}));
    assert!(node_of(&pod, "c1", NOW).is_none());
}

#[test]
fn controllers_report_ready_out_of_desired() {
    let deployment: Deployment = from(json!({
        "metadata": {"name": "web", "uid": "d-1"},
        "spec": {"replicas": 3, "selector": {}, "template": {}},
        "status": {"readyReplicas": 2},
    }));
    let node = node_of(&deployment, "c1", NOW).unwrap();
    assert_eq!(node.latest(keys::KUBE_STATE), Some("2/3"));
    assert_eq!(node.id, "c1/d-1;<deployment>");
    // Unset replicas default to 1, as the API server's defaulting does.
    let rs: ReplicaSet = from(json!({"metadata": {"uid": "rs-1"}, "spec": {"selector": {}}}));
    assert_eq!(
        node_of(&rs, "c1", NOW).unwrap().latest(keys::KUBE_STATE),
        Some("0/1")
    );
    let ds: DaemonSet = from(json!({"metadata": {"uid": "ds-1"}, "status": {
        "numberReady": 4, "desiredNumberScheduled": 5, "currentNumberScheduled": 5, "numberMisscheduled": 0
    }}));
    assert_eq!(
        node_of(&ds, "c1", NOW).unwrap().latest(keys::KUBE_STATE),
        Some("4/5")
    );
    let job: Job = from(
        json!({"metadata": {"uid": "j-1"}, "spec": {"template": {}}, "status": {"succeeded": 1}}),
    );
    assert_eq!(
        node_of(&job, "c1", NOW).unwrap().latest(keys::KUBE_STATE),
        Some("1/1")
    );
}

#[test]
fn services_namespaces_and_nodes() {
    let service: Service = from(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "s-1"},
        "spec": {"clusterIP": "None", "selector": {"app": "web", "tier": "front"},
                 "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]},
    }));
    let node = node_of(&service, "c1", NOW).unwrap();
    assert_eq!(node.latest(keys::CLUSTER_IP), Some("None"));
    assert_eq!(node.sets[keys::SELECTOR], ["app=web", "tier=front"]);
    assert_eq!(node.sets[keys::PORTS], ["80/TCP", "53/UDP"]);

    let namespace: Namespace =
        from(json!({"metadata": {"name": "shop", "uid": "n-1"}, "status": {"phase": "Active"}}));
    let node = node_of(&namespace, "c1", NOW).unwrap();
    assert_eq!(
        (node.id.as_str(), node.latest(keys::KUBE_STATE)),
        ("c1/n-1;<namespace>", Some("Active"))
    );
    assert_eq!(node.latest(keys::KUBE_NAMESPACE), None);

    let kube_node: KubeNode = from(
        json!({"metadata": {"name": "node-1", "uid": "k-1"}, "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
        }}),
    );
    let node = node_of(&kube_node, "c1", NOW).unwrap();
    assert_eq!(node.topology, keys::KUBE_NODE);
    assert_eq!(node.latest(keys::KUBE_STATE), Some("Ready"));
    assert_eq!(node.latest(keys::HOST_IP), Some("10.0.0.5"));
}
