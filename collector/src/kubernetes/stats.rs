//! The cluster collector's own counters, for one process; what it publishes is counted in
//! [`crate::Stats`] as for the node role.

use std::sync::{
    LazyLock,
    atomic::{AtomicU64, Ordering},
};

use scope_runtime::metrics::Families;
use scope_schemas::report::keys::KUBERNETES_TOPOLOGIES;

#[derive(Debug, Default)]
pub struct KubeStats {
    /// Requests to the API server that failed, and kubeconfig loads that did (all retried).
    pub api_errors: AtomicU64,
    /// Watches the API server expired (410 Gone), each followed by a relist.
    pub relists: AtomicU64,
    /// Objects of each topology in the last publish, in [`KUBERNETES_TOPOLOGIES`] order.
    pub objects: [AtomicU64; KUBERNETES_TOPOLOGIES.len()],
    /// Objects left out of the last publish for want of a uid.
    pub skipped_objects: AtomicU64,
}

static GLOBAL: LazyLock<KubeStats> = LazyLock::new(KubeStats::default);

/// The counters of this process's cluster collector.
pub fn kube_stats() -> &'static KubeStats {
    &GLOBAL
}

impl KubeStats {
    pub fn write_metrics(&self, out: &mut Families) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.counter(
            "scope_collector_kube_api_errors_total",
            "Failed requests to the Kubernetes API server and kubeconfig loads, all retried with backoff.",
            get(&self.api_errors),
        );
        out.counter(
            "scope_collector_kube_relists_total",
            "Watches the Kubernetes API server expired (410 Gone), each followed by a relist.",
            get(&self.relists),
        );
        out.gauge_by(
            "scope_collector_kube_objects",
            "Kubernetes objects in the cluster collector's last publish, by topology.",
            "topology",
            KUBERNETES_TOPOLOGIES
                .iter()
                .zip(&self.objects)
                .map(|(topology, count)| (*topology, get(count))),
        );
        out.gauge(
            "scope_collector_kube_objects_skipped",
            "Kubernetes objects left out of the last publish because they have no uid.",
            get(&self.skipped_objects),
        );
    }
}
