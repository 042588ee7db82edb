//! The HTTP API as Weave Scope's clients use it: its routes walked by a Python client and
//! checked against Scope 1.13's recorded responses (`tests/scope_api/`), time travel, the
//! websocket's reset and deltas, SQL, authentication and bad requests.

mod common;

use std::{path::Path, sync::Arc, time::Duration};

use common::{
    Snapshot, recent_time,
    served::{Served, get_json, node_ids, request, serve},
};
use scope_renderer::{api::ApiArgs, render::render};
use scope_testkit::{Process, http_request, python_json, scope_api_script};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// Two hosts: `srv` runs a server (pid 10) that `cli`'s client (pid 20) connects to, plus a
/// connection from the client to the Internet; `clients` picks which of them exist.
fn snapshot(t: i64, client_connected: bool) -> Snapshot {
    let mut s = Snapshot::new(t)
        .host("srv", "srv.example")
        .host("cli", "cli")
        .network("srv", "10.0.0.1/24")
        .network("cli", "10.0.0.2/24")
        .process("srv", 10, "httpd")
        .process("cli", 20, "curl")
        .process("cli", 21, "sleep");
    if client_connected {
        s = s
            .outbound("cli", Some(20), ("10.0.0.2", 40000), ("10.0.0.1", 80))
            .inbound("srv", Some(10), ("10.0.0.1", 80), ("10.0.0.2", 40000))
            .outbound("cli", Some(20), ("10.0.0.2", 40001), ("203.0.113.9", 443));
    }
    s
}

/// A served API over one snapshot of [`snapshot`] with the client connected, taken now.
async fn serve_connected() -> (tempfile::TempDir, Served) {
    let dir = tempfile::tempdir().unwrap();
    let t = recent_time(0);
    snapshot(t, true).write(dir.path(), "m1");
    render(dir.path(), t, &[]).await.unwrap();
    let served = serve(dir.path(), None).await;
    (dir, served)
}

/// Every node a listing's adjacency names, that the listing does not have.
fn dangling_edges(listing: &Value) -> Vec<String> {
    let nodes = listing["nodes"].as_object().unwrap();
    nodes
        .values()
        .flat_map(|node| node["adjacency"].as_array().into_iter().flatten())
        .map(|peer| peer.as_str().unwrap().to_owned())
        .filter(|peer| !nodes.contains_key(peer))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn options_hide_nodes_and_the_edges_to_them() {
    let (_dir, served) = serve_connected().await;
    let listing = |query: &str| {
        let url = format!("{}/api/topology/{query}", served.base);
        let listing = tokio::task::block_in_place(|| get_json(&url));
        assert_eq!(dangling_edges(&listing), Vec::<String>::new(), "{query}");
        listing
    };

    let all = node_ids(&listing("processes?unconnected=show"));
    assert_eq!(all, ["cli;20", "cli;21", "out-theinternet", "srv;10"]);
    let connected = node_ids(&listing("processes?unconnected=hide"));
    assert_eq!(connected, ["cli;20", "out-theinternet", "srv;10"]);

    let pseudo = |listing: &Value| -> Vec<String> {
        let nodes = listing["nodes"].as_object().unwrap();
        let mut ids: Vec<String> = nodes
            .iter()
            .filter(|(_, node)| node["pseudo"] == true)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    };
    let shown = listing("hosts?pseudo=show");
    let internet = pseudo(&shown);
    assert!(
        !internet.is_empty(),
        "the Internet is a pseudo node: {shown}"
    );
    assert!(
        shown["nodes"]["cli;<host>"]["adjacency"]
            .as_array()
            .unwrap()
            .iter()
            .any(|peer| internet.contains(&peer.as_str().unwrap().to_owned())),
        "cli's edge to the Internet: {shown}"
    );
    let hidden = listing("hosts?pseudo=hide");
    assert_eq!(pseudo(&hidden), Vec::<String>::new());
    assert_eq!(
        hidden["nodes"]["cli;<host>"]["adjacency"],
        serde_json::json!(["srv;<host>"]),
        "the edge to the hidden Internet goes with it"
    );
}

/// A browser sends `Accept-Encoding: gzip`; Python's urllib, as a script would, asks for it
/// here and gets the same listing gzipped, and unasked gets it plain.
#[tokio::test(flavor = "multi_thread")]
async fn listings_and_query_results_are_gzipped_for_clients_that_ask() {
    let (_dir, served) = serve_connected().await;
    let url = format!("{}/api/topology/processes?unconnected=show", served.base);
    let sql = format!("{}/api/sql", served.base);
    let script = r#"
import gzip, json, sys, urllib.request
def fetch(url, encoding, data=None):
    request = urllib.request.Request(url, data=data, headers={"Accept-Encoding": encoding})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("Content-Encoding"), response.read()
zipped, body = fetch(sys.argv[1], "gzip, deflate")
plain, raw = fetch(sys.argv[1], "identity")
query = b"SELECT count(*) AS n FROM processes"
rows_zipped, rows = fetch(sys.argv[2], "gzip", query)
print(json.dumps({"zipped": zipped, "plain": plain, "same": json.loads(gzip.decompress(body)) == json.loads(raw),
                  "nodes": sorted(json.loads(raw)["nodes"]),
                  "rows_zipped": rows_zipped, "rows": json.loads(gzip.decompress(rows))}))
"#;
    let answer = tokio::task::block_in_place(|| python_json(script, &[&url, &sql]));
    assert_eq!(answer["zipped"], "gzip", "{answer}");
    assert!(answer["plain"].is_null(), "{answer}");
    assert_eq!(answer["same"], true, "{answer}");
    assert_eq!(
        answer["nodes"],
        serde_json::json!(["cli;20", "cli;21", "out-theinternet", "srv;10"])
    );
    // Streamed rows end once: the compression layer reads past the end of the body.
    assert_eq!(answer["rows_zipped"], "gzip", "{answer}");
    assert_eq!(answer["rows"], serde_json::json!([{"n": 3}]), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_in_weave_scopes_shapes() {
    let (_dir, served) = serve_connected().await;

    let walk =
        tokio::task::block_in_place(|| scope_api_script("walk.py", &[&served.base]).output())
            .expect("python3 runs");
    let report = String::from_utf8_lossy(&walk.stdout);
    assert!(
        walk.status.success(),
        "the walk found responses unlike Weave Scope's: {report}\n{}",
        String::from_utf8_lossy(&walk.stderr)
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert!(report["fetched"].as_u64().unwrap() > 10, "{report}");
    let reported = &report["report"]["Process"];
    for id in ["srv;10", "cli;20", "cli;21"] {
        assert!(
            reported.as_array().unwrap().iter().any(|v| v == id),
            "{id} not in the report's Process topology: {reported}"
        );
    }
    let processes = &report["views"]["/api/topology/processes"];
    for id in ["srv;10", "cli;20", "cli;21", "out-theinternet"] {
        assert!(
            processes.as_array().unwrap().iter().any(|v| v == id),
            "{id} not in {processes}"
        );
    }

    // Scope applies the options' defaults once the query has any parameter: the unconnected
    // process leaves, the others stay.
    let shown = get_json(&format!(
        "{}/api/topology/processes?system=show",
        served.base
    ));
    assert_eq!(
        node_ids(&shown),
        vec!["cli;20", "out-theinternet", "srv;10"]
    );
    let client = &shown["nodes"]["cli;20"];
    assert_eq!(client["label"], "curl");
    assert_eq!(client["labelMinor"], "cli (20)");
    assert_eq!(client["shape"], "square");
    let mut adjacency: Vec<&str> = client["adjacency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    adjacency.sort();
    assert_eq!(adjacency, ["out-theinternet", "srv;10"]);
    assert_eq!(client["parents"][0]["id"], "cli;<host>");
    assert_eq!(client["parents"][0]["label"], "cli");
    assert_eq!(client["parents"][0]["topologyId"], "hosts");
    let pid = client["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "pid")
        .unwrap();
    assert_eq!(pid["value"], "20");
    assert_eq!(pid["label"], "PID");
    let cpu = &client["metrics"][0];
    assert_eq!(cpu["id"], "process_cpu_usage_percent");
    assert_eq!(cpu["value"], 1.5);
    assert!(
        cpu["samples"].is_null(),
        "summaries carry no samples, as Scope's"
    );
    let metric = |node: &Value, id: &str| {
        node["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no metric {id} in {node}"))
            .clone()
    };
    // To the server and to the Internet.
    assert_eq!(metric(client, "connections_count")["value"], 2.0);
    assert_eq!(metric(client, "connections_count")["label"], "Connections");

    // The server's details list the client as an inbound connection, with samples.
    let details = get_json(&format!("{}/api/topology/processes/srv%3B10", served.base));
    let node = &details["node"];
    assert_eq!(node["id"], "srv;10");
    let inbound = &node["connections"][0];
    assert_eq!(inbound["id"], "incoming-connections");
    assert_eq!(inbound["connections"][0]["nodeId"], "cli;20");
    assert_eq!(inbound["connections"][0]["label"], "curl");
    // One row per peer and port, with Scope's columns and row id.
    assert_eq!(inbound["columns"][0]["id"], "port");
    assert_eq!(inbound["connections"][0]["id"], "cli;20---80");
    assert_eq!(inbound["connections"][0]["metadata"][0]["value"], "80");
    assert_eq!(inbound["connections"][0]["metadata"][1]["value"], "1");
    let samples = node["metrics"][0]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{node}");
    assert_eq!(samples[0]["value"], 1.5);
    let connections = metric(node, "connections_count");
    assert_eq!(connections["value"], 1.0);
    assert_eq!(connections["samples"][0]["value"], 1.0, "{connections}");

    // A host's details have its processes as children.
    let host = get_json(&format!(
        "{}/api/topology/hosts/cli%3B%3Chost%3E",
        served.base
    ));
    let children = &host["node"]["children"][0];
    assert_eq!(children["topologyId"], "processes");
    assert_eq!(
        children["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["cli;20", "cli;21"]
    );

    let probes = get_json(&format!("{}/api/probes", served.base));
    let mut hosts: Vec<&str> = probes
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hostname"].as_str().unwrap())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["cli", "srv.example"]);

    let topologies = get_json(&format!("{}/api/topology", served.base));
    let processes = topologies
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["url"] == "/api/topology/processes")
        .unwrap();
    assert_eq!(processes["stats"]["node_count"], 4);
    assert_eq!(processes["stats"]["nonpseudo_node_count"], 3);
    assert_eq!(processes["stats"]["filtered_nodes"], 1);
    assert_eq!(
        processes["sub_topologies"][0]["url"],
        "/api/topology/processes-by-name"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timestamp_answers_from_the_snapshot_in_force_then() {
    let dir = tempfile::tempdir().unwrap();
    let then = recent_time(-120);
    let now = recent_time(0);
    snapshot(then, true).write(dir.path(), "m1");
    render(dir.path(), then, &[]).await.unwrap();
    snapshot(now, false).write(dir.path(), "m1");
    render(dir.path(), now, &[]).await.unwrap();
    let served = serve(dir.path(), None).await;

    let rfc3339 = |us: i64| {
        humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + Duration::from_micros(us as u64))
            .to_string()
    };
    let url = |query: &str| format!("{}/api/topology/processes?system=show{query}", served.base);
    // Now the client is gone: no connections, so nothing is connected.
    assert_eq!(node_ids(&get_json(&url(""))), Vec::<String>::new());
    // Two minutes back, and any moment until the next snapshot, the connection was there.
    for at in [then, then + 30_000_000] {
        let past = get_json(&url(&format!("&timestamp={}", rfc3339(at))));
        assert_eq!(
            node_ids(&past),
            vec!["cli;20", "out-theinternet", "srv;10"],
            "at {}",
            rfc3339(at)
        );
    }
    let details = get_json(&format!(
        "{}/api/topology/processes/srv%3B10?timestamp={}",
        served.base,
        rfc3339(then)
    ));
    assert_eq!(
        details["node"]["connections"][0]["connections"][0]["nodeId"],
        "cli;20"
    );
    // The server's samples now span both snapshots, two minutes apart.
    let details = get_json(&format!("{}/api/topology/processes/srv%3B10", served.base));
    let dates: Vec<&str> = details["node"]["metrics"][0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| sample["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, [rfc3339(then), rfc3339(now)], "{details}");
    // Before the first snapshot there was nothing.
    let before = get_json(&url(&format!("&timestamp={}", rfc3339(then - 1_000_000))));
    assert_eq!(node_ids(&before), Vec::<String>::new());
    let (status, body) = request("GET", &url("&timestamp=yesterday"), &[], None);
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_websocket_sends_the_view_then_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let t1 = recent_time(-2);
    snapshot(t1, true).write(dir.path(), "m1");
    render(dir.path(), t1, &[]).await.unwrap();
    let served = serve(dir.path(), None).await;

    let ws_url = format!(
        "{}/api/topology/processes/ws?t=100ms&system=show",
        served.base.replace("http://", "ws://")
    );
    let socket = Process::spawn(scope_api_script("ws.py", &[&ws_url]));
    assert_eq!(socket.line(LIMIT, "the websocket opening"), "open");
    let first: Value = serde_json::from_str(&socket.line(LIMIT, "the first message")).unwrap();
    assert_eq!(first["reset"], true, "{first}");
    let mut added: Vec<&str> = first["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    added.sort();
    assert_eq!(added, ["cli;20", "out-theinternet", "srv;10"]);

    // The client goes: the next snapshot, written by another renderer (not handed over in
    // this process), reaches the socket within its `t`.
    let t2 = recent_time(-1);
    snapshot(t2, false).write(dir.path(), "m1");
    render(dir.path(), t2, &[]).await.unwrap();
    let delta: Value = serde_json::from_str(&socket.line(LIMIT, "the delta")).unwrap();
    assert!(delta.get("reset").is_none(), "{delta}");
    let mut removed: Vec<&str> = delta["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(removed, ["cli;20", "out-theinternet", "srv;10"], "{delta}");
    assert!(delta["add"].is_null(), "{delta}");

    // A snapshot handed over by this process's renderer reaches the socket too.
    let t3 = recent_time(0);
    snapshot(t3, true).write(dir.path(), "m1");
    let rendered = render(dir.path(), t3, &[]).await.unwrap();
    served.snapshots.insert(Arc::new(rendered));
    let delta: Value = serde_json::from_str(&socket.line(LIMIT, "the second delta")).unwrap();
    assert_eq!(delta["add"].as_array().unwrap().len(), 3, "{delta}");

    // The server's process execs another program: the same node, updated, nothing else.
    let t4 = t3 + 1_000_000;
    Snapshot::new(t4)
        .host("srv", "srv.example")
        .host("cli", "cli")
        .network("srv", "10.0.0.1/24")
        .network("cli", "10.0.0.2/24")
        .process("srv", 10, "nginx")
        .process("cli", 20, "curl")
        .process("cli", 21, "sleep")
        .outbound("cli", Some(20), ("10.0.0.2", 40000), ("10.0.0.1", 80))
        .inbound("srv", Some(10), ("10.0.0.1", 80), ("10.0.0.2", 40000))
        .outbound("cli", Some(20), ("10.0.0.2", 40001), ("203.0.113.9", 443))
        .write(dir.path(), "m1");
    let rendered = render(dir.path(), t4, &[]).await.unwrap();
    served.snapshots.insert(Arc::new(rendered));
    let delta: Value = serde_json::from_str(&socket.line(LIMIT, "the update")).unwrap();
    let updated: Vec<(&str, &str)> = delta["update"]
        .as_array()
        .unwrap_or_else(|| panic!("an update: {delta}"))
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["label"].as_str().unwrap()))
        .collect();
    assert_eq!(updated, [("srv;10", "nginx")], "{delta}");
    assert!(
        delta["add"].is_null() && delta["remove"].is_null(),
        "{delta}"
    );
}

/// A chain of 3,000 additions overflowed the planner's stack and aborted the process: the
/// longest chain allowed (1,000 operators) answers, one more is refused, and the server
/// answers after both.
#[tokio::test(flavor = "multi_thread")]
async fn a_chain_of_operators_too_long_to_plan_is_refused_not_fatal() {
    let (_dir, served) = serve_connected().await;
    let url = format!("{}/api/sql", served.base);
    let chain = |operators: usize| format!("SELECT 1{} AS n", "+1".repeat(operators));
    let (status, body) = request("POST", &url, &[], Some(&chain(1_000)));
    assert_eq!((status, body.as_str()), (200, "[{\"n\":1001}]\n"));
    let (status, body) = request("POST", &url, &[], Some(&chain(1_001)));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("statement too complex: 1001 operators"),
        "{body}"
    );
    let (status, _) = request("POST", &url, &[], Some(&chain(50_000)));
    assert_eq!(status, 400);
    let (status, body) = request("GET", &format!("{}/api", served.base), &[], None);
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_over_http_is_read_only() {
    let (_dir, served) = serve_connected().await;
    let url = format!("{}/api/sql", served.base);

    let (status, body) = request(
        "POST",
        &url,
        &[("Content-Type", "text/plain")],
        Some("SELECT src, dst FROM graph_edges WHERE \"view\" = 'processes' ORDER BY src, dst"),
    );
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([
            {"src": "cli;20", "dst": "out-theinternet"},
            {"src": "cli;20", "dst": "srv;10"},
        ])
    );
    let (status, body) = request(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        Some(r#"{"query": "SELECT count(*) AS n FROM processes"}"#),
    );
    assert_eq!((status, body.as_str()), (200, "[{\"n\":3}]\n"));
    let (status, body) = http_request(
        "POST",
        &url,
        &[("Accept", "application/vnd.apache.arrow.stream")],
        Some("SELECT 1 AS one"),
    );
    assert_eq!(status, 200);
    assert!(
        body.starts_with(&[0xff, 0xff, 0xff, 0xff]),
        "an Arrow IPC stream starts with its continuation marker: {body:?}"
    );

    for (statement, expected) in [
        ("DROP TABLE hosts", 403),
        ("INSERT INTO hosts SELECT * FROM hosts", 403),
        ("SELECT * INTO t FROM processes", 403),
        ("this is not sql", 400),
    ] {
        let (status, body) = request("POST", &url, &[], Some(statement));
        assert_eq!(status, expected, "{statement}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    let (status, _) = request(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        Some("{"),
    );
    assert_eq!(status, 400);
    // Still there.
    let (status, body) = request("POST", &url, &[], Some("SELECT count(*) AS n FROM hosts"));
    assert_eq!((status, body.as_str()), (200, "[{\"n\":2}]\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_nodes_are_404() {
    let (_dir, served) = serve_connected().await;
    for path in [
        "/api/topology/ecs-tasks",
        "/api/topology/processes/nosuch%3B1",
        "/api/topology/processes/ws/extra",
        "/nope",
    ] {
        let (status, body) = request("GET", &format!("{}{path}", served.base), &[], None);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let bad_interval = format!(
        "{}/api/topology/processes/ws?t=never",
        served.base.replace("http://", "ws://")
    );
    let socket = Process::spawn(scope_api_script("ws.py", &[&bad_interval]));
    assert_eq!(socket.line(LIMIT, "the refusal"), "refused 400");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_loopback_a_token_is_required() {
    let open = ApiArgs {
        listen: Some("0.0.0.0:4040".parse().unwrap()),
        token: None,
    };
    let error = open.validate().unwrap_err().to_string();
    assert!(error.contains("--http-token"), "{error}");
    let local = ApiArgs {
        listen: Some("127.0.0.1:4040".parse().unwrap()),
        token: None,
    };
    local.validate().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), Some("s3cret")).await;
    let url = format!("{}/api", served.base);
    assert_eq!(request("GET", &url, &[], None).0, 401);
    assert_eq!(
        request("GET", &url, &[("Authorization", "Bearer wrong")], None).0,
        401
    );
    assert_eq!(
        request("GET", &url, &[("Authorization", "Bearer s3cret")], None).0,
        200
    );
    // Basic auth, as a browser prompts for it: any user, the token as password.
    assert_eq!(
        request(
            "GET",
            &url,
            &[("Authorization", "Basic c2NvcGU6czNjcmV0")],
            None
        )
        .0,
        200
    );
    let walk = tokio::task::block_in_place(|| {
        scope_api_script("walk.py", &[&served.base, "s3cret"]).output()
    })
    .expect("python3 runs");
    assert!(
        walk.status.success(),
        "{}",
        String::from_utf8_lossy(&walk.stdout)
    );
}

/// Schemathesis (PyPI) generates requests from `/api/openapi.json`, valid and invalid, and
/// checks every answer against the document: no 5xx, statuses, content types and bodies as
/// documented, invalid input refused. This is also the API's bad-input test.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_the_openapi_document_does_not_say() {
    let (_dir, served) = serve_connected().await;

    // The python3 on PATH, which scripts/setup installed schemathesis for; run in a
    // directory of its own, where it keeps its example database.
    let work = tempfile::tempdir().unwrap();
    let run = tokio::task::block_in_place(|| {
        std::process::Command::new("python3")
            .current_dir(work.path())
            .env_remove("LD_LIBRARY_PATH")
            .env("SCHEMATHESIS_HOOKS", "")
            .args(["-m", "schemathesis.cli", "--config-file"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml"))
            .arg("run")
            .arg(format!("{}/api/openapi.json", served.base))
            .args([
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--seed",
                "1",
                // One worker: CPython 3.11.7's compile() is not thread-safe (gh-106905), and
                // hypothesis compiles lambdas' source while it generates.
                "--workers",
                "1",
                "--no-color",
            ])
            .output()
    })
    .expect("python3 runs");
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !err.contains("No module named"),
        "schemathesis is not installed for python3 (scripts/setup installs it): {err}"
    );
    assert!(
        run.status.success(),
        "schemathesis found failures:\n{out}\n{err}"
    );
    assert!(out.contains("passed"), "{out}");
}
