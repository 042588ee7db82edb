//! The CRI watcher against a real runtime: Debian's containerd, started by the test with its
//! CRI plugin (own config, root, state and socket in a temporary directory), a pod sandbox
//! and a container created through the CRI as kubelet creates them, and the collector binary
//! run as a user runs it, publishing to an embedded broker. And a collector whose CRI socket
//! has nothing behind it, as on a host without containerd or CRI-O.

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use hyper::http::uri::PathAndQuery;
use rdkafka::{Message, consumer::StreamConsumer};
use scope_collector::test_support;
use scope_schemas::{
    Node, Record, ReportDelta,
    report::{container_node_id, keys, process_node_id},
    topics,
};
use scope_testkit::{Broker, Process, wait_for, wait_for_async};
use tonic::{Request, client::Grpc};
use tonic_prost::ProstCodec;

/// Starting containerd, importing an image and running a pod on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);
/// The image of the pod's sandbox and of its container: busybox, with a command that keeps
/// a sandbox up (the CRI runs the image's own command as the sandbox's pause process).
const IMAGE: &str = "docker.io/scope-test/busybox:1";

/// The messages the test sends to create a pod, as kubelet sends them (the collector declares
/// those it reads itself). Tags are the field numbers of the CRI's `api.proto`.
mod cri {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunPodSandboxRequest {
        #[prost(message, optional, tag = "1")]
        pub config: Option<PodSandboxConfig>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunPodSandboxResponse {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxConfig {
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<PodSandboxMetadata>,
        #[prost(string, tag = "2")]
        pub hostname: String,
        #[prost(string, tag = "3")]
        pub log_directory: String,
        #[prost(map = "string, string", tag = "6")]
        pub labels: HashMap<String, String>,
        #[prost(message, optional, tag = "8")]
        pub linux: Option<LinuxPodSandboxConfig>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub uid: String,
        #[prost(string, tag = "3")]
        pub namespace: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxPodSandboxConfig {
        #[prost(string, tag = "1")]
        pub cgroup_parent: String,
        #[prost(message, optional, tag = "2")]
        pub security_context: Option<LinuxSandboxSecurityContext>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxSandboxSecurityContext {
        #[prost(message, optional, tag = "1")]
        pub namespace_options: Option<NamespaceOption>,
    }

    /// `NamespaceMode`s.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamespaceOption {
        #[prost(int32, tag = "1")]
        pub network: i32,
        #[prost(int32, tag = "2")]
        pub pid: i32,
        #[prost(int32, tag = "3")]
        pub ipc: i32,
    }

    pub const POD: i32 = 0;
    pub const NODE: i32 = 2;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerRequest {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
        #[prost(message, optional, tag = "2")]
        pub config: Option<ContainerConfig>,
        #[prost(message, optional, tag = "3")]
        pub sandbox_config: Option<PodSandboxConfig>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerConfig {
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<ContainerMetadata>,
        #[prost(message, optional, tag = "2")]
        pub image: Option<ImageSpec>,
        #[prost(string, repeated, tag = "3")]
        pub command: Vec<String>,
        #[prost(map = "string, string", tag = "9")]
        pub labels: HashMap<String, String>,
        #[prost(string, tag = "11")]
        pub log_path: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSpec {
        #[prost(string, tag = "1")]
        pub image: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerResponse {
        #[prost(string, tag = "1")]
        pub container_id: String,
    }

    /// `StartContainerRequest` (`container_id`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerId {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    /// `StopPodSandboxRequest` and `RemovePodSandboxRequest` (`pod_sandbox_id`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SandboxId {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    /// Every answer the test does not read.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}
}

/// `runtime.v1.RuntimeService/<method>` on the runtime at `socket`.
async fn call<Req, Resp>(socket: &Path, method: &str, request: Req) -> Result<Resp, String>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let channel = scope_collector::connect_cri(socket)
        .await
        .map_err(|e| format!("connecting to {}: {e:?}", socket.display()))?;
    let mut grpc = Grpc::new(channel);
    grpc.ready().await.map_err(|e| format!("{method}: {e}"))?;
    let path = PathAndQuery::try_from(format!("/runtime.v1.RuntimeService/{method}")).unwrap();
    grpc.unary(Request::new(request), path, ProstCodec::default())
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("{method}: {status:?}"))
}

/// A containerd of the test's own, with the CRI plugin on, the busybox [`IMAGE`] imported
/// into the CRI's namespace, and everything under a temporary directory.
struct Containerd {
    socket: PathBuf,
    dir: tempfile::TempDir,
    _daemon: Process,
}

impl Containerd {
    /// `Err` says why it cannot run here, for the test to skip, or fail under CI.
    fn start() -> Result<Containerd, String> {
        let containerd = Containerd::start_with("")?;
        let plugins = containerd.ctr(&["plugins", "ls"])?;
        if !plugins
            .lines()
            .any(|l| l.contains(" cri ") && l.trim_end().ends_with("ok"))
        {
            return Err(format!("containerd's CRI plugin is not loaded:\n{plugins}"));
        }
        containerd.import_image()?;
        Ok(containerd)
    }

    /// A containerd without its CRI plugin, as Docker's own containerd is configured.
    fn start_without_cri() -> Result<Containerd, String> {
        Containerd::start_with(r#"disabled_plugins = ["io.containerd.grpc.v1.cri"]"#)
    }

    /// Starts containerd with `top` at the top of its config, and waits until it answers.
    fn start_with(top: &str) -> Result<Containerd, String> {
        for program in ["containerd", "ctr", "runc"] {
            if Command::new(program).arg("--version").output().is_err() {
                return Err(format!(
                    "no {program}; scripts/setup installs docker.io, which brings containerd and runc"
                ));
            }
        }
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
        let path = dir.path();
        let socket = path.join("containerd.sock");
        // Host-network pods need no CNI; the stream server (exec, attach) takes a free port.
        // Sandboxes get an OOM score adjustment of -998, which needs CAP_SYS_RESOURCE: root
        // here (and in CI) lacks it, so no lower than containerd's own.
        let config = format!(
            r#"version = 2
{top}
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}/bin"
    conf_dir = "{cni}/conf"
"#,
            root = path.join("root").display(),
            state = path.join("state").display(),
            socket = socket.display(),
            cni = path.join("cni").display(),
        );
        let config_path = path.join("config.toml");
        std::fs::write(&config_path, config).map_err(|e| format!("writing the config: {e}"))?;
        let log = File::create(path.join("containerd.log"))
            .map_err(|e| format!("creating the log: {e}"))?;
        let mut command = Command::new("containerd");
        command.arg("--config").arg(&config_path).stderr(log);
        let daemon = Process::spawn(command);
        let containerd = Containerd {
            socket,
            dir,
            _daemon: daemon,
        };
        let deadline = Instant::now() + WAIT;
        while containerd.ctr(&["plugins", "ls"]).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "containerd did not answer within {WAIT:?}: {}",
                    containerd.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(containerd)
    }

    /// `ctr -a <socket> -n k8s.io <args>`: its stdout, or why it failed.
    fn ctr(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .map_err(|e| format!("ctr {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ctr {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// containerd's log and runc's, for a failure to say why.
    fn log(&self) -> String {
        let mut log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let tasks = self
            .dir
            .path()
            .join("state/io.containerd.runtime.v2.task/k8s.io");
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            if let Ok(runc) = std::fs::read_to_string(task.path().join("log.json")) {
                log.push_str(&format!("runc's log of {:?}:\n{runc}", task.file_name()));
            }
        }
        log
    }

    /// Writes an OCI image layout (a busybox root filesystem as its one layer, a config whose
    /// command sleeps) and imports it: no registry is reachable from here or CI.
    fn import_image(&self) -> Result<(), String> {
        let image = self.dir.path().join("image");
        let rootfs = image.join("rootfs");
        let blobs = image.join("oci/blobs/sha256");
        for dir in [rootfs.join("bin"), blobs.clone()] {
            std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        }
        let busybox = Path::new("/bin/busybox");
        std::fs::copy(busybox, rootfs.join("bin/busybox"))
            .map_err(|e| format!("copying {} (busybox-static): {e}", busybox.display()))?;
        for applet in ["sh", "sleep"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                .map_err(|e| format!("linking {applet}: {e}"))?;
        }
        let layer = image.join("layer.tar");
        run_tool(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&layer)
                .arg("."),
        )?;
        let layer = blob(&blobs, &std::fs::read(&layer).map_err(|e| e.to_string())?)?;
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sleep","1000000"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            layer.0
        );
        let config = blob(&blobs, config.as_bytes())?;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            config.0, config.1, layer.0, layer.1
        );
        let manifest = blob(&blobs, manifest.as_bytes())?;
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"{IMAGE}"}}}}]}}"#,
            manifest.0, manifest.1
        );
        let oci = image.join("oci");
        std::fs::write(oci.join("index.json"), index).map_err(|e| e.to_string())?;
        std::fs::write(oci.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(|e| e.to_string())?;
        let archive = image.join("image.tar");
        run_tool(
            Command::new("tar")
                .arg("-C")
                .arg(&oci)
                .arg("-cf")
                .arg(&archive)
                .arg("."),
        )?;
        self.ctr(&["images", "import", &archive.to_string_lossy()])
            .map(drop)
    }
}

impl Containerd {
    /// Creates and starts a container `name` in the pod, labelled `tier=<name>`, running a
    /// sleep; its id and the pid of its process.
    async fn start_container(
        &self,
        sandbox_id: &str,
        sandbox_config: &cri::PodSandboxConfig,
        name: &str,
    ) -> (String, i32) {
        // An argument no other process has, to find it among the host's.
        let marker = format!("{}{}", 3_000_000 + std::process::id(), name.len());
        let created: cri::CreateContainerResponse = call(
            &self.socket,
            "CreateContainer",
            cri::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.to_owned(),
                config: Some(cri::ContainerConfig {
                    metadata: Some(cri::ContainerMetadata { name: name.into() }),
                    image: Some(cri::ImageSpec {
                        image: IMAGE.into(),
                    }),
                    command: vec!["/bin/sleep".into(), marker.clone()],
                    labels: HashMap::from([("tier".into(), name.into())]),
                    log_path: format!("{name}.log"),
                }),
                sandbox_config: Some(sandbox_config.clone()),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\ncontainerd's log:\n{}", self.log()));
        let id = created.container_id;
        let _: cri::Empty = call(
            &self.socket,
            "StartContainer",
            cri::ContainerId { id: id.clone() },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\ncontainerd's log:\n{}", self.log()));
        let wanted = format!("/bin/sleep\0{marker}\0");
        let pid = wait_for("the container's process", WAIT, || {
            std::fs::read_dir("/proc")
                .ok()?
                .flatten()
                .find_map(|entry| {
                    let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                    (cmdline == wanted.as_bytes())
                        .then(|| entry.file_name().to_string_lossy().parse::<i32>().ok())?
                })
        });
        (id, pid)
    }
}

/// Runs a set-up tool, or says why it failed.
fn run_tool(command: &mut Command) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Stores `bytes` as a content-addressed blob; its digest and size.
fn blob(blobs: &Path, bytes: &[u8]) -> Result<(String, usize), String> {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .map_err(|e| format!("sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    std::fs::write(blobs.join(&hex), bytes).map_err(|e| format!("writing a blob: {e}"))?;
    Ok((format!("sha256:{hex}"), bytes.len()))
}

/// A pod sandbox of the test, stopped and removed (with its containers) when dropped.
struct Pod {
    socket: PathBuf,
    id: String,
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime cannot block on it: a thread of its own.
        let (socket, id) = (self.socket.clone(), self.id.clone());
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                for method in ["StopPodSandbox", "RemovePodSandbox"] {
                    let request = cri::SandboxId { id: id.clone() };
                    if let Err(error) = call::<_, cri::Empty>(&socket, method, request).await {
                        eprintln!("cleaning up pod {id}: {error}");
                    }
                }
            });
        });
        let _ = cleaned.join();
    }
}

/// Reads the reports of `host_id` until `done` holds for the latest version of each node.
async fn nodes_until(
    consumer: &StreamConsumer,
    host_id: &str,
    what: &str,
    done: impl Fn(&HashMap<String, Node>) -> bool,
) -> HashMap<String, Node> {
    let mut nodes: HashMap<String, Node> = HashMap::new();
    scope_testkit::consume_until(
        consumer,
        WAIT,
        &mut nodes,
        |nodes, message| {
            let delta = ReportDelta::decode(message.payload().unwrap()).unwrap();
            if delta.host_id == host_id {
                for node in delta.upserts {
                    nodes.insert(node.id.clone(), node);
                }
            }
        },
        done,
    )
    .await
    .unwrap_or_else(|e| panic!("{e} waiting for {what}; saw {nodes:#?}"));
    nodes
}

/// A uid unique to this run, as Kubernetes spells them.
fn pod_uid() -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_made_through_the_cri_is_reported_with_its_pod_name_and_image() {
    if !test_support::root_or_skip("running containerd") {
        return;
    }
    let containerd = match Containerd::start() {
        Ok(containerd) => containerd,
        Err(reason) => {
            test_support::skip_unless_ci(&format!("containerd cannot run here: {reason}"));
            return;
        }
    };
    let socket = containerd.socket.clone();
    let uid = pod_uid();
    // As kubelet with the cgroupfs driver puts a best-effort pod's containers.
    let sandbox_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "web-0".into(),
            uid: uid.clone(),
            namespace: "shop".into(),
        }),
        // As kubelet leaves it for a host-network pod: the node's own.
        hostname: String::new(),
        log_directory: containerd.dir.path().join("logs").display().to_string(),
        labels: HashMap::from([("app".into(), "web".into())]),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NODE,
                    pid: cri::POD,
                    ipc: cri::POD,
                }),
            }),
        }),
    };
    let sandbox: cri::RunPodSandboxResponse = call(
        &socket,
        "RunPodSandbox",
        cri::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontainerd's log:\n{}", containerd.log()));
    let _pod = Pod {
        socket: socket.clone(),
        id: sandbox.pod_sandbox_id.clone(),
    };
    let (id, sleeper) = containerd
        .start_container(&sandbox.pod_sandbox_id, &sandbox_config, "nginx")
        .await;

    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let host_id = format!("cri-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_scope-collector"));
    command
        .args(["--brokers", &kafka.brokers, "--host-id", &host_id])
        .args(["--tracker", "procfs", "--spy-interval", "200ms"])
        .args(["--publish-interval", "500ms"])
        .arg("--cri-socket")
        .arg(&socket)
        .arg("--docker-socket")
        .arg(dir.path().join("no-docker.sock"));
    let _collector = Process::spawn(command);

    let consumer = scope_testkit::consumer_from_start(&kafka, &[topics::REPORTS]);
    let container = container_node_id(&id);
    let process = process_node_id(&host_id, sleeper);
    let nodes = nodes_until(&consumer, &host_id, "the CRI container's node", |nodes| {
        nodes.contains_key(&process)
            && nodes
                .get(&container)
                .is_some_and(|n| n.latest(keys::IMAGE_NAME).is_some())
    })
    .await;
    let node = &nodes[&container];
    assert_eq!(node.latest(keys::CONTAINER_ID), Some(id.as_str()));
    assert_eq!(node.latest(keys::CONTAINER_RUNTIME), Some("containerd"));
    assert_eq!(node.latest(keys::CONTAINER_NAME), Some("nginx"));
    assert_eq!(node.latest(keys::IMAGE_NAME), Some(IMAGE));
    assert!(
        node.latest(keys::IMAGE_ID)
            .is_some_and(|i| i.starts_with("sha256:")),
        "{node:#?}"
    );
    assert_eq!(node.latest(keys::CONTAINER_STATE), Some("running"));
    assert_eq!(node.latest(keys::POD_NAME), Some("web-0"));
    assert_eq!(node.latest(keys::POD_NAMESPACE), Some("shop"));
    assert_eq!(node.latest(keys::POD_UID), Some(uid.as_str()));
    assert!(
        node.sets[keys::LABELS].contains(&"tier=nginx".to_owned()),
        "{node:#?}"
    );
    let process = &nodes[&process];
    assert_eq!(process.latest(keys::CONTAINER_ID), Some(id.as_str()));
    assert_eq!(process.parents[keys::CONTAINER], vec![container.clone()]);

    // A container started while the collector runs: containerd 1.6 serves no events, so the
    // next listing finds it.
    let (late, _) = containerd
        .start_container(&sandbox.pod_sandbox_id, &sandbox_config, "sidecar")
        .await;
    let late = container_node_id(&late);
    let nodes = nodes_until(&consumer, &host_id, "the later container's node", |nodes| {
        nodes
            .get(&late)
            .is_some_and(|n| n.latest(keys::CONTAINER_NAME).is_some())
    })
    .await;
    assert_eq!(nodes[&late].latest(keys::CONTAINER_NAME), Some("sidecar"));
    assert_eq!(nodes[&late].latest(keys::POD_NAME), Some("web-0"));
}

/// Runs the collector binary with `--cri-socket socket`, waits until it has reported this
/// test's process and retried the socket twice, and returns the line that said why the CRI
/// runtime is unusable, after checking that it was said once, and no more than that.
async fn said_once_about(socket: &Path) -> String {
    let (_broker, kafka) = Broker::start_with_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("collector.log");
    let host_id = format!("cri-test-{}-unusable", std::process::id());
    let mut command = Command::new(env!("CARGO_BIN_EXE_scope-collector"));
    command
        .args(["--brokers", &kafka.brokers, "--host-id", &host_id])
        .args(["--tracker", "procfs", "--spy-interval", "200ms"])
        .args(["--publish-interval", "500ms"])
        .arg("--cri-socket")
        .arg(socket)
        .arg("--docker-socket")
        .arg(dir.path().join("no-docker.sock"))
        // The retries are logged at debug: they show that it kept trying.
        .env("RUST_LOG", "warn,scope_collector=debug")
        .env("NO_COLOR", "1")
        .stderr(File::create(&log).unwrap());
    let _collector = Process::spawn(command);

    let consumer = scope_testkit::consumer_from_start(&kafka, &[topics::REPORTS]);
    let this_test = process_node_id(&host_id, std::process::id() as i32);
    nodes_until(&consumer, &host_id, "this test's process node", |nodes| {
        nodes.contains_key(&this_test)
    })
    .await;
    let retries = "CRI runtime still unreachable";
    let text = wait_for_async("two retries of the CRI socket", WAIT, || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.matches(retries).count() >= 2).then_some(text)
    })
    .await;
    let said = format!("no CRI runtime at {}: ", socket.display());
    let said_lines: Vec<&str> = text.lines().filter(|l| l.contains(&said)).collect();
    assert_eq!(said_lines.len(), 1, "{text}");
    assert!(said_lines[0].contains(" INFO "), "{text}");
    assert!(!text.contains("lost the CRI runtime"), "{text}");
    said_lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_whose_cri_socket_has_nothing_behind_it_says_so_once_and_reports_processes() {
    let dir = tempfile::tempdir().unwrap();
    // What a runtime that stopped leaves behind: the socket file, with no one listening.
    let socket = dir.path().join("cri.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let said = said_once_about(&socket).await;
    assert!(said.contains(": connecting: "), "{said}");
    assert!(said.contains("Connection refused"), "{said}");
}

/// Docker's containerd has its CRI plugin off: the socket answers, but not as a CRI runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containerd_without_its_cri_plugin_is_said_once_as_no_cri_runtime() {
    if !test_support::root_or_skip("running containerd") {
        return;
    }
    let containerd = match Containerd::start_without_cri() {
        Ok(containerd) => containerd,
        Err(reason) => {
            test_support::skip_unless_ci(&format!("containerd cannot run here: {reason}"));
            return;
        }
    };
    let said = said_once_about(&containerd.socket).await;
    assert!(said.contains(": Version: Unimplemented: "), "{said}");
}
