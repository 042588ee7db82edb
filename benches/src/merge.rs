//! Phase 2: connection events through the merger into snapshots.
//!
//! First without Kafka: the workload's payloads decoded (alone, then decoded and applied to a
//! [`State`]) in one loop, the upper bound of any merger on this machine; then the cut and the
//! Parquet write of the state that leaves.
//!
//! Then the real thing: a merger (`scope_merger::run_with_stats`, its own consumer group, data
//! dir in a temporary directory) consumes the input topics of a fresh broker while the load
//! producer publishes the workload. As in phase 1, the clock starts once the merger has applied
//! a warm-up message from every partition, and stops when an announced snapshot holds every
//! message: the last message of each partition (a sentinel host's socket or host row) is in
//! the snapshot's files, and the merger's counters add up to everything produced. That is the
//! rate at which collector traffic becomes queryable snapshots.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arrow::array::{Array, StringArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::Message as _;
use scope_kafka::KafkaArgs;
use scope_merger::snapshot::SnapshotWriter;
use scope_merger::state::{Input, State, check_connection, check_report};
use scope_merger::window::{Window, next_tick};
use scope_merger::{MergerArgs, Stats, TopicStats};
use scope_runtime::component::Component;
use scope_schemas::snapshot::table;
use scope_schemas::{ConnectionEvents, Record, ReportDelta, Snapshot, topics};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus;
use crate::config::LoadArgs;
use crate::report::{Figure, Rate, Report, Value};
use crate::workload::{Encoded, Workload};
use scope_schemas::time::now_us;

/// Figures of phase 2.
#[derive(Debug)]
pub struct Merge {
    pub decode: Rate,
    pub decode_apply: Rate,
    pub cut: Duration,
    pub write: Duration,
    pub socket_rows: usize,
    pub process_rows: usize,
    pub end_to_end: Rate,
    pub connection_events: u64,
    /// From the first send until the merger's counters showed every message (they are
    /// updated once per tick); `None` when they never did.
    pub applied_after: Option<Duration>,
    /// Connection events and report deltas produced in phase 2, warm-up included: what the
    /// counters should add up to.
    pub produced: u64,
    pub produced_after: Duration,
    pub tick: Duration,
    pub counts: Counts,
}

/// The merger's counters at the end, both inputs together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub applied: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub malformed: u64,
}

impl Counts {
    fn of(stats: &Stats) -> Self {
        let get = |t: &TopicStats| Counts {
            applied: t.applied.load(Ordering::Relaxed),
            duplicates: t.duplicates.load(Ordering::Relaxed),
            ignored: t.ignored.load(Ordering::Relaxed),
            malformed: t.malformed.load(Ordering::Relaxed),
        };
        let (c, r) = (get(&stats.connections), get(&stats.reports));
        Counts {
            applied: c.applied + r.applied,
            duplicates: c.duplicates + r.duplicates,
            ignored: c.ignored + r.ignored,
            malformed: c.malformed + r.malformed,
        }
    }
}

/// Messages of one input the merger has handled, whatever the outcome.
fn handled(t: &TopicStats) -> u64 {
    t.applied.load(Ordering::Relaxed)
        + t.duplicates.load(Ordering::Relaxed)
        + t.ignored.load(Ordering::Relaxed)
        + t.malformed.load(Ordering::Relaxed)
}

fn handled_all(stats: &Stats, connections: u64, reports: u64) -> bool {
    handled(&stats.connections) >= connections && handled(&stats.reports) >= reports
}

pub async fn run(args: &LoadArgs, workload: &Workload) -> anyhow::Result<Merge> {
    let (decode, decode_apply, mut state) = tokio::task::block_in_place(|| in_memory(workload))?;
    let (cut, write, socket_rows, process_rows) =
        tokio::task::block_in_place(|| cut_and_write(&mut state))?;
    drop(state);

    let (_broker, bootstrap) = crate::bus::broker_with_topics(args.partitions).await?;
    let data_dir = tempfile::tempdir().context("creating the data dir")?;
    let mut merger_args = MergerArgs::new(KafkaArgs::new(&bootstrap), data_dir.path());
    merger_args.group_id = format!("scope-load-merger-{}", std::process::id());
    merger_args.writer = "scope-load".into();
    merger_args.tick = args.merger_tick;
    merger_args.kafka.properties = args.merger_properties.clone();
    merger_args.window = merger_args.window.max(args.merger_tick);
    merger_args.validate().context("merger settings")?;

    let warmup = Encoded::markers("~warmup", args.partitions);
    // The merger counts connection events one by one, whatever records carried them.
    let expect_connections =
        warmup.events(Input::Connections) + workload.encoded.events(Input::Connections);
    let expect_reports = warmup.count(Input::Reports) + workload.encoded.count(Input::Reports);

    // Announcements, stamped on arrival.
    let stats = Arc::new(Stats::default());
    let tail = bus::tail(&bootstrap, &[topics::SNAPSHOTS.to_owned()])?;
    let (announced_tx, mut announced) = mpsc::unbounded_channel::<(Instant, Snapshot)>();
    let reader = tokio::spawn(async move {
        loop {
            match tail.recv().await {
                Ok(message) => {
                    let at = Instant::now();
                    match Snapshot::decode(message.payload().unwrap_or_default()) {
                        Ok(snapshot) => {
                            if announced_tx.send((at, snapshot)).is_err() {
                                return;
                            }
                        }
                        Err(error) => tracing::warn!(%error, "undecodable announcement"),
                    }
                }
                Err(error) => tracing::warn!(%error, "reading announcements failed"),
            }
        }
    });

    let shutdown = CancellationToken::new();
    // Stops the merger on every way out, errors included.
    let _stop_merger = shutdown.clone().drop_guard();
    let mut merger = tokio::spawn(scope_merger::run_with_stats(
        merger_args,
        shutdown.clone(),
        Arc::clone(&stats),
    ));

    let producer = bus::producer(&bootstrap)?;
    bus::produce_all(&producer, &warmup, args.timeout)?;
    let deadline = Instant::now() + args.timeout;
    while !handled_all(
        &stats,
        warmup.events(Input::Connections),
        warmup.count(Input::Reports),
    ) {
        if Instant::now() > deadline || merger.is_finished() {
            bail!(
                "the merger did not apply the warm-up messages (finished: {})",
                merger.is_finished()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Timed from here. A poller notes when the counters first add up (if they ever do: a
    // message the merger loses is never counted).
    let started = Instant::now();
    let poll_stats = Arc::clone(&stats);
    let mut poller = tokio::spawn(async move {
        while !handled_all(&poll_stats, expect_connections, expect_reports) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Instant::now()
    });
    let produced_after = bus::produce_all(&producer, &workload.encoded, args.timeout)?;
    let deadline = Instant::now() + args.timeout;

    // The first announcement, in arrival order, whose files hold the sentinels. Announcements
    // that arrived while the producer ran are checked now, by their arrival time.
    let done = loop {
        let next = tokio::select! {
            next = announced.recv() => next,
            finished = &mut merger => bail!("the merger stopped early: {finished:?}"),
            () = tokio::time::sleep_until(deadline.into()) => None,
        };
        let Some((at, snapshot)) = next else {
            bail!(
                "no snapshot held the last messages after {}: the merger handled {} of \
                 {expect_connections} connection events and {} of {expect_reports} report deltas",
                humantime::format_duration(args.timeout),
                handled(&stats.connections),
                handled(&stats.reports),
            );
        };
        if holds(&snapshot, table::SOCKETS, &workload.sentinel_socket_hosts)?
            && holds(&snapshot, table::HOSTS, &workload.sentinel_report_hosts)?
        {
            break at;
        }
    };
    // Counters are added once per tick: give them one more before reading them.
    let applied_at =
        tokio::time::timeout(args.merger_tick * 2 + Duration::from_secs(1), &mut poller)
            .await
            .ok()
            .and_then(Result::ok);
    poller.abort();
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(60), merger).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(%error, "the merger stopped with an error"),
        Ok(Err(error)) => tracing::warn!(%error, "the merger task failed"),
        Err(_) => tracing::warn!("the merger did not stop within 60 s"),
    }
    // Stop the reader (and drop its client) before the broker goes.
    reader.abort();
    let _ = reader.await;

    Ok(Merge {
        decode,
        decode_apply,
        cut,
        write,
        socket_rows,
        process_rows,
        end_to_end: Rate {
            messages: workload.len() as u64,
            bytes: workload.payload_bytes(),
            elapsed: done - started,
        },
        connection_events: workload.connection_events,
        applied_after: applied_at.map(|at| at.saturating_duration_since(started)),
        produced: expect_connections + expect_reports,
        produced_after,
        tick: args.merger_tick,
        counts: Counts::of(&stats),
    })
}

/// Decodes every payload (alone, then with [`State`] application), as the merger's consume
/// loop does per message; returns both rates and the resulting state.
fn in_memory(workload: &Workload) -> anyhow::Result<(Rate, Rate, State)> {
    let messages = workload.len() as u64;
    let bytes = workload.payload_bytes();

    let started = Instant::now();
    let mut bad = 0u64;
    for (m, _, payload) in workload.encoded.iter() {
        let ok = match m.input {
            Input::Connections => {
                std::hint::black_box(ConnectionEvents::decode_any(payload)).is_ok()
            }
            Input::Reports => std::hint::black_box(ReportDelta::decode(payload)).is_ok(),
        };
        bad += u64::from(!ok);
    }
    let decode = Rate {
        messages,
        bytes,
        elapsed: started.elapsed(),
    };

    let msg_ts = Some(now_us());
    let mut state = State::new();
    let started = Instant::now();
    for (m, _, payload) in workload.encoded.iter() {
        match m.input {
            Input::Connections => match ConnectionEvents::decode_any(payload) {
                Ok(batch) => {
                    for ev in batch.events {
                        match check_connection(&ev) {
                            Ok(()) => _ = state.apply_connection(ev, msg_ts),
                            Err(_) => bad += 1,
                        }
                    }
                }
                Err(_) => bad += 1,
            },
            Input::Reports => match ReportDelta::decode(payload) {
                Ok(delta) if check_report(&delta).is_ok() => {
                    state.apply_report(delta, msg_ts);
                }
                _ => bad += 1,
            },
        }
    }
    let decode_apply = Rate {
        messages,
        bytes,
        elapsed: started.elapsed(),
    };
    if bad > 0 {
        bail!("{bad} generated messages did not decode or pass the merger's checks");
    }
    Ok((decode, decode_apply, state))
}

/// Cuts `state` at the next second and writes the snapshot files: (cut, write, sockets, processes).
fn cut_and_write(state: &mut State) -> anyhow::Result<(Duration, Duration, usize, usize)> {
    let window = Window::new(Duration::from_secs(15), Duration::from_secs(15));
    let t = next_tick(now_us(), 1_000_000);
    let started = Instant::now();
    let tables = state.cut(t, &window);
    let cut = started.elapsed();
    let dir = tempfile::tempdir().context("creating a data dir")?;
    let writer =
        SnapshotWriter::create(dir.path(), "scope-load").context("creating the snapshot writer")?;
    let started = Instant::now();
    writer.write(&tables).context("writing the snapshot")?;
    Ok((
        cut,
        started.elapsed(),
        tables.sockets.len(),
        tables.processes.len(),
    ))
}

/// Whether the `table` file of `snapshot` has a row of every host in `hosts`.
fn holds(snapshot: &Snapshot, table: &str, hosts: &[String]) -> anyhow::Result<bool> {
    let Some(file) = snapshot.files.iter().find(|f| f.table == table) else {
        return Ok(false);
    };
    let path = Path::new(&snapshot.data_dir).join(&file.path);
    let read = || -> anyhow::Result<Vec<String>> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), ["host_id"]);
        let mut found = Vec::new();
        for batch in builder.with_projection(mask).build()? {
            let batch = batch?;
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .context("host_id is not a string")?;
            found.extend(
                column
                    .iter()
                    .flatten()
                    .filter(|h| h.starts_with('~'))
                    .map(str::to_owned),
            );
        }
        Ok(found)
    };
    let found =
        tokio::task::block_in_place(read).with_context(|| format!("reading {}", path.display()))?;
    Ok(hosts.iter().all(|h| found.contains(h)))
}

impl Merge {
    pub fn report(&self, report: &mut Report) {
        report.add(Figure::new(
            "2. merger in memory: decode only",
            Value::Rate(self.decode),
            "Avro single-object decode of every payload, no Kafka",
        ));
        report.add(Figure::new(
            "2. merger in memory: decode + State::apply_* (upper bound)",
            Value::Rate(self.decode_apply),
            "one thread, no Kafka",
        ));
        report.add(Figure::new(
            "2. merger: State::cut of that state",
            Value::Latency(self.cut),
            format!(
                "{} socket rows, {} process rows",
                self.socket_rows, self.process_rows
            ),
        ));
        report.add(Figure::new(
            "2. merger: SnapshotWriter::write of that cut",
            Value::Latency(self.write),
            "4 Parquet files, zstd, fsync",
        ));
        let counters = match self.applied_after {
            Some(after) => format!(
                "merger counters complete after {:.2} s",
                after.as_secs_f64()
            ),
            None => "merger counters never complete".to_owned(),
        };
        report.add(Figure::new(
            "2. merger end to end: produce -> Kafka -> merger -> snapshot holding the last messages",
            Value::Rate(self.end_to_end),
            format!(
                "merger tick {}; all acknowledged after {:.2} s, {counters}",
                humantime::format_duration(self.tick),
                self.produced_after.as_secs_f64(),
            ),
        ));
        let per_second =
            self.connection_events as f64 / self.end_to_end.elapsed.as_secs_f64().max(1e-9);
        report.add(Figure::new(
            "2. merger end to end: connection events only",
            Value::Text(format!("{:.0} events/s", per_second)),
            format!(
                "{} connection events; target >= 1,000,000 events/s",
                self.connection_events
            ),
        ));
        let c = self.counts;
        let handled = c.applied + c.duplicates + c.ignored + c.malformed;
        report.note(format!(
            "merger counters after phase 2: applied {}, duplicates {}, ignored {}, malformed {} \
             (duplicates are refreshes that confirmed nothing new); {} of {} produced events and \
             deltas never handled",
            c.applied,
            c.duplicates,
            c.ignored,
            c.malformed,
            self.produced.saturating_sub(handled),
            self.produced
        ));
    }
}
