//! The cluster collector (`--role=cluster`) against a local server speaking the Kubernetes
//! API over real HTTP (no API server can run here): lists, watch streams, a watch that ends
//! and one the server expires (410 Gone). The collector binary runs as a user runs it and
//! publishes to an embedded broker; the test decodes `scope.reports`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
    time::Duration,
};

use rdkafka::{Message, consumer::StreamConsumer, message::BorrowedMessage};
use scope_kafka::KafkaArgs;
use scope_schemas::{
    Node, Record, ReportDelta,
    report::{cluster_host_id, keys, kubernetes_node_id},
    topics,
};
use scope_testkit::{
    Broker, Process, free_port, http_request,
    kube_api::{
        self, ApiServer, Change, DAEMON_SETS, DEPLOYMENTS, NAMESPACES, NODES, PODS, REPLICA_SETS,
        SERVICES, controlled_by, meta, namespace,
    },
    wait_for_async,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const CLUSTER: &str = "c1";

// The objects of this test, whose uids are made from their kind and name.

fn node_1() -> Value {
    kube_api::kube_node("node-1", "10.0.0.5")
}

fn deployment(namespace: &str, name: &str, replicas: i32) -> Value {
    let meta = meta(
        namespace,
        name,
        &format!("dep-{name}"),
        json!({"app": name}),
    );
    kube_api::deployment(meta, replicas)
}

fn replica_set(namespace: &str, deployment: &str, name: &str, replicas: i32) -> Value {
    // The deployment's replica count is not the replica set's concern.
    let owner = self::deployment(namespace, deployment, 0);
    kube_api::replica_set(&owner, name, &format!("rs-{name}"), replicas)
}

fn daemon_set(namespace: &str, name: &str) -> Value {
    kube_api::daemon_set(meta(
        namespace,
        name,
        &format!("ds-{name}"),
        json!({"app": name}),
    ))
}

/// A running pod on node-1; `owner` is its controller's (kind, name, uid).
fn pod(namespace: &str, name: &str, labels: Value, owner: Option<(&str, &str, &str)>) -> Value {
    let mut meta = meta(namespace, name, &format!("pod-{name}"), labels);
    if let Some((kind, owner_name, uid)) = owner {
        meta = controlled_by(meta, "apps/v1", kind, owner_name, uid);
    }
    let ip = format!("10.244.0.{}", name.len());
    kube_api::pod(meta, &node_1(), &ip, &format!("c-{name}"))
}

fn service(namespace: &str, name: &str, selector: Value) -> Value {
    let meta = meta(
        namespace,
        name,
        &format!("svc-{name}"),
        json!({"app": name}),
    );
    kube_api::service(meta, selector)
}

/// 2 namespaces; deployment `web` mid-rollout (replica sets `web-old` and `web-new`, a pod
/// each) and its service in `shop`; deployment `api` and daemon set `agent` in `tools`; a
/// bare pod `debug`; a node.
fn populate(server: &ApiServer) {
    use Change::Apply;
    server.change(
        NAMESPACES,
        vec![Apply(namespace("shop")), Apply(namespace("tools"))],
    );
    server.change(NODES, vec![Apply(node_1())]);
    server.change(
        DEPLOYMENTS,
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
    server.change(DAEMON_SETS, vec![Apply(daemon_set("tools", "agent"))]);
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
    let consumer = scope_testkit::consumer_from_start(&kafka, &[topics::REPORTS]);
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
    let closed = free_port();
    let kubeconfig = kube_api::write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{closed}"));
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
