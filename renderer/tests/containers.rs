//! The container views over merged tables of one snapshot: containers, containers-by-image,
//! containers-by-hostname, the hosts' "Uncontained" pseudo nodes, and processes' container
//! parents.

mod common;

use common::{Snapshot, T1, edges, look, nodes, rows};
use scope_renderer::render::render;
use scope_schemas::View;

const NGINX: &str = "54da098dbf083ded14da56f79eab42533cf2f278bc207674ae705904df38cdb4";
const CLIENT: &str = "23d400aa9d0ca29084aec04ead9205f2b829d9b26cfb9420603c3a5583088b7a";
const OLD: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const DB: &str = "64da098dbf083ded14da56f79eab42533cf2f278bc207674ae705904df38cdb4";
const AGENT: &str = "0000000000000000000000000000000000000000000000000000000000000002";

/// h1 runs `nginx` (httpd, pid 100) and `client` (wget, 200) from local/busybox:1, a stopped
/// `old` from other/image:2, a system `agent`, and curl (300) in no container; wget and curl
/// both connect to httpd. h2 runs `db` from local/busybox:1 with postgres (400), which curl
/// reaches across hosts.
async fn rendered() -> (tempfile::TempDir, scope_renderer::render::Rendered) {
    let dir = tempfile::tempdir().unwrap();
    Snapshot::new(T1)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .container("h1", NGINX, "nginx", "local/busybox:1")
        .container("h1", CLIENT, "client", "local/busybox:1")
        .container("h1", OLD, "old", "other/image:2")
        .state("exited")
        .container("h1", AGENT, "agent", "scope/agent@sha256:abcd")
        .label("works.weave.role", "system")
        .contained("h1", 100, "httpd", NGINX)
        .contained("h1", 200, "wget", CLIENT)
        .process("h1", 300, "curl")
        .outbound("h1", Some(200), ("172.17.0.3", 40000), ("172.17.0.2", 80))
        .inbound("h1", Some(100), ("172.17.0.2", 80), ("172.17.0.3", 40000))
        .outbound("h1", Some(300), ("172.17.0.1", 41000), ("172.17.0.2", 80))
        .inbound("h1", Some(100), ("172.17.0.2", 80), ("172.17.0.1", 41000))
        .outbound("h1", Some(300), ("10.0.0.1", 50000), ("10.0.0.2", 5432))
        .write(dir.path(), "m1");
    Snapshot::new(T1)
        .host("h2", "h2")
        .network("h2", "10.0.0.2/24")
        .container("h2", DB, "db", "local/busybox:1")
        .contained("h2", 400, "postgres", DB)
        .inbound("h2", Some(400), ("10.0.0.2", 5432), ("10.0.0.1", 50000))
        .write(dir.path(), "m2");
    let rendered = render(dir.path(), T1, &[]).await.unwrap();
    (dir, rendered)
}

fn id(container: &str) -> String {
    format!("{container};<container>")
}

#[tokio::test]
async fn containers_view_draws_containers_and_their_connections() {
    let (dir, rendered) = rendered().await;
    let db = DB.to_owned();
    assert_eq!(
        edges(dir.path(), "containers").await,
        vec![
            format!("{},{},1", id(CLIENT), id(NGINX)),
            format!("pseudo:uncontained:h1,{},1", id(NGINX)),
            format!("pseudo:uncontained:h1,{},1", id(&db)),
        ]
    );
    let nodes = nodes(&rendered, View::Containers);
    let summary = |id: &str| look(&nodes[id]);
    assert_eq!(
        summary(&id(NGINX)),
        ("nginx", "h1", "local/busybox", "hexagon", false)
    );
    assert_eq!(
        summary(&id(AGENT)).2,
        "scope/agent",
        "a digest is no part of the rank"
    );
    assert_eq!(
        summary("pseudo:uncontained:h1"),
        ("Uncontained", "h1", "uncontained", "square", true)
    );
    assert_eq!(nodes.len(), 6, "{:?}", nodes.keys().collect::<Vec<_>>());
    let nginx = &nodes[&id(NGINX)];
    assert_eq!(nginx.metadata["docker_image_name"], "local/busybox");
    assert_eq!(nginx.metadata["docker_image_tag"], "1");
    assert_eq!(nginx.metadata["docker_container_state"], "running");
    assert_eq!(nodes[&id(OLD)].metadata["docker_container_state"], "exited");
    assert_eq!(nodes[&id(AGENT)].metadata["system"], "true");
    assert!(!nginx.metadata.contains_key("system"));
    assert_eq!(nodes[&id(CLIENT)].adjacency, vec![id(NGINX)]);
}

#[tokio::test]
async fn processes_have_their_container_or_the_uncontained_node_as_parent() {
    let (_dir, rendered) = rendered().await;
    let parents = &rendered.graphs[&View::Processes].parents;
    let container_of = |process: &str| {
        parents[process]
            .iter()
            .find(|(view, _)| view == "containers")
            .map(|(_, id)| id.clone())
    };
    assert_eq!(container_of("h1;100"), Some(id(NGINX)));
    assert_eq!(container_of("h1;200"), Some(id(CLIENT)));
    assert_eq!(
        container_of("h1;300"),
        Some("pseudo:uncontained:h1".to_owned())
    );
    let containers = &rendered.graphs[&View::Containers].parents;
    assert!(
        containers[&id(NGINX)]
            .iter()
            .any(|(view, id)| view == "containers-by-image"
                && id == "local/busybox;<container_image>"),
        "{:?}",
        containers[&id(NGINX)]
    );
}

#[tokio::test]
async fn containers_by_image_and_by_hostname_group_containers() {
    let (dir, rendered) = rendered().await;
    let image = "local/busybox;<container_image>";
    assert_eq!(
        edges(dir.path(), "containers-by-image").await,
        vec![
            format!("{image},{image},1"),
            format!("pseudo:uncontained:h1,{image},2"),
        ]
    );
    let by_image = nodes(&rendered, View::ContainersByImage);
    let busybox = &by_image[image];
    assert_eq!(
        (busybox.label.as_str(), busybox.label_minor.as_str()),
        ("local/busybox", "3 containers")
    );
    assert!(
        !by_image.contains_key("other/image;<container_image>"),
        "stopped containers are in no group: {:?}",
        by_image.keys().collect::<Vec<_>>()
    );

    assert_eq!(
        edges(dir.path(), "containers-by-hostname").await,
        vec![
            format!("{},{},1", &CLIENT[..12], &NGINX[..12]),
            format!("pseudo:uncontained:h1,{},1", &NGINX[..12]),
            format!("pseudo:uncontained:h1,{},1", &DB[..12]),
        ]
    );
    let by_hostname = nodes(&rendered, View::ContainersByHostname);
    assert_eq!(by_hostname[&NGINX[..12]].label_minor, "1 container");
}

/// The view SQL is queryable as analysts would: labels as a map, addresses as a list.
#[tokio::test]
async fn containers_table_answers_sql_with_maps_and_lists() {
    let (dir, _) = rendered().await;
    assert_eq!(
        rows(
            dir.path(),
            "SELECT name, labels['works.weave.role'], cardinality(ips) FROM containers \
             WHERE host_id = 'h1' ORDER BY name",
        )
        .await,
        vec!["agent,system,0", "client,,0", "nginx,,0", "old,,0"]
    );
    assert_eq!(
        rows(
            dir.path(),
            "SELECT container_id FROM processes WHERE pid = 100",
        )
        .await,
        vec![NGINX]
    );
}
