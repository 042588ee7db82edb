//! The standalone `scope-collector`, started as root, keeps only the capabilities its
//! documentation names once its tracker is loaded, on every one of its threads, and still
//! reports connections: those of another user's process too, whose `/proc` entries only the
//! kept capabilities open.

use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use rdkafka::{Message, consumer::StreamConsumer, message::BorrowedMessage};
use scope_schemas::{
    ConnectionEvent, ConnectionEventKind, ConnectionEvents, Record, ReportDelta,
    report::{host_node_id, keys},
    topics,
};
use scope_testkit::{
    Broker, Process, free_port, kube_api,
    netns::Netns,
    process::{python3, run},
};

const WAIT: Duration = Duration::from_secs(60);

/// CAP_DAC_READ_SEARCH (2), CAP_NET_ADMIN (12), CAP_SYS_PTRACE (19), CAP_SYS_ADMIN (21): what
/// `collector/src/privileges.rs` and the README say a node collector keeps. Written out here
/// rather than taken from the code, so a change to the kept set must change this test too.
const DOCUMENTED: u64 = 1 << 2 | 1 << 12 | 1 << 19 | 1 << 21;

/// `nobody`: not the collector's user, so its `/proc/<pid>/fd` is closed to a root without
/// CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE.
const OTHER_USER: u32 = 65534;

/// Listens on argv[1]:argv[2], connects to argv[3]:argv[4] (the listener itself, or an
/// address DNAT'ed to it), accepts, prints the client's port and holds both ends.
const CONNECTED: &str = r#"
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
c = socket.create_connection((sys.argv[3], int(sys.argv[4])))
conn, _ = s.accept()
print(c.getsockname()[1], flush=True)
time.sleep(3600)
"#;

/// What the DNAT rule of [`CONNECTED`]'s namespace sends a connection to 10.96.0.10:80 to,
/// as kube-proxy does for a service's virtual address.
const BACKEND: (&str, &str) = ("10.96.0.1", "8080");
const NAT_RULES: &str = "add table ip nat; \
    add chain ip nat output { type nat hook output priority -100; }; \
    add rule ip nat output ip daddr 10.96.0.10 tcp dport 80 dnat to 10.96.0.1:8080";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ebpf_only_the_documented_capabilities_are_kept() {
    if !scope_collector::test_support::root_or_skip("capabilities to drop, and eBPF") {
        return;
    }
    keeps_only_the_documented_capabilities("ebpf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_procfs_only_the_documented_capabilities_are_kept() {
    if !scope_collector::test_support::root_or_skip("capabilities to drop") {
        return;
    }
    keeps_only_the_documented_capabilities("procfs").await;
}

async fn keeps_only_the_documented_capabilities(tracker: &str) {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let consumer =
        scope_testkit::consumer_from_start(&kafka, &[topics::CONNECTIONS, topics::REPORTS]);
    let host_id = format!("privileges-test-{}-{tracker}", std::process::id());
    let mut command = Command::new(env!("CARGO_BIN_EXE_scope-collector"));
    command
        .args(["--brokers", &kafka.brokers, "--host-id", &host_id])
        .args(["--tracker", tracker])
        .args(["--spy-interval", "200ms", "--publish-interval", "1s"]);
    let collector = Process::spawn(command);

    // Its host node is published only after the tracker loaded and the capabilities were
    // dropped; its tracker mode says that loading still worked.
    let mut seen = Seen::default();
    consume(&consumer, &mut seen, &host_id, "the host node", |s| {
        s.tracker_mode.is_some()
    })
    .await;
    assert_eq!(seen.tracker_mode.as_deref(), Some(tracker));
    every_thread_keeps_only(collector.pid(), DOCUMENTED);

    // A connection made after the drop, by a process of another user.
    let port = free_port().to_string();
    let mut command = Command::new(python3());
    command
        .args(["-c", CONNECTED, "127.0.0.1", &port, "127.0.0.1", &port])
        .uid(OTHER_USER)
        .gid(OTHER_USER);
    let other = Process::spawn(command);
    let what = "the other user's connect and accept, with its pid";
    let server = ("127.0.0.1", port.as_str());
    connection_seen(&consumer, &mut seen, &host_id, what, &other, server).await;

    // A connection through DNAT in a network namespace of its own: only conntrack, asked
    // inside that namespace, names the real server.
    let netns = Netns::new(format!("scope-privileges-{tracker}"));
    run(&[
        "ip",
        "-n",
        netns.name(),
        "addr",
        "add",
        "10.96.0.1/24",
        "dev",
        "lo",
    ]);
    run(&["ip", "netns", "exec", netns.name(), "nft", NAT_RULES]);
    let (addr, port) = BACKEND;
    let script = [python3(), "-c", CONNECTED, addr, port, "10.96.0.10", "80"];
    let nat = Process::spawn(netns.command(&script));
    let what = "the connect through DNAT, to its real server";
    connection_seen(&consumer, &mut seen, &host_id, what, &nat, BACKEND).await;
}

/// Waits for the connect and the accept of the connection `process` (a [`CONNECTED`])
/// holds, with its pid, the connect towards `server`.
async fn connection_seen(
    consumer: &StreamConsumer,
    seen: &mut Seen,
    host_id: &str,
    what: &str,
    process: &Process,
    (addr, port): (&str, &str),
) {
    let client_port = process.line(WAIT, "its port");
    let pid = Some(process.pid() as i32);
    consume(consumer, seen, host_id, what, |s| {
        let owned = |kind, local_port: &str| {
            s.events
                .iter()
                .find(|e| e.kind == kind && e.pid == pid && e.local_port.to_string() == local_port)
        };
        owned(ConnectionEventKind::Connect, client_port.trim()).is_some_and(|e| {
            (e.remote_addr.as_str(), e.remote_port.to_string().as_str()) == (addr, port)
        }) && owned(ConnectionEventKind::Accept, port).is_some()
    })
    .await;
}

/// The cluster role reads no node: it keeps no capability at all, and still publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_role_keeps_no_capability() {
    if !scope_collector::test_support::root_or_skip("capabilities to drop") {
        return;
    }
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let consumer =
        scope_testkit::consumer_from_start(&kafka, &[topics::CONNECTIONS, topics::REPORTS]);
    // An API server that is away: the collector retries it and publishes the cluster meanwhile.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig =
        kube_api::write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{}", free_port()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_scope-collector"));
    command
        .args(["--role", "cluster", "--brokers", &kafka.brokers])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        // kube's client logs every failed connection as an error: expected here.
        .env("RUST_LOG", "warn,scope_collector=info,kube_client=off");
    let collector = Process::spawn(command);
    let mut seen = Seen::default();
    consume(&consumer, &mut seen, "", "a report delta", |s| s.deltas > 0).await;
    every_thread_keeps_only(collector.pid(), 0);
}

/// Every thread of `pid` has `documented` (of what this test holds, which bounds what the
/// collector can keep) as its permitted, effective and bounding sets, no inheritable or
/// ambient one, and no_new_privs.
fn every_thread_keeps_only(pid: u32, documented: u64) {
    let expected = documented & thread_capabilities(std::process::id())[0].1.permitted;
    let threads = thread_capabilities(pid);
    assert!(
        threads.len() > 1,
        "the Kafka producer's threads are checked too: {threads:#?}"
    );
    for (thread, caps) in &threads {
        assert_eq!(
            caps,
            &Capabilities {
                inheritable: 0,
                permitted: expected,
                effective: expected,
                bounding: expected,
                ambient: 0,
                no_new_privs: true,
            },
            "thread {thread} of the collector"
        );
    }
}

/// What the collector published for its host so far.
#[derive(Default)]
struct Seen {
    events: Vec<ConnectionEvent>,
    deltas: usize,
    tracker_mode: Option<String>,
}

/// Reads both topics until `done` holds, or fails after [`WAIT`] naming `what`.
async fn consume(
    consumer: &StreamConsumer,
    seen: &mut Seen,
    host_id: &str,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    let host_node = host_node_id(host_id);
    let fold = |seen: &mut Seen, message: &BorrowedMessage<'_>| {
        let payload = message.payload().expect("records have values");
        match message.topic() {
            topics::CONNECTIONS => {
                let batch = ConnectionEvents::decode(payload).expect("valid ConnectionEvents");
                seen.events.extend(batch.events);
            }
            _ => {
                let delta = ReportDelta::decode(payload).expect("valid ReportDelta");
                seen.deltas += 1;
                let mode = delta
                    .upserts
                    .iter()
                    .filter(|node| node.id == host_node)
                    .find_map(|node| node.latest(keys::TRACKER_MODE));
                if let Some(mode) = mode {
                    seen.tracker_mode = Some(mode.to_owned());
                }
            }
        }
    };
    scope_testkit::consume_until(consumer, WAIT, seen, fold, done)
        .await
        .unwrap_or_else(|timed_out| {
            panic!("{timed_out} waiting for {what}; saw {:#?}", seen.events)
        });
}

/// One thread's capability sets, from its `status`.
#[derive(Debug, PartialEq, Eq)]
struct Capabilities {
    inheritable: u64,
    permitted: u64,
    effective: u64,
    bounding: u64,
    ambient: u64,
    no_new_privs: bool,
}

/// Every thread of `pid` (name and tid) with its capabilities. A thread that ends between
/// the listing and the read (a conntrack helper) is left out.
fn thread_capabilities(pid: u32) -> Vec<(String, Capabilities)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the collector runs");
    tasks
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                    .unwrap_or_else(|| panic!("{name} in {}", dir.display()))
                    .trim()
                    .to_owned()
            };
            let set = |name: &str| u64::from_str_radix(&field(name), 16).unwrap();
            let caps = Capabilities {
                inheritable: set("CapInh"),
                permitted: set("CapPrm"),
                effective: set("CapEff"),
                bounding: set("CapBnd"),
                ambient: set("CapAmb"),
                no_new_privs: field("NoNewPrivs") == "1",
            };
            Some((format!("{} ({})", field("Name"), dir.display()), caps))
        })
        .collect()
}
