//! The container views of `scope up` with real Docker containers talking to each other over
//! the docker0 bridge, and to a process of the host in no container: Weave Scope's
//! containers view, its by-image grouping, each container's processes as its children, and
//! the host's "Uncontained" node holding the host's process.

mod support;

use std::time::Duration;

use scope_testkit::{Docker, free_port, wait_for};
use serde_json::Value;
use support::{Up, get_json, hostname, listening_server};

const WAIT: Duration = Duration::from_secs(90);

/// `/{view}/{node}` with the node id escaped as a path segment.
fn node_url(api: &str, view: &str, id: &str) -> String {
    let escaped: String = id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{api}/api/topology/{view}/{escaped}")
}

/// The ids of the nodes in the children groups of a node's details, by topology.
fn children(details: &Value, topology: &str) -> Vec<String> {
    details["node"]["children"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|group| group["topologyId"] == topology)
        .flat_map(|group| group["nodes"].as_array().cloned().unwrap_or_default())
        .filter_map(|node| node["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn two_containers_talking_are_two_nodes_with_an_edge_and_the_host_is_uncontained() {
    let docker = match Docker::start() {
        Ok(docker) => docker,
        Err(reason) => {
            scope_collector::test_support::skip_unless_ci(&reason);
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(
        &format!("127.0.0.1:{}", free_port()),
        &dir.path().join("data"),
        &dir.path().join("up.log"),
    );

    // A process of the host, in no container, that a container connects to.
    let host_port = free_port();
    let host_server = listening_server("0.0.0.0", host_port);

    // `sleep | nc` keeps each connection open: nc's input never ends.
    let server = docker.run(
        "server",
        &["local/busybox:1", "sh", "-c", "sleep 3600 | nc -l -p 8080"],
    );
    let server_ip = server.inspect("{{.NetworkSettings.IPAddress}}");
    let gateway = server.inspect("{{.NetworkSettings.Gateway}}");
    let client = docker.run(
        "client",
        &[
            "local/busybox:1",
            "sh",
            "-c",
            &format!(
                "(sleep 3600 | nc {server_ip} 8080) & (sleep 3600 | nc {gateway} {host_port}) & wait"
            ),
        ],
    );
    let (server_node, client_node) = (
        format!("{};<container>", server.id()),
        format!("{};<container>", client.id()),
    );
    let uncontained = format!("pseudo:uncontained:{}", hostname());

    let nodes = wait_for("the containers and their edges", WAIT, || {
        let view = get_json(&format!("{}/api/topology/containers?pseudo=show", up.api))?;
        let adjacency = |id: &str| -> Vec<String> {
            view["nodes"][id]["adjacency"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        };
        let client_edges = adjacency(&client_node);
        (view["nodes"].get(&server_node).is_some()
            && client_edges.contains(&server_node)
            && client_edges.contains(&uncontained))
        .then_some(view["nodes"].clone())
    });
    let server_summary = &nodes[&server_node];
    assert_eq!(server_summary["shape"], "hexagon");
    assert_eq!(server_summary["rank"], "local/busybox");
    assert_eq!(
        server_summary["label"],
        server.name(),
        "the container's name is its label"
    );
    assert_eq!(nodes[&uncontained]["label"], "Uncontained");
    assert_eq!(nodes[&uncontained]["pseudo"], true);
    let hidden = get_json(&format!("{}/api/topology/containers?system=show", up.api)).unwrap();
    assert!(
        hidden["nodes"].get(&uncontained).is_none(),
        "Scope's default hides the Uncontained node"
    );

    // Each container's processes are its children: nc (and sleep) in the server.
    let details = wait_for("the server's processes", WAIT, || {
        let details = get_json(&node_url(&up.api, "containers", &server_node))?;
        (!children(&details, "processes").is_empty()).then_some(details)
    });
    let processes = children(&details, "processes");
    let server_pids: Vec<String> = server
        .docker("top", &[])
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    assert!(
        processes.iter().all(|id| server_pids
            .iter()
            .any(|pid| id.ends_with(&format!(";{pid}")))),
        "children {processes:?} are the server's processes {server_pids:?}"
    );
    let uncontained_details = get_json(&node_url(&up.api, "containers", &uncontained)).unwrap();
    let host_process = format!("{};{}", hostname(), host_server.pid());
    assert!(
        children(&uncontained_details, "processes").contains(&host_process),
        "the host's process sits under Uncontained: {uncontained_details}"
    );

    // Both containers under their image.
    let by_image = get_json(&format!(
        "{}/api/topology/containers-by-image?system=show",
        up.api
    ))
    .unwrap();
    let image = &by_image["nodes"]["local/busybox;<container_image>"];
    assert_eq!(image["label"], "local/busybox", "{by_image}");
    assert!(
        image["labelMinor"]
            .as_str()
            .is_some_and(|minor| minor.ends_with("containers")),
        "{image}"
    );
    up.stop();
}
