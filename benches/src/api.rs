//! Phase 5: the HTTP API's latency on a large snapshot.
//!
//! The phase 3 topology (`--render-hosts` × `--render-processes`, `--render-connections`) is
//! built, cut, written and rendered first, untimed, and handed to the API as the renderer
//! service hands over what it renders. Then, over one keep-alive HTTP/1.1 connection on
//! loopback (hyper's client):
//!
//! 1. `GET /api`, a constant answer: the baseline, what any request costs;
//! 2. `GET /api/topology/processes?system=show`, the processes view as Scope's UI asks for it:
//!    the first request after the snapshot is handed over (which builds the view's summaries),
//!    and the median of the next ones (which share them);
//! 3. the websocket delta after a render: from handing over a snapshot in which 5 % of the
//!    processes changed (their CPU) until a client of `/api/topology/processes/ws` has the
//!    delta (tokio-tungstenite), with one socket open, and until the last of
//!    [`MANY_SOCKETS`] sockets has it;
//! 4. time travel: the same listing `?timestamp=` [`TRAVEL_BACK`] earlier, where the same
//!    topology was rendered and written too: the first request (cold: the renderer reads that
//!    snapshot back) and the next ones (warm).
//!
//! Each is the median of `--api-requests` runs.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, body::Bytes, client::conn::http1};
use hyper_util::rt::TokioIo;
use scope_merger::{
    snapshot::SnapshotWriter,
    window::{Window, next_tick},
};
use scope_renderer::{
    api::{ApiArgs, Snapshots},
    index::Index,
    render::{self, Rendered},
};
use scope_schemas::{View, time::now_us};
use tokio_util::sync::CancellationToken;

use crate::{
    config::LoadArgs,
    memory::{Peak, PhasePeak},
    report::{Figure, Report, Value},
    workload::merged_state,
};

/// How many sockets the second delta figure has open, as many browsers on one view.
const MANY_SOCKETS: usize = 100;
/// How far back the time-travel figures look.
const TRAVEL_BACK: Duration = Duration::from_secs(30 * 60);

/// Figures of phase 5.
#[derive(Debug)]
pub struct Api {
    pub processes: usize,
    pub requests: usize,
    pub baseline: Duration,
    pub topology_first: Duration,
    pub topology: Duration,
    pub topology_bytes: usize,
    pub delta: Duration,
    pub delta_many: Duration,
    pub delta_updates: usize,
    pub travel_cold: Duration,
    pub travel_warm: Duration,
    /// Peak memory from handing the rendered snapshot over to the end of the phase.
    pub serving_peak: Option<Peak>,
}

pub async fn run(args: &LoadArgs) -> anyhow::Result<Api> {
    let traffic = args.render_traffic();
    let window = Window::new(Duration::from_secs(15), Duration::from_secs(15));
    let t = next_tick(now_us(), 1_000_000);
    let back = t - i64::try_from(TRAVEL_BACK.as_micros())?;
    let data_dir = tempfile::tempdir().context("creating the data dir")?;
    let writer = SnapshotWriter::create(data_dir.path(), "scope-load")
        .context("creating the snapshot writer")?;
    let mut rendered = None;
    for at in [back, t] {
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            let mut state = merged_state(&traffic, at);
            let tables = state.cut(at, &window);
            writer.write(&tables).context("writing the snapshot")?;
            Ok(())
        })?;
        rendered = Some(
            render::render(data_dir.path(), at, &[])
                .await
                .context("rendering")?,
        );
    }
    let rendered = rendered.context("no snapshot rendered")?;
    let processes = rendered.views.get(&View::Processes).map_or(0, Vec::len);

    let snapshots = Snapshots::new(data_dir.path().to_path_buf(), &[]);
    snapshots.insert(Arc::new(rendered.clone()));
    let api = ApiArgs {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        token: None,
    };
    let bound = api
        .bind(Arc::clone(&snapshots))
        .await
        .context("binding the API")?
        .context("the API is off")?;
    let addr = bound.local_addr();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(bound.serve(shutdown.clone()));
    let serving = PhasePeak::start();

    let mut client = Client::connect(addr).await?;
    let requests = args.api_requests.max(1);
    let mut baseline = Vec::new();
    for _ in 0..requests {
        baseline.push(client.get("/api").await?.0);
    }
    let (topology_first, _) = client.get("/api/topology/processes?system=show").await?;
    let mut topology = Vec::new();
    let mut topology_bytes = 0;
    for _ in 0..requests {
        let (elapsed, bytes) = client.get("/api/topology/processes?system=show").await?;
        topology.push(elapsed);
        topology_bytes = bytes;
    }

    let url = format!("ws://{addr}/api/topology/processes/ws?t=60s");
    let mut next = rendered;
    let (delta, delta_updates) = deltas(&snapshots, &url, &mut next, 1, requests, args).await?;
    let (delta_many, _) = deltas(&snapshots, &url, &mut next, MANY_SOCKETS, requests, args).await?;

    let at = humantime::format_rfc3339_micros(
        std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(back)?),
    );
    let past = format!("/api/topology/processes?system=show&timestamp={at}");
    let (travel_cold, _) = client.get(&past).await?;
    let mut travel = Vec::new();
    for _ in 0..requests {
        travel.push(client.get(&past).await?.0);
    }

    Ok(Api {
        processes,
        requests,
        baseline: median(baseline),
        topology_first,
        topology: median(topology),
        topology_bytes,
        delta,
        delta_many,
        delta_updates,
        travel_cold,
        travel_warm: median(travel),
        serving_peak: serving.finish(),
    })
}

/// The median time from handing over a snapshot in which some processes' CPU changed until
/// each of `sockets` open websockets has the delta, and how many nodes it updated.
async fn deltas(
    snapshots: &Snapshots,
    url: &str,
    next: &mut Rendered,
    sockets: usize,
    requests: usize,
    args: &LoadArgs,
) -> anyhow::Result<(Duration, usize)> {
    let mut delta_updates = 0;
    let mut open = Vec::new();
    for _ in 0..sockets {
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("opening a websocket")?;
        socket
            .next()
            .await
            .context("the websocket closed before the reset")?
            .context("reading the reset")?;
        open.push(socket);
    }
    let mut deltas = Vec::new();
    for _ in 0..requests {
        next.snapshot_time_us += 1_000_000;
        delta_updates = churn_cpu(next, 20);
        // What the render computes of each snapshot, before the hand-over timed here.
        next.index = Index::of(next);
        let handed = Arc::new(next.clone());
        let started = Instant::now();
        snapshots.insert(handed);
        for socket in &mut open {
            let message = tokio::time::timeout(args.timeout, socket.next())
                .await
                .context("no delta within --timeout")?
                .context("the websocket closed")?
                .context("reading a delta")?;
            if !message
                .to_text()
                .unwrap_or_default()
                .contains("\"update\":[")
            {
                bail!("the delta after a render has no update: {message}");
            }
        }
        deltas.push(started.elapsed());
    }
    Ok((median(deltas), delta_updates))
}

/// Raises the CPU metric of every `every`-th process node: the changes of one tick.
fn churn_cpu(rendered: &mut Rendered, every: usize) -> usize {
    let Some(graph) = rendered.graphs.get_mut(&View::Processes) else {
        return 0;
    };
    let mut changed = 0;
    for (i, metrics) in graph.metrics.values_mut().enumerate() {
        if i % every == 0 {
            for (id, value) in metrics.iter_mut() {
                if id == "process_cpu_usage_percent" {
                    *value += 1.0;
                    changed += 1;
                }
            }
        }
    }
    changed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    addr: SocketAddr,
    sender: http1::SendRequest<Empty<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .context("connecting to the API")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(connection);
        Ok(Client { addr, sender })
    }

    /// The time until the whole body arrived, and its length.
    async fn get(&mut self, path: &str) -> anyhow::Result<(Duration, usize)> {
        let request = Request::get(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .body(Empty::new())?;
        // The previous response's body is read, but the connection may not have taken that
        // in yet: wait until it can send (not timed).
        self.sender.ready().await?;
        let started = Instant::now();
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let elapsed = started.elapsed();
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        Ok((elapsed, body.len()))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

impl Api {
    pub fn report(&self, report: &mut Report) {
        let ratio = |d: Duration| d.as_secs_f64() / self.baseline.as_secs_f64().max(1e-9);
        report.add(Figure::new(
            "5. API: GET /api (baseline: one round trip)",
            Value::Text(ms(self.baseline)),
            format!(
                "median of {}, keep-alive HTTP/1.1 on loopback",
                self.requests
            ),
        ));
        report.add(Figure::new(
            "5. API: GET /api/topology/processes?system=show, first after a render",
            Value::Text(ms(self.topology_first)),
            format!(
                "builds the view's summaries; {:.0}x the baseline round trip",
                ratio(self.topology_first)
            ),
        ));
        report.add(Figure::new(
            "5. API: GET /api/topology/processes?system=show",
            Value::Text(ms(self.topology)),
            format!(
                "median of the {} next; {} process nodes, {:.1} MB of JSON; {:.0}x the baseline \
                 round trip (Weave Scope: about 3 ms on a 96-node report)",
                self.requests,
                self.processes,
                self.topology_bytes as f64 / 1e6,
                ratio(self.topology)
            ),
        ));
        report.add(Figure::new(
            "5. API: websocket delta after a render",
            Value::Text(ms(self.delta)),
            format!(
                "median of {}; from handing over a rendered snapshot to the delta received \
                 ({} nodes updated); {:.0}x the baseline round trip",
                self.requests,
                self.delta_updates,
                ratio(self.delta)
            ),
        ));
        report.add(Figure::new(
            "5. API: websocket delta after a render, 100 sockets",
            Value::Text(ms(self.delta_many)),
            format!(
                "median of {}; until the last of {MANY_SOCKETS} sockets of the view has it; \
                 {:.0}x the baseline round trip",
                self.requests,
                ratio(self.delta_many)
            ),
        ));
        report.add(Figure::new(
            "5. API: time travel 30 min back, first request (cold)",
            Value::Text(ms(self.travel_cold)),
            "the same listing with ?timestamp= of an older snapshot of the same size, which \
             the renderer reads back from the data dir"
                .to_owned(),
        ));
        report.add(Figure::new(
            "5. API: time travel 30 min back (warm)",
            Value::Text(ms(self.travel_warm)),
            format!(
                "median of the {} next; {:.0}x the latest listing",
                self.requests,
                self.travel_warm.as_secs_f64() / self.topology.as_secs_f64().max(1e-9)
            ),
        ));
    }
}
