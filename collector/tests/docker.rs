//! The Docker Engine API watcher against a real daemon (Debian's dockerd, started by the test
//! kit if need be) and real containers of a locally built busybox image; and against a socket
//! that is not there, as on a host without Docker.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use scope_collector::{
    ContainerMeta, ContainerRuntime, DockerStats, MetaCache, test_support, watch_docker,
};
use scope_testkit::{
    Docker,
    docker::{BUSYBOX_IMAGE, DOCKER_SOCKET},
    wait_for_async,
};
use tokio::{
    net::{UnixListener, UnixStream},
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;

/// Container starts, stops and events on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(30);

/// A watcher running in the test, with its cache and counters.
struct Watching {
    cache: MetaCache,
    stats: Arc<DockerStats>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Watching {
    fn start(socket: PathBuf) -> Watching {
        let cache = MetaCache::default();
        let stats = Arc::new(DockerStats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(watch_docker(
            socket,
            cache.clone(),
            stats.clone(),
            shutdown.clone(),
        ));
        Watching {
            cache,
            stats,
            shutdown,
            task,
        }
    }

    fn get(&self, id: &str) -> Option<ContainerMeta> {
        self.cache.read().unwrap().get(id).cloned()
    }

    async fn wait_for(&self, what: &str, id: &str, check: impl Fn(&ContainerMeta) -> bool) {
        wait_for_async(what, LIMIT, || self.get(id).filter(|meta| check(meta))).await;
    }

    fn failures(&self) -> u64 {
        self.stats.api_failures.load(Ordering::Relaxed)
    }

    /// Cancels it, and fails unless it stops promptly.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the watcher stops when cancelled")
            .expect("the watcher does not panic");
    }
}

fn state(wanted: &'static str) -> impl Fn(&ContainerMeta) -> bool {
    move |meta| meta.state.as_deref() == Some(wanted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_follows_real_containers_through_their_lives() {
    let docker = match Docker::start() {
        Ok(docker) => docker,
        Err(reason) => {
            test_support::skip_unless_ci(&reason);
            return;
        }
    };
    let web = docker.run(
        "web",
        &[
            "--label",
            "scope.test.role=web",
            "-p",
            "127.0.0.1::8080",
            BUSYBOX_IMAGE,
            "nc",
            "-l",
            "-p",
            "8080",
        ],
    );
    let watching = Watching::start(docker.socket().into());
    // Listed at the start...
    watching
        .wait_for("the web container, running", web.id(), state("running"))
        .await;
    // ...and created after it, so known only from its events.
    let client = docker.run(
        "client",
        &[
            "--label",
            "scope.test.role=client",
            BUSYBOX_IMAGE,
            "sleep",
            "3600",
        ],
    );
    watching
        .wait_for(
            "the client container, running",
            client.id(),
            state("running"),
        )
        .await;
    assert!(watching.stats.events.load(Ordering::Relaxed) > 0);

    for (container, role) in [(&web, "web"), (&client, "client")] {
        let meta = watching.get(container.id()).unwrap();
        let ip = container.inspect("{{.NetworkSettings.IPAddress}}");
        assert!(ip.starts_with("172.17."), "{ip}: on docker0");
        assert_eq!(
            meta,
            ContainerMeta {
                runtime: Some(ContainerRuntime::Docker),
                name: Some(container.name().to_owned()),
                image_name: Some(BUSYBOX_IMAGE.to_owned()),
                image_id: Some(container.inspect("{{.Image}}")),
                state: Some("running".to_owned()),
                hostname: Some(container.id()[..12].to_owned()),
                labels: [
                    ("scope.test.role".to_owned(), role.to_owned()),
                    (
                        "scope.testkit.pid".to_owned(),
                        std::process::id().to_string()
                    ),
                ]
                .into(),
                ips: vec![ip],
                ports: match role {
                    "web" => vec![format!(
                        "127.0.0.1:{}->8080/tcp",
                        web.inspect(
                            r#"{{(index (index .NetworkSettings.Ports "8080/tcp") 0).HostPort}}"#
                        )
                    )],
                    _ => vec![],
                },
            },
            "{role}"
        );
    }

    client.docker("pause", &[]);
    watching
        .wait_for("the client paused", client.id(), state("paused"))
        .await;
    // busybox's nc, pid 1, ignores SIGTERM: stop kills it at once.
    web.docker("stop", &["-t", "0"]);
    watching
        .wait_for("the web container exited", web.id(), state("exited"))
        .await;
    web.docker("rm", &[]);
    wait_for_async("the web container removed", LIMIT, || {
        watching.get(web.id()).is_none().then_some(())
    })
    .await;
    assert!(watching.get(client.id()).is_some());
    assert_eq!(watching.failures(), 0, "the watch never restarted");
    watching.stop().await;

    // A watcher that starts before its socket exists (a daemon starting after the collector)
    // picks the daemon up when it appears.
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("docker.sock");
    let late_watching = Watching::start(late.clone());
    wait_for_async("two failed attempts", LIMIT, || {
        (late_watching.failures() >= 2).then_some(())
    })
    .await;
    assert!(late_watching.cache.read().unwrap().is_empty());
    std::os::unix::fs::symlink(DOCKER_SOCKET, &late).unwrap();
    late_watching
        .wait_for(
            "the client, once the socket is there",
            client.id(),
            state("paused"),
        )
        .await;
    late_watching.stop().await;
}

/// Log lines, as a subscriber writes them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures this thread's log lines (info and above) until the guard is dropped. With a
/// single-threaded runtime, the watcher's task logs on the test's thread.
fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_socket_is_said_once_and_retried_until_shutdown() {
    let (logs, _capturing) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("docker.sock");
    let watching = Watching::start(missing.clone());
    wait_for_async("three failed attempts", LIMIT, || {
        (watching.failures() >= 3).then_some(())
    })
    .await;
    let text = logs.text();
    let said = format!("no Docker API at {}: connecting:", missing.display());
    assert_eq!(text.matches(&said).count(), 1, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(watching.cache.read().unwrap().is_empty());
    watching.stop().await;
}

/// A socket relaying every connection to the daemon's, which a test can cut as a daemon
/// restart would: open connections close, new ones are refused.
struct Relay {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Relay {
    fn start(path: &Path) -> Relay {
        let listener = UnixListener::bind(path).unwrap();
        let task = tokio::spawn(async move {
            // Dropped with the task, which aborts every connection's copy.
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    let mut daemon = UnixStream::connect(DOCKER_SOCKET).await?;
                    tokio::io::copy_bidirectional(&mut client, &mut daemon).await
                });
            }
        });
        Relay {
            path: path.to_owned(),
            task,
        }
    }

    async fn cut(self) {
        self.task.abort();
        let _ = self.task.await;
        std::fs::remove_file(&self.path).unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn after_losing_the_daemon_the_watch_relists_what_changed_meanwhile() {
    let docker = match Docker::start() {
        Ok(docker) => docker,
        Err(reason) => {
            test_support::skip_unless_ci(&reason);
            return;
        }
    };
    let (logs, _capturing) = capture_logs();
    let sleeper = [BUSYBOX_IMAGE, "sleep", "3600"];
    let staying = docker.run("staying", &sleeper);
    let leaving = docker.run("leaving", &sleeper);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sock");
    let relay = Relay::start(&path);
    let watching = Watching::start(path.clone());
    for container in [&staying, &leaving] {
        watching
            .wait_for("the containers, running", container.id(), state("running"))
            .await;
    }

    relay.cut().await;
    wait_for_async("the lost watch and a failed reconnect", LIMIT, || {
        (watching.failures() >= 2).then_some(())
    })
    .await;
    // What happens while the watcher cannot see it, it learns from the relist.
    leaving.docker("rm", &["-f"]);
    let arriving = docker.run("arriving", &sleeper);
    staying.docker("pause", &[]);
    let _relay = Relay::start(&path);
    watching
        .wait_for(
            "the container created meanwhile",
            arriving.id(),
            state("running"),
        )
        .await;
    watching
        .wait_for(
            "the container paused meanwhile",
            staying.id(),
            state("paused"),
        )
        .await;
    wait_for_async("the container removed meanwhile gone", LIMIT, || {
        watching.get(leaving.id()).is_none().then_some(())
    })
    .await;

    let text = logs.text();
    let socket = path.display();
    for (line, times) in [
        (format!("watching the Docker API socket={socket}"), 1),
        (format!("lost the Docker API at {socket}: "), 1),
        (
            format!("the Docker API is back; containers relisted socket={socket}"),
            1,
        ),
    ] {
        assert_eq!(text.matches(&line).count(), times, "{line:?} in\n{text}");
    }
    watching.stop().await;
}
