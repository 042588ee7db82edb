//! The HTTP API on `--http-listen` (127.0.0.1:4040, Weave Scope's port): Scope 1.13's `/api`
//! routes and JSON shapes over the rendered snapshots, `?timestamp=` time travel on every
//! topology route, websocket deltas, and `POST /api/sql`.
//!
//! - `scope_json`: the response shapes.
//! - `topology`: the views as Scope lists them, and their nodes as summaries and details.
//! - `snapshots`: which rendered snapshot answers (the latest, or the one in force at a time).
//! - `samples`: metric samples over the retained snapshots, for a node's details.
//! - `websocket`: `GET /api/topology/{view}/ws`, the whole view and then what changed;
//!   `upgrade`: its handshake, and long messages sent in frames.
//! - `ui`: the web UI at `/`, its assets embedded.
//!
//! Everything is read-only. Beyond loopback a token is required (`--http-token`), as a bearer
//! token or as the password of basic auth, so a browser can log in too.

mod grouping;
mod report;
mod samples;
mod scope_json;
mod shown;
mod snapshots;
mod topology;
mod ui;
mod upgrade;
mod websocket;

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use arrow::record_batch::RecordBatch;
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, RawQuery, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use scope_schemas::View;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use datafusion::execution::SendableRecordBatchStream;
use futures_util::StreamExt;

use crate::{Error, parse_listen, sql};
use scope_json::{ApiInfo, Capabilities, ErrorBody, Node, Probe};
pub use snapshots::Snapshots;
use topology::Options;

/// How long `POST /api/sql` may run.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The media type of an Arrow IPC stream, which `POST /api/sql` answers when asked for it.
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Settings of the HTTP API.
#[derive(clap::Args, Clone, Debug)]
pub struct ApiArgs {
    /// Where the HTTP API (Weave Scope's /api) listens, or `off`.
    #[arg(
        id = "http_listen",
        long = "http-listen",
        env = "SCOPE_HTTP_LISTEN",
        default_value = "127.0.0.1:4040",
        value_parser = parse_listen,
        value_name = "ADDR|off"
    )]
    // Spelled out so that clap takes the whole `Option` from the parser (`off` is None)
    // instead of making the flag optional.
    pub listen: std::option::Option<SocketAddr>,
    /// The token HTTP clients must send (`Authorization: Bearer <token>`, or as the password of
    /// basic auth). Required when --http-listen is not a loopback address.
    #[arg(
        id = "http_token",
        long = "http-token",
        env = "SCOPE_HTTP_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

impl ApiArgs {
    /// No HTTP API.
    pub fn off() -> Self {
        ApiArgs {
            listen: None,
            token: None,
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if let Some(addr) = self.listen
            && !addr.ip().is_loopback()
            && self.token.as_deref().is_none_or(str::is_empty)
        {
            return Err(Error::Config(format!(
                "--http-listen {addr} is reachable beyond this machine: set --http-token (SCOPE_HTTP_TOKEN)"
            )));
        }
        Ok(())
    }

    /// Binds the listener (so a port in use fails at start), or None when `off`.
    pub async fn bind(&self, snapshots: Arc<Snapshots>) -> Result<Option<Bound>, Error> {
        let Some(addr) = self.listen else {
            return Ok(None);
        };
        let bind_error = |source| Error::Listen {
            what: "HTTP API",
            addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Some(Bound {
            listener,
            local_addr,
            token: self.token.clone().filter(|t| !t.is_empty()),
            snapshots,
            memory: sql::QueryArgs::default().memory(),
        }))
    }
}

/// A bound HTTP API, not serving yet.
pub struct Bound {
    listener: TcpListener,
    local_addr: SocketAddr,
    token: Option<String>,
    snapshots: Arc<Snapshots>,
    memory: sql::QueryMemory,
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs `POST /api/sql` within `memory` (by default, a pool of its own with the default
    /// limits), which the renderer shares with the Postgres endpoint.
    pub fn with_query_memory(mut self, memory: sql::QueryMemory) -> Self {
        self.memory = memory;
        self
    }

    /// Serves until `shutdown`; open websockets are closed then.
    pub async fn serve(self, shutdown: CancellationToken) {
        tracing::info!(addr = %self.local_addr, "serving the HTTP API at http://{}/api", self.local_addr);
        let state = AppState {
            snapshots: self.snapshots,
            shown: Arc::default(),
            memory: self.memory,
            token: self.token.map(Arc::from),
            shutdown: shutdown.clone(),
        };
        // axum retries failed accepts itself and so never returns an error.
        let _ = axum::serve(self.listener, router(state))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    }
}

#[derive(Clone)]
struct AppState {
    snapshots: Arc<Snapshots>,
    /// Each view's nodes as the options asked for show them, per snapshot.
    shown: Arc<shown::ShownCache>,
    memory: sql::QueryMemory,
    token: Option<Arc<str>>,
    shutdown: CancellationToken,
}

/// The OpenAPI document of these routes, served at `/api/openapi.json`; a test keeps its
/// paths and the views it lists in step with [`routes`].
const OPENAPI: &str = include_str!("openapi.json");

/// Every route: its method, its path (axum's syntax, which is OpenAPI's) and its handler.
fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/api", get(api_info)),
        ("GET", "/api/probes", get(probes)),
        ("GET", "/api/topology", get(topologies)),
        ("GET", "/api/topology/{view}", get(topology_nodes)),
        ("GET", "/api/topology/{view}/ws", get(websocket::handle)),
        ("GET", "/api/topology/{view}/{node}", get(node_details)),
        ("GET", "/api/report", get(report)),
        ("POST", "/api/sql", post(run_sql)),
        ("GET", "/api/openapi.json", get(openapi)),
    ]
}

fn router(state: AppState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (_, path, route)| {
            router.route(path, route)
        })
        .merge(ui::router())
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        // A 10,000-node listing is 14 MB of JSON and about a tenth of that gzipped; the
        // fastest level costs a fraction of sending the difference.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest),
        )
        .with_state(state)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// What a handler fails with: a status and a message, as JSON.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::ReadOnly(_) => StatusCode::FORBIDDEN,
            Error::Sql(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(%error, "HTTP API request failed");
        }
        Failure(status, error.to_string())
    }
}

type Answer<T> = Result<T, Failure>;

fn json<T: Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    if presented_token(request.headers())
        .is_some_and(|given| same(given.as_bytes(), token.as_bytes()))
    {
        return next.run(request).await;
    }
    let mut response =
        Failure(StatusCode::UNAUTHORIZED, "a token is required".into()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"scope\", Bearer"),
    );
    response
}

/// The token of `Authorization: Bearer <token>`, or the password of basic auth.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_owned());
    }
    None
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The query's parameters, in order.
fn parameters(query: &Option<String>) -> Vec<(String, String)> {
    query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// The snapshot a topology request asks for: `?timestamp=<RFC 3339>`, else the latest.
async fn snapshot_for(
    snapshots: &Snapshots,
    parameters: &[(String, String)],
) -> Answer<Option<Arc<crate::render::Rendered>>> {
    Ok(snapshots.at(timestamp(parameters)?).await?)
}

/// `?timestamp=` in microseconds since the epoch, when given.
fn timestamp(parameters: &[(String, String)]) -> Answer<Option<i64>> {
    let Some((_, text)) = parameters.iter().find(|(key, _)| key == "timestamp") else {
        return Ok(None);
    };
    // Any RFC 3339 time, with any offset and in any year: a moment before the first retained
    // snapshot has an empty graph, not an error.
    let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("timestamp {text:?} is not an RFC 3339 time: {e}"),
        )
    })?;
    Ok(Some(at.timestamp_micros()))
}

fn view_or_404(id: &str) -> Answer<View> {
    topology::view_by_id(id)
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no topology {id:?}")))
}

/// This process's id in `GET /api`, as Scope's app has one per run.
fn app_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

async fn api_info() -> Response {
    json(&ApiInfo {
        id: app_id().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: hostname(),
        plugins: Vec::new(),
        capabilities: Capabilities {
            historic_reports: true,
        },
    })
}

async fn probes(State(state): State<AppState>, RawQuery(query): RawQuery) -> Answer<Response> {
    let parameters = parameters(&query);
    let Some(rendered) = snapshot_for(&state.snapshots, &parameters).await? else {
        return Ok(json(&Vec::<Probe>::new()));
    };
    let probes: Vec<Probe> =
        snapshots::host_reports(state.snapshots.data_dir(), rendered.snapshot_time_us)
            .await?
            .into_iter()
            .map(|host| Probe {
                id: host.host_id,
                hostname: host.host_name,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                last_seen: samples::rfc3339(host.last_seen_us),
            })
            .collect();
    Ok(json(&probes))
}

async fn topologies(State(state): State<AppState>, RawQuery(query): RawQuery) -> Answer<Response> {
    let rendered = snapshot_for(&state.snapshots, &parameters(&query)).await?;
    Ok(json(&topology::descriptions(rendered.as_deref())))
}

async fn topology_nodes(
    State(state): State<AppState>,
    Path(view): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer<Response> {
    let view = view_or_404(&view)?;
    let parameters = parameters(&query);
    let listing = match snapshot_for(&state.snapshots, &parameters).await? {
        Some(rendered) => {
            let options = Options::from_query(view, &parameters);
            state.shown.get(&rendered, view, &options).await?.listing()
        }
        None => Bytes::from_static(b"{\"nodes\":{}}"),
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], listing).into_response())
}

async fn node_details(
    State(state): State<AppState>,
    Path((view, node)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Answer<Response> {
    let view = view_or_404(&view)?;
    let not_found = || {
        Failure(
            StatusCode::NOT_FOUND,
            format!("no node {node:?} in {}", view.name()),
        )
    };
    let rendered = snapshot_for(&state.snapshots, &parameters(&query))
        .await?
        .ok_or_else(not_found)?;
    let mut details = topology::details(&rendered, view, &node).ok_or_else(not_found)?;
    samples::add(
        &state.snapshots,
        view,
        rendered.snapshot_time_us,
        &mut details,
    )
    .await?;
    Ok(json(&Node { node: details }))
}

/// `GET /api/report`: the snapshot in Weave Scope's report shape ([`report`]), for the
/// scripts and tools that read Scope's.
async fn report(State(state): State<AppState>, RawQuery(query): RawQuery) -> Answer<Response> {
    let rendered = snapshot_for(&state.snapshots, &parameters(&query)).await?;
    Ok(json(&report::report(rendered.as_deref())))
}

/// `POST /api/sql`: the body is the query (text, or JSON `{"query": "..."}`); the answer is a
/// JSON array of rows, or an Arrow IPC stream with `Accept: application/vnd.apache.arrow.stream`.
async fn run_sql(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = if is_json {
        #[derive(serde::Deserialize)]
        struct Body {
            query: String,
        }
        serde_json::from_slice::<Body>(&body)
            .map_err(|e| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    format!("expected {{\"query\": \"...\"}}: {e}"),
                )
            })?
            .query
    } else {
        String::from_utf8(body.to_vec())
            .map_err(|_| Failure(StatusCode::BAD_REQUEST, "the query is not UTF-8".into()))?
    };
    let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
    let timed_out = || {
        Failure(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the query ran longer than {}s", QUERY_TIMEOUT.as_secs()),
        )
    };
    let started = sql::stream(
        &state.memory,
        state.snapshots.data_dir(),
        state.snapshots.local_networks(),
        &text,
    );
    let out_of_memory = |error: Error| match &error {
        Error::Sql(e) => match state.memory.explain(e) {
            Some(message) => Failure(StatusCode::INSUFFICIENT_STORAGE, message),
            None => Failure::from(error),
        },
        _ => Failure::from(error),
    };
    let mut rows = tokio::time::timeout_at(deadline, started)
        .await
        .map_err(|_| timed_out())?
        .map_err(out_of_memory)?;
    // The status is sent with the first rows: a query that fails before them (one over its
    // memory limit, while it sorts or aggregates) gets an error status, not a cut body.
    let first = tokio::time::timeout_at(deadline, rows.next())
        .await
        .map_err(|_| timed_out())?
        .transpose()
        .map_err(|e| out_of_memory(Error::Sql(e)))?;
    let wants_arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    let (content_type, encoder) = if wants_arrow {
        (ARROW_STREAM, Encoder::arrow(&rows.schema())?)
    } else {
        ("application/json", Encoder::json())
    };
    let body = streamed(rows, first, encoder, deadline);
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}

/// The rows of a query as a body, encoded batch by batch as they come. The query ends when
/// the body does: dropped with it when the client goes away, or cut (the response left
/// incomplete, so the client sees an error) when it fails or outlives `deadline`. Fused: the
/// compression layer polls a body once more after its end, which `unfold` answers by panicking.
fn streamed(
    rows: SendableRecordBatchStream,
    first: Option<RecordBatch>,
    encoder: Encoder,
    deadline: tokio::time::Instant,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let state = Some((rows, first, encoder));
    futures_util::stream::unfold(state, move |state| async move {
        let (mut rows, first, mut encoder) = state?;
        let next = match first {
            Some(batch) => Ok(Some(batch)),
            None => match tokio::time::timeout_at(deadline, rows.next()).await {
                Err(_) => Err(format!(
                    "the query ran longer than {}s",
                    QUERY_TIMEOUT.as_secs()
                )),
                Ok(next) => next.transpose().map_err(|e| e.to_string()),
            },
        };
        let chunk = match next {
            Ok(Some(batch)) => encoder.write(&batch).map(|bytes| (bytes, true)),
            Ok(None) => encoder.finish().map(|bytes| (bytes, false)),
            Err(message) => Err(message),
        };
        match chunk {
            Ok((bytes, more)) => Some((Ok(bytes), more.then_some((rows, None, encoder)))),
            Err(error) => {
                tracing::warn!(%error, "POST /api/sql failed while sending its rows; response cut");
                Some((Err(std::io::Error::other(error)), None))
            }
        }
    })
    .fuse()
}

/// Query results as JSON rows or an Arrow IPC stream, written batch by batch.
enum Encoder {
    Json(arrow::json::ArrayWriter<Vec<u8>>),
    Arrow(arrow::ipc::writer::StreamWriter<Vec<u8>>),
}

impl Encoder {
    fn json() -> Self {
        Encoder::Json(
            arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build(Vec::new()),
        )
    }

    fn arrow(schema: &arrow::datatypes::Schema) -> Result<Self, Error> {
        arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema)
            .map(Encoder::Arrow)
            .map_err(Error::Format)
    }

    /// The bytes encoding `batch` (and, the first time, what comes before the rows).
    fn write(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, String> {
        let written = match self {
            Encoder::Json(writer) => writer.write(batch),
            Encoder::Arrow(writer) => writer.write(batch),
        };
        written.map_err(|e| e.to_string())?;
        Ok(self.take())
    }

    /// The bytes that end the body.
    fn finish(&mut self) -> Result<Vec<u8>, String> {
        let finished = match self {
            Encoder::Json(writer) => writer.finish(),
            Encoder::Arrow(writer) => writer.finish(),
        };
        finished.map_err(|e| e.to_string())?;
        let mut bytes = self.take();
        if matches!(self, Encoder::Json(_)) {
            bytes.push(b'\n');
        }
        Ok(bytes)
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(match self {
            Encoder::Json(writer) => writer.get_mut(),
            Encoder::Arrow(writer) => writer.get_mut(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> serde_json::Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    #[test]
    fn the_openapi_document_lists_every_route_and_view() {
        let doc = document();
        let mut documented: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| format!("{} {path}", method.to_uppercase()))
            })
            .collect();
        documented.sort();
        let mut served: Vec<String> = routes()
            .into_iter()
            .map(|(method, path, _)| format!("{method} {path}"))
            .collect();
        served.sort();
        assert_eq!(documented, served);

        let views: Vec<&str> = doc["components"]["parameters"]["view"]["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = View::ALL.iter().map(|v| v.name()).collect();
        assert_eq!(views, ours, "the view ids in openapi.json");
    }

    #[test]
    fn tokens_are_read_from_bearer_and_basic_auth() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented_token(&headers).as_deref(), Some("abc"));
        // "user:abc"
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjphYmM="),
        );
        assert_eq!(presented_token(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(presented_token(&headers), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
