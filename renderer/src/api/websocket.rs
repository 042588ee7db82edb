//! `GET /api/topology/{view}/ws?t=1s`: Weave Scope's live topology. The first message is the
//! whole view (`{"reset": true, "add": [...]}`), each later one what changed
//! (`{"add", "update", "remove"}`), as Scope's `render/detailed/topology_diff.go` diffs.
//!
//! Scope re-rendered every `t` and sent each diff, empty ones too; here a new snapshot wakes
//! the socket at once (and `t` is the longest wait, for snapshots another renderer wrote), and
//! an empty diff is not sent. With `?timestamp=`, the view starts then and plays forward in
//! real time, as Scope's does.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::Response,
};
use scope_schemas::View;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    Answer, AppState, Failure, parameters,
    shown::Shown,
    timestamp,
    topology::Options,
    upgrade::{Socket, Upgrade},
    view_or_404,
};
use crate::Error;

/// The first message when there is no snapshot yet.
const EMPTY_RESET: &str = r#"{"add":null,"update":null,"remove":null,"reset":true}"#;

/// Scope's default `t`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

pub(super) async fn handle(
    State(state): State<AppState>,
    Path(view): Path<String>,
    RawQuery(query): RawQuery,
    upgrade: Upgrade,
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
    async fn run(self, mut socket: Socket) {
        let opened = std::time::Instant::now();
        let mut newest = self.state.snapshots.subscribe();
        let mut previous: Option<Arc<Shown>> = None;
        loop {
            let at = self.start.map(|start| {
                start
                    .saturating_add(i64::try_from(opened.elapsed().as_micros()).unwrap_or(i64::MAX))
            });
            match self.shown(at).await {
                Ok(current) => {
                    let unchanged = previous.as_ref().is_some_and(|p| {
                        current.as_ref().map(|c| c.snapshot_time_us()) == Some(p.snapshot_time_us())
                    });
                    let message = match (&previous, &current) {
                        _ if unchanged => None,
                        (None, Some(current)) => Some(current.reset()),
                        (None, None) => Some(Utf8Bytes::from_static(EMPTY_RESET)),
                        (Some(previous), Some(current)) => self.state.shown.diff(previous, current),
                        // Not reached: once a snapshot was found, the cache keeps the
                        // newest two; what was sent stands.
                        (Some(_), None) => None,
                    };
                    if let Some(text) = message
                        && socket.send_text(text).await.is_err()
                    {
                        return;
                    }
                    if current.is_some() || previous.is_none() {
                        previous = current;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, view = self.view.name(), "websocket: reading the snapshot failed; retrying");
                }
            }
            tokio::select! {
                () = self.state.shutdown.cancelled() => {
                    socket.close().await;
                    return;
                }
                _ = newest.changed() => {}
                () = tokio::time::sleep(self.interval) => {}
                // What a browser sends is ignored, as Scope ignores it.
                received = socket.recv() => if received.is_none() {
                    return;
                },
            }
        }
    }

    /// The view at `at` (else the latest) as this socket's options show it.
    async fn shown(&self, at: Option<i64>) -> Result<Option<Arc<Shown>>, Error> {
        match self.state.snapshots.at(at).await? {
            Some(rendered) => Ok(Some(
                self.state
                    .shown
                    .get(&rendered, self.view, &self.options)
                    .await?,
            )),
            None => Ok(None),
        }
    }
}
