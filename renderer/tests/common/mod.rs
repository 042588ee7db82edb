//! Builds merged snapshot tables (what a merger writes) for the renderer's tests.

#![allow(dead_code)]

pub mod served;

use std::{path::Path, sync::Arc};

use arrow::{
    array::{
        ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
        TimestampMicrosecondArray,
    },
    datatypes::SchemaRef,
};
use scope_renderer::store;
use scope_schemas::{snapshot::table, tables};

pub const T1: i64 = 1_700_000_000_000_000;

/// A snapshot time near now, aligned to a second (retention keeps it).
pub fn recent_time(offset_s: i64) -> i64 {
    (scope_testkit::now_us() / 1_000_000 + offset_s) * 1_000_000
}

struct Host {
    id: String,
    name: Option<String>,
}
struct Process {
    host: String,
    pid: i32,
    name: Option<String>,
    container: Option<String>,
}
struct Container {
    host: String,
    id: String,
    name: String,
    image: String,
    hostname: String,
    state: String,
    labels: Vec<(String, String)>,
    pod_uid: Option<String>,
}
/// A Kubernetes object of cluster `c1`.
struct KubeObject {
    kind: String,
    uid: String,
    namespace: String,
    name: String,
    owner: Option<(String, String, String)>,
    labels: Vec<(String, String)>,
    selector: Vec<(String, String)>,
    node_name: Option<String>,
}
struct Socket {
    host: String,
    netns: i64,
    pid: Option<i32>,
    name: Option<String>,
    direction: &'static str,
    local: (String, i32),
    remote: (String, i32),
    first_seen: i64,
    closed_at: Option<i64>,
}

/// The merged tables of one writer's part of one snapshot.
pub struct Snapshot {
    pub time: i64,
    hosts: Vec<Host>,
    processes: Vec<Process>,
    containers: Vec<Container>,
    kube: Vec<KubeObject>,
    sockets: Vec<Socket>,
    /// (host, CIDR, host-local).
    networks: Vec<(String, String, bool)>,
}

impl Snapshot {
    pub fn new(time: i64) -> Self {
        Snapshot {
            time,
            hosts: vec![],
            processes: vec![],
            containers: vec![],
            kube: vec![],
            sockets: vec![],
            networks: vec![],
        }
    }

    pub fn host(mut self, id: &str, name: &str) -> Self {
        self.hosts.push(Host {
            id: id.into(),
            name: Some(name.into()),
        });
        self
    }

    pub fn network(mut self, host: &str, cidr: &str) -> Self {
        self.networks.push((host.into(), cidr.into(), false));
        self
    }

    /// A network that stays inside `host` (a container bridge: `host_local`).
    pub fn bridge(mut self, host: &str, cidr: &str) -> Self {
        self.networks.push((host.into(), cidr.into(), true));
        self
    }

    pub fn process(mut self, host: &str, pid: i32, name: &str) -> Self {
        self.processes.push(Process {
            host: host.into(),
            pid,
            name: Some(name.into()),
            container: None,
        });
        self
    }

    /// A running container of `host`, named `name`, from `image`, its hostname the first 12
    /// digits of `id`.
    pub fn container(mut self, host: &str, id: &str, name: &str, image: &str) -> Self {
        self.containers.push(Container {
            host: host.into(),
            id: id.into(),
            name: name.into(),
            image: image.into(),
            hostname: id[..12.min(id.len())].into(),
            state: "running".into(),
            labels: vec![],
            pod_uid: None,
        });
        self
    }

    /// The container added last runs in the pod whose uid is `uid`.
    pub fn in_pod(mut self, uid: &str) -> Self {
        let container = self.containers.last_mut().expect("a container");
        container.pod_uid = Some(uid.into());
        self
    }

    /// A Kubernetes object of cluster `c1`: `kind` is its report topology (`pod`,
    /// `replica_set`, ...), `owner` its controlling owner reference (Kubernetes kind, uid,
    /// name), `labels` as `key=value`.
    pub fn kube(
        mut self,
        kind: &str,
        uid: &str,
        namespace: &str,
        name: &str,
        owner: Option<(&str, &str, &str)>,
        labels: &[&str],
    ) -> Self {
        self.kube.push(KubeObject {
            kind: kind.into(),
            uid: uid.into(),
            namespace: namespace.into(),
            name: name.into(),
            owner: owner.map(|(k, u, n)| (k.into(), u.into(), n.into())),
            labels: key_values(labels),
            selector: vec![],
            node_name: (kind == "pod").then(|| "h1".to_owned()),
        });
        self
    }

    /// The selector (`key=value`) of the Kubernetes object added last (a service).
    pub fn selector(mut self, entries: &[&str]) -> Self {
        let object = self.kube.last_mut().expect("a Kubernetes object");
        object.selector = key_values(entries);
        self
    }

    /// The state of the container added last (`exited`, ...).
    pub fn state(mut self, state: &str) -> Self {
        let container = self.containers.last_mut().expect("a container");
        container.state = state.into();
        self
    }

    /// A label of the container added last.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        let container = self.containers.last_mut().expect("a container");
        container.labels.push((key.into(), value.into()));
        container.labels.sort();
        self
    }

    /// A process of `host` running in container `container`.
    pub fn contained(mut self, host: &str, pid: i32, name: &str, container: &str) -> Self {
        self.processes.push(Process {
            host: host.into(),
            pid,
            name: Some(name.into()),
            container: Some(container.into()),
        });
        self
    }

    /// The client's end: `host` connected from `local` to `remote`.
    pub fn outbound(
        self,
        host: &str,
        pid: Option<i32>,
        local: (&str, i32),
        remote: (&str, i32),
    ) -> Self {
        self.socket(host, pid, "outbound", local, remote)
    }

    /// The server's end: `host` accepted on `local` a connection from `remote`.
    pub fn inbound(
        self,
        host: &str,
        pid: Option<i32>,
        local: (&str, i32),
        remote: (&str, i32),
    ) -> Self {
        self.socket(host, pid, "inbound", local, remote)
    }

    fn socket(
        mut self,
        host: &str,
        pid: Option<i32>,
        direction: &'static str,
        local: (&str, i32),
        remote: (&str, i32),
    ) -> Self {
        let name = pid.and_then(|pid| {
            self.processes
                .iter()
                .find(|p| p.host == host && p.pid == pid)
                .and_then(|p| p.name.clone())
        });
        self.sockets.push(Socket {
            host: host.into(),
            netns: 4026531840,
            pid,
            name,
            direction,
            local: (local.0.into(), local.1),
            remote: (remote.0.into(), remote.1),
            first_seen: self.time - 5_000_000,
            closed_at: None,
        });
        self
    }

    /// The lifetime of the socket added last, in µs before the snapshot time: first seen
    /// `first_seen` before it and, if `closed`, closed `closed` before it.
    pub fn lived(mut self, first_seen: i64, closed: Option<i64>) -> Self {
        let t = self.time;
        let socket = self
            .sockets
            .last_mut()
            .expect("a socket to set the lifetime of");
        socket.first_seen = t - first_seen;
        socket.closed_at = closed.map(|closed| t - closed);
        self
    }

    /// Writes the merged tables as `writer`'s files of this snapshot.
    pub fn write(&self, data_dir: &Path, writer: &str) {
        for (name, batch) in self.batches() {
            let schema = tables::schema(name).unwrap();
            store::write(data_dir, name, self.time, writer, &schema, &[batch]).unwrap();
        }
    }

    pub fn batches(&self) -> Vec<(&'static str, RecordBatch)> {
        let t = self.time;
        let times = |v: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(
                TimestampMicrosecondArray::from(v).with_timezone(scope_schemas::tables::TIMEZONE),
            )
        };
        let ts = |n: usize, v: i64| times(vec![Some(v); n]);
        let strs = |v: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let some = |s: &str| Some(s.to_owned());

        let n = self.hosts.len();
        let hosts = batch(
            &tables::HOSTS,
            vec![
                ts(n, t),
                strs(self.hosts.iter().map(|h| some(&h.id)).collect()),
                strs(self.hosts.iter().map(|h| h.name.clone()).collect()),
                strs(vec![some("Debian GNU/Linux 12 (bookworm)"); n]),
                strs(vec![some("6.18.0"); n]),
                Arc::new(Int64Array::from(vec![Some(1000); n])),
                Arc::new(Float64Array::from(vec![Some(0.5); n])),
                Arc::new(Float64Array::from(vec![Some(3.0); n])),
                Arc::new(Int64Array::from(vec![Some(1 << 30); n])),
                Arc::new(Int64Array::from(vec![Some(4 << 30); n])),
                strs(vec![some("procfs"); n]),
                ts(n, t),
            ],
        );

        let n = self.processes.len();
        let processes = batch(
            &tables::PROCESSES,
            vec![
                ts(n, t),
                strs(self.processes.iter().map(|p| some(&p.host)).collect()),
                Arc::new(Int32Array::from(
                    self.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(vec![Some(1); n])),
                strs(self.processes.iter().map(|p| p.name.clone()).collect()),
                strs(
                    self.processes
                        .iter()
                        .map(|p| p.name.as_ref().map(|n| format!("/usr/bin/{n} --flag")))
                        .collect(),
                ),
                Arc::new(Int32Array::from(vec![Some(2); n])),
                Arc::new(Float64Array::from(vec![Some(1.5); n])),
                Arc::new(Int64Array::from(vec![Some(1 << 20); n])),
                Arc::new(Int32Array::from(vec![Some(10); n])),
                ts(n, t),
                strs(self.processes.iter().map(|p| p.container.clone()).collect()),
            ],
        );

        let n = self.containers.len();
        let c = &self.containers;
        let containers = batch(
            &tables::CONTAINERS,
            vec![
                ts(n, t),
                strs(c.iter().map(|c| some(&c.host)).collect()),
                strs(c.iter().map(|c| some(&c.id)).collect()),
                strs(vec![some("docker"); n]),
                strs(c.iter().map(|c| some(&c.name)).collect()),
                strs(c.iter().map(|c| some(&c.image)).collect()),
                strs(vec![some("sha256:0123"); n]),
                strs(c.iter().map(|c| some(&c.state)).collect()),
                strs(c.iter().map(|c| some(&c.hostname)).collect()),
                strs(vec![None; n]),
                strs(vec![None; n]),
                strs(c.iter().map(|c| c.pod_uid.clone()).collect()),
                tables::labels_column(c.iter().map(|c| c.labels.iter().map(|(k, v)| (k, v))))
                    .unwrap(),
                tables::text_list_column(c.iter().map(|_| &[] as &[String])),
                tables::text_list_column(c.iter().map(|_| &[] as &[String])),
                Arc::new(Float64Array::from(vec![Some(2.5); n])),
                Arc::new(Int64Array::from(vec![Some(1 << 21); n])),
                ts(n, t),
            ],
        );

        let n = self.kube.len();
        let k = &self.kube;
        let kubernetes_objects = batch(
            &tables::KUBERNETES_OBJECTS,
            vec![
                ts(n, t),
                strs(vec![some("c1"); n]),
                strs(k.iter().map(|k| some(&k.kind)).collect()),
                strs(k.iter().map(|k| some(&k.uid)).collect()),
                strs(k.iter().map(|k| some(&k.namespace)).collect()),
                strs(k.iter().map(|k| some(&k.name)).collect()),
                strs(
                    k.iter()
                        .map(|k| k.owner.as_ref().map(|o| o.0.clone()))
                        .collect(),
                ),
                strs(
                    k.iter()
                        .map(|k| k.owner.as_ref().map(|o| o.1.clone()))
                        .collect(),
                ),
                strs(
                    k.iter()
                        .map(|k| k.owner.as_ref().map(|o| o.2.clone()))
                        .collect(),
                ),
                strs(k.iter().map(|k| k.node_name.clone()).collect()),
                strs(vec![None; n]),
                strs(vec![None; n]),
                strs(vec![None; n]),
                strs(vec![some("Running"); n]),
                strs(vec![None; n]),
                tables::labels_column(k.iter().map(|k| k.labels.iter().map(|(k, v)| (k, v))))
                    .unwrap(),
                tables::labels_column(k.iter().map(|k| k.selector.iter().map(|(k, v)| (k, v))))
                    .unwrap(),
                tables::text_list_column(k.iter().map(|_| &[] as &[String])),
                tables::text_list_column(k.iter().map(|_| &[] as &[String])),
                ts(n, t),
            ],
        );

        let n = self.sockets.len();
        let s = &self.sockets;
        let family = |a: &str| if a.contains(':') { "ipv6" } else { "ipv4" };
        let sockets = batch(
            &tables::SOCKETS,
            vec![
                ts(n, t),
                strs(s.iter().map(|s| some(&s.host)).collect()),
                Arc::new(Int64Array::from(
                    s.iter().map(|s| s.netns).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(
                    s.iter().map(|s| s.pid).collect::<Vec<_>>(),
                )),
                strs(s.iter().map(|s| s.name.clone()).collect()),
                strs(s.iter().map(|s| some(s.direction)).collect()),
                strs(s.iter().map(|s| some(family(&s.local.0))).collect()),
                strs(s.iter().map(|s| some(&s.local.0)).collect()),
                Arc::new(Int32Array::from(
                    s.iter().map(|s| s.local.1).collect::<Vec<_>>(),
                )),
                strs(s.iter().map(|s| some(&s.remote.0)).collect()),
                Arc::new(Int32Array::from(
                    s.iter().map(|s| s.remote.1).collect::<Vec<_>>(),
                )),
                times(s.iter().map(|s| Some(s.first_seen)).collect()),
                times(
                    s.iter()
                        .map(|s| Some(s.closed_at.unwrap_or(t - 1_000_000)))
                        .collect(),
                ),
                times(s.iter().map(|s| s.closed_at).collect()),
                strs(
                    s.iter()
                        .map(|s| {
                            some(if s.closed_at.is_some() {
                                "closed"
                            } else {
                                "open"
                            })
                        })
                        .collect(),
                ),
                strs(vec![some("procfs"); n]),
            ],
        );

        let n = self.networks.len();
        let networks = batch(
            &tables::LOCAL_NETWORKS,
            vec![
                ts(n, t),
                strs(self.networks.iter().map(|(h, _, _)| some(h)).collect()),
                strs(self.networks.iter().map(|(_, c, _)| some(c)).collect()),
                Arc::new(BooleanArray::from(
                    self.networks.iter().map(|(_, _, l)| *l).collect::<Vec<_>>(),
                )),
            ],
        );

        vec![
            (table::HOSTS, hosts),
            (table::PROCESSES, processes),
            (table::CONTAINERS, containers),
            (table::KUBERNETES_OBJECTS, kubernetes_objects),
            (table::SOCKETS, sockets),
            (table::LOCAL_NETWORKS, networks),
        ]
    }
}

/// `key=value` entries as sorted pairs.
fn key_values(entries: &[&str]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = entries
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    pairs.sort();
    pairs
}

fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

/// The rendered edges of `view` as `src,dst,connections` lines, by source and destination.
pub async fn edges(data_dir: &Path, view: &str) -> Vec<String> {
    rows(
        data_dir,
        &format!(
            "SELECT src, dst, connections FROM graph_edges WHERE \"view\" = '{view}' \
             ORDER BY src, dst"
        ),
    )
    .await
}

/// The rendered nodes of `view` by id.
pub fn nodes(
    rendered: &scope_renderer::render::Rendered,
    view: scope_schemas::View,
) -> std::collections::BTreeMap<String, scope_schemas::RenderedNode> {
    rendered.views[&view]
        .iter()
        .map(|n| (n.id.clone(), n.clone()))
        .collect()
}

/// How a node looks: label, minor label, rank, shape and whether it is a pseudo node.
pub fn look(node: &scope_schemas::RenderedNode) -> (&str, &str, &str, &str, bool) {
    (
        node.label.as_str(),
        node.label_minor.as_str(),
        node.rank.as_str(),
        node.shape.as_str(),
        node.pseudo,
    )
}

/// Rows of `sql` over `data_dir` as CSV lines without the header, for comparing.
pub async fn rows(data_dir: &Path, sql: &str) -> Vec<String> {
    let batches = scope_renderer::sql::query(data_dir, &[], sql)
        .await
        .unwrap();
    let csv = scope_renderer::sql::format(&batches, scope_renderer::sql::Format::Csv).unwrap();
    csv.lines().skip(1).map(str::to_owned).collect()
}
