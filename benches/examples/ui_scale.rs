//! The web UI at scale, in Chromium: time to first draw and frame time while panning, for a
//! synthetic processes view of each size asked for, served by the renderer's API
//! (`scope_benches::ui`). The smallest size is the baseline the others are compared with, in
//! the same run; each size is drawn `--runs` times in a new page, the median reported.
//!
//! ```sh
//! cargo run -p scope-benches --example ui_scale -- 1000:3000 10000:30000
//! ```

use anyhow::Context as _;
use scope_benches::ui::{self, Drawn};

/// Mouse moves of one pan.
const STEPS: u32 = 100;
const RUNS: usize = 3;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<(u32, u32)> = std::env::args()
        .skip(1)
        .map(|arg| {
            let (nodes, edges) = arg.split_once(':').context("a size is NODES:CONNECTIONS")?;
            Ok((nodes.parse()?, edges.parse()?))
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(
        !sizes.is_empty(),
        "sizes wanted, e.g. 1000:3000 10000:30000"
    );
    if !ui::browser_available() {
        anyhow::bail!("Chromium and playwright-core are needed: run scripts/setup");
    }
    println!(
        "| nodes | edges | first message (ms) | first draw (ms) | pan (ms) | pan frames | fps | frame median (ms) | frame p95 (ms) | sigma render median (ms) | first draw / baseline | fps / baseline |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut baseline = None;
    for (processes, connections) in sizes {
        let map = ui::serve(processes, connections).await?;
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            runs.push(tokio::task::block_in_place(|| ui::draw(&map, None, STEPS))?);
        }
        let median = |key: fn(&Drawn) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(key).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let first_draw = median(|d| d.first_draw_ms);
        let fps = median(|d| d.frames as f64 * 1000.0 / d.pan_ms);
        let (base_draw, base_fps) = *baseline.get_or_insert((first_draw, fps));
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
            runs[0].nodes,
            runs[0].edges,
            median(|d| d.first_message_ms),
            first_draw,
            median(|d| d.pan_ms),
            median(|d| d.frames as f64),
            fps,
            median(|d| d.frame_median_ms),
            median(|d| d.frame_p95_ms),
            median(|d| d.render_median_ms),
            first_draw / base_draw,
            fps / base_fps,
        );
    }
    Ok(())
}
