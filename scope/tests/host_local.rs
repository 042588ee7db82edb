//! Two hosts whose containers use the same addresses, as two Docker hosts' default bridges
//! do: each host is a network namespace with a Linux bridge of its own (172.31.0.1/24) and
//! two "containers" on it (network namespaces behind veths, 172.31.0.2 serving and
//! 172.31.0.3 connecting from the same port on both hosts), and a pid namespace in which a
//! collector of its own (`--host-id`, procfs tracker) sees only that host's processes. The
//! merged snapshot holds the same four-tuple twice; the rendered connections pair each
//! host's client with its own server, never with the other host's.

mod support;

use std::{
    fs::File,
    io,
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::Arc,
    time::Duration,
};

use scope_merger::MergerArgs;
use scope_renderer::RendererArgs;
use scope_testkit::{Broker, Netns, Process, Running, python3, run, wait_for};
use support::{SCOPE, sql};

const SERVER: &str = r#"
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("172.31.0.2", 8080))
s.listen(16)
held = [s.accept()]
time.sleep(3600)
"#;

/// Connects from 172.31.0.3:40000, retrying until the server listens, holds the connection
/// and says so.
const CLIENT: &str = r#"
import socket, time
deadline = time.monotonic() + 30
while True:
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("172.31.0.3", 40000))
    try:
        c.connect(("172.31.0.2", 8080))
        break
    except OSError:
        c.close()
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
print("connected", flush=True)
time.sleep(3600)
"#;

/// Inside the host's network namespace and a pid namespace of its own: the server and the
/// client in their container namespaces, then the collector, which sees only them.
const HOST: &str = r#"
nsenter --net=/run/netns/"$SERVER_NS" "$PYTHON" -c "$SERVER" &
nsenter --net=/run/netns/"$CLIENT_NS" "$PYTHON" -c "$CLIENT" &
exec "$SCOPE" collector --host-id "$HOST_ID" --brokers "$BROKERS" --tracker procfs \
    --spy-interval 500ms --publish-interval 1s
"#;

/// One simulated host, torn down when dropped: its processes first, then its namespaces.
struct Host {
    _processes: Process,
    _namespaces: [Netns; 3],
}

impl Host {
    /// Host `name`, with its collector publishing to the broker on the test's `port`.
    fn start(id: u32, name: &str, port: u16) -> Host {
        let host = Netns::new(format!("shl{id}{name}"));
        let server = Netns::new(format!("shl{id}{name}s"));
        let client = Netns::new(format!("shl{id}{name}c"));
        let h = host.name();
        run(&["ip", "-n", h, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", h, "addr", "add", "172.31.0.1/24", "dev", "br0"]);
        run(&["ip", "-n", h, "link", "set", "br0", "up"]);
        for (ns, port_name, addr) in [
            (&server, "s0", "172.31.0.2/24"),
            (&client, "c0", "172.31.0.3/24"),
        ] {
            run(&[
                "ip",
                "-n",
                h,
                "link",
                "add",
                port_name,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ]);
            run(&[
                "ip", "-n", h, "link", "set", port_name, "master", "br0", "up",
            ]);
            run(&["ip", "-n", ns.name(), "addr", "add", addr, "dev", "eth0"]);
            run(&["ip", "-n", ns.name(), "link", "set", "eth0", "up"]);
        }
        relay_broker(h, port);
        // `--kill-child`: killing unshare kills the namespace's init, and with it every
        // process of the host.
        let mut command = host.command(&[
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            HOST,
        ]);
        command
            .env("SERVER_NS", server.name())
            .env("CLIENT_NS", client.name())
            .env("PYTHON", python3())
            .env("SERVER", SERVER)
            .env("CLIENT", CLIENT)
            .env("SCOPE", SCOPE)
            .env("HOST_ID", name)
            .env("BROKERS", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn");
        let processes = Process::spawn(command);
        assert_eq!(
            processes.line(Duration::from_secs(30), "the client's connection"),
            "connected"
        );
        Host {
            _processes: processes,
            _namespaces: [host, server, client],
        }
    }
}

/// The broker listens on the test's loopback; a collector in `netns` reaches it at the same
/// address (the one the broker advertises) through a relay listening on that namespace's
/// loopback. The listening socket is made by a thread that enters `netns` for that alone
/// (a socket stays in the namespace it was made in); each connection to it is relayed over
/// a connection made back in the test's namespace.
fn relay_broker(netns: &str, port: u16) {
    let ours = File::open("/proc/thread-self/ns/net").unwrap();
    let theirs = File::open(format!("/run/netns/{netns}")).unwrap();
    let enter = |ns: &File| {
        // SAFETY: setns with a namespace fd and its type; it moves only the calling thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
    };
    let listener = std::thread::scope(|s| {
        s.spawn(|| {
            enter(&theirs);
            let listener = TcpListener::bind(("127.0.0.1", port));
            enter(&ours);
            listener.unwrap()
        })
        .join()
        .unwrap()
    });
    std::thread::spawn(move || {
        for inbound in listener.incoming() {
            let (Ok(inbound), Ok(outbound)) = (inbound, TcpStream::connect(("127.0.0.1", port)))
            else {
                continue;
            };
            let (inbound, outbound) = (Arc::new(inbound), Arc::new(outbound));
            for (from, to) in [
                (Arc::clone(&inbound), Arc::clone(&outbound)),
                (outbound, inbound),
            ] {
                std::thread::spawn(move || {
                    let _ = io::copy(&mut &*from, &mut &*to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_with_the_same_bridge_addresses_pair_no_connection_across_them() {
    if !scope_collector::test_support::root_or_skip("network and pid namespaces") {
        return;
    }
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let port: u16 = kafka
        .brokers
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("the broker's port");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_owned();
    let merger = Running::start(|shutdown| {
        scope_merger::run(MergerArgs::new(kafka.clone(), &data_dir), shutdown)
    });
    let mut renderer_args = RendererArgs::new(kafka.clone(), &data_dir);
    renderer_args
        .kafka
        .properties
        .push(("auto.offset.reset".into(), "earliest".into()));
    let renderer = Running::start(|shutdown| scope_renderer::run(renderer_args, shutdown));

    let id = std::process::id();
    let hosts = [Host::start(id, "a", port), Host::start(id, "b", port)];

    // Each host's connection, once both hosts' ends are in one rendered snapshot.
    let query = "select client_host_id, server_host_id, server_pid is not null from connections \
                 where client_addr = '172.31.0.3' and client_port = 40000 \
                 and server_addr = '172.31.0.2' and server_port = 8080 \
                 order by client_host_id, server_host_id";
    // `block_in_place`: the merger and renderer keep running while the test polls.
    let found = tokio::task::block_in_place(|| {
        wait_for(
            "both hosts' connections, each with its server, in one snapshot",
            Duration::from_secs(90),
            || {
                let (ok, out, _) = sql(&data_dir, "csv", query);
                let rows: Vec<String> = out.lines().skip(1).map(str::to_owned).collect();
                let client = |host: &str| rows.iter().any(|r| r.starts_with(&format!("{host},")));
                let paired = rows.iter().all(|r| r.ends_with(",true"));
                (ok && client("a") && client("b") && paired).then_some(rows)
            },
        )
    });
    assert_eq!(
        found,
        ["a,a,true", "b,b,true"],
        "each host's client pairs with its own server, none with the other host's"
    );
    let (_, networks, _) = sql(
        &data_dir,
        "csv",
        "select host_id, cidr, host_local from local_networks where cidr = '172.31.0.1/24' \
         order by host_id",
    );
    assert_eq!(
        networks.lines().skip(1).collect::<Vec<_>>(),
        ["a,172.31.0.1/24,true", "b,172.31.0.1/24,true"],
        "each collector marked its bridge host-local"
    );
    let (_, cross, _) = sql(
        &data_dir,
        "csv",
        "select count(*) from graph_edges where \"view\" = 'processes' \
         and split_part(src, ';', 1) <> split_part(dst, ';', 1)",
    );
    assert_eq!(
        cross.lines().nth(1),
        Some("0"),
        "no process edge between the hosts"
    );

    drop(hosts);
    merger.stop(Duration::from_secs(30)).await;
    renderer.stop(Duration::from_secs(30)).await;
}
