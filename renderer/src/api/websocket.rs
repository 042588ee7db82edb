//! `GET /api/topology/{view}/ws?t=1s`: Weave Scope's live topology. The first message is the
//! whole view (`{"reset": true, "add": [...]}`), each later one what changed
//! (`{"add", "update", "remove"}`), as Scope's `render/detailed/topology_diff.go` diffs.
//!
//! Scope re-rendered every `t` and sent each diff, empty ones too; here a new snapshot wakes
//! the socket at once (and `t` is the longest wait, for snapshots another renderer wrote), and
//! an empty diff is not sent. With `?timestamp=`, the view starts then and plays forward in
//! real time, as Scope's does.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    extract::{
        Path, RawQuery, State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::StatusCode,
    response::Response,
};
use scope_schemas::View;

use super::{
    Answer, AppState, Failure, parameters,
    scope_json::{Diff, NodeSummary},
    timestamp,
    topology::{self, Options},
    view_or_404,
};

/// Scope's default `t`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

pub(super) async fn handle(
    State(state): State<AppState>,
    Path(view): Path<String>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Answer<Response> {
    let view = view_or_404(&view)?;
    let parameters = parameters(&query);
    let interval = match parameters.iter().find(|(key, _)| key == "t") {
        Some((_, text)) => humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    format!("t={text:?} is not a duration"),
                )
            })?,
        None => DEFAULT_INTERVAL,
    };
    let start = timestamp(&parameters)?;
    let options = Options::from_query(view, &parameters);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let live = Live {
            state,
            view,
            options,
            interval,
            start,
        };
        live.run(socket).await;
    }))
}

struct Live {
    state: AppState,
    view: View,
    options: Options,
    interval: Duration,
    /// `?timestamp=` in microseconds: the moment shown when the socket opened.
    start: Option<i64>,
}

impl Live {
    async fn run(self, mut socket: WebSocket) {
        let opened = std::time::Instant::now();
        let mut newest = self.state.snapshots.subscribe();
        let mut previous: Option<BTreeMap<String, NodeSummary>> = None;
        let mut shown: Option<i64> = None;
        loop {
            let at = self.start.map(|start| {
                start
                    .saturating_add(i64::try_from(opened.elapsed().as_micros()).unwrap_or(i64::MAX))
            });
            let snapshot = match at {
                Some(at) => self.state.snapshots.at(at).await,
                None => self.state.snapshots.latest().await,
            };
            match snapshot {
                Ok(snapshot) => {
                    let time = snapshot.as_ref().map(|s| s.snapshot_time_us);
                    if previous.is_none() || time != shown {
                        let current = snapshot
                            .map(|s| topology::summaries(&s, self.view, &self.options))
                            .unwrap_or_default();
                        let diff = diff(previous.as_ref(), &current);
                        if previous.is_none() || !diff.is_empty() {
                            let text = serde_json::to_string(&diff).unwrap_or_default();
                            if socket.send(Message::Text(text.into())).await.is_err() {
                                return;
                            }
                        }
                        previous = Some(current);
                        shown = time;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, view = self.view.name(), "websocket: reading the snapshot failed; retrying");
                }
            }
            tokio::select! {
                () = self.state.shutdown.cancelled() => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                _ = newest.changed() => {}
                () = tokio::time::sleep(self.interval) => {}
                received = socket.recv() => match received {
                    // What a browser sends is ignored, as Scope ignores it.
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                },
            }
        }
    }
}

/// What turns `previous` into `current`; with no previous, a reset adding everything.
fn diff(
    previous: Option<&BTreeMap<String, NodeSummary>>,
    current: &BTreeMap<String, NodeSummary>,
) -> Diff {
    let Some(previous) = previous else {
        return Diff {
            add: (!current.is_empty()).then(|| current.values().cloned().collect()),
            reset: true,
            ..Diff::default()
        };
    };
    let mut add = Vec::new();
    let mut update = Vec::new();
    for (id, node) in current {
        match previous.get(id) {
            None => add.push(node.clone()),
            Some(old) if old != node => update.push(node.clone()),
            Some(_) => {}
        }
    }
    let remove: Vec<String> = previous
        .keys()
        .filter(|id| !current.contains_key(*id))
        .cloned()
        .collect();
    Diff {
        add: (!add.is_empty()).then_some(add),
        update: (!update.is_empty()).then_some(update),
        remove: (!remove.is_empty()).then_some(remove),
        reset: false,
    }
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.add.is_none() && self.update.is_none() && self.remove.is_none() && !self.reset
    }
}
