//! What `scope up` serves, with real processes connecting: the HTTP API as Weave Scope's
//! users and scripts used Scope's (the websocket adding a client when it connects and
//! removing it once it exits, the edge between client and server, the server's details
//! listing the client, every route in Scope's shapes), and the same map through Debian's
//! `psql` and pg8000 (tables listed and described, a join, writes refused on both protocols).

mod support;

use std::{net::SocketAddr, process::Command, time::Duration};

use scope_testkit::{
    Process, free_port, http_request,
    postgres::{pg8000_found, psql_command, psql_found},
    scope_api_script, wait_for,
};
use serde_json::Value;
use support::{Up, connected_client, hostname, listening_server};

/// Runs each argument as one statement through pg8000's extended protocol (Parse, Bind,
/// Execute) and prints `ok` or `error <SQLSTATE>` for each.
const PG8000: &str = r#"
import sys
import pg8000.native as pg

con = pg.Connection("scope", host="127.0.0.1", port=int(sys.argv[1]), database="scope", timeout=30)
for sql in sys.argv[2:]:
    try:
        con.prepare(sql).run()
        print("ok", flush=True)
    except pg.DatabaseError as e:
        fields = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
        print("error", fields.get("C", repr(e)), flush=True)
"#;

/// psql's output for `-c` commands, and whether it succeeded.
fn psql(addr: SocketAddr, commands: &[&str]) -> (bool, String, String) {
    let mut command = psql_command(addr, "scope");
    for sql in commands {
        command.args(["-c", sql]);
    }
    let out = command.output().expect("psql starts");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `\dt`, `\d graph_edges`, a join of the client's edge with the server's process, and
/// writes refused with SQLSTATE 25006 through psql and through a prepared statement.
fn check_psql(addr: SocketAddr, client_id: &str, server_pid: u32) {
    let (ok, listed, stderr) = psql(addr, &["\\dt"]);
    assert!(ok, "{stderr}");
    for table in ["graph_edges", "graph_nodes", "processes", "hosts"] {
        assert!(
            listed.contains(&format!("public,{table},table,")),
            "{listed}"
        );
    }
    let (ok, described, stderr) = psql(addr, &["\\d graph_edges"]);
    assert!(ok, "{stderr}");
    assert!(
        described.lines().any(|l| l.starts_with("src,text")),
        "{described}"
    );
    let join = format!(
        "SELECT p.name, p.pid FROM graph_edges e \
         JOIN processes p ON e.dst = concat(p.host_id, ';', CAST(p.pid AS VARCHAR)) \
         WHERE e.\"view\" = 'processes' AND e.src = '{client_id}'"
    );
    let (ok, joined, stderr) = psql(addr, &["\\pset tuples_only on", &join]);
    assert!(ok, "{stderr}");
    assert_eq!(joined.trim(), format!("python3,{server_pid}"), "{join}");

    let (ok, _, stderr) = psql(addr, &["DROP TABLE processes"]);
    assert!(!ok && stderr.contains("ERROR:  25006"), "{stderr}");
    let (ok, _, stderr) = psql(addr, &["INSERT INTO processes SELECT * FROM processes"]);
    assert!(!ok && stderr.contains("ERROR:  25006"), "{stderr}");
    if pg8000_found() {
        let out = Command::new("python3")
            .env_remove("LD_LIBRARY_PATH")
            .args(["-c", PG8000, &addr.port().to_string()])
            .args([
                "DROP TABLE processes",
                "INSERT INTO processes SELECT * FROM processes",
                "SELECT count(*) FROM processes",
            ])
            .output()
            .expect("python3 starts");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "error 25006\nerror 25006\nok\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn get_json(url: &str) -> Option<Value> {
    let (status, body) = http_request("GET", url, &[], None);
    (status == 200)
        .then(|| serde_json::from_slice(&body).ok())
        .flatten()
}

#[test]
fn the_api_and_psql_show_real_processes_connecting_and_the_websocket_their_leaving() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let up = Up::start(
        &format!("127.0.0.1:{}", free_port()),
        &data_dir,
        &dir.path().join("up.log"),
    );

    let server_port = free_port();
    let server = listening_server("127.0.0.1", server_port);
    wait_for("the HTTP API to answer", Duration::from_secs(60), || {
        get_json(&format!("{}/api", up.api))
    });
    // The live view, before the client exists: unconnected processes hidden (?system=show
    // applies Scope's defaults), so the client and the server arrive with their connection.
    let ws = format!(
        "{}/api/topology/processes/ws?t=500ms&system=show",
        up.api.replace("http://", "ws://")
    );
    let socket = Process::spawn(scope_api_script("ws.py", &[&ws]));
    assert_eq!(socket.line(Duration::from_secs(10), "open"), "open");
    let reset: Value = serde_json::from_str(&socket.line(Duration::from_secs(10), "the view"))
        .expect("a JSON message");
    assert_eq!(reset["reset"], true, "{reset}");

    let client = connected_client(server_port);
    let host = hostname();
    let client_id = format!("{host};{}", client.pid());
    let server_id = format!("{host};{}", server.pid());
    let has = |list: &Value, id: &str| {
        list.as_array()
            .is_some_and(|items| items.iter().any(|v| v == id || v["id"] == id))
    };
    wait_for("a delta adding the client", Duration::from_secs(60), || {
        let line = socket.line(Duration::from_secs(60), "a delta");
        let delta: Value = serde_json::from_str(&line).ok()?;
        has(&delta["add"], &client_id).then_some(())
    });

    let processes = format!("{}/api/topology/processes?system=show", up.api);
    wait_for(
        "the client -> server edge in the API",
        Duration::from_secs(60),
        || {
            let view = get_json(&processes)?;
            has(&view["nodes"][&client_id]["adjacency"], &server_id).then_some(())
        },
    );
    let details = get_json(&format!(
        "{}/api/topology/processes/{}",
        up.api,
        server_id.replace(';', "%3B")
    ))
    .expect("the server's details");
    let inbound = &details["node"]["connections"][0]["connections"];
    assert!(
        inbound
            .as_array()
            .is_some_and(|rows| rows.iter().any(|row| row["nodeId"] == client_id.as_str())),
        "the client is not in the server's inbound connections: {details}"
    );

    if psql_found() {
        // The snapshot the API showed may be older than psql's latest: poll for the join.
        wait_for("the client's edge in psql", Duration::from_secs(60), || {
            let (ok, out, _) = psql(
                up.postgres,
                &[
                    "\\pset tuples_only on",
                    &format!(
                        "SELECT count(*) FROM graph_edges WHERE \"view\" = 'processes' AND src = '{client_id}' AND dst = '{server_id}'"
                    ),
                ],
            );
            (ok && out.trim() == "1").then_some(())
        });
        check_psql(up.postgres, &client_id, server.pid());
    }

    let walk = scope_api_script("walk.py", &[&up.api])
        .output()
        .expect("python3 runs");
    assert!(
        walk.status.success(),
        "responses unlike Weave Scope's: {}\n{}",
        String::from_utf8_lossy(&walk.stdout),
        String::from_utf8_lossy(&walk.stderr)
    );

    // The client exits; its node stays while its connection is in the window and the
    // process is remembered, then a delta removes it (no reload).
    drop(client);
    let removed = wait_for(
        "a delta removing the client",
        Duration::from_secs(90),
        || {
            let line = socket.line(Duration::from_secs(90), "a delta");
            let delta: Value = serde_json::from_str(&line).ok()?;
            has(&delta["remove"], &client_id).then_some(delta)
        },
    );
    assert!(removed.get("reset").is_none(), "{removed}");
    up.stop();
}
