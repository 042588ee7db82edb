//! One watcher per kind, each keeping a reflector's store up to date; every publish reads
//! the stores.
//!
//! kube-runtime's watcher lists, then watches from the list's resource version. A watch
//! that ends is resumed from the last version seen, so nothing in between is missed; one the
//! API server expired (410 Gone) is redone from a fresh list, and the reflector swaps that
//! list in whole once complete, so objects deleted meanwhile disappear and the others never
//! do. Any other failure is retried with kube-runtime's default backoff.

use std::{
    fmt::Debug,
    future::Future,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
};

use futures_util::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
        batch::v1::{CronJob, Job},
        core::v1::{Namespace, Node as KubeNode, Pod, Service},
    },
    serde::de::DeserializeOwned,
};
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store, store::Writer},
        watcher,
    },
};
use scope_schemas::{Node, report::keys::KUBERNETES_TOPOLOGIES};
use tokio::task::{JoinHandle, JoinSet};

use super::{
    client,
    health::ApiHealth,
    nodes::{Reported, node_of},
    stats::kube_stats,
};
use crate::stats::Stats;

/// The stores of every kind reported, and the task that fills them: it connects, then runs
/// one watcher per kind. Dropping it stops them.
pub struct Cluster {
    stores: Vec<Box<dyn NodeSource>>,
    task: JoinHandle<()>,
}

/// Starts a kind's watcher once there is a client.
type Start =
    Box<dyn FnOnce(Client, Arc<ApiHealth>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

impl Cluster {
    /// Starts watching the cluster that `kubeconfig` (or the default configuration) names.
    pub fn watch(kubeconfig: Option<PathBuf>) -> Self {
        let mut kinds = Kinds::default();
        kinds.add::<Pod>();
        kinds.add::<ReplicaSet>();
        kinds.add::<Deployment>();
        kinds.add::<DaemonSet>();
        kinds.add::<StatefulSet>();
        kinds.add::<Job>();
        kinds.add::<CronJob>();
        kinds.add::<Service>();
        kinds.add::<Namespace>();
        kinds.add::<KubeNode>();
        let Kinds { stores, starts } = kinds;
        let task = tokio::spawn(async move {
            let health = Arc::new(ApiHealth::default());
            let client = client::connect(kubeconfig, &health).await;
            let mut watchers = JoinSet::new();
            for start in starts {
                watchers.spawn(start(client.clone(), Arc::clone(&health)));
            }
            // Watchers never end on their own; one that panicked leaves its kind frozen.
            while let Some(ended) = watchers.join_next().await {
                if let Err(error) = ended {
                    tracing::error!(%error, "a Kubernetes watcher stopped; its objects are no longer updated");
                }
            }
        });
        Cluster { stores, task }
    }

    /// The node of every object listed so far, stamped `now_us`. A kind not listed yet
    /// contributes nothing (rather than its objects' removal).
    pub fn nodes(&self, cluster_id: &str, now_us: i64) -> Vec<Node> {
        let stats = kube_stats();
        let mut nodes = Vec::new();
        let mut skipped = 0;
        for store in &self.stores {
            let before = nodes.len();
            skipped += store.nodes(cluster_id, now_us, &mut nodes);
            if let Some(i) = KUBERNETES_TOPOLOGIES
                .iter()
                .position(|t| *t == store.topology())
            {
                stats.objects[i].store((nodes.len() - before) as u64, Ordering::Relaxed);
            }
        }
        if skipped > 0 {
            tracing::debug!(skipped, "Kubernetes objects without a uid left out");
        }
        stats.skipped_objects.store(skipped, Ordering::Relaxed);
        nodes
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Aborting the task drops its JoinSet, which aborts the watchers.
        self.task.abort();
    }
}

#[derive(Default)]
struct Kinds {
    stores: Vec<Box<dyn NodeSource>>,
    starts: Vec<Start>,
}

impl Kinds {
    fn add<K>(&mut self)
    where
        K: Reported + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    {
        let (store, writer) = reflector::store::<K>();
        self.stores.push(Box::new(store));
        self.starts.push(Box::new(move |client, health| {
            Box::pin(watch(Api::<K>::all(client), writer, health))
        }));
    }
}

/// Keeps `writer`'s store equal to the API server's objects of kind `K`, until aborted.
async fn watch<K>(api: Api<K>, writer: Writer<K>, health: Arc<ApiHealth>)
where
    K: Reported + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip)
        .reflect(writer);
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            // Sent before the list is asked for: it says nothing about the server.
            Ok(watcher::Event::Init) => {}
            Ok(_) => health.answered(K::TOPOLOGY),
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                Stats::add(&kube_stats().relists, 1);
                tracing::debug!(
                    topology = K::TOPOLOGY,
                    "the API server expired the watch (410 Gone); relisting"
                );
            }
            Err(error) => health.failed(K::TOPOLOGY, &error),
        }
    }
}

/// Drops what no node carries before an object is stored: managed fields and annotations
/// (`kubectl apply` keeps a copy of the whole object in one) are often most of its size.
fn strip<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
}

/// A store, as the publisher reads it.
trait NodeSource: Send + Sync {
    fn topology(&self) -> &'static str;

    /// Appends the node of every stored object to `out`; returns how many had none.
    fn nodes(&self, cluster_id: &str, now_us: i64, out: &mut Vec<Node>) -> u64;
}

impl<K> NodeSource for Store<K>
where
    K: Reported + Clone + Send + Sync + 'static,
{
    fn topology(&self) -> &'static str {
        K::TOPOLOGY
    }

    fn nodes(&self, cluster_id: &str, now_us: i64, out: &mut Vec<Node>) -> u64 {
        let mut skipped = 0;
        for object in self.state() {
            match node_of(&*object, cluster_id, now_us) {
                Some(node) => out.push(node),
                None => skipped += 1,
            }
        }
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_objects_keep_no_managed_fields_nor_annotations() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web", "uid": "p-1", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}],
            },
        }))
        .unwrap();
        strip(&mut pod);
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(pod.metadata.annotations, None);
        assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
    }
}
