//! The HTTP API served over a test's data dir, and requests to it as a client makes them.

use std::{path::Path, sync::Arc};

use scope_renderer::api::{ApiArgs, Snapshots};
use scope_testkit::http_request;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A served API over a data dir; stops when dropped.
pub struct Served {
    pub base: String,
    pub snapshots: Arc<Snapshots>,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn serve(data_dir: &Path, token: Option<&str>) -> Served {
    let args = ApiArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        token: token.map(str::to_owned),
    };
    let snapshots = Snapshots::new(data_dir.to_path_buf(), &[]);
    let bound = args.bind(Arc::clone(&snapshots)).await.unwrap().unwrap();
    let base = format!("http://{}", bound.local_addr());
    let stop = CancellationToken::new();
    tokio::spawn(bound.serve(stop.clone()));
    Served {
        base,
        snapshots,
        stop,
    }
}

pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let (status, bytes) = http_request(method, url, headers, body);
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub fn get_json(url: &str) -> Value {
    let (status, body) = request("GET", url, &[], None);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// The node ids of a `GET /api/topology/{view}` answer, sorted.
pub fn node_ids(listing: &Value) -> Vec<String> {
    let mut ids: Vec<String> = listing["nodes"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    ids.sort();
    ids
}
