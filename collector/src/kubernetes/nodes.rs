//! Kubernetes objects as report nodes, in Weave Scope's shape: the keys of
//! [`scope_schemas::report::keys`] every object carries (cluster, uid, name, namespace,
//! labels, controller), then those of its kind.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
        batch::v1::{CronJob, Job},
        core::v1::{ContainerStatus, Namespace, Node as KubeNode, Pod, Service},
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use scope_schemas::{
    Node,
    report::{keys, kubernetes_node_id},
};

/// A kind the cluster collector reports.
pub trait Reported: kube::Resource<DynamicType = ()> {
    /// Its topology in [`keys::KUBERNETES_TOPOLOGIES`].
    const TOPOLOGY: &'static str;

    /// Adds the keys of its kind.
    fn describe(&self, node: &mut NodeBuilder);
}

/// A node being filled, every latest value stamped with the same time.
pub struct NodeBuilder {
    node: Node,
    now_us: i64,
}

impl NodeBuilder {
    fn latest(&mut self, key: &str, value: impl ToString) {
        let value = value.to_string();
        // An empty string is the API's way of saying "unset" (a pod not yet scheduled).
        if !value.is_empty() {
            self.node = std::mem::take(&mut self.node).with_latest(key, value, self.now_us);
        }
    }

    fn latest_opt(&mut self, key: &str, value: Option<impl ToString>) {
        if let Some(value) = value {
            self.latest(key, value);
        }
    }

    /// `<ready>/<desired>`, as `kubectl get` prints a controller's replicas.
    fn replicas(&mut self, ready: Option<i32>, desired: Option<i32>) {
        let ready = ready.unwrap_or(0);
        self.latest(
            keys::KUBE_STATE,
            format!("{ready}/{}", desired.unwrap_or(0)),
        );
    }

    fn set(&mut self, key: &str, values: impl IntoIterator<Item = String>) {
        let values: Vec<String> = values.into_iter().collect();
        if !values.is_empty() {
            self.node.sets.insert(key.to_owned(), values);
        }
    }
}

/// The report node of `object` in cluster `cluster_id`; `None` for an object without a uid,
/// which the API server never serves and which would have no node id.
pub fn node_of<K: Reported>(object: &K, cluster_id: &str, now_us: i64) -> Option<Node> {
    let meta = object.meta();
    let uid = meta.uid.as_deref().filter(|uid| !uid.is_empty())?;
    let mut node = NodeBuilder {
        node: Node::new(
            K::TOPOLOGY,
            kubernetes_node_id(cluster_id, uid, K::TOPOLOGY),
        ),
        now_us,
    };
    node.latest(keys::CLUSTER_ID, cluster_id);
    node.latest(keys::UID, uid);
    node.latest_opt(keys::KUBE_NAME, meta.name.as_deref());
    node.latest_opt(keys::KUBE_NAMESPACE, meta.namespace.as_deref());
    node.latest_opt(
        keys::CREATED_AT,
        meta.creation_timestamp.as_ref().map(|time| time.0),
    );
    node.set(keys::LABELS, key_values(meta.labels.as_ref()));
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    if let Some(owner) = controller {
        node.latest(keys::OWNER_KIND, &owner.kind);
        node.latest(keys::OWNER_UID, &owner.uid);
        node.latest(keys::OWNER_NAME, &owner.name);
        if let Some(topology) = owner_topology(owner) {
            node.node.parents.insert(
                topology.to_owned(),
                vec![kubernetes_node_id(cluster_id, &owner.uid, topology)],
            );
        }
    }
    object.describe(&mut node);
    Some(node.node)
}

/// The topology of a controller this collector reports, by its API group and kind: a
/// custom resource may well be called `Deployment` too.
fn owner_topology(owner: &OwnerReference) -> Option<&'static str> {
    let group = owner.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    Some(match (group, owner.kind.as_str()) {
        ("apps", "ReplicaSet") => keys::REPLICA_SET,
        ("apps", "Deployment") => keys::DEPLOYMENT,
        ("apps", "DaemonSet") => keys::DAEMON_SET,
        ("apps", "StatefulSet") => keys::STATEFUL_SET,
        ("batch", "Job") => keys::JOB,
        ("batch", "CronJob") => keys::CRON_JOB,
        _ => return None,
    })
}

fn key_values(map: Option<&BTreeMap<String, String>>) -> impl Iterator<Item = String> + '_ {
    map.into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"))
}

/// A container id without its runtime's scheme (`containerd://`, `docker://`, `cri-o://`),
/// as the node collectors name containers.
fn container_id(status: &ContainerStatus) -> Option<String> {
    let id = status.container_id.as_deref()?;
    let id = id.split_once("://").map_or(id, |(_, id)| id);
    (!id.is_empty()).then(|| id.to_owned())
}

impl Reported for Pod {
    const TOPOLOGY: &'static str = keys::POD;

    fn describe(&self, node: &mut NodeBuilder) {
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        node.latest_opt(keys::NODE_NAME, spec.and_then(|s| s.node_name.as_ref()));
        node.latest_opt(keys::HOST_IP, status.and_then(|s| s.host_ip.as_ref()));
        node.latest_opt(keys::POD_IP, status.and_then(|s| s.pod_ip.as_ref()));
        node.latest_opt(keys::KUBE_STATE, status.and_then(|s| s.phase.as_ref()));
        let containers = status.into_iter().flat_map(|s| {
            [
                &s.init_container_statuses,
                &s.container_statuses,
                &s.ephemeral_container_statuses,
            ]
            .into_iter()
            .flatten()
            .flatten()
        });
        node.set(keys::CONTAINER_IDS, containers.filter_map(container_id));
    }
}

impl Reported for ReplicaSet {
    const TOPOLOGY: &'static str = keys::REPLICA_SET;

    fn describe(&self, node: &mut NodeBuilder) {
        node.replicas(
            self.status.as_ref().and_then(|s| s.ready_replicas),
            self.spec.as_ref().and_then(|s| s.replicas).or(Some(1)),
        );
    }
}

impl Reported for Deployment {
    const TOPOLOGY: &'static str = keys::DEPLOYMENT;

    fn describe(&self, node: &mut NodeBuilder) {
        node.replicas(
            self.status.as_ref().and_then(|s| s.ready_replicas),
            self.spec.as_ref().and_then(|s| s.replicas).or(Some(1)),
        );
    }
}

impl Reported for StatefulSet {
    const TOPOLOGY: &'static str = keys::STATEFUL_SET;

    fn describe(&self, node: &mut NodeBuilder) {
        node.replicas(
            self.status.as_ref().and_then(|s| s.ready_replicas),
            self.spec.as_ref().and_then(|s| s.replicas).or(Some(1)),
        );
    }
}

impl Reported for DaemonSet {
    const TOPOLOGY: &'static str = keys::DAEMON_SET;

    fn describe(&self, node: &mut NodeBuilder) {
        let status = self.status.as_ref();
        node.replicas(
            status.map(|s| s.number_ready),
            status.map(|s| s.desired_number_scheduled),
        );
    }
}

impl Reported for Job {
    const TOPOLOGY: &'static str = keys::JOB;

    /// Succeeded out of the completions asked for, as `kubectl get jobs` prints them.
    fn describe(&self, node: &mut NodeBuilder) {
        node.replicas(
            self.status.as_ref().and_then(|s| s.succeeded),
            self.spec.as_ref().and_then(|s| s.completions).or(Some(1)),
        );
    }
}

impl Reported for CronJob {
    const TOPOLOGY: &'static str = keys::CRON_JOB;

    /// Nothing beyond the common keys: its jobs name it as their controller.
    fn describe(&self, _: &mut NodeBuilder) {}
}

impl Reported for Service {
    const TOPOLOGY: &'static str = keys::SERVICE;

    fn describe(&self, node: &mut NodeBuilder) {
        let Some(spec) = &self.spec else { return };
        node.latest_opt(keys::CLUSTER_IP, spec.cluster_ip.as_ref());
        node.set(keys::SELECTOR, key_values(spec.selector.as_ref()));
        node.set(
            keys::PORTS,
            spec.ports.iter().flatten().map(|port| {
                let protocol = port.protocol.as_deref().unwrap_or("TCP");
                format!("{}/{protocol}", port.port)
            }),
        );
    }
}

impl Reported for Namespace {
    const TOPOLOGY: &'static str = keys::NAMESPACE;

    fn describe(&self, node: &mut NodeBuilder) {
        node.latest_opt(
            keys::KUBE_STATE,
            self.status.as_ref().and_then(|s| s.phase.as_ref()),
        );
    }
}

impl Reported for KubeNode {
    const TOPOLOGY: &'static str = keys::KUBE_NODE;

    /// `Ready` or `NotReady`, as `kubectl get nodes` prints them, and its internal address.
    fn describe(&self, node: &mut NodeBuilder) {
        let Some(status) = &self.status else { return };
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        node.latest(keys::KUBE_STATE, if ready { "Ready" } else { "NotReady" });
        let internal_ip = status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == "InternalIP");
        node.latest_opt(keys::HOST_IP, internal_ip.map(|a| &a.address));
    }
}

#[cfg(test)]
mod tests;
