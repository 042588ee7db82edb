//! The web UI that `scope up` serves at `/`, in Debian's Chromium driven by Playwright
//! (`renderer/ui/tests/browser.mjs`), with real processes connecting: the processes view draws
//! the client, the server and the edge between them with the API's labels; clicking the server
//! opens its details with the API's metadata and the client inbound; a client connecting later
//! arrives through the websocket without a reload, and leaves once it exits; the table mode
//! lists the graph's nodes, sorted by a column, and a search `pid: <server's>` leaves the
//! server alone; a moment picked on the timeline before the later client shows the graph
//! without it; a pinned search filters together with the one typed, stays across views until
//! unpinned, and a link with pins, search and moment shows the same in a new page; switching
//! view changes the URL and the graph; the SQL console runs the view's example and a query
//! (its rows in a table) and shows a write's refusal; every view offered is drawn (a screenshot
//! of each); a link opens the view and node it names.
//! The page must log no error and ask nothing of any other origin.

mod support;

use std::{path::Path, process::Command, time::Duration};

use scope_testkit::{Process, free_port, postgres::client_available, wait_for};
use support::{Up, connected_client, get_json, hostname, listening_server};

const UI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../renderer/ui");

/// A client of `port` that stays connected and prints `connected`.
/// The browser's next line, which must not be its failure.
fn step(browser: &Process, expected: &str) -> String {
    let line = browser.line(Duration::from_secs(120), expected);
    assert!(!line.starts_with("error:"), "before {expected:?}: {line}");
    line
}

#[test]
fn the_browser_shows_the_map_its_details_and_live_edges() {
    let playwright = Path::new(UI).join("node_modules/playwright-core");
    if !client_available("/usr/bin/chromium", &["--version"], "Debian's chromium")
        || !client_available(
            "node",
            &["-e", &format!("require({:?})", playwright.display())],
            "node with playwright-core in renderer/ui/node_modules",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(
        &format!("127.0.0.1:{}", free_port()),
        &dir.path().join("data"),
        &dir.path().join("up.log"),
    );
    let server_port = free_port();
    let server = listening_server("127.0.0.1", server_port);
    let first = connected_client(server_port);
    let host = hostname();
    let server_id = format!("{host};{}", server.pid());
    let client_id = format!("{host};{}", first.pid());
    wait_for(
        "the client -> server edge in the API",
        Duration::from_secs(90),
        || {
            let view = get_json(&format!(
                "{}/api/topology/processes?unconnected=hide",
                up.api
            ))?;
            view["nodes"][&client_id]["adjacency"]
                .as_array()?
                .iter()
                .any(|peer| peer == server_id.as_str())
                .then_some(())
        },
    );

    // Where a CI run keeps them, beside its other build outputs.
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let mut browser = Process::spawn({
        let mut command = Command::new("node");
        command
            .arg(Path::new(UI).join("tests/browser.mjs"))
            .args([&up.api, &server_id, &client_id])
            .arg(&screenshots);
        command
    });
    for expected in [
        "the processes view draws the client's edge to the server",
        "labels match the API",
        "the server is drawn in its colour",
        "clicking the server opens its details",
        "waiting for a new client",
    ] {
        let line = step(&browser, expected);
        assert!(line.starts_with(expected), "{line}");
    }
    let second = connected_client(server_port);
    browser.write_line(&format!("{host};{}", second.pid()));
    for expected in [
        "the new client's edge arrived without a reload, nothing moved",
        "waiting for the new client to exit",
    ] {
        assert_eq!(step(&browser, expected), expected);
    }
    drop(second);
    browser.write_line("exited");
    for expected in [
        "the exited client left the graph without a reload",
        "the timeline shows the graph before and while the new client was there, then live",
        "the table lists the graph's nodes, sorts, searches and opens details",
        "pinned searches filter together, and a link reproduces the search, pins and moment",
        "switching to hosts changes the URL and the graph",
        "the SQL console shows rows and refuses a write",
        "every view drawn",
        "a link opens the view and node it names",
        "done",
    ] {
        let line = step(&browser, expected);
        assert!(line.starts_with(expected), "{line}");
    }
    eprintln!("screenshots: {}", screenshots.display());
    up.stop();
}
