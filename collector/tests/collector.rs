//! End to end: a real collector, with each connection tracker, publishing to an embedded
//! broker while two real processes open, hold and drop a TCP connection.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use rdkafka::{Message, consumer::StreamConsumer, message::BorrowedMessage};
use scope_collector::{CollectorArgs, Stats, TrackerChoice};
use scope_schemas::{
    AddressFamily, ConnectionEvent, ConnectionEventKind, ConnectionEvents, EventSource, Node,
    Record, ReportDelta,
    report::{host_node_id, keys, process_node_id},
    topics,
};
use scope_testkit::{Broker, Process, Running, free_port, wait_for_async};

const WAIT: Duration = Duration::from_secs(60);

/// Listens on a free loopback port, prints it, accepts one connection and holds it.
const SERVER: &str = r#"
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
conn, _ = s.accept()
time.sleep(3600)
"#;

/// Connects to the port in argv[1], prints its own port, holds the connection.
const CLIENT: &str = r#"
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(c.getsockname()[1], flush=True)
time.sleep(3600)
"#;

/// Starts `python3 -c script args...` and reads the port it prints first.
fn spawn_python(script: &str, args: &[&str]) -> (Process, String) {
    let process = Process::python(script, args);
    let port = process.line(WAIT, "its port").trim().to_owned();
    (process, port)
}

/// Runs a collector in this test, returned once its first spy has read what existed.
async fn start_collector(args: CollectorArgs) -> (Running<scope_collector::Error>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let counted = Arc::clone(&stats);
    let collector =
        Running::start(|shutdown| scope_collector::run_with_stats(args, shutdown, counted));
    wait_for_async("the collector's first spy", WAIT, || {
        (stats.spies.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    (collector, stats)
}

/// Everything of our host read so far.
#[derive(Default)]
struct Seen {
    events: Vec<ConnectionEvent>,
    deltas: Vec<ReportDelta>,
}

/// Consumes until `done` holds, failing after [`WAIT`].
async fn consume_until(
    consumer: &StreamConsumer,
    seen: &mut Seen,
    host_id: &str,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    let fold = |seen: &mut Seen, message: &BorrowedMessage<'_>| record(seen, host_id, message);
    scope_testkit::consume_until(consumer, WAIT, seen, fold, done)
        .await
        .unwrap_or_else(|timed_out| {
            panic!(
                "{timed_out} waiting for {what}; saw {} events: {:#?}\nand {} deltas",
                seen.events.len(),
                seen.events,
                seen.deltas.len()
            )
        });
}

/// Adds a record of `host_id` to what was seen.
fn record(seen: &mut Seen, host_id: &str, message: &BorrowedMessage<'_>) {
    // This broker only holds this collector's records, all keyed by its host id.
    assert_eq!(message.key(), Some(host_id.as_bytes()));
    let payload = message.payload().expect("records have values");
    match message.topic() {
        topics::CONNECTIONS => {
            let batch = ConnectionEvents::decode(payload).expect("valid ConnectionEvents");
            assert!(!batch.events.is_empty(), "an empty batch was published");
            seen.events
                .extend(batch.events.into_iter().filter(|e| e.host_id == host_id));
        }
        topics::REPORTS => {
            let delta = ReportDelta::decode(payload).expect("valid ReportDelta");
            if delta.host_id == host_id {
                seen.deltas.push(delta);
            }
        }
        other => panic!("unexpected topic {other}"),
    }
}

/// The most recent upsert of a node.
fn latest<'a>(seen: &'a Seen, id: &str) -> Option<&'a Node> {
    seen.deltas
        .iter()
        .flat_map(|d| &d.upserts)
        .rfind(|n| n.id == id)
}

fn find_event(
    seen: &Seen,
    kind: ConnectionEventKind,
    pid: u32,
    local_port: &str,
) -> Option<ConnectionEvent> {
    seen.events
        .iter()
        .find(|e| {
            e.kind == kind
                && e.pid == Some(pid as i32)
                && e.local_port.to_string() == local_port
                && !e.refresh
        })
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_real_processes_and_their_connection_with_ebpf() {
    if !scope_collector::test_support::root_or_skip("the eBPF tracker") {
        return;
    }
    reports_real_processes_and_their_connection(TrackerChoice::Ebpf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_real_processes_and_their_connection_with_procfs() {
    reports_real_processes_and_their_connection(TrackerChoice::Procfs).await;
}

async fn reports_real_processes_and_their_connection(tracker: TrackerChoice) {
    let (source, mode) = match tracker {
        TrackerChoice::Ebpf => (EventSource::Ebpf, "ebpf"),
        _ => (EventSource::Procfs, "procfs"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();

    let (_broker, kafka) = Broker::start_with_topics(1).await;

    let host_id = format!("collector-test-{}-{mode}", std::process::id());
    let mut args = CollectorArgs::new(kafka.clone());
    args.tracker = tracker;
    args.host_id = Some(host_id.clone());
    args.spy_interval = Duration::from_millis(100);
    args.publish_interval = Duration::from_millis(300);
    args.full_every = 2;
    let consumer =
        scope_testkit::consumer_from_start(&kafka, &[topics::CONNECTIONS, topics::REPORTS]);
    // Once the first spy has read what existed, new connections come only from the tracker.
    let (collector, stats) = start_collector(args).await;

    // Two real processes holding one loopback connection.
    let (server, server_port) = spawn_python(SERVER, &[]);
    let (client, client_port) = spawn_python(CLIENT, &[&server_port]);
    let (server_pid, client_pid) = (server.pid(), client.pid());

    let mut seen = Seen::default();
    consume_until(
        &consumer,
        &mut seen,
        &host_id,
        "connect and accept events",
        |s| {
            find_event(s, ConnectionEventKind::Connect, client_pid, &client_port).is_some()
                && find_event(s, ConnectionEventKind::Accept, server_pid, &server_port).is_some()
        },
    )
    .await;
    let connect = find_event(
        &seen,
        ConnectionEventKind::Connect,
        client_pid,
        &client_port,
    )
    .unwrap();
    assert_eq!(
        (
            connect.family,
            connect.local_addr.as_str(),
            connect.remote_addr.as_str()
        ),
        (AddressFamily::Ipv4, "127.0.0.1", "127.0.0.1")
    );
    assert_eq!(connect.remote_port.to_string(), server_port);
    assert_eq!(connect.source, source);
    assert!(
        connect
            .process_name
            .as_deref()
            .is_some_and(|n| n.starts_with("python")),
        "{connect:?}"
    );
    assert!(connect.netns > 0);
    let accept = find_event(&seen, ConnectionEventKind::Accept, server_pid, &server_port).unwrap();
    assert_eq!(accept.remote_port.to_string(), client_port);
    assert_eq!(accept.netns, connect.netns);

    // Reports: the server's process node and the host node with its loopback network.
    let server_node = process_node_id(&host_id, server_pid as i32);
    let host_node = host_node_id(&host_id);
    // An early spy may catch the server between fork and exec, so wait for the version
    // of its node that shows the Python program.
    consume_until(
        &consumer,
        &mut seen,
        &host_id,
        "process and host nodes",
        |s| {
            latest(s, &server_node).is_some_and(|n| {
                n.latest(keys::CMDLINE)
                    .is_some_and(|c| c.contains("s.listen()"))
            }) && latest(s, &host_node).is_some_and(|n| {
                n.sets
                    .get(keys::LOCAL_NETWORKS)
                    .is_some_and(|nets| nets.iter().any(|c| c == "127.0.0.1/8"))
            })
        },
    )
    .await;
    let process = latest(&seen, &server_node).unwrap();
    assert_eq!(process.topology, keys::PROCESS);
    assert_eq!(
        process.latest(keys::PID),
        Some(server_pid.to_string().as_str())
    );
    assert_eq!(
        process.latest(keys::PPID),
        Some(std::process::id().to_string().as_str())
    );
    assert!(
        process
            .latest(keys::CMDLINE)
            .is_some_and(|c| c.contains("s.listen()"))
    );
    assert_eq!(process.parents[keys::HOST], [host_node.as_str()]);
    let host = latest(&seen, &host_node).unwrap();
    assert_eq!(host.latest(keys::TRACKER_MODE), Some(mode));

    // The first delta of each reporter is full, and seq only goes up.
    for reporter in [keys::HOST, keys::PROCESS] {
        let deltas: Vec<&ReportDelta> = seen
            .deltas
            .iter()
            .filter(|d| d.reporter == reporter)
            .collect();
        assert!(deltas[0].full, "first {reporter} delta is full");
        assert!(
            deltas.windows(2).all(|w| w[0].seq < w[1].seq),
            "{reporter} seqs increase"
        );
    }

    // The client exits: its end of the connection closes, and so does the server's.
    drop(client);
    consume_until(&consumer, &mut seen, &host_id, "close events", |s| {
        find_event(s, ConnectionEventKind::Close, client_pid, &client_port).is_some()
            && find_event(s, ConnectionEventKind::Close, server_pid, &server_port).is_some()
    })
    .await;
    let close = find_event(&seen, ConnectionEventKind::Close, client_pid, &client_port).unwrap();
    assert!(close.timestamp_us >= connect.timestamp_us);
    assert_eq!(close.remote_port, connect.remote_port);

    collector.stop(WAIT).await;
    let metrics = stats.metrics();
    assert!(
        stats.events_published.load(Ordering::Relaxed) >= 4,
        "{metrics:?}"
    );
    assert!(
        stats.deltas_published.load(Ordering::Relaxed) >= 2,
        "{metrics:?}"
    );
    assert_eq!(
        stats.publish_failures.load(Ordering::Relaxed),
        0,
        "{metrics:?}"
    );
}

/// `GET /metrics` of a collector: the value of the sample `series` (name and labels).
fn scrape(addr: &str, series: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: scope\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Polls the collector's metrics until `series` satisfies `ok`, or fails after [`WAIT`].
async fn wait_for_metric(addr: &str, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    wait_for_async(series, WAIT, || scrape(addr, series).filter(|v| ok(*v))).await
}

/// A collector whose eBPF ring buffer overflows (it is stopped with SIGSTOP while connections
/// are made) counts the lost events, resyncs from /proc and so still reports the connection
/// whose connect event was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_kernel_events_are_counted_and_resynced_from_proc() {
    if !scope_collector::test_support::root_or_skip("the eBPF tracker") {
        return;
    }
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let host_id = format!("collector-test-{}-lost", std::process::id());
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_scope-collector"));
    command
        .args(["--brokers", &kafka.brokers, "--host-id", &host_id])
        .args(["--tracker", "ebpf", "--ebpf-ring-buffer-bytes", "4096"])
        .args(["--spy-interval", "200ms", "--publish-interval", "1s"])
        .args(["--metrics-addr", &metrics]);
    let collector = Process::spawn(command);
    let pid = collector.pid() as i32;
    wait_for_metric(&metrics, "scope_collector_spies_total", |n| n >= 1.0).await;
    assert_eq!(
        scrape(&metrics, "scope_collector_tracker_mode{mode=\"ebpf\"}"),
        Some(1.0)
    );

    // Frozen, it cannot drain the ring buffer: a page holds about 50 records, and 300
    // connections make 1,200.
    // SAFETY: kill has no memory-safety preconditions; pid is our live child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    for _ in 0..300 {
        let client = std::net::TcpStream::connect(server).unwrap();
        drop(listener.accept().unwrap());
        drop(client);
    }
    let held = std::net::TcpStream::connect(server).unwrap();
    let (_held_server, _) = listener.accept().unwrap();
    let held_port = held.local_addr().unwrap().port();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);

    let lost = wait_for_metric(&metrics, "scope_collector_ebpf_lost_events_total", |n| {
        n > 0.0
    })
    .await;
    wait_for_metric(&metrics, "scope_collector_resyncs_total", |n| n >= 1.0).await;
    // The test process's own metric scrapes connect from ephemeral ports too, and one may get
    // the held connection's port towards another destination: only the whole pair names it.
    let held_connect = |s: &Seen| {
        s.events
            .iter()
            .find(|e| {
                e.kind == ConnectionEventKind::Connect
                    && e.pid == Some(std::process::id() as i32)
                    && e.local_port == i32::from(held_port)
                    && e.remote_port == i32::from(server.port())
                    && !e.refresh
            })
            .cloned()
    };
    let consumer =
        scope_testkit::consumer_from_start(&kafka, &[topics::CONNECTIONS, topics::REPORTS]);
    let mut seen = Seen::default();
    consume_until(&consumer, &mut seen, &host_id, "the held connection", |s| {
        held_connect(s).is_some()
    })
    .await;
    let connect = held_connect(&seen).unwrap();
    assert_eq!(
        connect.source,
        EventSource::Procfs,
        "its connect event was among the {lost} lost, so only the resync can report it"
    );
}

/// Connects a TCP client to its own listener, accepts, then puts the client's socket in flight
/// over a Unix socket pair and closes its own descriptor, so no process holds it. Prints the
/// client's and the server's ports; on a line from stdin it receives the socket (it holds it from then on) and
/// prints `owned`.
const IN_FLIGHT: &str = r#"
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
c = socket.create_connection(s.getsockname())
conn, _ = s.accept()
a, b = socket.socketpair()
socket.send_fds(a, [b"x"], [c.fileno()])
port = c.getsockname()[1]
c.close()
print(port, s.getsockname()[1], flush=True)
sys.stdin.readline()
_, fds, _, _ = socket.recv_fds(b, 1, 1)
held = socket.socket(fileno=fds[0])
print("owned", flush=True)
time.sleep(3600)
"#;

/// In eBPF mode the kernel sends no event for a connection that existed before the tracker
/// loaded, so one that the start-up scan found held by no process (here: in flight between
/// descriptors, as in an accept queue) must be resolved by a later scan, and announced with
/// the process that holds it by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_an_owner_at_start_up_is_announced_with_its_owner_later() {
    if !scope_collector::test_support::root_or_skip("the eBPF tracker") {
        return;
    }
    let (_broker, kafka) = Broker::start_with_topics(1).await;

    let mut holder = Process::python(IN_FLIGHT, &[]);
    let ports = holder.line(WAIT, "the client's and the server's ports");
    let (client_port, server_port) = ports
        .trim()
        .split_once(' ')
        .map(|(c, s)| (c.to_owned(), s.to_owned()))
        .expect("two ports");
    // Another connection of this machine may get the same local port towards another peer
    // (ports are unique per four-tuple): only this one has both.
    let this_connection = |e: &ConnectionEvent| {
        e.kind == ConnectionEventKind::Connect
            && e.local_port.to_string() == client_port
            && e.remote_port.to_string() == server_port
    };

    let host_id = format!("collector-test-{}-unowned", std::process::id());
    let mut args = CollectorArgs::new(kafka.clone());
    args.tracker = TrackerChoice::Ebpf;
    args.host_id = Some(host_id.clone());
    // With eBPF the spy runs once a publish: long enough that the socket is received well
    // before the second spy, which the test checks rather than assumes.
    args.publish_interval = Duration::from_secs(2);
    let consumer =
        scope_testkit::consumer_from_start(&kafka, &[topics::CONNECTIONS, topics::REPORTS]);
    let (collector, stats) = start_collector(args).await;
    let spies = || stats.spies.load(Ordering::Relaxed);
    holder.write_line("take it");
    assert_eq!(holder.line(WAIT, "owned"), "owned");
    assert_eq!(
        spies(),
        1,
        "the socket must be owned before the second spy for this test to mean anything"
    );

    let mut seen = Seen::default();
    consume_until(
        &consumer,
        &mut seen,
        &host_id,
        "the connect of the connection in flight at start-up",
        |s| s.events.iter().any(|e| this_connection(e) && !e.refresh),
    )
    .await;
    let connect = seen.events.iter().find(|e| this_connection(e)).unwrap();
    assert_eq!(
        (connect.pid, connect.source),
        (Some(holder.pid() as i32), EventSource::Procfs)
    );
    assert!(spies() >= 2);

    collector.stop(WAIT).await;
}
