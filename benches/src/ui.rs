//! The web UI at scale: a synthetic processes view of any size, written as a snapshot, rendered
//! by the renderer and served by its HTTP API (the page, its assets, the websocket) on
//! loopback, for a browser to draw. `examples/ui_scale.rs` measures it in Chromium
//! (`renderer/ui/tests/scale.mjs`); `tests/ui_scale.rs` checks that 10,000 nodes are drawn.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use scope_merger::{
    snapshot::SnapshotWriter,
    window::{Window, next_tick},
};
use scope_renderer::{
    api::{ApiArgs, Snapshots},
    render,
};
use scope_schemas::{View, time::now_us};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::workload::{Traffic, merged_state};

/// Processes per synthetic host, as in the render phase.
const PROCESSES_PER_HOST: u32 = 100;

/// A synthetic map being served; the API stops and its data dir goes when it is dropped.
pub struct SyntheticMap {
    pub addr: SocketAddr,
    /// Nodes and edges of the processes view as rendered.
    pub nodes: usize,
    pub edges: usize,
    _stop: DropGuard,
    _data_dir: tempfile::TempDir,
}

/// Renders `processes` processes with `connections` connections between them (each process
/// the client of `connections / processes` of them, to a server picked at random on another
/// host; none to the Internet) and serves the result on a free loopback port.
pub async fn serve(processes: u32, connections: u32) -> anyhow::Result<SyntheticMap> {
    let hosts = processes.div_ceil(PROCESSES_PER_HOST).max(1);
    let traffic = Traffic {
        hosts,
        processes_per_host: processes.div_ceil(hosts).max(1),
        connections: u64::from(connections),
        internet: 0.0,
        churn: 0.0,
        seconds: 0,
        partitions: 1,
        seed: 1,
    };
    let window = Window::new(Duration::from_secs(15), Duration::from_secs(15));
    let t = next_tick(now_us(), 1_000_000);
    let data_dir = tempfile::tempdir().context("creating the data dir")?;
    let writer = SnapshotWriter::create(data_dir.path(), "scope-ui-scale")
        .context("creating the snapshot writer")?;
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let tables = merged_state(&traffic, t).cut(t, &window);
        writer.write(&tables).context("writing the snapshot")?;
        Ok(())
    })?;
    let rendered = render::render(data_dir.path(), t, &[])
        .await
        .context("rendering")?;
    let nodes = rendered.views.get(&View::Processes).map_or(0, Vec::len);
    let edges = rendered
        .graphs
        .get(&View::Processes)
        .map_or(0, |graph| graph.edges.len());

    let snapshots = Snapshots::new(data_dir.path().to_path_buf(), &[]);
    snapshots.insert(Arc::new(rendered));
    let api = ApiArgs {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        token: None,
    };
    let bound = api
        .bind(snapshots)
        .await
        .context("binding the API")?
        .context("the API is off")?;
    let addr = bound.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(bound.serve(shutdown.clone()));
    Ok(SyntheticMap {
        addr,
        nodes,
        edges,
        _stop: shutdown.drop_guard(),
        _data_dir: data_dir,
    })
}

/// Where the page's scripts and their browser tests are.
const UI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../renderer/ui");

/// What Chromium measured of one page load and pan (`renderer/ui/tests/scale.mjs`), in ms.
#[derive(Clone, Debug)]
pub struct Drawn {
    pub nodes: usize,
    pub edges: usize,
    /// Whether the page offered the coarser view.
    pub offered: bool,
    pub first_message_ms: f64,
    pub first_draw_ms: f64,
    pub frames: usize,
    pub pan_ms: f64,
    pub frame_median_ms: f64,
    pub frame_p95_ms: f64,
    pub renders: usize,
    pub render_median_ms: f64,
}

/// Whether Chromium and playwright-core are here to draw the page; under `CI=true` they must be.
pub fn browser_available() -> bool {
    let playwright = std::path::Path::new(UI).join("node_modules/playwright-core");
    scope_testkit::postgres::client_available(
        "/usr/bin/chromium",
        &["--version"],
        "Debian's chromium",
    ) && scope_testkit::postgres::client_available(
        "node",
        &["-e", &format!("require({:?})", playwright.display())],
        "node with playwright-core in renderer/ui/node_modules",
    )
}

/// Opens `map` in Chromium, waits for all its nodes to be drawn, pans in `steps` mouse moves,
/// and writes a screenshot of the first draw to `screenshot` if given.
pub fn draw(
    map: &SyntheticMap,
    screenshot: Option<&std::path::Path>,
    steps: u32,
) -> anyhow::Result<Drawn> {
    let out = std::process::Command::new("node")
        .arg(std::path::Path::new(UI).join("tests/scale.mjs"))
        .arg(format!("http://{}/", map.addr))
        .arg(map.nodes.to_string())
        .arg(screenshot.map_or("-".into(), |path| path.display().to_string()))
        .arg(steps.to_string())
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .context("running node")?;
    let report = String::from_utf8_lossy(&out.stdout);
    let line = report.lines().last().unwrap_or_default();
    if !out.status.success() || line.starts_with("error:") {
        anyhow::bail!(
            "scale.mjs failed: {report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let figures: std::collections::HashMap<&str, &str> = line
        .split(' ')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let number = |key: &str| -> anyhow::Result<f64> {
        figures
            .get(key)
            .with_context(|| format!("no {key} in {line:?}"))?
            .parse()
            .with_context(|| format!("{key} in {line:?}"))
    };
    // Counts are printed as integers.
    let count = |key: &str| number(key).map(|value| value as usize);
    Ok(Drawn {
        nodes: count("nodes")?,
        edges: count("edges")?,
        offered: count("offered")? == 1,
        first_message_ms: number("first_message_ms")?,
        first_draw_ms: number("first_draw_ms")?,
        frames: count("frames")?,
        pan_ms: number("pan_ms")?,
        frame_median_ms: number("frame_median_ms")?,
        frame_p95_ms: number("frame_p95_ms")?,
        renders: count("renders")?,
        render_median_ms: number("render_median_ms")?,
    })
}
