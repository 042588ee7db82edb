//! Network membership in SQL, as `scope sql` answers it: `scope_local_network` and
//! `scope_is_local` in their per-snapshot and session-wide forms.

mod common;

use common::{Snapshot, rows};
use scope_renderer::{network::parse_cidr, render::render};
use scope_schemas::View;

/// 2023-11-14 22:13:21 UTC and one second later.
const T1: i64 = 1_700_000_001_000_000;
const T2: i64 = 1_700_000_002_000_000;

/// T1: h1 in 10.0.0.0/24 and fd00:1::/64. T2 (the latest): h2 in 10.0.1.0/24 and 10.0.0.0/8.
async fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Snapshot::new(T1)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .network("h1", "fd00:1::1/64")
        .process("h1", 1, "init")
        .write(dir.path(), "m1");
    render(dir.path(), T1, &[]).await.unwrap();
    Snapshot::new(T2)
        .host("h2", "h2")
        .network("h2", "10.0.1.1/24")
        .network("h2", "10.9.9.9/8")
        .process("h2", 1, "init")
        .write(dir.path(), "m1");
    render(dir.path(), T2, &[]).await.unwrap();
    dir
}

#[tokio::test]
async fn each_row_is_judged_against_its_own_snapshot() {
    let dir = data_dir().await;
    let per_snapshot = rows(
        dir.path(),
        "SELECT CAST(snapshot_time AS BIGINT), \
                scope_local_network(snapshot_time, '10.0.0.7'), \
                scope_is_local(snapshot_time, '10.0.0.7'), \
                scope_local_network(snapshot_time, '10.0.1.7'), \
                scope_local_network(snapshot_time, 'fd00:1::7'), \
                scope_is_local(snapshot_time, 'fd00:1::7') \
         FROM history.hosts ORDER BY 1",
    )
    .await;
    assert_eq!(
        per_snapshot,
        vec![
            format!("{T1},10.0.0.0/24,true,,fd00:1::/64,true"),
            format!("{T2},10.0.0.0/8,true,10.0.1.0/24,,false"),
        ]
    );
    // A timestamp typed by hand is in nanoseconds; it still names the snapshot.
    assert_eq!(
        rows(
            dir.path(),
            "SELECT scope_local_network(TIMESTAMP '2023-11-14 22:13:21', '10.0.0.7'), \
                    scope_local_network(CAST(1700000001000000 AS BIGINT), 'fd00:1::7'), \
                    scope_local_network(NULL, '10.0.0.7') IS NULL, \
                    scope_local_network(CAST(5 AS BIGINT), '10.0.0.7') IS NULL, \
                    scope_local_network(CAST(5 AS BIGINT), '127.0.0.1')"
        )
        .await,
        vec!["10.0.0.0/24,fd00:1::/64,true,true,127.0.0.0/8"]
    );
}

#[tokio::test]
async fn one_argument_forms_see_every_snapshot() {
    let dir = data_dir().await;
    let found = rows(
        dir.path(),
        "SELECT scope_local_network('10.0.0.7'), scope_local_network('10.0.1.7'), \
                scope_local_network('10.200.0.1'), scope_local_network('fd00:1::7'), \
                scope_local_network('::ffff:10.0.0.7'), scope_local_network('127.0.0.1'), \
                scope_local_network('::1'), scope_is_local('10.0.1.7'), scope_is_local('fd00:1::7')",
    )
    .await;
    assert_eq!(
        found,
        vec![
            "10.0.0.0/24,10.0.1.0/24,10.0.0.0/8,fd00:1::/64,10.0.0.0/24,127.0.0.0/8,::1/128,true,true"
        ]
    );
}

#[tokio::test]
async fn misses_garbage_and_nulls() {
    let dir = data_dir().await;
    let missed = rows(
        dir.path(),
        "SELECT scope_local_network('8.8.8.8') IS NULL, scope_is_local('8.8.8.8'), \
                scope_local_network('2001:db8::1') IS NULL, scope_is_local('fd00:2::1'), \
                scope_local_network('not an address') IS NULL, scope_is_local('not an address'), \
                scope_is_local('10.0.0.300'), scope_is_local(''), \
                scope_is_local(NULL) IS NULL, scope_local_network(NULL) IS NULL, \
                scope_is_loopback('::ffff:127.0.0.1')",
    )
    .await;
    assert_eq!(
        missed,
        vec!["true,false,true,false,true,false,false,false,true,true,true"]
    );
}

#[tokio::test]
async fn functions_apply_to_columns() {
    let dir = data_dir().await;
    let by_host = rows(
        dir.path(),
        "SELECT n.host_id, n.cidr, \
                scope_local_network(n.snapshot_time, split_part(n.cidr, '/', 1)), \
                scope_local_network(n.snapshot_time, n.cidr) IS NULL \
         FROM history.local_networks n ORDER BY 1, 2",
    )
    .await;
    // A CIDR is not an address: no network contains it.
    assert_eq!(
        by_host,
        vec![
            "h1,10.0.0.1/24,10.0.0.0/24,true",
            "h1,fd00:1::1/64,fd00:1::/64,true",
            "h2,10.0.1.1/24,10.0.1.0/24,true",
            "h2,10.9.9.9/8,10.0.0.0/8,true",
        ]
    );
}

/// `--local-networks`: a peer in a configured network is drawn as that network, not as the
/// Internet, and every SQL client counts the network as local in every snapshot.
#[tokio::test]
async fn configured_networks_are_local_in_every_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let configured = [
        parse_cidr("192.168.50.0/24").unwrap(),
        parse_cidr("fd00:9::/64").unwrap(),
    ];
    Snapshot::new(T1)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .process("h1", 1, "curl")
        .outbound("h1", Some(1), ("10.0.0.1", 40000), ("192.168.50.9", 443))
        .outbound("h1", Some(1), ("10.0.0.1", 40001), ("203.0.113.9", 443))
        .write(dir.path(), "m1");
    let rendered = render(dir.path(), T1, &configured).await.unwrap();
    let processes: Vec<&str> = rendered.views[&View::Processes]
        .iter()
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(processes, [";192.168.50.0/24", "h1;1", "out-theinternet"]);

    let sql = "SELECT scope_local_network('192.168.50.9'), \
                      scope_is_local(snapshot_time, 'fd00:9::1'), scope_is_local('203.0.113.9') \
               FROM hosts";
    let batches = scope_renderer::sql::query(dir.path(), &configured, sql)
        .await
        .unwrap();
    let csv = scope_renderer::sql::format(&batches, scope_renderer::sql::Format::Csv).unwrap();
    assert_eq!(csv.lines().nth(1), Some("192.168.50.0/24,true,false"));
    // Without the setting, the same query sees no such network.
    assert_eq!(rows(dir.path(), sql).await, vec![",false,false"]);
}
