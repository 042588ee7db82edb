//! The collector's connection tracker through `scope up`, as root, between real processes in
//! network namespaces this test creates: short-lived connections over IPv4 and IPv6 reach the
//! processes view with both pids, a connection through a DNAT'ed virtual IP is drawn to the
//! real backend, and a collector without the privileges eBPF needs says so once and falls back
//! to procfs.

mod support;

use std::{process::Command, time::Duration};

use scope_testkit::{Netns, Process, free_port, python3, run, wait_for};
use support::{Up, hostname, sql, sql_value};

const SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 8080))
s.listen(1024)
print("ready", flush=True)
held = []
while True:
    c, _ = s.accept()
    if c.recv(1) == b"h":
        held.append(c)
        continue
    c.sendall(b"y")
    c.close()
"#;

/// argv: host port count [hold]. Makes connections one after another, each a byte each way,
/// until `count` of them lasted under 50 ms (a loaded machine may stall one now and then;
/// those count too, but not towards `count`), prints how many it made, then optionally holds
/// one more open.
const CLIENT: &str = r#"
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
made = fast = 0
start = time.monotonic()
while fast < n:
    t = time.monotonic()
    c = socket.create_connection((host, port))
    c.sendall(b"x")
    c.recv(1)
    c.close()
    made += 1
    fast += time.monotonic() - t < 0.05
    time.sleep(0.001)
print("made %d in %.1f s" % (made, time.monotonic() - start), flush=True)
if len(sys.argv) > 4:
    h = socket.create_connection((host, port))
    h.sendall(b"h")
    print("holding", flush=True)
time.sleep(3600)
"#;

/// One connection, one byte each way, then exit.
const ONE_SHOT: &str = r#"
import socket
c = socket.create_connection(("10.77.0.2", 8080))
c.sendall(b"x")
c.recv(1)
c.close()
"#;

/// Three connections one after another from the same local port, outside the ephemeral
/// range. The server closes first, so the client's end leaves no TIME_WAIT and the port is
/// free again at once: three connections on one four-tuple.
const REUSED_PORT: &str = r#"
import socket, time
for _ in range(3):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("10.77.0.1", 30777))
    c.connect(("10.77.0.2", 8080))
    c.sendall(b"x")
    c.recv(1)
    c.recv(1)
    c.close()
print("done", flush=True)
time.sleep(3600)
"#;

/// Runs the client in `ns` until `count` connections under 50 ms are done; returns it and how
/// many connections it made in all.
fn client(ns: &Netns, host: &str, port: u16, count: u32, hold: bool) -> (Process, i64) {
    let (port, count) = (port.to_string(), count.to_string());
    let mut args = vec![python3(), "-c", CLIENT, host, &port, &count];
    if hold {
        args.push("hold");
    }
    let client = Process::spawn(ns.command(&args));
    let done = client.line(
        Duration::from_secs(120),
        &format!("the end of the connections to {host}"),
    );
    eprintln!("client to {host}: {done}");
    let made = done
        .strip_prefix("made ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected client output {done:?}"));
    if hold {
        assert_eq!(client.line(Duration::from_secs(10), "holding"), "holding");
    }
    (client, made)
}

fn edge_connections(data_dir: &std::path::Path, table: &str, src: &str, dst: &str) -> i64 {
    sql_value(
        data_dir,
        &format!(
            "select max(connections) from {table} where \"view\" = 'processes' \
             and src = '{src}' and dst = '{dst}'"
        ),
    )
    .and_then(|n| n.parse().ok())
    .unwrap_or(0)
}

#[test]
fn short_lived_and_dnat_connections_reach_the_processes_view_with_both_pids() {
    if !scope_collector::test_support::root_or_skip("the eBPF tracker and network namespaces") {
        return;
    }
    let id = std::process::id();
    let client_ns = Netns::new(format!("scope-c{id}"));
    let server_ns = Netns::new(format!("scope-s{id}"));
    let (vc, vs) = (format!("sc{id}"), format!("ss{id}"));
    run(&[
        "ip",
        "link",
        "add",
        &vc,
        "netns",
        client_ns.name(),
        "type",
        "veth",
        "peer",
        "name",
        &vs,
        "netns",
        server_ns.name(),
    ]);
    for (ns, dev, v4, v6) in [
        (client_ns.name(), &vc, "10.77.0.1/24", "fd00:77::1/64"),
        (server_ns.name(), &vs, "10.77.0.2/24", "fd00:77::2/64"),
    ] {
        run(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
        run(&["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
        run(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    for dst in ["10.77.0.2", "fd00:77::2"] {
        wait_for(
            &format!("a route to {dst}"),
            Duration::from_secs(10),
            || {
                let route = Command::new("ip")
                    .args(["-n", client_ns.name(), "route", "get", dst])
                    .output();
                route.ok().filter(|o| o.status.success()).map(drop)
            },
        );
    }
    // The virtual IP exists only as a DNAT rule in the client's namespace, as kube-proxy
    // makes one for a Service; like a pod, the client routes everything else to its peer.
    run(&[
        "ip",
        "-n",
        client_ns.name(),
        "route",
        "add",
        "default",
        "via",
        "10.77.0.2",
    ]);
    let mut nft = client_ns.command(&[
        "nft",
        "add table ip scope_test; \
         add chain ip scope_test out { type nat hook output priority -100; }; \
         add rule ip scope_test out ip daddr 10.96.77.10 tcp dport 80 dnat to 10.77.0.2:8080",
    ]);
    assert!(nft.status().unwrap().success(), "nft DNAT rule");

    let server = Process::spawn(server_ns.command(&[python3(), "-c", SERVER]));
    assert_eq!(server.line(Duration::from_secs(10), "ready"), "ready");

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("up.log");
    let up = Up::start(&format!("127.0.0.1:{}", free_port()), &data_dir, &log);
    let host = hostname();
    let mode = wait_for("the host's tracker mode", Duration::from_secs(90), || {
        sql_value(
            &data_dir,
            &format!("select tracker_mode from hosts where host_id = '{host}'"),
        )
    });
    assert_eq!(
        mode,
        "ebpf",
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let v4 = client(&client_ns, "10.77.0.2", 8080, 1000, false);
    let v6 = client(&client_ns, "fd00:77::2", 8080, 1000, false);
    let (nat, _) = client(&client_ns, "10.96.77.10", 80, 10, true);

    let server_id = format!("{host};{}", server.pid());
    for (family, (client, made)) in [("IPv4", &v4), ("IPv6", &v6)] {
        let client_id = format!("{host};{}", client.pid());
        let mut seen = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while seen < *made && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            seen = edge_connections(&data_dir, "history.graph_edges", &client_id, &server_id);
        }
        let (_, ends, _) = sql(
            &data_dir,
            "table",
            &format!(
                "select client_pid, server_pid, state, count(distinct client_port) as ports, \
                 count(distinct snapshot_time) as snapshots from history.connections \
                 where server_port = 8080 and family = '{}' group by 1, 2, 3",
                family.to_lowercase()
            ),
        );
        let warnings: String = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            seen >= *made,
            "{family}: {seen} of {made} connections on the processes edge {client_id} -> \
             {server_id}; connections to port 8080 in history:\n{ends}\nwarnings:\n{warnings}"
        );
        assert_eq!(
            edge_connections(&data_dir, "history.graph_edges", &client_id, &server_id),
            *made,
            "{family}: every connection exactly once"
        );
    }

    // A process that exits right after its one connection is still drawn, by pid and name.
    let mut once = client_ns
        .command(&[python3(), "-c", ONE_SHOT])
        .spawn()
        .expect("python3 runs");
    let once_id = format!("{host};{}", once.id());
    assert!(once.wait().unwrap().success(), "the one-shot client failed");
    wait_for(
        &format!("the exited process's edge {once_id} -> {server_id}"),
        Duration::from_secs(60),
        || {
            (edge_connections(&data_dir, "history.graph_edges", &once_id, &server_id) == 1)
                .then_some(())
        },
    );

    // Connections that reuse one four-tuple are each a connection.
    let reused = Process::spawn(client_ns.command(&[python3(), "-c", REUSED_PORT]));
    assert_eq!(reused.line(Duration::from_secs(10), "done"), "done");
    let reused_id = format!("{host};{}", reused.pid());
    wait_for(
        &format!("three connections on the edge {reused_id} -> {server_id}"),
        Duration::from_secs(60),
        || {
            (edge_connections(&data_dir, "history.graph_edges", &reused_id, &server_id) == 3)
                .then_some(())
        },
    );

    // Through the virtual IP: drawn to the backend process, with no end at the virtual IP.
    let nat_id = format!("{host};{}", nat.pid());
    wait_for(
        "the held DNAT'ed connection on the edge to the backend",
        Duration::from_secs(60),
        || (edge_connections(&data_dir, "graph_edges", &nat_id, &server_id) >= 1).then_some(()),
    );
    let (ok, virtual_ends, err) = sql(
        &data_dir,
        "csv",
        "select count(*) from history.connections where server_addr = '10.96.77.10'",
    );
    assert!(ok, "{err}");
    assert_eq!(virtual_ends.lines().nth(1), Some("0"), "{virtual_ends}");

    // Once closed, short-lived connections leave the view after the window.
    let v4_id = format!("{host};{}", v4.0.pid());
    wait_for(
        "the closed IPv4 connections to leave the processes view",
        Duration::from_secs(90),
        || (edge_connections(&data_dir, "graph_edges", &v4_id, &server_id) == 0).then_some(()),
    );
    drop(up);
}

/// Accepts connections on 127.0.0.1:8080 and holds them.
const HOLDING_SERVER: &str = r#"
import socket
s = socket.socket()
s.bind(("127.0.0.1", 8080))
s.listen()
print("ready", flush=True)
held = []
while True:
    held.append(s.accept()[0])
"#;

/// Connects to 127.0.0.1:8080 and holds the connection.
const HOLDING_CLIENT: &str = r#"
import socket, time
c = socket.create_connection(("127.0.0.1", 8080))
print("connected", flush=True)
time.sleep(3600)
"#;

#[test]
fn without_the_privileges_for_ebpf_the_collector_says_so_once_and_uses_procfs() {
    if !scope_collector::test_support::root_or_skip("dropping capabilities needs them first") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("up.log");
    // Root without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN cannot load eBPF programs.
    let drop_caps = "-bpf,-perfmon,-sys_admin";
    let up = Up::start_under(
        &[
            "setpriv",
            "--bounding-set",
            drop_caps,
            "--inh-caps",
            drop_caps,
            "--",
        ],
        &format!("127.0.0.1:{}", free_port()),
        &data_dir,
        &log,
    );

    // A server and a client holding one connection, on the loopback of their own namespace.
    let ns = Netns::new(format!("scope-f{}", std::process::id()));
    let server = Process::spawn(ns.command(&[python3(), "-c", HOLDING_SERVER]));
    assert_eq!(server.line(Duration::from_secs(10), "ready"), "ready");
    let client = Process::spawn(ns.command(&[python3(), "-c", HOLDING_CLIENT]));
    assert_eq!(
        client.line(Duration::from_secs(10), "connected"),
        "connected"
    );

    let host = hostname();
    let (src, dst) = (
        format!("{host};{}", client.pid()),
        format!("{host};{}", server.pid()),
    );
    wait_for(
        "the long-lived connection's edge from procfs",
        Duration::from_secs(90),
        || (edge_connections(&data_dir, "graph_edges", &src, &dst) >= 1).then_some(()),
    );
    assert_eq!(
        sql_value(
            &data_dir,
            &format!("select tracker_mode from hosts where host_id = '{host}'")
        )
        .as_deref(),
        Some("procfs")
    );
    let log = std::fs::read_to_string(&log).unwrap();
    let fallbacks: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("connection tracker: procfs, because the eBPF tracker could not start")
        })
        .collect();
    assert_eq!(fallbacks.len(), 1, "one fallback line expected:\n{log}");
    assert!(
        fallbacks[0].contains("CAP_BPF"),
        "the fallback line does not say what is missing: {}",
        fallbacks[0]
    );
    drop(up);
}
