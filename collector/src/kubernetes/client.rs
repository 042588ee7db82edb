//! The API server's client: from `--kubeconfig`, else `$KUBECONFIG` or `~/.kube/config`,
//! else the pod's service account (in-cluster), retried with backoff until one loads.

use std::{
    path::{Path, PathBuf},
    sync::Once,
    time::Duration,
};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use super::health::ApiHealth;

/// How long the first retry waits; each failure doubles it up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client of the cluster's API server, once its configuration loads. A configuration that
/// does not (a kubeconfig not mounted yet, no service account) is reported through `health`
/// and retried: the collector keeps publishing meanwhile.
pub async fn connect(kubeconfig: Option<PathBuf>, health: &ApiHealth) -> Client {
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match client(kubeconfig.as_deref()).await {
            Ok(client) => {
                health.answered(CONFIG);
                return client;
            }
            Err(error) => health.failed(CONFIG, &*error),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

/// What a failure to load the configuration is reported as, beside the kinds watched.
const CONFIG: &str = "kubeconfig";

async fn client(kubeconfig: Option<&Path>) -> Result<Client, BoxError> {
    install_tls_provider();
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| format!("reading --kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// Makes ring the process's TLS provider unless one is set. Only ring is linked into the
/// collector's own binary, but `scope` and the tests also link crates that enable aws-lc-rs,
/// and with two providers rustls has no default and kube's TLS set-up would panic.
fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means another part of the process installed one first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
