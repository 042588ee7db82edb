//! The Docker Engine API watcher: lists and inspects every container once, then follows the
//! daemon's container events and re-inspects what they name, keeping the [`MetaCache`] in step
//! without polling. Podman serves the same API (`/run/podman/podman.sock`).
//!
//! A host without Docker is normal: the watcher says once that it cannot reach the socket,
//! counts each failed attempt and keeps retrying with a backoff, and relists on every
//! reconnect so that nothing that happened meanwhile is missed. It never stops the collector.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    error::Error as StdError,
    io,
    path::PathBuf,
    sync::{
        Arc, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    client::conn::http1,
    header,
};
use hyper_util::rt::TokioIo;
use scope_runtime::metrics::Families;
use serde::{Deserialize, de::DeserializeOwned};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use super::{ContainerMeta, MetaCache, Outage, Runtime};
use crate::stats::Stats;

/// Docker 20.10's API version (Debian 12's docker.io); later engines, down to their minimum
/// of 1.24, and Podman's compatible API serve it too.
const API_VERSION: &str = "v1.41";
/// `/events?filters={"type":["container"]}`: image, network and volume events change nothing
/// the cache holds.
const EVENTS_PATH: &str = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D";
/// One event is a few hundred bytes; labels make it longer, but not by megabytes.
const MAX_EVENT_BYTES: usize = 1 << 20;
const MAX_INSPECT_BYTES: usize = 4 << 20;
/// A listing is about 1.5 KiB per container: room for tens of thousands.
const MAX_LIST_BYTES: usize = 64 << 20;
/// For every request but the event stream, which is idle whenever nothing happens.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Events after which a container's inspected state differs; `destroy` removes it.
const REINSPECTED_ON: [&str; 10] = [
    "create", "start", "restart", "die", "stop", "kill", "pause", "unpause", "rename", "update",
];

/// The watcher's counters, exported with the collector's.
#[derive(Debug, Default)]
pub struct DockerStats {
    /// Attempts to reach the API that failed, and watches the daemon ended.
    pub api_failures: AtomicU64,
    /// Container events applied to the cache.
    pub events: AtomicU64,
    /// Events that did not parse, exceeded [`MAX_EVENT_BYTES`] or named no valid container.
    pub events_skipped: AtomicU64,
    /// Containers whose inspection failed for a reason other than the daemon being away.
    pub inspect_failures: AtomicU64,
}

impl DockerStats {
    pub fn write_metrics(&self, out: &mut Families) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.counter(
            "scope_collector_docker_api_failures_total",
            "Attempts to reach the Docker API that failed, and event watches the daemon ended.",
            get(&self.api_failures),
        );
        out.counter(
            "scope_collector_docker_events_total",
            "Docker container events applied to the container metadata.",
            get(&self.events),
        );
        out.counter(
            "scope_collector_docker_events_skipped_total",
            "Docker events skipped: malformed, oversized, or naming no valid container.",
            get(&self.events_skipped),
        );
        out.counter(
            "scope_collector_docker_inspect_failures_total",
            "Docker containers whose inspection failed while the daemon was reachable.",
            get(&self.inspect_failures),
        );
    }
}

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("connecting: {0}")]
    Connect(#[source] io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("GET {path}: building the request: {source}")]
    Request {
        path: String,
        source: hyper::http::Error,
    },
    #[error("GET {path}: no answer within {REQUEST_TIMEOUT:?}")]
    Timeout { path: String },
    #[error("GET {path}: {status}: {message}")]
    Status {
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("GET {path}: reading the body: {source}")]
    Body {
        path: String,
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("GET {path}: decoding the body: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("the daemon ended the event stream")]
    StreamEnded,
}

impl ApiError {
    /// Whether the daemon itself is away (as opposed to one answer being bad): the watch
    /// restarts, rather than skipping one container.
    fn daemon_away(&self) -> bool {
        matches!(
            self,
            ApiError::Connect(_)
                | ApiError::Http(_)
                | ApiError::Timeout { .. }
                | ApiError::StreamEnded
        )
    }
}

/// Keeps `cache` in step with the Docker daemon at `socket` until `shutdown` is cancelled.
/// Never returns early: an unreachable daemon is retried, with a backoff of up to
/// [`Outage::MAX_RETRY`].
pub async fn watch(
    socket: PathBuf,
    cache: MetaCache,
    stats: Arc<DockerStats>,
    shutdown: CancellationToken,
) {
    let mut watcher = Watcher {
        api: Api { socket },
        cache,
        stats,
        known: HashSet::new(),
    };
    let mut outage = Outage::new("Docker API");
    loop {
        let Some(connected) = shutdown.run_until_cancelled(watcher.connect()).await else {
            return;
        };
        let (error, lost) = match connected {
            Ok((events, containers)) => {
                outage.reconnected(&watcher.api.socket, containers);
                let Some(error) = shutdown.run_until_cancelled(watcher.follow(events)).await else {
                    return;
                };
                (error, true)
            }
            Err(error) => (error, false),
        };
        let failures = &watcher.stats.api_failures;
        if !outage
            .back_off(failures, &watcher.api.socket, error, lost, &shutdown)
            .await
        {
            return;
        }
    }
}

struct Watcher {
    api: Api,
    cache: MetaCache,
    stats: Arc<DockerStats>,
    /// The ids this watcher put in the cache, so a relist removes only its own stale entries.
    known: HashSet<String>,
}

impl Watcher {
    /// Subscribes to the events, then lists and inspects every container. Subscribing first
    /// means an event during the listing waits in the stream: nothing falls between the two.
    async fn connect(&mut self) -> Result<(Incoming, usize), ApiError> {
        let events = self.api.send(EVENTS_PATH).await?;
        let events = Api::check(EVENTS_PATH, events).await?.into_body();
        let listed: Vec<Listed> = self
            .api
            .get_json("/containers/json?all=1", MAX_LIST_BYTES)
            .await?;
        let mut found = HashMap::with_capacity(listed.len());
        for Listed { id } in listed {
            if !valid_id(&id) {
                Stats::add(&self.stats.inspect_failures, 1);
                tracing::debug!(id, "skipped a listed Docker container with an invalid id");
                continue;
            }
            if let Some((id, meta)) = self.inspect(&id).await? {
                found.insert(id, meta);
            }
        }
        let containers = found.len();
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        for gone in self.known.iter().filter(|id| !found.contains_key(*id)) {
            cache.remove(gone);
        }
        self.known = found.keys().cloned().collect();
        cache.extend(found);
        Ok((events, containers))
    }

    /// Applies the events in `body` until the stream fails or ends.
    async fn follow(&mut self, mut body: Incoming) -> ApiError {
        let mut splitter = Splitter::new(MAX_EVENT_BYTES);
        let mut pieces = Vec::new();
        loop {
            let data = match body.frame().await {
                None => return ApiError::StreamEnded,
                Some(Err(error)) => return ApiError::Http(error),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_trailers) => continue,
                },
            };
            splitter.push(&data, &mut pieces);
            for piece in pieces.drain(..) {
                let event = match piece {
                    Piece::Object(json) => {
                        serde_json::from_slice::<Event>(&json).map_err(|error| error.to_string())
                    }
                    Piece::Oversized => Err(format!("an event over {MAX_EVENT_BYTES} bytes")),
                    Piece::Stray => Err("bytes outside any JSON object".to_owned()),
                };
                match event {
                    Ok(event) => {
                        if let Err(error) = self.apply(event).await {
                            return error;
                        }
                    }
                    Err(error) => {
                        Stats::add(&self.stats.events_skipped, 1);
                        tracing::debug!(%error, "skipped a Docker event");
                    }
                }
            }
        }
    }

    /// Re-inspects or removes the container `event` names. Fails only when the daemon is away.
    async fn apply(&mut self, event: Event) -> Result<(), ApiError> {
        if event
            .kind
            .as_deref()
            .is_some_and(|kind| kind != "container")
        {
            return Ok(());
        }
        let Some(id) = event.container_id().filter(|id| valid_id(id)) else {
            Stats::add(&self.stats.events_skipped, 1);
            tracing::debug!(
                action = event.action,
                "skipped a Docker event naming no valid container"
            );
            return Ok(());
        };
        if event.action == "destroy" {
            self.remove(id);
        } else if REINSPECTED_ON.contains(&event.action.as_str()) {
            match self.inspect(id).await? {
                Some((id, meta)) => {
                    self.known.insert(id.clone());
                    self.cache
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(id, meta);
                }
                // Gone already: its destroy event follows, or was missed.
                None => self.remove(id),
            }
        } else {
            return Ok(());
        }
        Stats::add(&self.stats.events, 1);
        Ok(())
    }

    fn remove(&mut self, id: &str) {
        self.known.remove(id);
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// The container's full id and metadata; `None` if the daemon no longer knows it or
    /// answered badly (counted), an error only if the daemon is away.
    async fn inspect(&self, id: &str) -> Result<Option<(String, ContainerMeta)>, ApiError> {
        let path = format!("/containers/{id}/json");
        match self.api.get_json::<Inspect>(&path, MAX_INSPECT_BYTES).await {
            Ok(inspected) => Ok(Some(inspected.into_meta())),
            Err(ApiError::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
            Err(error) if error.daemon_away() => Err(error),
            Err(error) => {
                Stats::add(&self.stats.inspect_failures, 1);
                tracing::debug!(%error, "could not inspect a Docker container");
                Ok(None)
            }
        }
    }
}

/// Container ids and names go into request paths: only what Docker allows in them passes.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// HTTP/1.1 over the daemon's unix socket.
struct Api {
    socket: PathBuf,
}

impl Api {
    /// Sends `GET path` on a connection of its own and returns the response headers. A
    /// connection per request: connecting to a local socket costs microseconds, and the
    /// event stream holds its connection for as long as it lasts.
    async fn send(&self, path: &str) -> Result<Response<Incoming>, ApiError> {
        let sent = async {
            let stream = UnixStream::connect(&self.socket)
                .await
                .map_err(ApiError::Connect)?;
            let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "Docker API connection failed");
                }
            });
            let request = Request::get(format!("/{API_VERSION}{path}"))
                .header(header::HOST, "docker")
                .body(Empty::<Bytes>::new())
                .map_err(|source| ApiError::Request {
                    path: path.to_owned(),
                    source,
                })?;
            Ok(sender.send_request(request).await?)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, sent)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::Timeout {
                    path: path.to_owned(),
                })
            })
    }

    /// The response if its status is a success, else the daemon's message as an error.
    async fn check(
        path: &str,
        response: Response<Incoming>,
    ) -> Result<Response<Incoming>, ApiError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Limited::new(response.into_body(), 64 << 10).collect(),
        )
        .await;
        let message = match body {
            Ok(Ok(body)) => error_message(&body.to_bytes()),
            _ => String::new(),
        };
        Err(ApiError::Status {
            path: path.to_owned(),
            status,
            message,
        })
    }

    /// `GET path`, its body at most `limit` bytes, decoded as JSON.
    async fn get_json<T: DeserializeOwned>(&self, path: &str, limit: usize) -> Result<T, ApiError> {
        let response = Api::check(path, self.send(path).await?).await?;
        let body = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Limited::new(response.into_body(), limit).collect(),
        )
        .await
        .map_err(|_| ApiError::Timeout {
            path: path.to_owned(),
        })?
        .map_err(|source| ApiError::Body {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&body.to_bytes()).map_err(|source| ApiError::Json {
            path: path.to_owned(),
            source,
        })
    }
}

/// The `message` of Docker's error bodies, else the body itself, shortened.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let text = match serde_json::from_slice::<Message>(body) {
        Ok(Message { message }) => message,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    text.trim().chars().take(200).collect()
}

/// One entry of `GET /containers/json`: only its id, everything else comes from inspecting.
#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
}

/// One event of `GET /events`.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor")]
    actor: Option<Actor>,
    /// The pre-1.22 field, which some servers still send alone.
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Actor {
    #[serde(rename = "ID")]
    id: Option<String>,
}

impl Event {
    fn container_id(&self) -> Option<&str> {
        self.actor
            .as_ref()
            .and_then(|actor| actor.id.as_deref())
            .or(self.id.as_deref())
    }
}

/// The parts of `GET /containers/{id}/json` the cache keeps. Every field may be missing or
/// null: Podman and older engines leave some out.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    name: Option<String>,
    /// The image id (`sha256:...`).
    image: Option<String>,
    state: Option<InspectState>,
    config: Option<InspectConfig>,
    network_settings: Option<NetworkSettings>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    hostname: Option<String>,
    /// The image as the container was created from it (`local/busybox:1`).
    image: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct NetworkSettings {
    #[serde(flatten)]
    default: NetworkAddresses,
    #[serde(rename = "Networks")]
    networks: Option<BTreeMap<String, NetworkAddresses>>,
    /// `"8080/tcp"` to its host bindings; null when the port is exposed but not published.
    #[serde(rename = "Ports")]
    ports: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
}

#[derive(Deserialize)]
struct NetworkAddresses {
    #[serde(rename = "IPAddress")]
    ip: Option<String>,
    #[serde(rename = "GlobalIPv6Address")]
    ipv6: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortBinding {
    host_ip: Option<String>,
    host_port: Option<String>,
}

impl Inspect {
    fn into_meta(self) -> (String, ContainerMeta) {
        let config = self.config;
        let (hostname, image_name, labels) = match config {
            Some(c) => (c.hostname, c.image, c.labels.unwrap_or_default()),
            None => (None, None, BTreeMap::new()),
        };
        let (ips, ports) = match self.network_settings {
            Some(settings) => (settings.ips(), settings.ports()),
            None => (Vec::new(), Vec::new()),
        };
        let meta = ContainerMeta {
            runtime: Some(Runtime::Docker),
            name: non_empty(
                self.name
                    .map(|name| name.trim_start_matches('/').to_owned()),
            ),
            image_name: non_empty(image_name),
            image_id: non_empty(self.image),
            state: non_empty(self.state.and_then(|s| s.status)),
            hostname: non_empty(hostname),
            labels,
            ips,
            ports,
        };
        (self.id, meta)
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl NetworkSettings {
    /// Every address on every network, the legacy top-level one included, each once.
    fn ips(&self) -> Vec<String> {
        let mut ips: Vec<String> = Vec::new();
        let all =
            std::iter::once(&self.default).chain(self.networks.iter().flat_map(|n| n.values()));
        for addresses in all {
            for ip in [&addresses.ip, &addresses.ipv6].into_iter().flatten() {
                if !ip.is_empty() && !ips.contains(ip) {
                    ips.push(ip.clone());
                }
            }
        }
        ips
    }

    /// As `docker ps` prints them, in port order: `0.0.0.0:8080->80/tcp`, `[::]:8080->80/tcp`
    /// for published ports, `80/tcp` for exposed ones (ranges are not merged).
    fn ports(&self) -> Vec<String> {
        let mut ports: Vec<(u32, String)> = Vec::new();
        for (port, bindings) in self.ports.iter().flatten() {
            let number = port
                .split('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(u32::MAX);
            let mut published = false;
            for binding in bindings.iter().flatten() {
                if let (Some(ip), Some(host_port)) = (&binding.host_ip, &binding.host_port)
                    && !ip.is_empty()
                {
                    let host = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.clone()
                    };
                    ports.push((number, format!("{host}:{host_port}->{port}")));
                    published = true;
                }
            }
            if !published {
                ports.push((number, port.clone()));
            }
        }
        ports.sort();
        ports.dedup();
        ports.into_iter().map(|(_, port)| port).collect()
    }
}

/// What the event splitter found in the stream.
#[derive(Debug, PartialEq)]
enum Piece {
    /// One whole top-level JSON object.
    Object(Vec<u8>),
    /// An object longer than the limit, dropped while it streamed by.
    Oversized,
    /// A run of bytes outside any object that are not whitespace.
    Stray,
}

/// Cuts a stream of concatenated JSON objects into whole objects, whatever the chunking and
/// whether or not a newline follows each (Docker's does, nothing promises it). Tracks nesting
/// and strings, so braces inside strings do not count; holds at most `limit` bytes.
struct Splitter {
    limit: usize,
    object: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    oversized: bool,
    in_stray: bool,
}

impl Splitter {
    fn new(limit: usize) -> Self {
        Splitter {
            limit,
            object: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            oversized: false,
            in_stray: false,
        }
    }

    fn push(&mut self, chunk: &[u8], out: &mut Vec<Piece>) {
        for &byte in chunk {
            if self.depth == 0 {
                if byte == b'{' {
                    self.depth = 1;
                    self.oversized = false;
                    self.in_stray = false;
                    self.object.push(byte);
                } else if byte.is_ascii_whitespace() {
                    self.in_stray = false;
                } else if !self.in_stray {
                    self.in_stray = true;
                    out.push(Piece::Stray);
                }
                continue;
            }
            if !self.oversized {
                if self.object.len() < self.limit {
                    self.object.push(byte);
                } else {
                    self.oversized = true;
                    self.object = Vec::new();
                }
            }
            if self.in_string {
                match (self.escaped, byte) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        out.push(if self.oversized {
                            Piece::Oversized
                        } else {
                            Piece::Object(std::mem::take(&mut self.object))
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker inspect` of a container run here with
    /// `docker run -d --label app=x -p 18080:8080 local/busybox:1 nc -l -p 8080`, trimmed
    /// to the fields read plus some neighbours, and a second, unpublished port.
    const INSPECT: &str = r#"{
        "Id": "5bf5e2cf8ccb95456b908010f0ea3b6db174c2e6a4e09b3ebb4250d06a973a22",
        "Created": "2026-12-07T10:04:46.818183855Z",
        "Path": "nc",
        "State": {"Status": "running", "Running": true, "Pid": 11583},
        "Image": "sha256:539b506bff9375d008a556faaa0301b43171d3a57404f1165337e396667b44e8",
        "Name": "/probe1",
        "HostConfig": {"NetworkMode": "default", "PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]}},
        "Config": {
            "Hostname": "5bf5e2cf8ccb",
            "Env": null,
            "Cmd": ["nc", "-l", "-p", "8080"],
            "Image": "local/busybox:1",
            "Labels": {"app": "x"}
        },
        "NetworkSettings": {
            "Bridge": "",
            "Ports": {
                "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}, {"HostIp": "::", "HostPort": "18080"}],
                "10000/udp": null
            },
            "IPAddress": "172.17.0.2",
            "GlobalIPv6Address": "",
            "Networks": {
                "bridge": {"IPAddress": "172.17.0.2", "GlobalIPv6Address": "", "Gateway": "172.17.0.1"},
                "backend": {"IPAddress": "172.18.0.5", "GlobalIPv6Address": "fd00::5"}
            }
        }
    }"#;

    #[test]
    fn inspect_json_becomes_container_meta() {
        let inspected: Inspect = serde_json::from_str(INSPECT).unwrap();
        let (id, meta) = inspected.into_meta();
        assert_eq!(
            id,
            "5bf5e2cf8ccb95456b908010f0ea3b6db174c2e6a4e09b3ebb4250d06a973a22"
        );
        assert_eq!(
            meta,
            ContainerMeta {
                runtime: Some(Runtime::Docker),
                name: Some("probe1".into()),
                image_name: Some("local/busybox:1".into()),
                image_id: Some(
                    "sha256:539b506bff9375d008a556faaa0301b43171d3a57404f1165337e396667b44e8"
                        .into()
                ),
                state: Some("running".into()),
                hostname: Some("5bf5e2cf8ccb".into()),
                labels: BTreeMap::from([("app".into(), "x".into())]),
                ips: vec!["172.17.0.2".into(), "172.18.0.5".into(), "fd00::5".into()],
                ports: vec![
                    "0.0.0.0:18080->8080/tcp".into(),
                    "[::]:18080->8080/tcp".into(),
                    "10000/udp".into(),
                ],
            }
        );
    }

    #[test]
    fn missing_and_null_fields_leave_the_meta_empty() {
        let (id, meta) = serde_json::from_str::<Inspect>(
            r#"{"Id": "abc", "Name": "", "Config": {"Labels": null, "Hostname": ""},
                "NetworkSettings": {"Networks": null, "Ports": null}, "State": null}"#,
        )
        .unwrap()
        .into_meta();
        assert_eq!(id, "abc");
        assert_eq!(
            meta,
            ContainerMeta {
                runtime: Some(Runtime::Docker),
                ..ContainerMeta::default()
            }
        );
        assert!(serde_json::from_str::<Inspect>(r#"{"Name": "/x"}"#).is_err());
    }

    fn split(splitter: &mut Splitter, chunks: &[&[u8]]) -> Vec<Piece> {
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut out);
        }
        out
    }

    fn object(json: &str) -> Piece {
        Piece::Object(json.as_bytes().to_vec())
    }

    #[test]
    fn splitter_joins_partial_chunks_and_splits_joined_objects() {
        let a = r#"{"Action":"start","Actor":{"ID":"a1","Attributes":{"name":"x}{\"y"}}}"#;
        let b = r#"{"Action":"die","Actor":{"ID":"b2","Attributes":{"list":[1,{"n":[]}]}}}"#;
        let stream = format!("{a}\n{b}{a}\r\n");
        let mut whole = Splitter::new(1024);
        assert_eq!(
            split(&mut whole, &[stream.as_bytes()]),
            [object(a), object(b), object(a)]
        );
        // Every possible cut of the stream into two chunks, and byte by byte.
        for cut in 0..stream.len() {
            let (head, tail) = stream.as_bytes().split_at(cut);
            let mut cutting = Splitter::new(1024);
            assert_eq!(
                split(&mut cutting, &[head, tail]),
                [object(a), object(b), object(a)],
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
        assert_eq!(split(&mut Splitter::new(1024), &bytes).len(), 3);
        let event: Event = serde_json::from_str(a).unwrap();
        assert_eq!(
            (event.action.as_str(), event.container_id()),
            ("start", Some("a1"))
        );
    }

    #[test]
    fn splitter_drops_oversized_objects_and_stray_bytes_then_recovers() {
        let small = r#"{"Action":"stop","id":"c3"}"#;
        let big = format!(
            r#"{{"Action":"start","pad":"{}","n":{{}}}}"#,
            "}".repeat(100)
        );
        let stream = format!("{big}\n{small}\nnot json\n{small}");
        let mut splitter = Splitter::new(64);
        let pieces = split(
            &mut splitter,
            &[&stream.as_bytes()[..50], &stream.as_bytes()[50..]],
        );
        assert_eq!(
            pieces,
            [
                Piece::Oversized,
                object(small),
                Piece::Stray,
                Piece::Stray,
                object(small)
            ]
        );
        // The oversized object was never held whole.
        assert!(splitter.object.capacity() <= 64);
        let event: Event = serde_json::from_str(small).unwrap();
        assert_eq!(event.container_id(), Some("c3"));
    }

    #[test]
    fn only_docker_ids_and_names_reach_a_request_path() {
        assert!(valid_id(
            "5bf5e2cf8ccb95456b908010f0ea3b6db174c2e6a4e09b3ebb4250d06a973a22"
        ));
        assert!(valid_id("my_web-1.a"));
        for bad in ["", "../../images/json", "a b", "a?all=1", "a/json", "x%2F"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn docker_error_bodies_give_their_message() {
        assert_eq!(
            error_message(br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
        assert_eq!(error_message(b"page not found\n"), "page not found");
    }
}
