//! Golden-style tests of the views: merged tables of one snapshot in (two writers' Parquet
//! files), rendered tables and nodes out. `tests/golden/*.csv` hold the full rendered tables
//! of the scenario; `UPDATE_GOLDEN=1 cargo test -p scope-renderer --test views` rewrites them
//! (review the diff).

mod common;

use std::path::Path;

use common::{Snapshot, T1, edges, nodes, rows};
use scope_renderer::render::{Rendered, render};
use scope_schemas::{
    RenderedNode, View,
    rendered::{INTERNET_INBOUND_ID, INTERNET_OUTBOUND_ID},
    snapshot::table,
    tables,
};

/// Two hosts on 10.0.0.0/24, each written by its own merger:
/// - h1: curl (100) -> nginx (200) over loopback, both ends seen;
/// - h1 curl (100) -> h2 postgres (400), cross-host, both ends seen;
/// - h1 dig (300) -> 8.8.8.8:53, and an ownerless h1 socket -> 8.8.4.4:443;
/// - h2 nginx (500) -> 127.0.0.1:80 with the same tuple as h1's loopback pair, no server end
///   on h2: it must not pair with h1's server end;
/// - 2001:db8::1 -> h2 nginx (500) on fd00::2 (h2's fd00::/64), from outside;
/// - 10.0.0.9 (no collector, inside 10.0.0.0/24) -> h2 postgres (400).
fn scenario(data_dir: &Path) {
    Snapshot::new(T1)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .network("h1", "127.0.0.1/8")
        .process("h1", 100, "curl")
        .process("h1", 200, "nginx")
        .process("h1", 300, "dig")
        .outbound("h1", Some(100), ("127.0.0.1", 40000), ("127.0.0.1", 80))
        .inbound("h1", Some(200), ("127.0.0.1", 80), ("127.0.0.1", 40000))
        .outbound("h1", Some(100), ("10.0.0.1", 50000), ("10.0.0.2", 5432))
        .outbound("h1", Some(300), ("10.0.0.1", 51000), ("8.8.8.8", 53))
        .outbound("h1", None, ("10.0.0.1", 52000), ("8.8.4.4", 443))
        .write(data_dir, "m1");
    Snapshot::new(T1)
        .host("h2", "h2.lan")
        .network("h2", "10.0.0.2/24")
        .network("h2", "fd00::2/64")
        .process("h2", 400, "postgres")
        .process("h2", 500, "nginx")
        .inbound("h2", Some(400), ("10.0.0.2", 5432), ("10.0.0.1", 50000))
        .outbound("h2", Some(500), ("127.0.0.1", 40000), ("127.0.0.1", 80))
        .inbound("h2", Some(500), ("fd00::2", 443), ("2001:db8::1", 60000))
        .inbound("h2", Some(400), ("10.0.0.2", 5432), ("10.0.0.9", 55555))
        .write(data_dir, "m2");
}

async fn rendered() -> (tempfile::TempDir, Rendered) {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path());
    let rendered = render(dir.path(), T1, &[]).await.unwrap();
    (dir, rendered)
}

#[tokio::test]
async fn processes_view_edges() {
    let (dir, _) = rendered().await;
    assert_eq!(
        edges(dir.path(), "processes").await,
        vec![
            ";10.0.0.0/24,h2;400,1",
            "h1;100,h1;200,1",
            "h1;100,h2;400,1",
            "h1;300,out-theinternet,1",
            "in-theinternet,h2;500,1",
        ]
    );
}

#[tokio::test]
async fn loopback_pair_is_one_connection() {
    let (dir, rendered) = rendered().await;
    let loopback = rows(
        dir.path(),
        "SELECT client_host_id, client_pid, client_process, server_host_id, server_pid, server_process \
         FROM connections WHERE server_port = 80 ORDER BY client_host_id",
    )
    .await;
    // h1's two ends pair; h2's client end (same tuple, other host) stays alone.
    assert_eq!(
        loopback,
        vec!["h1,100,curl,h1,200,nginx", "h2,500,nginx,,,"]
    );
    assert_eq!(rendered.connections, 7);
    let processes = nodes(&rendered, View::Processes);
    assert_eq!(processes["h1;100"].adjacency, vec!["h1;200", "h2;400"]);
    assert!(processes["h1;200"].adjacency.is_empty());
}

#[tokio::test]
async fn cross_host_connection_pairs_both_hosts_sockets() {
    let (dir, _) = rendered().await;
    let cross = rows(
        dir.path(),
        "SELECT client_host_id, client_pid, client_addr, client_port, server_host_id, server_pid, \
         server_addr, server_port, state FROM connections WHERE server_port = 5432 \
         ORDER BY client_addr",
    )
    .await;
    assert_eq!(
        cross,
        vec![
            "h1,100,10.0.0.1,50000,h2,400,10.0.0.2,5432,open",
            ",,10.0.0.9,55555,h2,400,10.0.0.2,5432,open"
        ]
    );
    assert_eq!(
        edges(dir.path(), "hosts").await,
        vec![
            ";10.0.0.0/24,h2;<host>,1",
            "h1;<host>,h1;<host>,1",
            "h1;<host>,h2;<host>,1",
            "h1;<host>,out-theinternet,2",
            // h2's loopback client whose server end h2 did not report: loopback stays on h2.
            "h2;<host>,h2;<host>,1",
            "in-theinternet,h2;<host>,1",
        ]
    );
}

#[tokio::test]
async fn internet_and_local_pseudo_nodes() {
    let (_dir, rendered) = rendered().await;
    let processes = nodes(&rendered, View::Processes);
    assert_eq!(processes["h1;300"].adjacency, vec![INTERNET_OUTBOUND_ID]);
    let inbound = &processes[INTERNET_INBOUND_ID];
    assert_eq!(
        (
            inbound.label.as_str(),
            inbound.label_minor.as_str(),
            inbound.shape.as_str(),
            inbound.pseudo
        ),
        ("The Internet", "Inbound connections", "cloud", true)
    );
    assert_eq!(inbound.adjacency, vec!["h2;500"]);
    assert_eq!(inbound.rank, INTERNET_INBOUND_ID);
    let outbound = &processes[INTERNET_OUTBOUND_ID];
    assert_eq!(
        (
            outbound.label.as_str(),
            outbound.label_minor.as_str(),
            outbound.shape.as_str()
        ),
        ("The Internet", "Outbound connections", "cloud")
    );
    // 10.0.0.9 runs no collector but is inside 10.0.0.0/24: that network's node, not the
    // Internet and not dropped.
    let local = &processes[";10.0.0.0/24"];
    assert_eq!(
        (
            local.label.as_str(),
            local.label_minor.as_str(),
            local.rank.as_str(),
            local.shape.as_str(),
            local.pseudo
        ),
        ("10.0.0.0/24", "Local network", "10.0.0.0/24", "cloud", true)
    );
    assert_eq!(local.adjacency, vec!["h2;400"]);
    // The ownerless socket to 8.8.4.4 has no process, nor has h2's loopback server end: no
    // edge in this view.
    assert_eq!(processes.values().filter(|n| n.pseudo).count(), 3);
    let hosts = nodes(&rendered, View::Hosts);
    assert_eq!(hosts[";10.0.0.0/24"].adjacency, vec!["h2;<host>"]);
    assert_eq!(hosts[";10.0.0.0/24"].label_minor, "Local network");
    assert_eq!(hosts[INTERNET_INBOUND_ID].adjacency, vec!["h2;<host>"]);
}

/// µs before the snapshot time.
const S: i64 = 1_000_000;

#[tokio::test]
async fn connections_that_reuse_a_tuple_are_counted_apart_and_paired_by_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = (("10.0.0.1", 40000), ("10.0.0.2", 8080));
    // Three connections on one tuple. h1 saw all three; h2 accepted the last two (the first
    // accept is before its part of the window) and its clock runs slightly behind.
    Snapshot::new(T1)
        .host("h1", "h1")
        .process("h1", 100, "curl")
        .outbound("h1", Some(100), client, server)
        .lived(9 * S, Some(8 * S))
        .outbound("h1", Some(100), client, server)
        .lived(6 * S, Some(5 * S))
        .outbound("h1", Some(100), client, server)
        .lived(3 * S, None)
        // A one-off connection whose two ends' clocks don't even overlap still pairs.
        .outbound("h1", Some(100), ("10.0.0.1", 41000), server)
        .lived(4 * S, Some(4 * S - 1))
        .write(dir.path(), "m1");
    Snapshot::new(T1)
        .host("h2", "h2")
        .process("h2", 200, "server")
        .inbound("h2", Some(200), server, client)
        .lived(6 * S - 10, Some(5 * S + 10))
        .inbound("h2", Some(200), server, client)
        .lived(3 * S - 10, None)
        .inbound("h2", Some(200), server, ("10.0.0.1", 41000))
        .lived(2 * S, Some(S))
        .write(dir.path(), "m2");
    // A second writer with one of h2's ends again, as during a rebalance: still one end.
    Snapshot::new(T1)
        .host("h2", "h2")
        .process("h2", 200, "server")
        .inbound("h2", Some(200), server, client)
        .lived(6 * S - 10, Some(5 * S + 10))
        .write(dir.path(), "m3");
    let rendered = render(dir.path(), T1, &[]).await.unwrap();
    let connections = rows(
        dir.path(),
        "SELECT client_port, client_pid, server_pid, state FROM connections \
         ORDER BY client_port, first_seen",
    )
    .await;
    assert_eq!(
        connections,
        vec![
            "40000,100,,closed",
            "40000,100,200,closed",
            "40000,100,200,open",
            "41000,100,200,closed",
        ]
    );
    assert_eq!(rendered.connections, 4);
    // The first connection's server end is missing, but 10.0.0.2 is h2's (its sockets' local
    // address): h2's host, process unknown, so the processes view drops that edge.
    assert_eq!(
        edges(dir.path(), "processes").await,
        vec!["h1;100,h2;200,3"]
    );
    assert_eq!(
        edges(dir.path(), "hosts").await,
        vec!["h1;<host>,h2;<host>,4"]
    );
}

/// A peer end no host reported, at an address of a reporting host (an interface in its
/// `local_networks`, or a local address of its sockets), is that host: never the Internet and
/// never a local network's node, in either direction. An address two hosts carry names
/// neither and is its network's node.
#[tokio::test]
async fn peer_at_a_reporting_hosts_address_is_that_host() {
    let dir = tempfile::tempdir().unwrap();
    Snapshot::new(T1)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .network("h1", "172.17.0.1/16")
        .process("h1", 100, "curl")
        // To h2's interface address, h2's end not reported (a public address, so without the
        // host lookup it would be the Internet).
        .outbound("h1", Some(100), ("10.0.0.1", 50000), ("203.0.113.7", 443))
        // From h2's interface address into h1.
        .inbound("h1", Some(100), ("10.0.0.1", 8080), ("203.0.113.7", 41000))
        // To an address both hosts carry.
        .outbound("h1", Some(100), ("10.0.0.1", 50001), ("172.17.0.2", 80))
        .write(dir.path(), "m1");
    Snapshot::new(T1)
        .host("h2", "h2")
        .network("h2", "203.0.113.7/32")
        .network("h2", "172.17.0.2/16")
        .write(dir.path(), "m2");
    Snapshot::new(T1)
        .host("h3", "h3")
        .network("h3", "172.17.0.2/16")
        .write(dir.path(), "m3");
    let rendered = render(dir.path(), T1, &[]).await.unwrap();
    assert_eq!(
        edges(dir.path(), "hosts").await,
        vec![
            "h1;<host>,;172.17.0.0/16,1",
            "h1;<host>,h2;<host>,1",
            "h2;<host>,h1;<host>,1",
        ]
    );
    assert_eq!(
        edges(dir.path(), "processes").await,
        vec!["h1;100,;172.17.0.0/16,1"]
    );
    for view in View::ALL {
        let ids: Vec<_> = rendered.views[&view]
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert!(
            !ids.contains(&INTERNET_INBOUND_ID) && !ids.contains(&INTERNET_OUTBOUND_ID),
            "{view:?}: {ids:?}"
        );
    }
}

#[tokio::test]
async fn process_nodes_look_like_weave_scope() {
    let (_dir, rendered) = rendered().await;
    let processes = nodes(&rendered, View::Processes);
    let curl = &processes["h1;100"];
    assert_eq!(
        (
            curl.label.as_str(),
            curl.label_minor.as_str(),
            curl.rank.as_str(),
            curl.shape.as_str()
        ),
        ("curl", "h1 (100)", "curl", "square")
    );
    assert!(!curl.pseudo);
    assert_eq!(curl.metadata["pid"], "100");
    assert_eq!(curl.metadata["cmdline"], "/usr/bin/curl --flag");
    assert_eq!(curl.view, "processes");
    assert_eq!(curl.snapshot_time_us, T1);
    assert_eq!(processes["h2;400"].label_minor, "h2.lan (400)");
    assert_eq!(processes.len(), 5 + 3);
}

#[tokio::test]
async fn processes_by_name_view() {
    let (dir, rendered) = rendered().await;
    let by_name = nodes(&rendered, View::ProcessesByName);
    let nginx = &by_name["nginx"];
    assert_eq!(
        (
            nginx.label.as_str(),
            nginx.label_minor.as_str(),
            nginx.rank.as_str(),
            nginx.shape.as_str()
        ),
        ("nginx", "2 processes", "nginx", "square")
    );
    assert_eq!(by_name["curl"].label_minor, "1 process");
    assert_eq!(by_name["curl"].adjacency, vec!["nginx", "postgres"]);
    assert!(by_name["nginx"].adjacency.is_empty());
    assert_eq!(by_name["dig"].adjacency, vec![INTERNET_OUTBOUND_ID]);
    assert_eq!(by_name[INTERNET_INBOUND_ID].adjacency, vec!["nginx"]);
    assert_eq!(
        edges(dir.path(), "processes-by-name").await,
        vec![
            ";10.0.0.0/24,postgres,1",
            "curl,nginx,1",
            "curl,postgres,1",
            "dig,out-theinternet,1",
            "in-theinternet,nginx,1",
        ]
    );
}

#[tokio::test]
async fn hosts_view() {
    let (_dir, rendered) = rendered().await;
    let hosts = nodes(&rendered, View::Hosts);
    let h1 = &hosts["h1;<host>"];
    assert_eq!(
        (
            h1.label.as_str(),
            h1.label_minor.as_str(),
            h1.rank.as_str(),
            h1.shape.as_str()
        ),
        ("h1", "", "", "circle")
    );
    assert_eq!(
        h1.adjacency,
        vec!["h1;<host>", "h2;<host>", INTERNET_OUTBOUND_ID]
    );
    let h2 = &hosts["h2;<host>"];
    assert_eq!(
        (h2.label.as_str(), h2.label_minor.as_str(), h2.rank.as_str()),
        ("h2", "lan", "lan")
    );
    assert_eq!(h2.metadata["os"], "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(hosts.len(), 2 + 3);
}

#[tokio::test]
async fn endpoints_view_edges() {
    let (dir, _) = rendered().await;
    assert_eq!(
        edges(dir.path(), "endpoints").await,
        vec![
            ";10.0.0.0/24,h2;10.0.0.2;5432,1",
            "h1;10.0.0.1;50000,h2;10.0.0.2;5432,1",
            "h1;10.0.0.1;51000,out-theinternet,1",
            // Ownerless: dropped by the process views, kept here.
            "h1;10.0.0.1;52000,out-theinternet,1",
            "h1;127.0.0.1;40000,h1;127.0.0.1;80,1",
            // The same loopback tuple on h2 is another pair of nodes; its server end is h2's.
            "h2;127.0.0.1;40000,h2;127.0.0.1;80,1",
            "in-theinternet,h2;fd00::2;443,1",
        ]
    );
}

#[tokio::test]
async fn endpoints_view_nodes() {
    let (_dir, rendered) = rendered().await;
    let endpoints = nodes(&rendered, View::Endpoints);
    let curl = &endpoints["h1;10.0.0.1;50000"];
    assert_eq!(
        (
            curl.label.as_str(),
            curl.label_minor.as_str(),
            curl.rank.as_str(),
            curl.shape.as_str(),
            curl.pseudo,
            curl.view.as_str()
        ),
        ("10.0.0.1:50000", "h1", "h1", "circle", false, "endpoints")
    );
    assert_eq!(curl.adjacency, vec!["h2;10.0.0.2;5432"]);
    let meta = |node: &RenderedNode| {
        let mut m: Vec<String> = node
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        m.sort();
        m
    };
    assert_eq!(
        meta(curl),
        vec![
            "addr=10.0.0.1",
            "host_id=h1",
            "host_name=h1",
            "pid=100",
            "port=50000",
            "process=curl"
        ]
    );
    // One server end, two connections (from h1 and from the local network): one node.
    let postgres = &endpoints["h2;10.0.0.2;5432"];
    assert_eq!(
        (postgres.label.as_str(), postgres.label_minor.as_str()),
        ("10.0.0.2:5432", "h2.lan")
    );
    assert_eq!(postgres.metadata["process"], "postgres");
    assert!(postgres.adjacency.is_empty());
    assert_eq!(endpoints["h2;fd00::2;443"].label, "[fd00::2]:443");
    // Ends no process owns, or their host did not report: no pid, no process.
    for id in ["h1;10.0.0.1;52000", "h2;127.0.0.1;80"] {
        assert_eq!(
            meta(&endpoints[id])
                .iter()
                .filter(|m| m.starts_with("pid=") || m.starts_with("process="))
                .count(),
            0,
            "{id}"
        );
    }
    let local = &endpoints[";10.0.0.0/24"];
    assert_eq!(
        (
            local.label.as_str(),
            local.label_minor.as_str(),
            local.shape.as_str(),
            local.pseudo
        ),
        ("10.0.0.0/24", "Local network", "cloud", true)
    );
    assert_eq!(local.adjacency, vec!["h2;10.0.0.2;5432"]);
    assert_eq!(
        endpoints[INTERNET_INBOUND_ID].adjacency,
        vec!["h2;fd00::2;443"]
    );
    assert!(endpoints[INTERNET_OUTBOUND_ID].pseudo);
    assert_eq!(endpoints.len(), 9 + 3);
    // The HTTP API's parents: the endpoint's host and, where known, its process.
    let parents = &rendered.graphs[&View::Endpoints].parents;
    let mut curl_parents = parents["h1;10.0.0.1;50000"].clone();
    curl_parents.sort();
    assert_eq!(
        curl_parents,
        vec![
            ("hosts".to_owned(), "h1;<host>".to_owned()),
            ("processes".to_owned(), "h1;100".to_owned())
        ]
    );
    assert_eq!(
        parents["h2;127.0.0.1;80"],
        vec![("hosts".to_owned(), "h2;<host>".to_owned())]
    );
}

/// Unreported peers in one local network share its node, the most specific network wins,
/// each family has its own networks, and an address outside all of them is the Internet.
#[tokio::test]
async fn unreported_peers_are_their_local_networks_or_the_internet() {
    let dir = tempfile::tempdir().unwrap();
    Snapshot::new(T1)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/16")
        .network("h1", "fd00::1/64")
        .process("h1", 100, "curl")
        .process("h1", 200, "postgres")
        .outbound("h1", Some(100), ("10.0.0.1", 50000), ("10.0.7.7", 80))
        .outbound("h1", Some(100), ("10.0.0.1", 50001), ("10.0.8.8", 80))
        .outbound("h1", Some(100), ("10.0.0.1", 50002), ("10.0.1.5", 80))
        .outbound("h1", Some(100), ("fd00::1", 50003), ("fd00::9", 80))
        .outbound("h1", Some(100), ("10.0.0.1", 50004), ("10.1.0.1", 80))
        .inbound("h1", Some(200), ("10.0.0.1", 5432), ("10.0.9.9", 41000))
        .inbound("h1", Some(200), ("10.0.0.1", 5432), ("192.0.2.1", 41000))
        .write(dir.path(), "m1");
    Snapshot::new(T1)
        .host("h2", "h2")
        .network("h2", "10.0.1.2/24")
        .write(dir.path(), "m2");
    let rendered = render(dir.path(), T1, &[]).await.unwrap();
    let expected = [
        ";10.0.0.0/16,h1;200,1",
        "h1;100,;10.0.0.0/16,2",
        "h1;100,;10.0.1.0/24,1",
        "h1;100,;fd00::/64,1",
        "h1;100,out-theinternet,1",
        "in-theinternet,h1;200,1",
    ];
    assert_eq!(edges(dir.path(), "processes").await, expected);
    let hosts: Vec<String> = expected
        .iter()
        .map(|e| {
            e.replace("h1;100", "h1;<host>")
                .replace("h1;200", "h1;<host>")
        })
        .collect();
    assert_eq!(edges(dir.path(), "hosts").await, hosts);
    let processes = nodes(&rendered, View::Processes);
    assert_eq!(processes[";fd00::/64"].label, "fd00::/64");
    assert_eq!(
        processes.values().filter(|n| n.pseudo).count(),
        5,
        "{:?}",
        processes.keys()
    );
}

#[tokio::test]
async fn written_tables_have_the_contract_schemas() {
    let (dir, rendered) = rendered().await;
    assert_eq!(rendered.files.len(), 3);
    for (name, path) in [table::CONNECTIONS, table::GRAPH_EDGES, table::GRAPH_NODES]
        .into_iter()
        .zip(&rendered.files)
    {
        assert!(path.starts_with(dir.path().join(name)), "{path:?}");
        let file = std::fs::File::open(path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let expected = tables::schema(name).unwrap();
        assert_eq!(reader.schema().fields(), expected.fields(), "{name}");
    }
}

#[tokio::test]
async fn rendering_twice_is_idempotent() {
    let (dir, first) = rendered().await;
    let second = render(dir.path(), T1, &[]).await.unwrap();
    assert_eq!(first.views, second.views);
    let files = std::fs::read_dir(dir.path().join(table::GRAPH_NODES))
        .unwrap()
        .count();
    assert_eq!(
        files, 1,
        "one file per rendered table and snapshot, no temporary left"
    );
}

#[tokio::test]
async fn missing_snapshot_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = render(dir.path(), T1, &[]).await.unwrap_err();
    assert!(
        matches!(error, scope_renderer::Error::SnapshotMissing { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn empty_snapshot_renders_empty_views() {
    let dir = tempfile::tempdir().unwrap();
    Snapshot::new(T1).write(dir.path(), "m1");
    let rendered = render(dir.path(), T1, &[]).await.unwrap();
    assert!(rendered.views.values().all(Vec::is_empty));
    assert_eq!(rendered.connections, 0);
}

#[tokio::test]
async fn golden_tables() {
    let (dir, _) = rendered().await;
    for (name, sql) in [
        (
            "connections",
            "SELECT * EXCLUDE (snapshot_time, first_seen, last_seen) FROM connections ORDER BY client_addr, client_port, server_addr, client_host_id",
        ),
        (
            "graph_nodes",
            "SELECT * EXCLUDE (snapshot_time) FROM graph_nodes ORDER BY \"view\", id",
        ),
        (
            "graph_edges",
            "SELECT * EXCLUDE (snapshot_time) FROM graph_edges ORDER BY \"view\", src, dst",
        ),
    ] {
        let batches = scope_renderer::sql::query(dir.path(), &[], sql)
            .await
            .unwrap();
        let actual =
            scope_renderer::sql::format(&batches, scope_renderer::sql::Format::Csv).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.csv"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
        assert_eq!(actual, expected, "{name} differs from {}", path.display());
    }
}

/// Time travel reads what the renderer wrote: with the merged tables gone, a past moment
/// still shows exactly what was rendered then (nodes with their metadata and adjacency, edges
/// with their ports, metrics, parents). A `graph_nodes` file of an older build, without those
/// columns, is rendered again from the merged tables instead.
#[tokio::test(flavor = "multi_thread")]
async fn a_past_moment_is_read_back_from_the_rendered_files() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path());
    Snapshot::new(T1)
        .host("h3", "h3")
        .container("h3", "c0ffee0123456789", "web", "nginx:1.27")
        .label("app", "web")
        .in_pod("pod-1")
        .kube("pod", "pod-1", "default", "web-1", None, &["app=web"])
        .contained("h3", 600, "nginx", "c0ffee0123456789")
        .write(dir.path(), "m3");
    let rendered = render(dir.path(), T1, &[]).await.unwrap();
    let graphs = &rendered.graphs[&View::Processes];
    assert!(!graphs.metrics.is_empty() && !graphs.parents.is_empty());
    assert!(
        rendered.views[&View::Containers]
            .iter()
            .any(|n| !n.metadata.is_empty())
    );

    let merged = tempfile::tempdir().unwrap();
    for name in table::MERGED {
        if dir.path().join(name).exists() {
            std::fs::rename(dir.path().join(name), merged.path().join(name)).unwrap();
        }
    }
    let read = scope_renderer::api::Snapshots::new(dir.path().to_path_buf(), &[])
        .at(Some(T1))
        .await
        .unwrap()
        .expect("the rendered moment");
    assert_eq!(read.views, rendered.views);
    assert_eq!(read.graphs, rendered.graphs);
    assert_eq!(read.connections, rendered.connections);

    // As an older build wrote it: the same nodes, none of the columns the API needs.
    let path = &rendered.files[2];
    let old: Vec<_> = scope_store::read(path)
        .unwrap()
        .iter()
        .map(|b| b.project(&[0, 1, 2, 3, 4, 5, 6, 7]).unwrap())
        .collect();
    let schema = old[0].schema();
    std::fs::remove_file(path).unwrap();
    scope_store::write(
        dir.path(),
        table::GRAPH_NODES,
        T1,
        "renderer",
        &schema,
        &old,
    )
    .unwrap();
    let snapshots = scope_renderer::api::Snapshots::new(dir.path().to_path_buf(), &[]);
    let error = snapshots.at(Some(T1)).await.expect_err("rendered again");
    assert!(
        matches!(error, scope_renderer::Error::SnapshotMissing { .. }),
        "{error}"
    );
    for name in table::MERGED {
        if merged.path().join(name).exists() {
            std::fs::rename(merged.path().join(name), dir.path().join(name)).unwrap();
        }
    }
    let again = snapshots.at(Some(T1)).await.unwrap().unwrap();
    assert_eq!(again.views, rendered.views);
    assert_eq!(again.graphs, rendered.graphs);
}
