//! The collector's command line, every flag with an `SCOPE_*` environment variable, and the
//! cross-field rules checked before anything runs.

use std::{path::PathBuf, time::Duration};

use scope_kafka::KafkaArgs;
use scope_runtime::{
    component::{Component, Context},
    metrics::Families,
    service::default_duration,
};

use crate::{Error, tracker::TrackerChoice};

const DEFAULT_SPY_INTERVAL: &str = "1s";
const DEFAULT_PUBLISH_INTERVAL: &str = "3s";
const DEFAULT_FULL_EVERY: u32 = 5;
const DEFAULT_PROC_ROOT: &str = "/proc";
const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
const DEFAULT_CLUSTER_ID: &str = "default";
const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Settings of one collector (one per host).
#[derive(clap::Args, Clone, Debug)]
pub struct CollectorArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Stable id of this host in every record and node id [default: the host name].
    #[arg(long, env = "SCOPE_HOST_ID")]
    pub host_id: Option<String>,
    /// How often /proc is read for processes and connections. With the eBPF tracker,
    /// connections need no polling and processes are read once per publish instead.
    #[arg(long, env = "SCOPE_SPY_INTERVAL", default_value = DEFAULT_SPY_INTERVAL, value_parser = humantime::parse_duration)]
    pub spy_interval: Duration,
    /// How often the host and process reporters publish a report delta.
    #[arg(long, env = "SCOPE_PUBLISH_INTERVAL", default_value = DEFAULT_PUBLISH_INTERVAL, value_parser = humantime::parse_duration)]
    pub publish_interval: Duration,
    /// Every Nth publish is a full report (all nodes), and re-announces open connections.
    #[arg(long, env = "SCOPE_FULL_EVERY", default_value_t = DEFAULT_FULL_EVERY)]
    pub full_every: u32,
    /// Where the host's procfs is mounted (e.g. /host/proc in a container).
    #[arg(long, env = "SCOPE_PROC_ROOT", default_value = DEFAULT_PROC_ROOT)]
    pub proc_root: PathBuf,
    /// The Docker Engine API socket, watched for containers' names, images, labels, states
    /// and addresses (Podman serves the same API at /run/podman/podman.sock). A socket that
    /// is not there is said once and retried in the background, at most every 30 s.
    #[arg(long, env = "SCOPE_DOCKER_SOCKET", default_value = DEFAULT_DOCKER_SOCKET)]
    pub docker_socket: PathBuf,
    /// The CRI socket of containerd or CRI-O, watched for Kubernetes containers' names,
    /// images, labels, states and pods [default: /run/containerd/containerd.sock, else
    /// /var/run/crio/crio.sock if that exists]. Not there: said once, retried as the Docker
    /// socket is.
    #[arg(long, env = "SCOPE_CRI_SOCKET")]
    pub cri_socket: Option<PathBuf>,
    /// Where the host's cgroup filesystem is mounted, for containers' CPU and memory (e.g.
    /// /host/sys/fs/cgroup in a container).
    #[arg(long, env = "SCOPE_CGROUP_ROOT", default_value = DEFAULT_CGROUP_ROOT)]
    pub cgroup_root: PathBuf,
    /// How connections are learnt: `ebpf` traces every connect, accept and close in the
    /// kernel; `procfs` polls /proc every spy and misses connections shorter than that;
    /// `auto` tries eBPF and falls back to procfs, saying why once.
    #[arg(long, env = "SCOPE_TRACKER", value_enum, default_value_t = TrackerChoice::Auto)]
    pub tracker: TrackerChoice,
    /// Size of the eBPF ring buffer in bytes (a power of two, at least a page). Events that do
    /// not fit are counted as lost and trigger a resync from /proc.
    #[arg(long, env = "SCOPE_EBPF_RING_BUFFER_BYTES", default_value_t = scope_ebpf::DEFAULT_RING_BUFFER_BYTES)]
    pub ebpf_ring_buffer_bytes: u32,
    /// `node` reports this node from /proc and eBPF (one per node); `cluster` reports the
    /// Kubernetes cluster's objects, watched on its API server (one per cluster), and reads
    /// nothing of the node it runs on.
    #[arg(long, env = "SCOPE_COLLECTOR_ROLE", value_enum, default_value_t = Role::Node)]
    pub role: Role,
    /// Names the cluster in the node ids of its Kubernetes objects, so that two clusters'
    /// objects never collide in one snapshot.
    #[arg(long, env = "SCOPE_CLUSTER_ID", default_value = DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    /// The cluster role's kubeconfig [default: $KUBECONFIG or ~/.kube/config, else the pod's
    /// service account (in-cluster)].
    #[arg(long, env = "SCOPE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Whether to give up every capability not needed once the tracker is loaded. Not a
    /// flag: only the standalone `scope-collector` sets it, since a process that also runs
    /// other stages, or runs them on threads started earlier, cannot drop for all of them.
    #[arg(skip)]
    pub drop_capabilities: bool,
}

/// What a collector reports.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Its node: connections, processes and the host.
    Node,
    /// The Kubernetes cluster's objects: pods, controllers, services, namespaces, nodes.
    Cluster,
}

impl CollectorArgs {
    /// The defaults, publishing to `kafka`.
    pub fn new(kafka: KafkaArgs) -> Self {
        CollectorArgs {
            kafka,
            host_id: None,
            spy_interval: default_duration(DEFAULT_SPY_INTERVAL),
            publish_interval: default_duration(DEFAULT_PUBLISH_INTERVAL),
            full_every: DEFAULT_FULL_EVERY,
            proc_root: PathBuf::from(DEFAULT_PROC_ROOT),
            docker_socket: PathBuf::from(DEFAULT_DOCKER_SOCKET),
            cri_socket: None,
            cgroup_root: PathBuf::from(DEFAULT_CGROUP_ROOT),
            tracker: TrackerChoice::Auto,
            ebpf_ring_buffer_bytes: scope_ebpf::DEFAULT_RING_BUFFER_BYTES,
            role: Role::Node,
            cluster_id: DEFAULT_CLUSTER_ID.into(),
            kubeconfig: None,
            drop_capabilities: false,
        }
    }
}

impl Component for CollectorArgs {
    const NAME: &'static str = "collector";
    type Error = Error;

    /// Checks the rules between fields, without I/O.
    fn validate(&self) -> Result<(), Error> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        if self.kafka.brokers.trim().is_empty() {
            return invalid("--brokers must name at least one broker".into());
        }
        if let Some(host_id) = &self.host_id {
            // Node ids are `<host_id>;<pid>`: a ';' would make them ambiguous.
            if host_id.trim().is_empty() || host_id.contains(';') {
                return invalid(format!(
                    "--host-id {host_id:?} must be non-empty and contain no ';'"
                ));
            }
        }
        if self.spy_interval.is_zero() || self.publish_interval.is_zero() {
            return invalid("--spy-interval and --publish-interval must be above zero".into());
        }
        // Node ids are `<cluster_id>/<uid>;<topology>`.
        let cluster_id = &self.cluster_id;
        if cluster_id.trim().is_empty() || cluster_id.contains([';', '/']) {
            return invalid(format!(
                "--cluster-id {cluster_id:?} must be non-empty and contain no ';' or '/'"
            ));
        }
        // The cluster role spies nothing.
        if self.role == Role::Node && self.publish_interval < self.spy_interval {
            return invalid(format!(
                "--publish-interval ({}) must not be shorter than --spy-interval ({}): it would \
                 publish the same spy twice",
                humantime::format_duration(self.publish_interval),
                humantime::format_duration(self.spy_interval)
            ));
        }
        if self.full_every == 0 {
            return invalid("--full-every must be at least 1".into());
        }
        if self.proc_root.as_os_str().is_empty() {
            return invalid("--proc-root must not be empty".into());
        }
        let ring = self.ebpf_ring_buffer_bytes;
        if !ring.is_power_of_two() || ring < 4096 {
            return invalid(format!(
                "--ebpf-ring-buffer-bytes {ring} must be a power of two of at least 4096"
            ));
        }
        Ok(())
    }

    fn write_metrics(out: &mut Families) {
        crate::stats().write_metrics(out);
        crate::kubernetes::kube_stats().write_metrics(out);
    }

    /// None is: each error is a configuration or environment mistake (or a bug) that a
    /// restart repeats; transient trouble (a broker away) never surfaces as an error.
    fn is_retryable(_: &Error) -> bool {
        false
    }

    fn run(self, cx: Context) -> impl Future<Output = Result<(), Error>> + Send {
        crate::run(self, cx.shutdown)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CollectorArgs,
    }

    fn parse(argv: &[&str]) -> CollectorArgs {
        Cli::try_parse_from(std::iter::once("scope").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn parses_flags_and_defaults() {
        let args = parse(&[
            "--brokers",
            "k:9092",
            "--host-id",
            "node-1",
            "--spy-interval",
            "500ms",
            "--publish-interval",
            "2s",
            "--full-every",
            "3",
            "--proc-root",
            "/host/proc",
            "--docker-socket",
            "/run/podman/podman.sock",
            "--cri-socket",
            "/run/k3s/containerd/containerd.sock",
            "--tracker",
            "procfs",
            "--ebpf-ring-buffer-bytes",
            "65536",
            "--role",
            "cluster",
            "--cluster-id",
            "prod-eu",
            "--kubeconfig",
            "/etc/scope/kubeconfig",
        ]);
        assert_eq!(args.kafka.brokers, "k:9092");
        assert_eq!(args.host_id.as_deref(), Some("node-1"));
        assert_eq!(args.spy_interval, Duration::from_millis(500));
        assert_eq!(args.publish_interval, Duration::from_secs(2));
        assert_eq!(args.full_every, 3);
        assert_eq!(args.proc_root, PathBuf::from("/host/proc"));
        assert_eq!(args.docker_socket, PathBuf::from("/run/podman/podman.sock"));
        assert_eq!(
            args.cri_socket.as_deref(),
            Some(std::path::Path::new("/run/k3s/containerd/containerd.sock"))
        );
        assert_eq!(args.tracker, TrackerChoice::Procfs);
        assert_eq!(args.ebpf_ring_buffer_bytes, 65536);
        assert_eq!(args.role, Role::Cluster);
        assert_eq!(args.cluster_id, "prod-eu");
        assert_eq!(
            args.kubeconfig.as_deref(),
            Some(std::path::Path::new("/etc/scope/kubeconfig"))
        );
        args.validate().unwrap();

        let defaults = parse(&[]);
        let expected = CollectorArgs::new(defaults.kafka.clone());
        assert_eq!(defaults.host_id, None);
        assert_eq!(defaults.tracker, TrackerChoice::Auto);
        assert_eq!(
            (defaults.role, &defaults.cluster_id, &defaults.kubeconfig),
            (expected.role, &expected.cluster_id, &expected.kubeconfig)
        );
        assert!(Cli::try_parse_from(["scope", "--role", "app"]).is_err());
        assert!(Cli::try_parse_from(["scope", "--tracker", "kprobe"]).is_err());
        assert_eq!(
            (
                defaults.spy_interval,
                defaults.publish_interval,
                defaults.full_every,
                &defaults.proc_root
            ),
            (
                expected.spy_interval,
                expected.publish_interval,
                expected.full_every,
                &expected.proc_root
            )
        );
        assert!(Cli::try_parse_from(["scope", "--spy-interval", "soon"]).is_err());
        assert_eq!(defaults.docker_socket, expected.docker_socket);
        assert_eq!(defaults.cri_socket, expected.cri_socket);
    }

    #[test]
    fn validate_rejects_inconsistent_settings() {
        let ok = CollectorArgs::new(KafkaArgs::new("127.0.0.1:9092"));
        ok.validate().unwrap();
        let bad = [
            CollectorArgs {
                host_id: Some("a;b".into()),
                ..ok.clone()
            },
            CollectorArgs {
                host_id: Some(" ".into()),
                ..ok.clone()
            },
            CollectorArgs {
                spy_interval: Duration::ZERO,
                ..ok.clone()
            },
            CollectorArgs {
                publish_interval: Duration::from_millis(500),
                ..ok.clone()
            },
            CollectorArgs {
                full_every: 0,
                ..ok.clone()
            },
            CollectorArgs {
                ebpf_ring_buffer_bytes: 100_000,
                ..ok.clone()
            },
            CollectorArgs {
                kafka: KafkaArgs::new(""),
                ..ok.clone()
            },
            CollectorArgs {
                cluster_id: "".into(),
                ..ok.clone()
            },
            CollectorArgs {
                cluster_id: "a;b".into(),
                ..ok.clone()
            },
            CollectorArgs {
                cluster_id: "eu/prod".into(),
                ..ok.clone()
            },
        ];
        for args in bad {
            let error = args.validate().unwrap_err();
            assert!(matches!(error, Error::InvalidConfig(_)), "{args:?}");
        }
        // A cluster collector spies nothing, so its spy interval does not bound its publishes.
        CollectorArgs {
            role: Role::Cluster,
            publish_interval: Duration::from_millis(500),
            ..ok.clone()
        }
        .validate()
        .unwrap();
    }
}
