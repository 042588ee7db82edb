//! `scope sql`: latest snapshot vs history, read-only, errors and formats.

mod common;

use common::{Snapshot, rows};
use scope_renderer::{
    Error,
    render::render,
    sql::{Format, format, latest_rendered, query},
};

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
    render(dir.path(), T1).await.unwrap();
    snapshot(T2, &[(1, "init")]).write(dir.path(), "m1");
    render(dir.path(), T2).await.unwrap();
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
    let batches = query(dir.path(), "SELECT host_id FROM hosts")
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
        let error = query(dir.path(), bad).await.expect_err(bad);
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
        let error = query(dir.path(), bad).await.expect_err(bad);
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
    let none = query(dir.path(), "SELECT pid FROM processes WHERE pid < 0")
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
    assert_eq!(tables.len(), 14, "{tables:?}");
    assert!(tables.contains(&"history,graph_edges".to_string()));
    assert!(tables.contains(&"public,sockets".to_string()));
}
