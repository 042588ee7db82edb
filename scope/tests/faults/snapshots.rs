//! What a user sees of the workload in the snapshots (`scope sql` over `history.connections`),
//! judged against the clients' record: a connection missing, counted twice, or still there
//! after it left the window.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use scope_testkit::wait_for;

use crate::pipeline::Pipeline;
use crate::support::sql;
use crate::workload::Truth;

/// The merger's window (its default, which the pipeline runs with).
pub const WINDOW: Duration = Duration::from_secs(15);
/// How far from a window's edges a connection's open or close may be and still be either in
/// or out: the collector's reading, the publish and the cut are not instantaneous, and a
/// loaded machine (two cores, tests in parallel) takes seconds.
pub const MARGIN: Duration = Duration::from_secs(3);

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).expect("a duration in µs")
}

/// The workload's connections in every rendered snapshot: snapshot time (µs) -> the rows,
/// as (client port, state). Every rendered time is listed, with or without rows.
pub struct Snapshots(pub BTreeMap<i64, Vec<(u16, String)>>);

impl Snapshots {
    pub fn read(data_dir: &Path, server_port: u16) -> Snapshots {
        // Every rendered time has process nodes (the test's own at least): they list the
        // times, with a port of -1 that no connection has.
        let query = format!(
            "select cast(snapshot_time as bigint) as t, -1 as client_port, '' as state \
             from (select distinct snapshot_time from history.graph_nodes where view = 'processes') \
             union all \
             select cast(snapshot_time as bigint), client_port, state from history.connections \
             where server_port = {server_port} and server_addr = '127.0.0.1'"
        );
        let (ok, out, err) = sql(data_dir, "csv", &query);
        let mut times: BTreeMap<i64, Vec<(u16, String)>> = BTreeMap::new();
        if !ok {
            // No snapshot rendered yet: the tables do not exist.
            assert!(
                err.contains("not found") || err.contains("No table"),
                "{err}"
            );
            return Snapshots(times);
        }
        for line in out.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            let [t, port, state] = fields[..] else {
                panic!("an unexpected row {line:?}");
            };
            let rows = times.entry(t.parse().expect("a time")).or_default();
            if let Ok(port) = port.parse::<u16>() {
                rows.push((port, state.to_owned()));
            }
        }
        Snapshots(times)
    }

    /// The times after `since_us` (µs).
    pub fn after(&self, since_us: i64) -> impl Iterator<Item = (&i64, &Vec<(u16, String)>)> {
        self.0.range(since_us + 1..)
    }
}

/// How one snapshot differs from the truth, by client port.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Open within the window (clear of its edges), not in the snapshot.
    pub missing: Vec<u16>,
    /// In the snapshot more than once (each extra row once).
    pub doubled: Vec<u16>,
    /// In the snapshot though closed before the window (clear of its edge), or unknown.
    pub stale: Vec<u16>,
    /// Shown open though closed before the snapshot time, or closed though open at it.
    pub wrong_state: Vec<u16>,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        self.missing.is_empty()
            && self.doubled.is_empty()
            && self.stale.is_empty()
            && self.wrong_state.is_empty()
    }
}

/// Judges the snapshot at `t_us` (rows as [`Snapshots`] has them).
pub fn judge(truth: &Truth, t_us: i64, rows: &[(u16, String)]) -> Verdict {
    let (window, margin) = (us(WINDOW), us(MARGIN));
    let mut verdict = Verdict::default();
    let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
    for (port, state) in rows {
        *counts.entry(*port).or_default() += 1;
        let Some(life) = truth.connections.get(port) else {
            verdict.stale.push(*port);
            continue;
        };
        if !life.open_within(t_us - window - margin, t_us + margin) {
            verdict.stale.push(*port);
        }
        let closed_before = life.closed_us.is_some_and(|c| c <= t_us - margin);
        let open_after = life.closed_us.is_none_or(|c| c > t_us + margin);
        if (state == "open" && closed_before) || (state == "closed" && open_after) {
            verdict.wrong_state.push(*port);
        }
    }
    for (port, life) in &truth.connections {
        let must = life.open_within(t_us - window + margin, t_us - margin);
        if must && !counts.contains_key(port) {
            verdict.missing.push(*port);
        }
    }
    for (port, n) in counts {
        verdict
            .doubled
            .extend(std::iter::repeat_n(port, n.saturating_sub(1)));
    }
    verdict
}

/// How long snapshots must go on equalling the truth for the first of them to count as
/// converged: longer than [`MARGIN`], so a connection excused for being near a window's edge
/// cannot make a wrong run look right.
const SETTLED: Duration = Duration::from_secs(5);

/// Waits up to `limit` for the snapshots after `since_us` to equal the truth from some
/// snapshot on, for [`SETTLED`] at least: that snapshot's time and when it was first seen.
/// Fails with the differences of the later snapshots and the stages' logs.
pub fn converged_after(
    pipeline: &Pipeline,
    server_port: u16,
    records: &[PathBuf],
    since_us: i64,
    limit: Duration,
) -> (i64, Instant) {
    let deadline = Instant::now() + limit + SETTLED;
    let mut first_seen: BTreeMap<i64, Instant> = BTreeMap::new();
    wait_for(
        "snapshots equal to the truth",
        limit + SETTLED + MARGIN,
        || {
            let snapshots = Snapshots::read(&pipeline.data_dir, server_port);
            // Read after the snapshots, so every connection they can hold is recorded.
            let truth = Truth::read(records);
            let (mut run, mut report) = (None, String::new());
            for (t, rows) in snapshots.after(since_us) {
                first_seen.entry(*t).or_insert_with(Instant::now);
                let verdict = judge(&truth, *t, rows);
                if verdict.clean() {
                    run.get_or_insert(*t);
                } else {
                    run = None;
                    if report.len() < 4000 {
                        report += &format!("{t}: {verdict:?}\n");
                    }
                }
            }
            let newest = snapshots.0.keys().next_back().copied().unwrap_or(i64::MIN);
            if let Some(t) = run.filter(|t| newest - t >= us(SETTLED)) {
                return Some((t, first_seen[&t]));
            }
            assert!(
                Instant::now() < deadline,
                "the snapshots after {since_us} did not settle on the truth within {limit:?} \
             (newest {newest}, run from {run:?}):\n{report}\n{}",
                pipeline.logs()
            );
            None
        },
    )
}

/// Figures over a run of snapshots: what the workload opened and what the snapshots showed.
#[derive(Debug, Default)]
pub struct Tally {
    pub snapshots: usize,
    pub opened: usize,
    pub seen: usize,
    /// Owed to some snapshot, in none.
    pub lost: usize,
    /// Snapshot x connection pairs: owed, absent.
    pub missing: usize,
    pub doubled: usize,
    pub stale: usize,
    pub wrong_state: usize,
}

impl Tally {
    /// Judges every snapshot after `since_us`. `excused(t, port)` says which connection a
    /// snapshot at `t` cannot know yet (opened or closed while the collector was down, before
    /// it came back): it is not counted missing, stale or in the wrong state there, though
    /// always counted doubled. The differences found are returned for an assertion's message.
    pub fn of(
        snapshots: &Snapshots,
        truth: &Truth,
        since_us: i64,
        excused: impl Fn(i64, u16) -> bool,
    ) -> (Tally, String) {
        let mut tally = Tally {
            opened: truth.connections.len(),
            ..Tally::default()
        };
        let (mut seen, mut owed) = (BTreeSet::new(), BTreeSet::new());
        let mut report = String::new();
        for (t, rows) in snapshots.after(since_us) {
            tally.snapshots += 1;
            seen.extend(rows.iter().map(|(port, _)| *port));
            let mut verdict = judge(truth, *t, rows);
            for ports in [
                &mut verdict.missing,
                &mut verdict.stale,
                &mut verdict.wrong_state,
            ] {
                ports.retain(|port| !excused(*t, *port));
            }
            owed.extend(verdict.missing.iter().copied());
            tally.missing += verdict.missing.len();
            tally.doubled += verdict.doubled.len();
            tally.stale += verdict.stale.len();
            tally.wrong_state += verdict.wrong_state.len();
            if !verdict.clean() && report.len() < 4000 {
                report += &format!("{t}: {verdict:?}\n");
            }
        }
        tally.seen = seen
            .intersection(&truth.connections.keys().copied().collect())
            .count();
        tally.lost = owed.difference(&seen).count();
        (tally, report)
    }

    pub fn clean(&self) -> bool {
        self.missing + self.doubled + self.stale + self.wrong_state == 0
    }
}
