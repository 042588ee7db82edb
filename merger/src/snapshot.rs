//! Turning a cut into durable Parquet files, and deleting them when they age out.
//!
//! A snapshot is announced (and input offsets committed) only after its files are durable
//! ([`scope_store::write`]), so a crash never leaves an announced snapshot missing. Every
//! table gets a file even when empty, so a reader can tell "no rows" from "not written yet".

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::error::ArrowError;
use scope_schemas::snapshot::table;
use scope_schemas::{Snapshot, SnapshotFile, SnapshotInput, tables};

use crate::state::{SnapshotTables, family_str};

/// Why a snapshot could not be written, its data directory prepared, or old files deleted.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The merged columns did not match the table's schema in `scope_schemas::tables`
    /// (a type, length or nullability differs): a bug to report, as the columns are built
    /// here from typed state, not taken from input.
    #[error("building the {table} batch: {source}")]
    Arrow {
        table: &'static str,
        source: ArrowError,
    },
    /// Writing a table's file durably, or listing or removing old ones, failed: the file
    /// system is full or failing, or permissions; free space and the next tick retries.
    #[error(transparent)]
    Store(#[from] scope_store::Error),
    /// Creating or resolving `--data-dir` and its table directories failed. Check space,
    /// permissions and the mount of `--data-dir`.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl SnapshotError {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
        let path = path.to_owned();
        move |source| SnapshotError::Io { op, path, source }
    }
}

/// The merged tables of a cut as Arrow batches with the schemas of
/// [`scope_schemas::tables`], in the order of [`table::MERGED`].
pub fn record_batches(
    t: &SnapshotTables,
) -> Result<Vec<(&'static str, RecordBatch)>, SnapshotError> {
    let time = |n: usize| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(vec![t.snapshot_time_us; n])
                .with_timezone(scope_schemas::tables::TIMEZONE),
        )
    };
    let ts = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone(scope_schemas::tables::TIMEZONE))
    };
    let ts_opt = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone(scope_schemas::tables::TIMEZONE))
    };
    let text = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let text_opt = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let i32s = |v: Vec<Option<i32>>| -> ArrayRef { Arc::new(Int32Array::from(v)) };
    let i64s = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(Int64Array::from(v)) };
    let f64s = |v: Vec<Option<f64>>| -> ArrayRef { Arc::new(Float64Array::from(v)) };

    let h = &t.hosts;
    let hosts = vec![
        time(h.len()),
        text(h.iter().map(|r| r.host_id.as_str()).collect()),
        text_opt(h.iter().map(|r| r.host_name.as_deref()).collect()),
        text_opt(h.iter().map(|r| r.os.as_deref()).collect()),
        text_opt(h.iter().map(|r| r.kernel_version.as_deref()).collect()),
        i64s(h.iter().map(|r| r.uptime_seconds).collect()),
        f64s(h.iter().map(|r| r.load1).collect()),
        f64s(h.iter().map(|r| r.cpu_usage_percent).collect()),
        i64s(h.iter().map(|r| r.memory_usage_bytes).collect()),
        i64s(h.iter().map(|r| r.memory_total_bytes).collect()),
        text_opt(h.iter().map(|r| r.tracker_mode.as_deref()).collect()),
        ts(h.iter().map(|r| r.last_seen_us).collect()),
    ];
    let p = &t.processes;
    let processes = vec![
        time(p.len()),
        text(p.iter().map(|r| r.host_id.as_str()).collect()),
        Arc::new(Int32Array::from(
            p.iter().map(|r| r.pid).collect::<Vec<_>>(),
        )),
        i32s(p.iter().map(|r| r.ppid).collect()),
        text_opt(p.iter().map(|r| r.name.as_deref()).collect()),
        text_opt(p.iter().map(|r| r.cmdline.as_deref()).collect()),
        i32s(p.iter().map(|r| r.threads).collect()),
        f64s(p.iter().map(|r| r.cpu_usage_percent).collect()),
        i64s(p.iter().map(|r| r.memory_usage_bytes).collect()),
        i32s(p.iter().map(|r| r.open_files_count).collect()),
        ts(p.iter().map(|r| r.last_seen_us).collect()),
        text_opt(p.iter().map(|r| r.container_id.as_deref()).collect()),
    ];
    let map_error = |table| move |source| SnapshotError::Arrow { table, source };
    let c = &t.containers;
    let containers = vec![
        time(c.len()),
        text(c.iter().map(|r| r.host_id.as_str()).collect()),
        text(c.iter().map(|r| r.container_id.as_str()).collect()),
        text(c.iter().map(|r| r.runtime.as_str()).collect()),
        text_opt(c.iter().map(|r| r.name.as_deref()).collect()),
        text_opt(c.iter().map(|r| r.image_name.as_deref()).collect()),
        text_opt(c.iter().map(|r| r.image_id.as_deref()).collect()),
        text(c.iter().map(|r| r.state.as_str()).collect()),
        text_opt(c.iter().map(|r| r.hostname.as_deref()).collect()),
        text_opt(c.iter().map(|r| r.pod_name.as_deref()).collect()),
        text_opt(c.iter().map(|r| r.pod_namespace.as_deref()).collect()),
        text_opt(c.iter().map(|r| r.pod_uid.as_deref()).collect()),
        tables::labels_column(c.iter().map(|r| r.labels.iter().map(|(k, v)| (k, v))))
            .map_err(map_error(table::CONTAINERS))?,
        tables::text_list_column(c.iter().map(|r| r.ips.as_slice())),
        tables::text_list_column(c.iter().map(|r| r.ports.as_slice())),
        f64s(c.iter().map(|r| r.cpu_usage_percent).collect()),
        i64s(c.iter().map(|r| r.memory_usage_bytes).collect()),
        ts(c.iter().map(|r| r.last_seen_us).collect()),
    ];
    let k = &t.kubernetes_objects;
    let kubernetes_objects = vec![
        time(k.len()),
        text(k.iter().map(|r| r.cluster_id.as_str()).collect()),
        text(k.iter().map(|r| r.kind.as_str()).collect()),
        text(k.iter().map(|r| r.uid.as_str()).collect()),
        text_opt(k.iter().map(|r| r.namespace.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.name.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.owner_kind.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.owner_uid.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.owner_name.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.node_name.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.host_ip.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.pod_ip.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.cluster_ip.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.state.as_deref()).collect()),
        text_opt(k.iter().map(|r| r.created_at.as_deref()).collect()),
        tables::labels_column(k.iter().map(|r| r.labels.iter().map(|(k, v)| (k, v))))
            .map_err(map_error(table::KUBERNETES_OBJECTS))?,
        tables::labels_column(k.iter().map(|r| r.selector.iter().map(|(k, v)| (k, v))))
            .map_err(map_error(table::KUBERNETES_OBJECTS))?,
        tables::text_list_column(k.iter().map(|r| r.ports.as_slice())),
        tables::text_list_column(k.iter().map(|r| r.container_ids.as_slice())),
        ts(k.iter().map(|r| r.last_seen_us).collect()),
    ];
    let s = &t.sockets;
    let sockets = vec![
        time(s.len()),
        text(s.iter().map(|r| r.host_id.as_str()).collect()),
        Arc::new(Int64Array::from(
            s.iter().map(|r| r.key.netns).collect::<Vec<_>>(),
        )),
        i32s(s.iter().map(|r| r.pid).collect()),
        text_opt(s.iter().map(|r| r.process_name.as_deref()).collect()),
        text(s.iter().map(|r| r.direction.as_str()).collect()),
        text(s.iter().map(|r| family_str(r.key.family)).collect()),
        text(s.iter().map(|r| r.key.local_addr.as_str()).collect()),
        Arc::new(Int32Array::from(
            s.iter().map(|r| r.key.local_port).collect::<Vec<_>>(),
        )),
        text(s.iter().map(|r| r.key.remote_addr.as_str()).collect()),
        Arc::new(Int32Array::from(
            s.iter().map(|r| r.key.remote_port).collect::<Vec<_>>(),
        )),
        ts(s.iter().map(|r| r.first_seen_us).collect()),
        ts(s.iter().map(|r| r.last_seen_us).collect()),
        ts_opt(s.iter().map(|r| r.closed_at_us).collect()),
        text(s.iter().map(|r| r.state()).collect()),
        text(s.iter().map(|r| r.source.as_str()).collect()),
    ];
    let n = &t.local_networks;
    let local_networks = vec![
        time(n.len()),
        text(n.iter().map(|r| r.host_id.as_str()).collect()),
        text(n.iter().map(|r| r.cidr.as_str()).collect()),
        Arc::new(BooleanArray::from(
            n.iter().map(|r| r.host_local).collect::<Vec<_>>(),
        )),
    ];

    [
        (table::HOSTS, &*tables::HOSTS, hosts),
        (table::PROCESSES, &*tables::PROCESSES, processes),
        (table::CONTAINERS, &*tables::CONTAINERS, containers),
        (
            table::KUBERNETES_OBJECTS,
            &*tables::KUBERNETES_OBJECTS,
            kubernetes_objects,
        ),
        (table::SOCKETS, &*tables::SOCKETS, sockets),
        (
            table::LOCAL_NETWORKS,
            &*tables::LOCAL_NETWORKS,
            local_networks,
        ),
    ]
    .into_iter()
    .map(|(name, schema, columns)| {
        RecordBatch::try_new(Arc::clone(schema), columns)
            .map(|batch| (name, batch))
            .map_err(|source| SnapshotError::Arrow {
                table: name,
                source,
            })
    })
    .collect()
}

/// What one snapshot wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub files: Vec<SnapshotFile>,
    pub bytes: u64,
}

/// Writes the merged tables of each snapshot under one data directory.
#[derive(Clone, Debug)]
pub struct SnapshotWriter {
    data_dir: PathBuf,
    writer: String,
}

impl SnapshotWriter {
    /// Creates `data_dir` and its table directories if they are missing.
    pub fn create(data_dir: &Path, writer: &str) -> Result<Self, SnapshotError> {
        for name in table::MERGED {
            let dir = data_dir.join(name);
            fs::create_dir_all(&dir).map_err(SnapshotError::io("creating", &dir))?;
        }
        let data_dir = data_dir
            .canonicalize()
            .map_err(SnapshotError::io("resolving", data_dir))?;
        Ok(SnapshotWriter {
            data_dir,
            writer: writer.to_owned(),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Writes one durable Parquet file per merged table of `tables`.
    pub fn write(&self, tables: &SnapshotTables) -> Result<Written, SnapshotError> {
        let mut written = Written {
            files: Vec::with_capacity(table::MERGED.len()),
            bytes: 0,
        };
        for (name, batch) in record_batches(tables)? {
            let file = scope_store::write(
                &self.data_dir,
                name,
                tables.snapshot_time_us,
                &self.writer,
                &batch.schema(),
                std::slice::from_ref(&batch),
            )?;
            written.bytes += file.bytes;
            written.files.push(SnapshotFile {
                table: name.to_owned(),
                path: scope_store::file_path(name, tables.snapshot_time_us, &self.writer),
                rows: batch.num_rows() as i64,
            });
        }
        Ok(written)
    }

    /// The announcement of a snapshot this writer wrote.
    pub fn announcement(
        &self,
        snapshot_time_us: i64,
        window_us: i64,
        written: Written,
        inputs: Vec<SnapshotInput>,
    ) -> Snapshot {
        Snapshot {
            snapshot_time_us,
            window_us,
            writer: self.writer.clone(),
            data_dir: self.data_dir.display().to_string(),
            files: written.files,
            inputs,
        }
    }

    /// Deletes merged-table files (of any writer) whose snapshot time is older than
    /// `now_us - retention`, and temporary files a crash left that long ago. Returns how many
    /// were deleted.
    pub fn sweep(&self, now_us: i64, retention: Duration) -> Result<u64, SnapshotError> {
        let now =
            SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(now_us).unwrap_or(0));
        Ok(scope_store::sweep(&self.data_dir, &table::MERGED, retention, now)?.total())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use scope_schemas::{AddressFamily, EventSource};

    use super::*;
    use crate::state::{
        ContainerRow, Direction, HostRow, KubernetesObjectRow, LocalNetworkRow, SocketKey,
        SocketRow,
    };

    const T: i64 = 1_700_000_000_000_000;

    fn tables() -> SnapshotTables {
        SnapshotTables {
            snapshot_time_us: T,
            window_us: 15_000_000,
            hosts: vec![HostRow {
                host_id: "h1".into(),
                host_name: Some("h1".into()),
                os: None,
                kernel_version: None,
                uptime_seconds: Some(5),
                load1: Some(0.25),
                cpu_usage_percent: None,
                memory_usage_bytes: None,
                memory_total_bytes: None,
                tracker_mode: Some("procfs".into()),
                last_seen_us: T - 1,
            }],
            processes: vec![],
            containers: vec![ContainerRow {
                host_id: "h1".into(),
                container_id: "c".repeat(64),
                runtime: "docker".into(),
                name: Some("web".into()),
                image_name: Some("nginx:1".into()),
                image_id: None,
                state: "running".into(),
                hostname: None,
                pod_name: None,
                pod_namespace: None,
                pod_uid: None,
                labels: vec![
                    ("app".into(), "web".into()),
                    ("tier".into(), "front".into()),
                ],
                ips: vec!["172.17.0.2".into()],
                ports: vec![],
                cpu_usage_percent: Some(1.5),
                memory_usage_bytes: Some(4096),
                last_seen_us: T - 1,
            }],
            kubernetes_objects: vec![KubernetesObjectRow {
                cluster_id: "c1".into(),
                kind: "service".into(),
                uid: "u1".into(),
                selector: vec![("app".into(), "web".into())],
                last_seen_us: T - 1,
                ..Default::default()
            }],
            sockets: vec![SocketRow {
                host_id: "h1".into(),
                key: SocketKey {
                    netns: 7,
                    family: AddressFamily::Ipv6,
                    local_addr: "::1".into(),
                    local_port: 5,
                    remote_addr: "::1".into(),
                    remote_port: 6,
                },
                pid: None,
                process_name: None,
                direction: Direction::Inbound,
                first_seen_us: T - 10,
                last_seen_us: T - 5,
                closed_at_us: Some(T - 5),
                source: EventSource::Ebpf,
            }],
            local_networks: vec![LocalNetworkRow {
                host_id: "h1".into(),
                cidr: "::1/128".into(),
                host_local: false,
            }],
            expired_sockets: 0,
        }
    }

    #[test]
    fn batches_have_the_contract_schemas() {
        let batches = record_batches(&tables()).unwrap();
        let names: Vec<&str> = batches.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, table::MERGED);
        for (name, batch) in &batches {
            assert_eq!(batch.schema(), tables::schema(name).unwrap());
        }
        let empty = record_batches(&SnapshotTables::default()).unwrap();
        assert!(empty.iter().all(|(_, b)| b.num_rows() == 0));
    }

    #[test]
    fn written_files_read_back_and_sweep_removes_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SnapshotWriter::create(dir.path(), "m1-1").unwrap();
        let written = writer.write(&tables()).unwrap();
        assert_eq!(written.files.len(), table::MERGED.len());
        assert!(written.bytes > 0);
        let sockets = written
            .files
            .iter()
            .find(|f| f.table == table::SOCKETS)
            .unwrap();
        assert_eq!(sockets.rows, 1);
        let path = writer.data_dir().join(&sockets.path);
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(batches[0].schema(), *tables::SOCKETS);
        assert_eq!(batches[0].num_rows(), 1);
        let state = batches[0].column_by_name("state").unwrap();
        let state = state.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(state.value(0), "closed");

        // Maps and lists read back as the contract declares them.
        let containers = written
            .files
            .iter()
            .find(|f| f.table == table::CONTAINERS)
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(
            File::open(writer.data_dir().join(&containers.path)).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(batches[0].schema(), *tables::CONTAINERS);
        assert_eq!(batches[0].num_rows(), 1);

        // A temporary file a crash left, last written at the snapshot time, goes with it.
        let temp = writer
            .data_dir()
            .join("hosts")
            .join(format!(".{T:020}-x.parquet.tmp-1"));
        fs::write(&temp, b"").unwrap();
        let hour = Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&temp)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_micros(T as u64))
            .unwrap();
        assert_eq!(writer.sweep(T + 3_600_000_000, hour).unwrap(), 0);
        assert_eq!(
            writer.sweep(T + 3_600_000_001, hour).unwrap(),
            table::MERGED.len() as u64 + 1
        );
        assert!(!path.exists() && !temp.exists());
    }
}
