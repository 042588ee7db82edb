//! Faults, each against the pipeline run as separate processes (collector, merger, renderer)
//! on a broker, with a known workload of real connections whose clients record when each
//! opened and closed: after the fault, what a user sees (the newest complete snapshots, the
//! rendered topic) must equal that record, with nothing missing, doubled or stale.
//!
//! Each test prints its figures (`cargo test -p scope --test faults -- --nocapture`), which
//! BENCHMARKS.md records.
//!
//! # Layout
//! - `pipeline`: the broker, the three stages as processes, SIGKILL and restart.
//! - `workload`: the server and client processes, and the truth their record gives.
//! - `snapshots`: the workload's connections in every rendered snapshot, judged against it.
//! - `rendered`: a rendered topic folded into its current graph, tombstones noted.

#[path = "../support/mod.rs"]
mod support;

mod pipeline;
mod rendered;
mod snapshots;
mod workload;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use scope_testkit::now_us;

use pipeline::{Pipeline, Stop};
use snapshots::{MARGIN, Snapshots, Tally, WINDOW, converged_after};
use workload::{Client, Server, Truth};

/// How long a stopped stage stays down before its supervisor starts it again.
const DOWNTIME: Duration = Duration::from_secs(2);
/// From a cold start (the broker's consumer groups, the first full report, the first
/// render) to a first snapshot equal to the truth, on a loaded machine.
const START: Duration = Duration::from_secs(90);

/// One fault's figures, as BENCHMARKS.md records them.
fn figures(fault: &str, tally: &Tally, converged: Duration) {
    println!(
        "faults: {fault}: {} snapshots, connections opened {}, seen {}, lost {}, \
         doubled {}, stale {}, wrong state {}, missing {} (snapshot x connection); \
         converged {:.1} s after the restart",
        tally.snapshots,
        tally.opened,
        tally.seen,
        tally.lost,
        tally.doubled,
        tally.stale,
        tally.wrong_state,
        tally.missing,
        converged.as_secs_f64()
    );
}

/// What a user saw once the pipeline recovered from a fault.
struct Recovery {
    /// The first snapshot after the restart from which they all equal the truth.
    converged: i64,
    /// From the restart until that snapshot was seen.
    took: Duration,
    /// Every snapshot until they settled, and the truth.
    snapshots: Snapshots,
    truth: Truth,
}

impl Recovery {
    /// The figures of every snapshot from `first` on (see [`Tally::of`]).
    fn tally(&self, first: i64, excused: impl Fn(i64, u16) -> bool) -> (Tally, String) {
        Tally::of(&self.snapshots, &self.truth, first - 1, excused)
    }
}

/// Waits up to `limit` after a stage's restart (`restarted`, µs) for the snapshots to settle
/// on the truth, then reads them all.
fn recover(
    pipeline: &Pipeline,
    server: &Server,
    records: &[PathBuf],
    restarted: i64,
    limit: Duration,
) -> Recovery {
    let restarted_at = Instant::now();
    let (converged, converged_at) =
        converged_after(pipeline, server.port, records, restarted, limit);
    Recovery {
        converged,
        took: converged_at.saturating_duration_since(restarted_at),
        snapshots: Snapshots::read(&pipeline.data_dir, server.port),
        // Read after the snapshots, so every connection they can hold is recorded.
        truth: Truth::read(records),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_killed_and_restarted_leaves_no_gap_and_no_duplicate() {
    collector_killed_and_restarted(0).await;
}

/// A connection closed while its collector is down is never reported closed: the restarted
/// collector does not know it. Its first full report (every open connection) closes what it
/// leaves out, so the connection leaves with the window, not when it would expire
/// unconfirmed (2 x window + full interval after the last full report before the kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_closed_while_the_collector_is_down_leave_with_the_window() {
    collector_killed_and_restarted(5).await;
}

/// Kills the collector with 20 connections held, opens 10 and closes `close` of the held
/// ones while it is down, restarts it: every snapshot keeps the connections it knew (no
/// gap), none has one twice, and within the window after the restart the snapshots equal
/// the truth again.
async fn collector_killed_and_restarted(close: usize) {
    let mut pipeline = Pipeline::start().await;
    let server = Server::start();
    let records = vec![pipeline.scratch("client.record")];
    let mut client = Client::start(&server, &records[0]);
    let held = client.open(20);
    let (first, _) = converged_after(&pipeline, server.port, &records, now_us(), START);

    let (killed, restarted, ()) =
        pipeline
            .collector
            .stop_then_restart(Stop::Kill, DOWNTIME, || {
                client.open(10);
                client.close(&held[..close]);
            });

    let limit = WINDOW + MARGIN + Duration::from_secs(10);
    let recovery = recover(&pipeline, &server, &records, restarted, limit);
    // Until it converged, a snapshot cannot know what happened while the collector was down.
    let blind = |port: u16| {
        let life = recovery.truth.connections[&port];
        (killed..=restarted).contains(&life.opened_us)
            || life
                .closed_us
                .is_some_and(|c| (killed..=restarted).contains(&c))
    };
    let (tally, differences) =
        recovery.tally(first, |t, port| t < recovery.converged && blind(port));
    figures(
        &format!("collector Kill and restart, {close} closed while down"),
        &tally,
        recovery.took,
    );
    assert!(
        tally.clean(),
        "snapshots differ from the truth:\n{differences}\n{}",
        pipeline.logs()
    );
    assert_eq!(tally.seen, tally.opened, "a connection was never seen");
}

/// The restarted renderer reads back the published views, then consumes `scope.snapshots`
/// in its consumer group, which its killed predecessor never left (see the merger's, below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_renderer_killed_and_restarted_converges_with_no_stale_node_and_no_live_tombstone() {
    renderer_restarted(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_renderer_stopped_and_restarted_converges_with_no_stale_node_and_no_live_tombstone() {
    renderer_restarted(Stop::Term).await;
}

/// With the workload rendered, stops the renderer by `stop`; while it is down, a client and
/// a process with no connection exit and a new client connects; restarts it: the rendered
/// processes converge on the live ones with their edges, the exited ones tombstoned, and no
/// live node is tombstoned on the way.
async fn renderer_restarted(stop: Stop) {
    let mut pipeline = Pipeline::start().await;
    let server = Server::start();
    let mut stays = Client::start(&server, &pipeline.scratch("stays.record"));
    stays.open(3);
    let mut exits = Client::start(&server, &pipeline.scratch("exits.record"));
    exits.open(2);
    // A process with no connection at all, which exits too.
    let idle = scope_testkit::Process::python("import sys\nsys.stdin.read()", &[]);
    let host = support::hostname();
    let id = |pid: u32| format!("{host};{pid}");
    let (server_id, stays_id, exits_id, idle_id) = (
        id(server.process.pid()),
        id(stays.process.pid()),
        id(exits.process.pid()),
        id(idle.pid()),
    );
    let mut view = rendered::RenderedView::subscribe(&pipeline.brokers, "processes");
    let before = |nodes: &_| {
        rendered::has_edge(nodes, &stays_id, &server_id)
            && rendered::has_edge(nodes, &exits_id, &server_id)
            && nodes.contains_key(&idle_id)
    };
    view.until(START, before)
        .await
        .unwrap_or_else(|e| panic!("{e}: the workload never rendered\n{}", pipeline.logs()));

    let scratch = pipeline.scratch("starts.record");
    let (stopped, _, starts) = pipeline.renderer.stop_then_restart(stop, DOWNTIME, || {
        // While it is down, two processes exit and one starts.
        drop(exits);
        drop(idle);
        let mut starts = Client::start(&server, &scratch);
        starts.open(2);
        starts
    });
    let restarted_at = Instant::now();
    let starts_id = id(starts.process.pid());

    // The exited client keeps its node for as long as its closed connections are in the
    // window, and the collector keeps an exited process that connected for EXITED_TTL (30 s).
    let after = |nodes: &_| {
        rendered::has_edge(nodes, &stays_id, &server_id)
            && rendered::has_edge(nodes, &starts_id, &server_id)
            && !nodes.contains_key(&exits_id)
            && !nodes.contains_key(&idle_id)
    };
    let converged = view.until(Duration::from_secs(90), after).await;
    let took = restarted_at.elapsed();
    let live = [&server_id, &stays_id, &starts_id];
    let live_tombstoned: Vec<_> = view
        .tombstones
        .iter()
        .filter(|(id, at)| *at > stopped && live.contains(&id))
        .collect();
    let stale: Vec<_> = [&exits_id, &idle_id]
        .into_iter()
        .filter(|id| view.nodes.contains_key(*id))
        .collect();
    println!(
        "faults: renderer {stop:?} and restart: live nodes 3, live tombstoned {}, stale nodes {}, \
         converged {:.1} s after the restart",
        live_tombstoned.len(),
        stale.len(),
        took.as_secs_f64()
    );
    assert!(
        live_tombstoned.is_empty(),
        "live nodes tombstoned: {live_tombstoned:?}"
    );
    converged.unwrap_or_else(|e| {
        let edges: Vec<_> = [&server_id, &stays_id, &starts_id, &exits_id, &idle_id]
            .into_iter()
            .map(|id| (id, view.nodes.get(id).map(|n| &n.adjacency)))
            .collect();
        panic!(
            "{e}: the rendered processes did not converge; stale {stale:?}; workload nodes \
             {edges:?}\n{}",
            pipeline.logs()
        )
    });
}

/// The restarted merger joins the consumer group its killed predecessor never left. tansu
/// 0.6 formed the group with no assignment when the dead leader's session lapsed between the
/// JoinGroup and the SyncGroup, and cut nothing again; the embedded broker's proxy now makes a
/// member whose connections closed without a LeaveGroup leave (`kafka/src/members.rs`), and
/// passes an empty SyncGroup assignment on as a null one (`kafka/src/sync_group.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_merger_killed_under_load_and_restarted_cuts_the_truth_next() {
    merger_restarted(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_merger_stopped_under_load_and_restarted_cuts_the_truth_next() {
    merger_restarted(Stop::Term).await;
}

/// With 10 connections held and 10 a second opening and closing, stops the merger by
/// `stop` and restarts it: every snapshot, the first after the restart included, equals the
/// truth.
async fn merger_restarted(stop: Stop) {
    let mut pipeline = Pipeline::start().await;
    let server = Server::start();
    let records = vec![pipeline.scratch("client.record")];
    let mut client = Client::start(&server, &records[0]);
    client.open(10);
    // Each churned connection lives longer than the collector's /proc spy interval, so either
    // tracker sees all of them.
    client.churn(10, Duration::from_secs(2));
    let (first, _) = converged_after(&pipeline, server.port, &records, now_us(), START);

    let (stopped, restarted, ()) = pipeline.merger.stop_then_restart(stop, DOWNTIME, || ());

    let recovery = recover(
        &pipeline,
        &server,
        &records,
        restarted,
        Duration::from_secs(45),
    );
    let (tally, differences) = recovery.tally(first, |_, _| false);
    figures(
        &format!("merger {stop:?} under load and restart"),
        &tally,
        recovery.took,
    );
    let next = recovery.snapshots.after(stopped).next().map(|(t, _)| *t);
    println!(
        "faults: merger {stop:?}: the first snapshot after the stop is {:.1} s after it",
        next.map_or(f64::NAN, |t| (t - stopped) as f64 / 1e6)
    );
    assert!(
        tally.clean(),
        "snapshots differ from the truth:\n{differences}\n{}",
        pipeline.logs()
    );
}
