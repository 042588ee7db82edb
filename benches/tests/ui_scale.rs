//! The web UI draws a synthetic processes view of 10,000 nodes and 30,000 edges, served by the
//! renderer's API, in Chromium: every node and edge is in the graph, the page offers the
//! coarser view (processes by name), it pans, and a screenshot of it is written (under the
//! target dir's `tmp/ui-screenshots/`). Its times are figures of `examples/ui_scale.rs`, in
//! BENCHMARKS.md, not asserted here.

use std::path::Path;

use scope_benches::ui;

#[tokio::test(flavor = "multi_thread")]
async fn the_page_draws_ten_thousand_nodes() {
    if !ui::browser_available() {
        return;
    }
    let map = ui::serve(10_000, 30_000).await.unwrap();
    // The workload's pairing: every process a client, servers at random.
    assert_eq!(map.nodes, 10_000);
    assert!(map.edges > 29_000, "{} edges", map.edges);
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let screenshot = screenshots.join("processes-10k.png");
    let drawn = tokio::task::block_in_place(|| ui::draw(&map, Some(&screenshot), 30)).unwrap();
    assert_eq!((drawn.nodes, drawn.edges), (map.nodes, map.edges));
    assert!(drawn.renders > 0, "panning redrew nothing: {drawn:?}");
    assert!(drawn.offered, "processes by name not offered: {drawn:?}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 0);
    eprintln!("screenshot: {}; {drawn:?}", screenshot.display());
}
