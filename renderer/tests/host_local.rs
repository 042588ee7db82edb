//! Addresses that repeat across hosts: two Docker hosts whose containers use the same bridge
//! range (and the same ports) keep their connections apart, a peer on a host's bridge that no
//! process was seen for is that host's, and pod bridges routed between nodes still pair across
//! them.

mod common;

use common::{Snapshot, T1, edges, rows};
use scope_renderer::{render::render, store};
use scope_schemas::snapshot::table;

/// Host `host` (`h1` or `h2`, its LAN address `10.0.0.<n>`) runs the same two containers as
/// the other: wget (pid `pid + 1`) at 172.17.0.3 connects from port 40000 to httpd (`pid`) at
/// 172.17.0.2:80, on a Docker bridge 172.17.0.1/16 of its own. Its pod bridge is
/// 10.244.<n>.1/24, a subnet per node as a routed CNI bridge has.
fn docker_host(host: &str, n: u8, pid: i32) -> Snapshot {
    Snapshot::new(T1)
        .host(host, host)
        .network(host, &format!("10.0.0.{n}/24"))
        .bridge(host, "172.17.0.1/16")
        .bridge(host, &format!("10.244.{n}.1/24"))
        .process(host, pid, "httpd")
        .process(host, pid + 1, "wget")
        .outbound(
            host,
            Some(pid + 1),
            ("172.17.0.3", 40000),
            ("172.17.0.2", 80),
        )
        .inbound(host, Some(pid), ("172.17.0.2", 80), ("172.17.0.3", 40000))
}

async fn rendered() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    docker_host("h1", 1, 100)
        // A redis on h1's bridge that no process was seen for.
        .outbound("h1", Some(101), ("172.17.0.3", 40001), ("172.17.0.9", 6379))
        // A pod on h1 reaching a pod on h2 across their routed pod bridges.
        .outbound("h1", Some(101), ("10.244.1.5", 41000), ("10.244.2.7", 8080))
        .write(dir.path(), "m1");
    docker_host("h2", 2, 200)
        // h2's own container at 172.17.0.9: the same address as h1's redis, another machine.
        .inbound("h2", Some(200), ("172.17.0.9", 6379), ("172.17.0.5", 50000))
        .inbound("h2", Some(200), ("10.244.2.7", 8080), ("10.244.1.5", 41000))
        .write(dir.path(), "m2");
    render(dir.path(), T1, &[]).await.unwrap();
    dir
}

#[tokio::test]
async fn the_same_bridge_addresses_on_two_hosts_pair_within_each_host() {
    let dir = rendered().await;
    assert_eq!(
        rows(
            dir.path(),
            "SELECT client_host_id, client_pid, server_host_id, server_pid \
             FROM connections WHERE client_addr = '172.17.0.3' AND client_port = 40000 \
             ORDER BY client_host_id"
        )
        .await,
        vec!["h1,101,h1,100", "h2,201,h2,200"],
        "one connection per host, none across"
    );
    assert_eq!(
        edges(dir.path(), "processes").await,
        vec![
            "h1;101,h1;100,1",
            // The pods' connection (below), and only it.
            "h1;101,h2;200,1",
            "h2;201,h2;200,1",
        ],
        "each wget to its own host's httpd"
    );
}

#[tokio::test]
async fn a_peer_on_a_hosts_bridge_is_that_host_and_routed_pod_bridges_pair_across_hosts() {
    let dir = rendered().await;
    let endpoints = edges(dir.path(), "endpoints").await;
    assert!(
        endpoints.contains(&"h1;172.17.0.3;40001,h1;172.17.0.9;6379,1".to_owned()),
        "the unreported redis is on h1's bridge, not h2's 172.17.0.9 nor a network: \
         {endpoints:?}"
    );
    assert_eq!(
        rows(
            dir.path(),
            "SELECT client_host_id, client_pid, server_host_id, server_pid FROM connections \
             WHERE server_addr = '10.244.2.7'"
        )
        .await,
        vec!["h1,101,h2,200"],
        "pods on two nodes' routed bridges pair across the nodes"
    );
    let processes = edges(dir.path(), "processes").await;
    assert!(
        processes.contains(&"h1;101,h2;200,1".to_owned()),
        "{processes:?}"
    );
    assert_eq!(
        rows(
            dir.path(),
            "SELECT scope_host_local_network(snapshot_time, 'h1', '172.17.0.9'), \
                    scope_host_local_network(snapshot_time, 'h1', '10.0.0.7'), \
                    scope_is_local(snapshot_time, '172.17.0.9') \
             FROM hosts WHERE host_id = 'h1'"
        )
        .await,
        vec!["172.17.0.0/16,,true"],
        "an address of a bridge is local (not the Internet), and scoped to its host"
    );
}

/// Snapshots written before `local_networks.host_local` existed read it as null (not
/// host-local) and render as before.
#[tokio::test]
async fn snapshots_written_before_host_local_read_it_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = Snapshot::new(T1)
        .host("h1", "h1")
        .network("h1", "172.17.0.1/16");
    for (name, batch) in snapshot.batches() {
        let batch = if name == table::LOCAL_NETWORKS {
            batch.project(&[0, 1, 2]).unwrap()
        } else {
            batch
        };
        store::write(dir.path(), name, T1, "m1", &batch.schema(), &[batch]).unwrap();
    }
    render(dir.path(), T1, &[]).await.unwrap();
    assert_eq!(
        rows(
            dir.path(),
            "SELECT host_id, cidr, host_local, \
                    scope_host_local_network(snapshot_time, host_id, '172.17.0.2') \
             FROM local_networks"
        )
        .await,
        vec!["h1,172.17.0.1/16,,"]
    );
}
