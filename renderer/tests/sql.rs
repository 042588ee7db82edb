//! `scope sql`: latest snapshot vs history, read-only, errors and formats.

mod common;

use common::{Snapshot, rows};
use scope_renderer::{
    Error,
    render::render,
    sql::{Format, format, latest_rendered, query},
};
use scope_schemas::snapshot::table;

const T1: i64 = 1_700_000_001_000_000;
const T2: i64 = 1_700_000_002_000_000;
const T3: i64 = 1_700_000_003_000_000;

fn snapshot(t: i64, processes: &[(i32, &str)]) -> Snapshot {
    let mut s = Snapshot::new(t)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24");
    for (pid, name) in processes {
        s = s.process("h1", *pid, name);
    }
    s
}

/// T1 and T2 rendered; T3 merged but not rendered yet.
async fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    snapshot(T1, &[(1, "init"), (2, "sshd")]).write(dir.path(), "m1");
    render(dir.path(), T1, &[]).await.unwrap();
    snapshot(T2, &[(1, "init")]).write(dir.path(), "m1");
    render(dir.path(), T2, &[]).await.unwrap();
    snapshot(T3, &[(1, "init"), (3, "new")]).write(dir.path(), "m1");
    dir
}

#[tokio::test]
async fn plain_tables_are_the_latest_rendered_snapshot() {
    let dir = data_dir().await;
    assert_eq!(latest_rendered(dir.path()).unwrap(), Some(T2));
    assert_eq!(
        rows(dir.path(), "SELECT pid, name FROM processes ORDER BY pid").await,
        vec!["1,init"]
    );
    assert_eq!(
        rows(
            dir.path(),
            "SELECT id FROM graph_nodes WHERE \"view\" = 'processes'"
        )
        .await,
        vec!["h1;1"]
    );
    let times = rows(
        dir.path(),
        "SELECT DISTINCT CAST(snapshot_time AS BIGINT) FROM hosts \
         UNION SELECT DISTINCT CAST(snapshot_time AS BIGINT) FROM graph_nodes",
    )
    .await;
    assert_eq!(
        times,
        vec![(T2).to_string()],
        "merged and rendered tables of one moment"
    );
}

#[tokio::test]
async fn history_has_every_retained_snapshot() {
    let dir = data_dir().await;
    let per_time = rows(
        dir.path(),
        "SELECT CAST(snapshot_time AS BIGINT) AS t, COUNT(*) FROM history.processes \
         GROUP BY snapshot_time ORDER BY t",
    )
    .await;
    assert_eq!(
        per_time,
        vec![format!("{T1},2"), format!("{T2},1"), format!("{T3},2")]
    );
    let rendered = rows(
        dir.path(),
        "SELECT COUNT(DISTINCT snapshot_time) FROM history.graph_nodes",
    )
    .await;
    assert_eq!(rendered, vec!["2"]);
}

#[tokio::test]
async fn empty_data_dir_has_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(latest_rendered(dir.path()).unwrap(), None);
    let batches = query(dir.path(), &[], "SELECT host_id FROM hosts")
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    assert_eq!(format(&batches, Format::Csv).unwrap(), "host_id\n");
    assert_eq!(
        rows(dir.path(), "SELECT COUNT(*) FROM history.sockets").await,
        vec!["0"]
    );
}

#[tokio::test]
async fn bad_sql_is_an_error() {
    let dir = data_dir().await;
    for bad in [
        "SELEC 1",
        "SELECT nope FROM hosts",
        "SELECT * FROM no_such_table",
    ] {
        let error = query(dir.path(), &[], bad).await.expect_err(bad);
        assert!(matches!(error, Error::Sql(_)), "{bad}: {error:?}");
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn writes_are_rejected() {
    let dir = data_dir().await;
    for bad in [
        "DELETE FROM hosts",
        "INSERT INTO hosts (host_id) VALUES ('x')",
        "CREATE TABLE t AS SELECT * FROM hosts",
        "CREATE VIEW v AS SELECT 1",
        "DROP TABLE hosts",
        "COPY hosts TO '/tmp/scope-renderer-test-copy.parquet'",
    ] {
        let error = query(dir.path(), &[], bad).await.expect_err(bad);
        assert!(matches!(error, Error::ReadOnly(_)), "{bad}: {error:?}");
        assert!(error.to_string().contains("read-only"), "{error}");
    }
    // Nothing changed.
    assert_eq!(
        rows(dir.path(), "SELECT COUNT(*) FROM hosts").await,
        vec!["1"]
    );
}

#[tokio::test]
async fn formats() {
    let dir = data_dir().await;
    let batches = query(
        dir.path(),
        &[],
        "SELECT pid, name FROM history.processes WHERE pid = 3",
    )
    .await
    .unwrap();
    let table = format(&batches, Format::Table).unwrap();
    assert!(
        table.contains("| pid | name |") && table.contains("| 3   | new  |"),
        "{table}"
    );
    assert_eq!(format(&batches, Format::Csv).unwrap(), "pid,name\n3,new\n");
    let json: serde_json::Value =
        serde_json::from_str(&format(&batches, Format::Json).unwrap()).unwrap();
    assert_eq!(json, serde_json::json!([{"pid": 3, "name": "new"}]));
    let none = query(dir.path(), &[], "SELECT pid FROM processes WHERE pid < 0")
        .await
        .unwrap();
    assert_eq!(format(&none, Format::Json).unwrap().trim(), "[]");
}

#[tokio::test]
async fn show_tables_lists_both_schemas() {
    let dir = data_dir().await;
    let tables = rows(
        dir.path(),
        "SELECT table_schema, table_name FROM information_schema.tables \
         WHERE table_schema IN ('public', 'history') ORDER BY table_schema, table_name",
    )
    .await;
    let every = table::MERGED.len() + table::RENDERED.len();
    assert_eq!(tables.len(), 2 * every, "{tables:?}");
    assert!(tables.contains(&"history,graph_edges".to_string()));
    assert!(tables.contains(&"public,kubernetes_objects".to_string()));
    assert!(tables.contains(&"public,sockets".to_string()));
}

/// The snapshot tables the view SQL reads (`connections` included: rendering reads its
/// written form, as `history.connections` holds it).
const MERGED_TABLES: [&str; 7] = [
    "hosts",
    "processes",
    "containers",
    "kubernetes_objects",
    "sockets",
    "local_networks",
    "connections",
];

/// `sql` with every `FROM <table>` / `JOIN <table>` of a snapshot table pointed at
/// `history.<table>`, as a user rerunning a view's SQL by hand would edit it.
fn over_history(sql: &str) -> String {
    let mut out = sql.to_owned();
    for keyword in ["FROM", "JOIN"] {
        for name in MERGED_TABLES {
            let from = format!("{keyword} {name}");
            let mut rewritten = String::new();
            let mut rest = out.as_str();
            while let Some(at) = rest.find(&from) {
                let after = &rest[at + from.len()..];
                let whole = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
                rewritten.push_str(&rest[..at]);
                rewritten.push_str(&if whole {
                    format!("{keyword} history.{name}")
                } else {
                    from.clone()
                });
                rest = after;
            }
            rewritten.push_str(rest);
            out = rewritten;
        }
    }
    out
}

/// A query over history with the derived relations (and `extra` named queries) as CTEs.
fn with_derived(extra: &[(&str, &str)], select: &str) -> String {
    let ctes: Vec<String> = scope_renderer::view::DERIVED
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .map(|(name, sql)| format!("{name} AS (\n{}\n)", over_history(sql)))
        .collect();
    format!("WITH {}\n{select}", ctes.join(",\n"))
}

/// Two snapshots in which the same tuples and addresses mean different things: rerun over
/// `history.*`, each view's SQL must give each snapshot exactly what rendering it gave.
/// - T1: h1 -> h2 paired; h1's client end of tuple X alone; 10.0.1.5 outside every network.
/// - T2: h2's server end of tuple X alone (pairing it with T1's client end would be a
///   connection of no snapshot); h1 now has 10.0.1.1/24, so 10.0.1.5 is a local address.
#[tokio::test]
async fn view_sql_reruns_over_history_as_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let (t1, t2) = (T1, T2);
    let x_client = ("10.0.0.1", 47000);
    let x_server = ("10.0.0.2", 9000);
    // curl runs in a container of a Kubernetes pod, so that every view has edges.
    let curl_container = "c".repeat(64);
    Snapshot::new(t1)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .kube("pod", "p1", "default", "curl-pod", None, &["app=curl"])
        .container("h1", &curl_container, "curl", "curl:8")
        .in_pod("p1")
        .contained("h1", 100, "curl", &curl_container)
        .outbound("h1", Some(100), ("10.0.0.1", 50000), ("10.0.0.2", 5432))
        .outbound("h1", Some(100), x_client, x_server)
        .outbound("h1", Some(100), ("10.0.0.1", 50001), ("10.0.1.5", 80))
        .write(dir.path(), "m1");
    Snapshot::new(t1)
        .host("h2", "h2")
        .network("h2", "10.0.0.2/24")
        .process("h2", 200, "postgres")
        .inbound("h2", Some(200), ("10.0.0.2", 5432), ("10.0.0.1", 50000))
        .write(dir.path(), "m2");
    render(dir.path(), t1, &[]).await.unwrap();
    Snapshot::new(t2)
        .host("h1", "h1")
        .network("h1", "10.0.0.1/24")
        .network("h1", "10.0.1.1/24")
        .kube("pod", "p1", "default", "curl-pod", None, &["app=curl"])
        .container("h1", &curl_container, "curl", "curl:8")
        .in_pod("p1")
        .contained("h1", 100, "curl", &curl_container)
        .outbound("h1", Some(100), ("10.0.0.1", 50001), ("10.0.1.5", 80))
        .write(dir.path(), "m1");
    Snapshot::new(t2)
        .host("h2", "h2")
        .network("h2", "10.0.0.2/24")
        .process("h2", 300, "server")
        .inbound("h2", Some(300), x_server, x_client)
        .write(dir.path(), "m2");
    render(dir.path(), t2, &[]).await.unwrap();

    let connection_columns = "CAST(snapshot_time AS BIGINT), family, client_host_id, \
        client_pid, client_addr, client_port, server_host_id, server_pid, server_addr, \
        server_port, state";
    let order = "ORDER BY 1, 3, 5, 6, 7, 9, 10";
    let rendered = rows(
        dir.path(),
        &format!("SELECT {connection_columns} FROM history.connections {order}"),
    )
    .await;
    let rerun = rows(
        dir.path(),
        &format!(
            "WITH c AS (\n{}\n) SELECT {connection_columns} FROM c {order}",
            over_history(scope_renderer::view::CONNECTIONS)
        ),
    )
    .await;
    assert_eq!(rerun, rendered, "connections");
    assert_eq!(
        rendered.iter().filter(|r| r.contains(",47000,")).count(),
        2,
        "tuple X is one unpaired end in each snapshot: {rendered:#?}"
    );

    let edge_columns = "CAST(snapshot_time AS BIGINT), \"view\", src, dst, connections";
    let node_columns =
        "CAST(snapshot_time AS BIGINT), \"view\", id, label, label_minor, rank, shape, pseudo";
    for view in scope_schemas::View::ALL {
        let queries = scope_renderer::view::sql(view);
        let name = view.name();
        let rendered_edges = rows(
            dir.path(),
            &format!(
                "SELECT {edge_columns} FROM history.graph_edges WHERE \"view\" = '{name}' \
                 ORDER BY 1, 3, 4"
            ),
        )
        .await;
        let rerun_edges = rows(
            dir.path(),
            &with_derived(
                &[("e", &queries.edges)],
                &format!("SELECT {edge_columns} FROM e ORDER BY 1, 3, 4"),
            ),
        )
        .await;
        assert_eq!(rerun_edges, rendered_edges, "edges of {name}");
        assert!(!rendered_edges.is_empty(), "edges of {name}");

        let rendered_nodes = rows(
            dir.path(),
            &format!(
                "SELECT {node_columns} FROM history.graph_nodes WHERE \"view\" = '{name}' \
                 ORDER BY 1, 3, 8"
            ),
        )
        .await;
        let rerun_nodes = rows(
            dir.path(),
            &with_derived(
                &[
                    (scope_renderer::view::VIEW_EDGES, &queries.edges),
                    (
                        scope_renderer::view::VIEW_NODE_CONNECTIONS,
                        scope_renderer::view::NODE_CONNECTIONS,
                    ),
                    ("n", queries.nodes),
                    ("p", scope_renderer::view::PSEUDO_NODES),
                ],
                &format!(
                    "SELECT * FROM (SELECT {node_columns} FROM n \
                     UNION ALL SELECT {node_columns} FROM p) ORDER BY 1, 3, 8"
                ),
            ),
        )
        .await;
        assert_eq!(rerun_nodes, rendered_nodes, "nodes of {name}");
    }
    // The local networks are each snapshot's own: 10.0.1.5 is the Internet in T1 only, and
    // in T2 its network's pseudo node.
    let hosts_edges = rows(
        dir.path(),
        "SELECT CAST(snapshot_time AS BIGINT), dst FROM history.graph_edges \
         WHERE \"view\" = 'hosts' AND src = 'h1;<host>' ORDER BY 1, 2",
    )
    .await;
    assert_eq!(
        hosts_edges,
        vec![
            format!("{t1},h2;<host>"),
            format!("{t1},out-theinternet"),
            format!("{t2},;10.0.1.0/24"),
            // T2's lone server end of tuple X: its client 10.0.0.1 is h1's address.
            format!("{t2},h2;<host>"),
        ]
    );
}
