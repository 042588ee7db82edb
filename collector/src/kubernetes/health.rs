//! Whether the API server answers, as the watchers see it: said once when it stops (a warning
//! naming the first failure), once when it answers again, and every failure counted.

use std::{collections::BTreeSet, sync::Mutex};

use super::stats::kube_stats;
use crate::stats::Stats;

/// What is failing now: kinds whose watcher's last request failed, and the kubeconfig.
#[derive(Debug, Default)]
pub struct ApiHealth {
    failing: Mutex<BTreeSet<&'static str>>,
}

impl ApiHealth {
    /// A request for `what` failed and will be retried with backoff. Only the first failure
    /// of an outage is a warning: ten watchers would otherwise say the same thing ten times,
    /// and again at every retry.
    pub fn failed(&self, what: &'static str, error: &dyn std::error::Error) {
        Stats::add(&kube_stats().api_errors, 1);
        let mut failing = self.lock();
        let first = failing.is_empty();
        if failing.insert(what) && first {
            tracing::warn!(
                what, error = %error,
                "cannot use the Kubernetes API server; retrying with backoff, and publishing what is known meanwhile"
            );
        } else {
            tracing::debug!(what, error = %error, "Kubernetes API request failed again");
        }
    }

    /// A request for `what` succeeded.
    pub fn answered(&self, what: &'static str) {
        let mut failing = self.lock();
        if failing.remove(what) && failing.is_empty() {
            tracing::info!("the Kubernetes API server answers again");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<&'static str>> {
        // The set stays consistent whatever panicked while holding it.
        self.failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
