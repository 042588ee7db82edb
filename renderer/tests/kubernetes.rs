//! The Kubernetes views over merged tables of one snapshot: pods, kube-controllers (Weave
//! Scope's controller mapping) and services (selector membership).

mod common;

use common::{
    Snapshot, edges, look, nodes, recent_time, rows,
    served::{get_json, node_ids, serve},
};
use scope_renderer::render::{Rendered, render};
use scope_schemas::View;
use serde_json::Value;

fn cid(n: u8) -> String {
    format!("{:064x}", n)
}

fn node(uid: &str, topology: &str) -> String {
    format!("c1/{uid};<{topology}>")
}

/// Namespaces `shop` and `ops` on host h1:
/// - deployment `web` mid-rollout: replica sets `web-a` and `web-b`, a pod each (app=web);
/// - deployment `db`: replica set `db-1`, pod `db-x` (app=db);
/// - daemon set `agent` (ops): pod `agent-1`; bare pod `debug` (ops);
/// - service `web-svc` (shop) selecting app=web; a service `empty` with no selector.
///
/// Both web pods connect to db-x; agent-1 and debug connect to the web pods; curl, in no
/// container, connects to web-a-1.
async fn rendered() -> (tempfile::TempDir, Rendered) {
    let dir = tempfile::tempdir().unwrap();
    // Recent, so that the API serves it as the latest snapshot.
    let t = recent_time(0);
    let pods = [
        (
            "web-a-1",
            "pa",
            "shop",
            Some(("ReplicaSet", "rsa", "web-a")),
            "app=web",
            1,
            101,
        ),
        (
            "web-b-1",
            "pb",
            "shop",
            Some(("ReplicaSet", "rsb", "web-b")),
            "app=web",
            2,
            102,
        ),
        (
            "db-x",
            "pd",
            "shop",
            Some(("ReplicaSet", "rsd", "db-1")),
            "app=db",
            3,
            103,
        ),
        (
            "agent-1",
            "pg",
            "ops",
            Some(("DaemonSet", "ds", "agent")),
            "app=agent",
            4,
            104,
        ),
        ("debug", "pz", "ops", None, "app=debug", 5, 105),
    ];
    let mut s = Snapshot::new(t)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .kube("namespace", "nshop", "", "shop", None, &[])
        .kube("namespace", "nops", "", "ops", None, &[])
        .kube("deployment", "dw", "shop", "web", None, &["app=web"])
        .kube("deployment", "dd", "shop", "db", None, &["app=db"])
        .kube(
            "replica_set",
            "rsa",
            "shop",
            "web-a",
            Some(("Deployment", "dw", "web")),
            &[],
        )
        .kube(
            "replica_set",
            "rsb",
            "shop",
            "web-b",
            Some(("Deployment", "dw", "web")),
            &[],
        )
        .kube(
            "replica_set",
            "rsd",
            "shop",
            "db-1",
            Some(("Deployment", "dd", "db")),
            &[],
        )
        .kube("daemon_set", "ds", "ops", "agent", None, &[])
        .kube("service", "svc", "shop", "web-svc", None, &[])
        .selector(&["app=web"])
        .kube("service", "empty", "shop", "empty", None, &[]);
    for (name, uid, namespace, owner, label, n, pid) in pods {
        s = s
            .kube("pod", uid, namespace, name, owner, &[label])
            .container("h1", &cid(n), name, "local/busybox:1")
            .in_pod(uid)
            .contained("h1", pid, name, &cid(n));
    }
    s.process("h1", 300, "curl")
        // web-a-1, web-b-1 -> db-x
        .outbound("h1", Some(101), ("10.0.0.1", 40001), ("10.0.0.1", 5432))
        .outbound("h1", Some(102), ("10.0.0.1", 40002), ("10.0.0.1", 5432))
        .inbound("h1", Some(103), ("10.0.0.1", 5432), ("10.0.0.1", 40001))
        .inbound("h1", Some(103), ("10.0.0.1", 5432), ("10.0.0.1", 40002))
        // agent-1 -> web-a-1, debug -> web-b-1, curl -> web-a-1
        .outbound("h1", Some(104), ("10.0.0.1", 40003), ("10.0.0.1", 8080))
        .inbound("h1", Some(101), ("10.0.0.1", 8080), ("10.0.0.1", 40003))
        .outbound("h1", Some(105), ("10.0.0.1", 40004), ("10.0.0.1", 8081))
        .inbound("h1", Some(102), ("10.0.0.1", 8081), ("10.0.0.1", 40004))
        .outbound("h1", Some(300), ("10.0.0.1", 40005), ("10.0.0.1", 8080))
        .inbound("h1", Some(101), ("10.0.0.1", 8080), ("10.0.0.1", 40005))
        .write(dir.path(), "m1");
    let rendered = render(dir.path(), t, &[]).await.unwrap();
    (dir, rendered)
}

#[tokio::test]
async fn controllers_are_deployments_daemon_sets_and_bare_pods() {
    let (dir, rendered) = rendered().await;
    let (web, db) = (node("dw", "deployment"), node("dd", "deployment"));
    let (agent, debug) = (node("ds", "daemon_set"), node("pz", "pod"));
    let unmanaged = "pseudo:unmanaged:h1";
    let mut expected = vec![
        format!("{web},{db},2"),
        format!("{agent},{web},1"),
        format!("{debug},{web},1"),
        format!("{unmanaged},{web},1"),
    ];
    expected.sort();
    assert_eq!(edges(dir.path(), "kube-controllers").await, expected);

    let nodes = nodes(&rendered, View::KubeControllers);
    let real: Vec<&str> = nodes
        .values()
        .filter(|n| !n.pseudo)
        .map(|n| n.id.as_str())
        .collect();
    let mut wanted = vec![web.as_str(), db.as_str(), agent.as_str(), debug.as_str()];
    wanted.sort();
    assert_eq!(
        real, wanted,
        "exactly the 2 deployments, the daemon set and the bare pod"
    );
    let summary = |id: &str| look(&nodes[id]);
    assert_eq!(
        summary(&web),
        ("web", "2 pods", "Deployment", "heptagon", false)
    );
    assert_eq!(
        summary(&agent),
        ("agent", "1 pod", "DaemonSet", "pentagon", false)
    );
    assert_eq!(
        summary(&debug),
        ("debug", "1 pod", "Pod", "heptagon", false)
    );
    assert_eq!(nodes[unmanaged].label, "Unmanaged");
    assert_eq!(nodes[&web].metadata["kubernetes_namespace"], "shop");
}

#[tokio::test]
async fn pods_view_draws_pods_with_their_controllers_as_parents() {
    let (dir, rendered) = rendered().await;
    let pod = |uid: &str| node(uid, "pod");
    let mut expected = vec![
        format!("{},{},1", pod("pa"), pod("pd")),
        format!("{},{},1", pod("pb"), pod("pd")),
        format!("{},{},1", pod("pg"), pod("pa")),
        format!("{},{},1", pod("pz"), pod("pb")),
        format!("pseudo:unmanaged:h1,{},1", pod("pa")),
    ];
    expected.sort();
    assert_eq!(edges(dir.path(), "pods").await, expected);
    let nodes = nodes(&rendered, View::Pods);
    let web = &nodes[&pod("pa")];
    assert_eq!(
        (
            web.label.as_str(),
            web.label_minor.as_str(),
            web.shape.as_str()
        ),
        ("web-a-1", "shop", "heptagon")
    );
    let parents = &rendered.graphs[&View::Pods].parents[&pod("pa")];
    assert!(
        parents.contains(&("kube-controllers".to_owned(), node("dw", "deployment"))),
        "{parents:?}"
    );
    assert!(parents.contains(&("hosts".to_owned(), "h1;<host>".to_owned())));
}

#[tokio::test]
async fn services_draw_the_pods_their_selector_matches() {
    let (dir, rendered) = rendered().await;
    let svc = node("svc", "service");
    let unmanaged = "pseudo:unmanaged:h1";
    let mut expected = vec![
        // web pods -> db-x (in no service)
        format!("{svc},{unmanaged},2"),
        // agent-1, debug, curl -> web pods
        format!("{unmanaged},{svc},3"),
    ];
    expected.sort();
    assert_eq!(edges(dir.path(), "services").await, expected);
    let nodes = nodes(&rendered, View::Services);
    assert_eq!(nodes[&svc].label, "web-svc");
    assert_eq!(nodes[&svc].label_minor, "shop");
    assert!(
        nodes.contains_key(&node("empty", "service")),
        "a service selecting nothing is still a node"
    );
    assert_eq!(
        rows(
            dir.path(),
            "SELECT p.name FROM kubernetes_objects s JOIN kubernetes_objects p \
             ON scope_selects(s.selector, p.labels) \
             WHERE s.name = 'web-svc' AND p.kind = 'pod' ORDER BY 1",
        )
        .await,
        vec!["web-a-1", "web-b-1"]
    );
}

/// The real (not pseudo) node ids of a view's listing.
fn real_nodes(listing: &Value) -> Vec<String> {
    node_ids(listing)
        .into_iter()
        .filter(|id| !id.starts_with("pseudo:"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_picks_namespaces_as_a_union() {
    let (dir, _) = rendered().await;
    let served = serve(dir.path(), None).await;
    let controllers = |query: &str| {
        let url = format!("{}/api/topology/kube-controllers?{query}", served.base);
        real_nodes(&tokio::task::block_in_place(|| get_json(&url)))
    };
    let shop = vec![node("dd", "deployment"), node("dw", "deployment")];
    let ops = vec![node("ds", "daemon_set"), node("pz", "pod")];
    let mut both = [shop.clone(), ops.clone()].concat();
    both.sort();
    assert_eq!(controllers("namespace=shop,ops"), both);
    assert_eq!(controllers("namespace=shop&namespace=ops"), both);
    assert_eq!(controllers("namespace=shop"), shop);
    assert_eq!(controllers("namespace=ops"), ops);
    assert_eq!(controllers("namespace=nowhere"), Vec::<String>::new());

    let topologies =
        tokio::task::block_in_place(|| get_json(&format!("{}/api/topology", served.base)));
    let pods = topologies
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["url"] == "/api/topology/pods")
        .expect("pods listed");
    let namespace = pods["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "namespace")
        .expect("a namespace option");
    assert_eq!(namespace["selectType"], "union");
    let values: Vec<&str> = namespace["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["ops", "shop"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_are_a_table_and_group_a_view() {
    let (dir, _) = rendered().await;
    let served = serve(dir.path(), None).await;
    let get = |path: &str| {
        let url = format!("{}{path}", served.base);
        tokio::task::block_in_place(|| get_json(&url))
    };

    let pods = get("/api/topology/pods");
    let web = &pods["nodes"][node("pa", "pod")];
    assert_eq!(
        web["tables"],
        serde_json::json!([{
            "id": "kubernetes_labels_",
            "label": "Kubernetes labels",
            "type": "property-list",
            "columns": null,
            "rows": [{"id": "label_app", "entries": {"label": "app", "value": "web"}}],
        }])
    );
    assert!(
        !web["metadata"].to_string().contains("kubernetes_labels_"),
        "labels are not metadata rows: {}",
        web["metadata"]
    );

    let grouped = get("/api/topology/pods?group=app");
    let group = |value: &str| format!("app={value};<group>");
    assert_eq!(
        real_nodes(&grouped),
        [group("agent"), group("db"), group("debug"), group("web")],
        "every pod has an app label: one node per value"
    );
    let web = &grouped["nodes"][group("web")];
    assert_eq!(
        (&web["label"], &web["labelMinor"], &web["stack"]),
        (&"web".into(), &"2 pods".into(), &true.into())
    );
    assert_eq!(web["adjacency"], serde_json::json!([group("db")]));
    assert_eq!(
        grouped["nodes"][group("agent")]["adjacency"],
        serde_json::json!([group("web")])
    );

    // The daemon set has no labels: it stays as it is among the deployments' groups.
    let controllers = get("/api/topology/kube-controllers?group=app");
    assert_eq!(
        real_nodes(&controllers),
        [
            group("db"),
            group("debug"),
            group("web"),
            node("ds", "daemon_set")
        ]
    );

    let details = get("/api/topology/pods/app%3Dweb%3B%3Cgroup%3E");
    let mut members: Vec<&str> = details["node"]["children"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["label"].as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["web-a-1", "web-b-1"]);

    let topologies = get("/api/topology");
    let pods = topologies
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["url"] == "/api/topology/pods")
        .unwrap();
    let keys: Vec<&str> = pods["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "group")
        .expect("a group option")["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["app"]);
}
