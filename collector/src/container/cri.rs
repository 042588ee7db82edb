//! The CRI watcher: containerd's and CRI-O's Kubernetes Container Runtime Interface
//! (`runtime.v1`, gRPC over the runtime's unix socket), the metadata source of Kubernetes nodes
//! that run no Docker. It lists the pod sandboxes and containers, reads each new container's
//! status once (for the image it was created from) and each new sandbox's once (for the pod's
//! addresses), then follows `GetContainerEvents` where the runtime serves it (containerd 1.7
//! on, CRI-O 1.26 on) and lists again every [`POLL_INTERVAL`] where it does not (containerd
//! 1.6, Debian 12's).
//!
//! Pods are named by the CRI labels kubelet puts on every container
//! (`io.kubernetes.pod.{name,namespace,uid}`), or by the sandbox's metadata where a container
//! lacks them. CRI has no hostnames or container ports outside its verbose, runtime-specific
//! `info` maps, so those stay empty.
//!
//! A host without a CRI runtime is normal: as the Docker watcher does, this one says once that
//! it cannot reach the socket (or that what answers there serves no CRI), counts each failed
//! attempt, retries with a backoff, and relists on every reconnect.

mod api;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    error::Error as StdError,
    path::{Path, PathBuf},
    sync::{
        Arc, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hyper::http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use scope_runtime::metrics::Families;
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;
use tonic::{
    Code, Request, Status,
    client::Grpc,
    codec::Streaming,
    transport::{Channel, Endpoint},
};
use tonic_prost::ProstCodec;

use self::api::{
    Container, ContainerEventResponse, ContainerEventType, ContainerState, ContainerStatus,
    ContainerStatusRequest, ContainerStatusResponse, GetEventsRequest, ImageSpec,
    ListContainersRequest, ListContainersResponse, ListPodSandboxRequest, ListPodSandboxResponse,
    PodSandboxMetadata, PodSandboxNetworkStatus, PodSandboxStatusRequest, PodSandboxStatusResponse,
    VersionRequest, VersionResponse,
};
use super::{
    ContainerMeta, MetaCache, Outage, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL, Runtime,
};
use crate::stats::Stats;

/// Where containerd and CRI-O serve the CRI, tried in this order when no socket is given (as
/// kubelet's and crictl's defaults): the first that exists, else containerd's.
pub const DEFAULT_SOCKETS: [&str; 2] =
    ["/run/containerd/containerd.sock", "/var/run/crio/crio.sock"];
/// How often a runtime without container events is listed again: kubelet relists every
/// second; a container's metadata may lag its first processes by this much.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// For every call but the event stream, which is idle whenever nothing happens.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A listed container is a few hundred bytes with kubelet's labels: room for tens of
/// thousands.
const MAX_LIST_BYTES: usize = 64 << 20;
/// One status, or one event (a pod's sandbox and its containers' statuses).
const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The watcher's counters, exported with the collector's.
#[derive(Debug, Default)]
pub struct CriStats {
    /// Attempts to reach the runtime that failed, and watches it ended.
    pub api_failures: AtomicU64,
    /// Container events applied to the cache.
    pub events: AtomicU64,
    /// Listings of a runtime that serves no events.
    pub polls: AtomicU64,
    /// Container and sandbox statuses that failed while the runtime was reachable.
    pub status_failures: AtomicU64,
}

impl CriStats {
    pub fn write_metrics(&self, out: &mut Families) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.counter(
            "scope_collector_cri_api_failures_total",
            "Attempts to reach the CRI runtime that failed, and watches the runtime ended.",
            get(&self.api_failures),
        );
        out.counter(
            "scope_collector_cri_events_total",
            "CRI container events applied to the container metadata.",
            get(&self.events),
        );
        out.counter(
            "scope_collector_cri_polls_total",
            "Listings of a CRI runtime that serves no container events.",
            get(&self.polls),
        );
        out.counter(
            "scope_collector_cri_status_failures_total",
            "CRI container and sandbox statuses that failed while the runtime was reachable.",
            get(&self.status_failures),
        );
    }
}

/// What went wrong talking to the runtime.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The socket is not there, refuses, or breaks the connection (with its causes).
    #[error("connecting: {0}")]
    Connect(String),
    #[error("{method}: {code:?}: {message}")]
    Call {
        method: &'static str,
        code: Code,
        message: String,
    },
    #[error("{method}: no answer within {REQUEST_TIMEOUT:?}")]
    Timeout { method: &'static str },
    #[error("the runtime ended the event stream")]
    StreamEnded,
}

impl CriError {
    fn call(method: &'static str, status: Status) -> Self {
        let mut message = status.message().to_owned();
        if let Some(source) = status.source() {
            message = format!("{message}: {}", chain(source));
        }
        CriError::Call {
            method: api::method_name(method),
            code: status.code(),
            message,
        }
    }

    /// Whether the runtime itself is away (as opposed to one answer being bad): the watch
    /// restarts, rather than skipping one container.
    fn runtime_away(&self) -> bool {
        match self {
            CriError::Connect(_) | CriError::Timeout { .. } | CriError::StreamEnded => true,
            CriError::Call { code, .. } => matches!(
                code,
                Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded
            ),
        }
    }
}

/// An error and its causes, as one line: tonic's transport errors say only "transport error"
/// at the top. A cause some error above already quoted is not repeated.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// A gRPC channel to the CRI runtime at `socket` (HTTP/2 over the unix socket, no TLS), for
/// the watcher and for tests that drive the runtime with messages of their own.
pub async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_owned();
    // The URI only names the HTTP/2 authority: every connection goes to the socket.
    Endpoint::from_static("http://localhost")
        .connect_timeout(REQUEST_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: hyper::Uri| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
}

/// The socket to try: the one given, else the first of [`DEFAULT_SOCKETS`] that exists
/// (looked for again at each attempt, as a runtime may be installed later), else containerd's.
fn socket_to_try(given: Option<&Path>) -> PathBuf {
    if let Some(socket) = given {
        return socket.to_owned();
    }
    DEFAULT_SOCKETS
        .iter()
        .map(PathBuf::from)
        .find(|socket| socket.exists())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKETS[0]))
}

/// Keeps `cache` in step with the CRI runtime at `socket` (see [`socket_to_try`] when `None`)
/// until `shutdown` is cancelled. Never returns early: an unreachable runtime is retried, with
/// a backoff of up to [`Outage::MAX_RETRY`].
pub async fn watch(
    socket: Option<PathBuf>,
    cache: MetaCache,
    stats: Arc<CriStats>,
    shutdown: CancellationToken,
) {
    let mut watcher = Watcher {
        cache,
        stats,
        runtime: Runtime::Containerd,
        known: HashSet::new(),
        images: HashMap::new(),
        pod_ips: HashMap::new(),
    };
    let mut outage = Outage::new("CRI runtime");
    loop {
        let path = socket_to_try(socket.as_deref());
        let Some(connected) = shutdown.run_until_cancelled(watcher.connect(&path)).await else {
            return;
        };
        let (error, lost) = match connected {
            Ok((client, events, containers)) => {
                outage.reconnected(&path, containers);
                if events.is_none() {
                    tracing::info!(
                        socket = %path.display(),
                        "the CRI runtime serves no container events; listing its containers every {}",
                        humantime::format_duration(POLL_INTERVAL)
                    );
                }
                let Some(error) = shutdown
                    .run_until_cancelled(watcher.follow(&client, events))
                    .await
                else {
                    return;
                };
                (error, true)
            }
            Err(error) => (error, false),
        };
        let failures = &watcher.stats.api_failures;
        if !outage
            .back_off(failures, &path, error, lost, &shutdown)
            .await
        {
            return;
        }
    }
}

/// The runtime's calls, each bounded in time and in the size of its answer.
struct Client {
    channel: Channel,
}

impl Client {
    async fn unary<Req, Resp>(
        &self,
        method: &'static str,
        request: Req,
        limit: usize,
    ) -> Result<Resp, CriError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = Grpc::new(self.channel.clone()).max_decoding_message_size(limit);
        let call = async {
            grpc.ready()
                .await
                .map_err(|error| CriError::Connect(chain(&error)))?;
            grpc.unary(
                Request::new(request),
                PathAndQuery::from_static(method),
                ProstCodec::default(),
            )
            .await
            .map_err(|status| CriError::call(method, status))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
            Ok(answer) => answer.map(tonic::Response::into_inner),
            Err(_) => Err(CriError::Timeout {
                method: api::method_name(method),
            }),
        }
    }

    /// The container event stream, or `None` if the runtime does not serve one.
    async fn events(&self) -> Result<Option<Streaming<ContainerEventResponse>>, CriError> {
        let method = api::GET_CONTAINER_EVENTS;
        let mut grpc = Grpc::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let call = async {
            grpc.ready()
                .await
                .map_err(|error| CriError::Connect(chain(&error)))?;
            grpc.server_streaming(
                Request::new(GetEventsRequest {}),
                PathAndQuery::from_static(method),
                ProstCodec::default(),
            )
            .await
            .map_err(|status| CriError::call(method, status))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
            Ok(Ok(events)) => Ok(Some(events.into_inner())),
            Ok(Err(CriError::Call {
                code: Code::Unimplemented,
                ..
            })) => Ok(None),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(CriError::Timeout {
                method: api::method_name(method),
            }),
        }
    }

    /// A container's status; `None` if the runtime no longer knows it or answered badly
    /// (counted), an error only if the runtime is away.
    async fn container_status(
        &self,
        id: &str,
        stats: &CriStats,
    ) -> Result<Option<ContainerStatus>, CriError> {
        let request = ContainerStatusRequest {
            container_id: id.to_owned(),
        };
        let answer: Result<ContainerStatusResponse, _> = self
            .unary(api::CONTAINER_STATUS, request, MAX_MESSAGE_BYTES)
            .await;
        Self::skip_bad(answer.map(|a| a.status), id, stats)
    }

    /// The addresses of a sandbox's pod, as [`Self::container_status`].
    async fn pod_ips(&self, id: &str, stats: &CriStats) -> Result<Option<Vec<String>>, CriError> {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
        };
        let answer: Result<PodSandboxStatusResponse, _> = self
            .unary(api::POD_SANDBOX_STATUS, request, MAX_MESSAGE_BYTES)
            .await;
        let status = Self::skip_bad(answer.map(|a| a.status), id, stats)?;
        Ok(status.map(|s| ips_of(s.network)))
    }

    fn skip_bad<T>(
        answer: Result<Option<T>, CriError>,
        id: &str,
        stats: &CriStats,
    ) -> Result<Option<T>, CriError> {
        match answer {
            Ok(found) => Ok(found),
            Err(error) if error.runtime_away() => Err(error),
            // Removed between the listing and now: nothing to say.
            Err(CriError::Call {
                code: Code::NotFound,
                ..
            }) => Ok(None),
            Err(error) => {
                Stats::add(&stats.status_failures, 1);
                tracing::debug!(id, %error, "skipped a CRI status");
                Ok(None)
            }
        }
    }
}

/// A client, the event stream if the runtime serves one, and how many containers it listed.
type Connected = (Client, Option<Streaming<ContainerEventResponse>>, usize);

struct Watcher {
    cache: MetaCache,
    stats: Arc<CriStats>,
    /// What the runtime calls itself (`Version`), for containers no process names.
    runtime: Runtime,
    /// The ids this watcher put in the cache, so a relist removes only its own stale entries.
    known: HashSet<String>,
    /// Container id to the image it was created from: read once from its status, as it
    /// never changes.
    images: HashMap<String, Option<String>>,
    /// Sandbox id to its pod's addresses, read once: they are fixed for a sandbox's life.
    pod_ips: HashMap<String, Vec<String>>,
}

impl Watcher {
    /// Asks the runtime's name, subscribes to the events if it serves them, then lists.
    /// Subscribing first means an event during the listing waits in the stream: nothing falls
    /// between the two.
    async fn connect(&mut self, socket: &Path) -> Result<Connected, CriError> {
        let channel = connect(socket)
            .await
            .map_err(|error| CriError::Connect(chain(&error)))?;
        let client = Client { channel };
        let version: VersionResponse = client
            .unary(
                api::VERSION,
                VersionRequest {
                    version: "v1".to_owned(),
                },
                MAX_MESSAGE_BYTES,
            )
            .await?;
        self.runtime = runtime_named(&version.runtime_name);
        tracing::debug!(
            runtime = version.runtime_name,
            version = version.runtime_version,
            "CRI runtime"
        );
        let events = client.events().await?;
        let containers = self.sync(&client).await?;
        Ok((client, events, containers))
    }

    /// Follows the events until the stream fails or ends, or without events lists again
    /// every [`POLL_INTERVAL`] until a listing fails.
    async fn follow(
        &mut self,
        client: &Client,
        events: Option<Streaming<ContainerEventResponse>>,
    ) -> CriError {
        let Some(mut events) = events else {
            loop {
                tokio::time::sleep(POLL_INTERVAL).await;
                Stats::add(&self.stats.polls, 1);
                if let Err(error) = self.sync(client).await {
                    return error;
                }
            }
        };
        loop {
            match events.message().await {
                Ok(Some(event)) => {
                    if let Err(error) = self.apply(client, event).await {
                        return error;
                    }
                }
                Ok(None) => return CriError::StreamEnded,
                Err(status) => return CriError::call(api::GET_CONTAINER_EVENTS, status),
            }
        }
    }

    /// Lists every sandbox and container and replaces this watcher's part of the cache with
    /// them; returns how many containers there are.
    async fn sync(&mut self, client: &Client) -> Result<usize, CriError> {
        let sandboxes: ListPodSandboxResponse = client
            .unary(
                api::LIST_POD_SANDBOX,
                ListPodSandboxRequest {},
                MAX_LIST_BYTES,
            )
            .await?;
        let listed: ListContainersResponse = client
            .unary(
                api::LIST_CONTAINERS,
                ListContainersRequest {},
                MAX_LIST_BYTES,
            )
            .await?;
        let pods: HashMap<String, Option<PodSandboxMetadata>> = sandboxes
            .items
            .into_iter()
            .map(|sandbox| (sandbox.id, sandbox.metadata))
            .collect();
        self.pod_ips.retain(|id, _| pods.contains_key(id));
        let ids: HashSet<&str> = listed.containers.iter().map(|c| c.id.as_str()).collect();
        self.images.retain(|id, _| ids.contains(id.as_str()));

        let mut found = HashMap::with_capacity(listed.containers.len());
        for container in listed.containers {
            let image = match self.images.get(&container.id) {
                Some(image) => image.clone(),
                None => match client.container_status(&container.id, &self.stats).await? {
                    Some(status) => {
                        let image = image_name(status.image);
                        self.images.insert(container.id.clone(), image.clone());
                        image
                    }
                    // Gone, or its status failed (then asked again at the next listing).
                    None => None,
                },
            };
            let sandbox = container.pod_sandbox_id.as_str();
            let ips = match self.pod_ips.get(sandbox) {
                Some(ips) => ips.clone(),
                None => match client.pod_ips(sandbox, &self.stats).await? {
                    Some(ips) => {
                        self.pod_ips.insert(sandbox.to_owned(), ips.clone());
                        ips
                    }
                    None => Vec::new(),
                },
            };
            let pod = pods.get(sandbox).and_then(Option::as_ref);
            let (id, meta) = container_meta(self.runtime, container, image, pod, ips);
            found.insert(id, meta);
        }
        let containers = found.len();
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        for gone in self.known.iter().filter(|id| !found.contains_key(*id)) {
            cache.remove(gone);
        }
        self.known = found.keys().cloned().collect();
        cache.extend(found);
        Ok(containers)
    }

    /// Applies one event: the event carries the container's status and its pod's, so no call
    /// is needed, unless a runtime left them out (then everything is listed again).
    async fn apply(
        &mut self,
        client: &Client,
        event: ContainerEventResponse,
    ) -> Result<(), CriError> {
        Stats::add(&self.stats.events, 1);
        let id = event.container_id;
        if event.container_event_type == ContainerEventType::Deleted as i32 {
            self.known.remove(&id);
            self.images.remove(&id);
            self.cache
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            return Ok(());
        }
        let status = event.containers_statuses.into_iter().find(|s| s.id == id);
        let (Some(sandbox), Some(status)) = (event.pod_sandbox_status, status) else {
            return self.sync(client).await.map(drop);
        };
        let image = image_name(status.image);
        self.images.insert(id.clone(), image.clone());
        let container = Container {
            id,
            pod_sandbox_id: sandbox.id,
            metadata: status.metadata,
            image_ref: status.image_ref,
            state: status.state,
            labels: status.labels,
        };
        let (id, meta) = container_meta(
            self.runtime,
            container,
            image,
            sandbox.metadata.as_ref(),
            ips_of(sandbox.network),
        );
        self.known.insert(id.clone());
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, meta);
        Ok(())
    }
}

/// The cgroup names CRI-O's containers apart; for the rest, the runtime's name does.
fn runtime_named(name: &str) -> Runtime {
    match name {
        "cri-o" => Runtime::Crio,
        "docker" => Runtime::Docker,
        "podman" => Runtime::Podman,
        _ => Runtime::Containerd,
    }
}

/// The image as the pod spec named it, else as the runtime resolved it.
fn image_name(image: Option<ImageSpec>) -> Option<String> {
    let image = image?;
    [image.user_specified_image, image.image]
        .into_iter()
        .find(|name| !name.is_empty())
}

fn ips_of(network: Option<PodSandboxNetworkStatus>) -> Vec<String> {
    let Some(network) = network else {
        return Vec::new();
    };
    let mut ips = vec![network.ip];
    ips.extend(network.additional_ips.into_iter().map(|ip| ip.ip));
    ips.retain(|ip| !ip.is_empty());
    ips.dedup();
    ips
}

fn container_meta(
    runtime: Runtime,
    container: Container,
    image_name: Option<String>,
    pod: Option<&PodSandboxMetadata>,
    ips: Vec<String>,
) -> (String, ContainerMeta) {
    let mut labels: BTreeMap<String, String> = container.labels.into_iter().collect();
    if let Some(pod) = pod {
        for (label, value) in [
            (POD_NAME_LABEL, &pod.name),
            (POD_NAMESPACE_LABEL, &pod.namespace),
            (POD_UID_LABEL, &pod.uid),
        ] {
            if !value.is_empty() {
                labels
                    .entry(label.to_owned())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    let non_empty = |value: String| Some(value).filter(|v| !v.is_empty());
    let meta = ContainerMeta {
        runtime: Some(runtime),
        name: container.metadata.and_then(|m| non_empty(m.name)),
        image_name,
        image_id: non_empty(container.image_ref),
        state: Some(ContainerState::name_of(container.state).to_owned()),
        hostname: None,
        labels,
        ips,
        ports: Vec::new(),
    };
    (container.id, meta)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::{api::PodIp, *};

    fn pod() -> PodSandboxMetadata {
        PodSandboxMetadata {
            name: "web-7d4b9c-x2x5z".into(),
            uid: "2c1d9f5e-1b7a-4c0e-9a57-3d2f6b8e4a10".into(),
            namespace: "shop".into(),
        }
    }

    #[test]
    fn a_listed_container_and_its_sandbox_become_container_meta() {
        let container = Container {
            id: "a".repeat(64),
            pod_sandbox_id: "b".repeat(64),
            metadata: Some(api::ContainerMetadata { name: "web".into() }),
            image_ref: "sha256:539b".into(),
            state: ContainerState::Running as i32,
            // kubelet's label wins over the sandbox's metadata.
            labels: HashMap::from([
                ("app".into(), "web".into()),
                (POD_NAME_LABEL.into(), "as-kubelet-said".into()),
            ]),
        };
        let (id, meta) = container_meta(
            Runtime::Crio,
            container,
            Some("docker.io/library/nginx:1.27".into()),
            Some(&pod()),
            vec!["10.1.2.3".into()],
        );
        assert_eq!(id, "a".repeat(64));
        assert_eq!(
            meta,
            ContainerMeta {
                runtime: Some(Runtime::Crio),
                name: Some("web".into()),
                image_name: Some("docker.io/library/nginx:1.27".into()),
                image_id: Some("sha256:539b".into()),
                state: Some("running".into()),
                hostname: None,
                labels: BTreeMap::from([
                    ("app".into(), "web".into()),
                    (POD_NAME_LABEL.into(), "as-kubelet-said".into()),
                    (POD_NAMESPACE_LABEL.into(), "shop".into()),
                    (
                        POD_UID_LABEL.into(),
                        "2c1d9f5e-1b7a-4c0e-9a57-3d2f6b8e4a10".into()
                    ),
                ]),
                ips: vec!["10.1.2.3".into()],
                ports: Vec::new(),
            }
        );
        let bare = Container {
            id: "c".into(),
            state: 42,
            ..Container::default()
        };
        let (_, meta) = container_meta(Runtime::Containerd, bare, None, None, Vec::new());
        assert_eq!(meta.state.as_deref(), Some("unknown"));
        assert_eq!((meta.name, meta.image_id), (None, None));
        assert!(meta.labels.is_empty());
    }

    #[test]
    fn images_and_addresses_prefer_what_the_spec_said_and_skip_blanks() {
        let spec = |image: &str, user: &str| ImageSpec {
            image: image.into(),
            user_specified_image: user.into(),
        };
        assert_eq!(
            image_name(Some(spec("sha256:1", "nginx:1"))).as_deref(),
            Some("nginx:1")
        );
        assert_eq!(
            image_name(Some(spec("nginx:1", ""))).as_deref(),
            Some("nginx:1")
        );
        assert_eq!(image_name(Some(spec("", ""))), None);
        assert_eq!(image_name(None), None);
        let network = PodSandboxNetworkStatus {
            ip: "10.1.2.3".into(),
            additional_ips: vec![
                PodIp {
                    ip: "fd00::3".into(),
                },
                PodIp { ip: String::new() },
            ],
        };
        assert_eq!(ips_of(Some(network)), ["10.1.2.3", "fd00::3"]);
        let host_network = PodSandboxNetworkStatus::default();
        assert!(ips_of(Some(host_network)).is_empty());
    }

    /// The declared tags against bytes as the proto's own types encode them: a
    /// `ContainerStatus` with fields on both sides of those declared (`created_at` = 4,
    /// `mounts` = 14), which decoding skips.
    #[test]
    fn messages_decode_with_the_protos_field_numbers() {
        let mut bytes = Vec::new();
        let field = |bytes: &mut Vec<u8>, tag: u32, value: &[u8]| {
            prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, bytes);
            prost::encoding::encode_varint(value.len() as u64, bytes);
            bytes.extend_from_slice(value);
        };
        field(&mut bytes, 1, b"abc");
        field(
            &mut bytes,
            2,
            &api::ContainerMetadata { name: "web".into() }.encode_to_vec(),
        );
        prost::encoding::encode_key(3, prost::encoding::WireType::Varint, &mut bytes);
        prost::encoding::encode_varint(2, &mut bytes);
        prost::encoding::encode_key(4, prost::encoding::WireType::Varint, &mut bytes);
        prost::encoding::encode_varint(1_733_000_000, &mut bytes);
        field(&mut bytes, 8, &spec_bytes("busybox:1"));
        field(&mut bytes, 14, b"\x0a\x04/tmp");
        let status = ContainerStatus::decode(bytes.as_slice()).unwrap();
        assert_eq!(status.id, "abc");
        assert_eq!(status.metadata.unwrap().name, "web");
        assert_eq!(ContainerState::name_of(status.state), "exited");
        assert_eq!(image_name(status.image).as_deref(), Some("busybox:1"));
    }

    fn spec_bytes(image: &str) -> Vec<u8> {
        ImageSpec {
            image: image.into(),
            user_specified_image: String::new(),
        }
        .encode_to_vec()
    }

    #[test]
    fn the_socket_given_wins_and_the_default_falls_back_to_containerds() {
        assert_eq!(
            socket_to_try(Some(Path::new("/run/k3s/containerd/containerd.sock"))),
            Path::new("/run/k3s/containerd/containerd.sock")
        );
        let default = socket_to_try(None);
        assert!(
            DEFAULT_SOCKETS.iter().any(|s| Path::new(s) == default),
            "{default:?}"
        );
        assert_eq!(runtime_named("cri-o"), Runtime::Crio);
        assert_eq!(runtime_named("containerd"), Runtime::Containerd);
    }

    /// Events as containerd 1.7 and CRI-O send them, with the pod's and the containers'
    /// statuses: applied with no call to the runtime (this client reaches none).
    #[tokio::test]
    async fn events_carrying_their_statuses_update_the_cache_without_a_call() {
        let cache = MetaCache::default();
        let stats = Arc::new(CriStats::default());
        let mut watcher = Watcher {
            cache: cache.clone(),
            stats: stats.clone(),
            runtime: Runtime::Containerd,
            known: HashSet::new(),
            images: HashMap::new(),
            pod_ips: HashMap::new(),
        };
        let nowhere = tower::service_fn(|_: hyper::Uri| async {
            Err::<TokioIo<UnixStream>, _>(std::io::Error::other("no runtime in this test"))
        });
        let client = Client {
            channel: Endpoint::from_static("http://localhost").connect_with_connector_lazy(nowhere),
        };
        let (web, sidecar) = ("a".repeat(64), "c".repeat(64));
        let status = |id: &str, name: &str| ContainerStatus {
            id: id.to_owned(),
            metadata: Some(api::ContainerMetadata { name: name.into() }),
            state: ContainerState::Running as i32,
            image: Some(ImageSpec {
                image: "nginx:1".into(),
                user_specified_image: String::new(),
            }),
            image_ref: "sha256:1".into(),
            labels: HashMap::new(),
        };
        let started = ContainerEventResponse {
            container_id: web.clone(),
            container_event_type: ContainerEventType::Started as i32,
            pod_sandbox_status: Some(api::PodSandboxStatus {
                id: "b".repeat(64),
                metadata: Some(pod()),
                network: Some(PodSandboxNetworkStatus {
                    ip: "10.1.2.3".into(),
                    additional_ips: Vec::new(),
                }),
            }),
            containers_statuses: vec![status(&sidecar, "sidecar"), status(&web, "web")],
        };
        watcher.apply(&client, started).await.unwrap();
        let meta = cache.read().unwrap()[&web].clone();
        assert_eq!(meta.name.as_deref(), Some("web"));
        assert_eq!(meta.image_name.as_deref(), Some("nginx:1"));
        assert_eq!(meta.state.as_deref(), Some("running"));
        assert_eq!(meta.labels[POD_NAMESPACE_LABEL], "shop");
        assert_eq!(meta.ips, ["10.1.2.3"]);
        // Only the container the event names: the sidecar's own event follows.
        assert_eq!(cache.read().unwrap().len(), 1);

        let deleted = ContainerEventResponse {
            container_id: web.clone(),
            container_event_type: ContainerEventType::Deleted as i32,
            ..ContainerEventResponse::default()
        };
        watcher.apply(&client, deleted).await.unwrap();
        assert!(cache.read().unwrap().is_empty());
        assert!(watcher.known.is_empty() && watcher.images.is_empty());
        assert_eq!(stats.events.load(Ordering::Relaxed), 2);

        // A bare event needs a listing, which fails as a runtime that is away does.
        let bare = ContainerEventResponse {
            container_id: web,
            container_event_type: ContainerEventType::Created as i32,
            ..ContainerEventResponse::default()
        };
        let error = watcher.apply(&client, bare).await.unwrap_err();
        assert!(error.runtime_away(), "{error}");
    }

    #[test]
    fn only_a_runtime_gone_restarts_the_watch() {
        let call = |code| CriError::call(api::CONTAINER_STATUS, Status::new(code, "x"));
        assert!(call(Code::Unavailable).runtime_away());
        assert!(!call(Code::NotFound).runtime_away());
        assert!(!call(Code::Unknown).runtime_away());
        assert!(CriError::StreamEnded.runtime_away());
        assert_eq!(
            call(Code::NotFound).to_string(),
            "ContainerStatus: NotFound: x"
        );
    }
}
