//! The tracker loaded into this kernel for real (needs root), watching this test's own
//! connections.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use scope_ebpf::{DEFAULT_RING_BUFFER_BYTES, Event, EventKind, Tracker};

/// Reads batches until `found` holds for everything seen, or fails after 10 s.
async fn events_until(
    tracker: &mut Tracker,
    what: &str,
    found: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    let wait = async {
        while !found(&seen) {
            tracker.next_batch(&mut seen).await.unwrap();
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_err()
    {
        panic!("no {what} in {seen:#?}");
    }
    seen
}

fn has(events: &[Event], kind: EventKind, local: SocketAddr, remote: SocketAddr) -> bool {
    events
        .iter()
        .any(|e| e.kind == kind && e.local == local && e.remote == remote)
}

#[tokio::test]
async fn sees_connect_accept_and_close_with_their_processes() {
    if !scope_ebpf::test_support::root_or_skip("loading eBPF programs") {
        return;
    }
    let mut tracker = Tracker::load(DEFAULT_RING_BUFFER_BYTES).expect("load the tracker");
    let me = std::process::id() as i32;
    let own_netns = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/net").unwrap().ino()
    };

    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let listener = TcpListener::bind(bind).unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).unwrap();
        let client_addr = client.local_addr().unwrap();
        let (accepted, _) = listener.accept().unwrap();
        drop(client);
        drop(accepted);

        let events = events_until(&mut tracker, "connect, accept and two closes", |events| {
            has(events, EventKind::Connect, client_addr, server)
                && has(events, EventKind::Accept, server, client_addr)
                && has(events, EventKind::Close, client_addr, server)
                && has(events, EventKind::Close, server, client_addr)
        })
        .await;
        let open = |kind| {
            events
                .iter()
                .find(|e| e.kind == kind && (e.local == client_addr || e.local == server))
                .unwrap()
        };
        for event in [open(EventKind::Connect), open(EventKind::Accept)] {
            assert_eq!(event.pid, Some(me), "{event:?}");
            assert!(event.comm.is_some(), "{event:?}");
            assert_eq!(event.netns, own_netns);
            let age_us = age_us(event);
            assert!((0..10_000_000).contains(&age_us), "{age_us} µs old");
        }
    }
    assert_eq!(tracker.lost_events().unwrap(), 0);
    assert_eq!(tracker.malformed_records(), 0);
}

fn age_us(event: &Event) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    now - Tracker::wall_clock_us(event.monotonic_ns)
}
