//! Phase 3: from a window tick to the rendered topics, for one large snapshot.
//!
//! The merged state of a topology (`--render-hosts`, `--render-processes`,
//! `--render-connections`, every connection open) is built first, untimed, as a merger holds
//! it just before a tick. Then, timed from the tick:
//!
//! 1. through the renderer service (`scope_renderer::run`, already running and warmed up on
//!    a small snapshot): `State::cut`, `SnapshotWriter::write`, the announcement on
//!    `scope.snapshots`, and the service's render + publish, until a reader of the
//!    `scope.rendered.*` topics has received every record it published. This is the
//!    "window tick -> rendered topic" latency a user sees.
//! 2. the same steps by direct calls (`render::render`, `publish::Publisher::publish` with a
//!    new publisher, so every node is published again), each step timed on its own.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::producer::{FutureProducer, FutureRecord};
use scope_kafka::KafkaArgs;
use scope_merger::snapshot::SnapshotWriter;
use scope_merger::state::State;
use scope_merger::window::{Window, next_tick};
use scope_renderer::RendererArgs;
use scope_renderer::publish::Publisher;
use scope_schemas::{Record, View, topics};
use tokio_util::sync::CancellationToken;

use crate::bus;
use crate::config::LoadArgs;
use crate::report::{Figure, Report, Value};
use crate::workload::{Traffic, merged_state};
use scope_schemas::time::now_us;

const SECOND_US: i64 = 1_000_000;

/// Step times of one tick -> rendered topic run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Steps {
    pub cut: Duration,
    pub write: Duration,
    /// Service run: announcement produced and acknowledged. Direct run: `render::render`.
    pub middle: Duration,
    /// Direct run: `Publisher::publish` (until every record is acknowledged).
    pub publish: Duration,
    /// From the tick until the reader received the last record.
    pub total: Duration,
    /// Records (upserts and tombstones) published.
    pub records: u64,
}

/// Figures of phase 3.
#[derive(Debug)]
pub struct Render {
    pub traffic: Traffic,
    pub socket_rows: usize,
    pub process_rows: usize,
    pub connection_rows: usize,
    pub nodes: Vec<(View, usize)>,
    pub service: Steps,
    pub direct: Steps,
}

pub async fn run(args: &LoadArgs) -> anyhow::Result<Render> {
    let traffic = args.render_traffic();
    let window = Window::new(Duration::from_secs(15), Duration::from_secs(15));
    let t = next_tick(now_us(), SECOND_US);
    let mut state = tokio::task::block_in_place(|| merged_state(&traffic, t));

    let (_broker, bootstrap) = crate::bus::broker_with_topics(1).await?;
    let kafka = KafkaArgs::new(&bootstrap);
    let data_dir = tempfile::tempdir().context("creating the data dir")?;
    let writer = SnapshotWriter::create(data_dir.path(), "scope-load")
        .context("creating the snapshot writer")?;
    let announcer: FutureProducer = kafka
        .client_config(&[("enable.idempotence", "true")])
        .create()
        .context("creating the announcement producer")?;
    let view_topics: Vec<String> = View::ALL.iter().map(|v| v.topic()).collect();

    // The renderer service, warmed up on a one-host snapshot just before the measured one.
    // A new group starts at the newest announcement; this one must see the first.
    let mut properties = vec![("auto.offset.reset".to_owned(), "earliest".to_owned())];
    properties.extend(args.renderer_properties.iter().cloned());
    let mut renderer_args = RendererArgs::new(
        KafkaArgs {
            brokers: bootstrap.clone(),
            properties,
        },
        data_dir.path(),
    );
    renderer_args.group_id = format!("scope-load-renderer-{}", std::process::id());
    let shutdown = CancellationToken::new();
    let _stop_renderer = shutdown.clone().drop_guard();
    let mut renderer = tokio::spawn(scope_renderer::run(renderer_args, shutdown.clone()));
    let stats = scope_renderer::stats();
    let tiny = Traffic {
        hosts: 1,
        processes_per_host: 1,
        connections: 1,
        ..traffic.clone()
    };
    let warmup_t = t - SECOND_US;
    let mut warmup = tokio::task::block_in_place(|| merged_state(&tiny, warmup_t));
    let before = Counters::now();
    cut_write_announce(&mut warmup, warmup_t, &window, &writer, &announcer).await?;
    let warm = wait_published(before, &mut renderer, args.timeout)
        .await
        .context("renderer warm-up")?;
    tracing::info!(records = warm, "renderer warmed up");

    // 1. Through the service.
    let receipts = Receipts::start(bus::tail(&bootstrap, &view_topics)?);
    let before = Counters::now();
    let tick = Instant::now();
    let (cut, write, rows) =
        cut_write_announce(&mut state, t, &window, &writer, &announcer).await?;
    let announced = tick.elapsed() - cut - write;
    let records = wait_published(before, &mut renderer, args.timeout)
        .await
        .context("rendering the snapshot")?;
    let total = receipts.wait(records, args.timeout).await? - tick;
    let service = Steps {
        cut,
        write,
        middle: announced,
        publish: Duration::ZERO,
        total,
        records,
    };
    receipts.stop().await;
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(60), renderer).await {
        Ok(Ok(Ok(()))) => {}
        other => tracing::warn!(?other, "the renderer did not stop cleanly"),
    }
    if stats.render_failures.load(Ordering::Relaxed) > 0 {
        bail!("the renderer failed to render a snapshot; see the log");
    }

    // 2. Step by step, one second later.
    let t = t + SECOND_US;
    let mut publisher = Publisher::new(&kafka).context("creating the publisher")?;
    let receipts = Receipts::start(bus::tail(&bootstrap, &view_topics)?);
    let tick = Instant::now();
    let tables = tokio::task::block_in_place(|| state.cut(t, &window));
    let cut = tick.elapsed();
    let started = Instant::now();
    tokio::task::block_in_place(|| writer.write(&tables)).context("writing the snapshot")?;
    let write = started.elapsed();
    let started = Instant::now();
    let rendered = scope_renderer::render::render(writer.data_dir(), t, &[])
        .await
        .context("rendering")?;
    let render = started.elapsed();
    let started = Instant::now();
    let published = publisher
        .publish(t, &rendered.views)
        .await
        .context("publishing")?;
    let publish = started.elapsed();
    let records = published.upserts + published.tombstones;
    let total = receipts.wait(records, args.timeout).await? - tick;
    receipts.stop().await;
    let direct = Steps {
        cut,
        write,
        middle: render,
        publish,
        total,
        records,
    };

    Ok(Render {
        traffic,
        socket_rows: rows.0,
        process_rows: rows.1,
        connection_rows: rendered.connections,
        nodes: rendered
            .views
            .iter()
            .map(|(v, nodes)| (*v, nodes.len()))
            .collect(),
        service,
        direct,
    })
}

/// Cuts `state` at `t`, writes the files and announces them: (cut, write, (sockets, processes)).
async fn cut_write_announce(
    state: &mut State,
    t: i64,
    window: &Window,
    writer: &SnapshotWriter,
    announcer: &FutureProducer,
) -> anyhow::Result<(Duration, Duration, (usize, usize))> {
    let started = Instant::now();
    let tables = tokio::task::block_in_place(|| state.cut(t, window));
    let cut = started.elapsed();
    let started = Instant::now();
    let written =
        tokio::task::block_in_place(|| writer.write(&tables)).context("writing the snapshot")?;
    let write = started.elapsed();
    let payload = writer
        // No partitions named: the only writer, its snapshot is complete on its own.
        .announcement(t, tables.window_us, written, Vec::new())
        .encode()
        .context("encoding the announcement")?;
    announcer
        .send(
            FutureRecord::to(topics::SNAPSHOTS)
                .key("scope-load")
                .payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(error, _)| error)
        .context("announcing the snapshot")?;
    Ok((cut, write, (tables.sockets.len(), tables.processes.len())))
}

/// The renderer's counters that move when it handles a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counters {
    nodes: u64,
    tombstones: u64,
    failures: u64,
}

impl Counters {
    fn now() -> Self {
        let s = scope_renderer::stats();
        Counters {
            nodes: s.nodes_published.load(Ordering::SeqCst),
            tombstones: s.tombstones_published.load(Ordering::SeqCst),
            failures: s.render_failures.load(Ordering::SeqCst)
                + s.publish_failures.load(Ordering::SeqCst)
                + s.snapshots_missing.load(Ordering::SeqCst)
                + s.snapshots_stale.load(Ordering::SeqCst),
        }
    }
}

/// Waits until the renderer service published a snapshot after `before`; returns how many
/// records (upserts and tombstones) it published.
async fn wait_published(
    before: Counters,
    renderer: &mut tokio::task::JoinHandle<Result<(), scope_renderer::Error>>,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = Counters::now();
        if now.failures > before.failures {
            bail!(
                "the renderer did not publish the snapshot (failed, stale or missing; see the log)"
            );
        }
        if now.nodes > before.nodes || now.tombstones > before.tombstones {
            // The two counters are added one after the other: let the second land.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = Counters::now();
            return Ok(now.nodes - before.nodes + now.tombstones - before.tombstones);
        }
        if renderer.is_finished() {
            bail!("the renderer stopped: {:?}", renderer.await);
        }
        if Instant::now() > deadline {
            bail!(
                "the renderer published nothing within {}",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// When each record arrived on the tailed topics.
struct Receipts {
    at: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receipts {
    fn start(consumer: rdkafka::consumer::StreamConsumer) -> Self {
        let at = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&at);
        let task = tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(_) => {
                        let now = Instant::now();
                        if let Ok(mut seen) = seen.lock() {
                            seen.push(now);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "reading the rendered topics failed"),
                }
            }
        });
        Receipts { at, task }
    }

    /// The arrival time of the `n`th record.
    async fn wait(&self, n: u64, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let (seen, nth) = match self.at.lock() {
                Ok(at) => (
                    at.len(),
                    n.checked_sub(1).and_then(|i| at.get(i as usize).copied()),
                ),
                Err(_) => bail!("the receipt list is poisoned"),
            };
            if let Some(at) = nth {
                return Ok(at);
            }
            if n == 0 {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!(
                    "the rendered topics got {seen} of {n} records within {}",
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops reading; the consumer is dropped when this returns.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

impl Render {
    pub fn report(&self, report: &mut Report) {
        let size = format!(
            "{} hosts, {} processes, {} connections ({} socket rows)",
            self.traffic.hosts, self.process_rows, self.connection_rows, self.socket_rows
        );
        let s = self.service;
        report.add(Figure::new(
            "3. window tick -> rendered topic, renderer service",
            Value::Latency(s.total),
            format!(
                "{size}; cut {:.0} ms, write {:.0} ms, announce {:.0} ms, then the service's render + publish \
                 until a reader has all {} records; target <= 1 s",
                ms(s.cut),
                ms(s.write),
                ms(s.middle),
                s.records
            ),
        ));
        let d = self.direct;
        report.add(Figure::new(
            "3. window tick -> rendered topic, direct calls",
            Value::Latency(d.total),
            format!(
                "cut {:.0} ms, write {:.0} ms, render::render {:.0} ms, Publisher::publish {:.0} ms ({} records), \
                 then until a reader has them all",
                ms(d.cut),
                ms(d.write),
                ms(d.middle),
                ms(d.publish),
                d.records
            ),
        ));
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(v, n)| format!("{} {n}", v.name()))
            .collect();
        report.note(format!(
            "phase 3 rendered nodes per view: {}",
            nodes.join(", ")
        ));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
