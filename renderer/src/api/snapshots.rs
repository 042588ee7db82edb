//! Which rendered snapshot answers a request, and a small cache of them.
//!
//! The API reads what the renderers wrote to the data dir, not what this process rendered:
//! several renderers (one of which renders at a time) can serve the same map, and a request
//! for a past moment (`?timestamp=`) names a snapshot this process may never have held. A
//! snapshot time is rendered once its `graph_nodes` file exists (written last); on first use
//! it is read back from the rendered files (`graph_tables`), or, where an older build wrote
//! them, recomputed from the merged files ([`crate::render::compute`], the same pure function
//! the renderer ran). The renderer of this process hands over what it rendered, so the live
//! map costs no read.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use ip_network::IpNetwork;
use scope_schemas::snapshot::table;

use tracing::warn;

use crate::{Error, graph_tables, render::Rendered, store};

/// Bytes of rendered snapshots kept in memory beyond the newest two (the live one, and the
/// one before it that websockets diff against) and the moment of time travel asked for last,
/// which are always kept: a few more moments at a small scale, none at 10,000 processes,
/// where one snapshot is ~100 MB.
const CACHE_BYTES: usize = 256 << 20;

pub struct Snapshots {
    data_dir: PathBuf,
    /// `--local-networks`, which every render and query counts as local.
    local_networks: Arc<[IpNetwork]>,
    cache: Mutex<Cache>,
    /// One computation at a time: concurrent requests for a new snapshot wait for the first
    /// one's result instead of each rendering it.
    computing: tokio::sync::Mutex<()>,
    /// The newest snapshot time held, for websockets to wake up on rather than wait a tick.
    newest: tokio::sync::watch::Sender<i64>,
    /// The rendered times on disk as last listed, and the directory's modification time then:
    /// every request asks, and an hour of 1 s ticks is 3,600 files to list.
    listed: Mutex<Option<(SystemTime, Arc<[i64]>)>>,
}

impl Snapshots {
    pub fn new(data_dir: PathBuf, local_networks: &[IpNetwork]) -> Arc<Snapshots> {
        Arc::new(Snapshots {
            data_dir,
            local_networks: local_networks.into(),
            cache: Mutex::default(),
            computing: tokio::sync::Mutex::new(()),
            newest: tokio::sync::watch::Sender::new(i64::MIN),
            listed: Mutex::default(),
        })
    }

    /// Keeps what the renderer of this process just rendered.
    pub fn insert(&self, rendered: Arc<Rendered>) {
        let t = rendered.snapshot_time_us;
        let size = rendered.index.heap_bytes();
        let evicted = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rendered, size);
        // Freeing a 10,000-process snapshot takes tens of milliseconds (millions of small
        // allocations): not on the renderer's hand-over, nor before the sockets wake up.
        if !evicted.is_empty() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(evicted))),
                Err(_) => drop(evicted),
            }
        }
        self.newest.send_if_modified(|newest| {
            let newer = t > *newest;
            if newer {
                *newest = t;
            }
            newer
        });
    }

    /// Changes whenever a newer snapshot is held.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.newest.subscribe()
    }

    /// The snapshot in force at `time_us` (the newest rendered at or before it), or with no
    /// time the newest of all.
    pub async fn at(&self, time_us: Option<i64>) -> Result<Option<Arc<Rendered>>, Error> {
        let Some(t) = self.rendered_at_or_before(time_us.unwrap_or(i64::MAX))? else {
            return Ok(None);
        };
        // Someone looking at the past asks again (another view, a node's details, the next
        // poll): keeping that moment spares them a render each time.
        let travelling = time_us.is_some();
        if let Some(hit) = self.cached(t, travelling) {
            return Ok(Some(hit));
        }
        let _one = self.computing.lock().await;
        if let Some(hit) = self.cached(t, travelling) {
            return Ok(Some(hit));
        }
        let rendered = Arc::new(self.load(t).await?);
        self.insert(Arc::clone(&rendered));
        Ok(Some(rendered))
    }

    /// Snapshot `t` as the renderer wrote it, or rendered again from its merged files where
    /// those say less than the API shows (written by an older build, or unreadable).
    async fn load(&self, t: i64) -> Result<Rendered, Error> {
        let dir = self.data_dir.clone();
        let read = tokio::task::spawn_blocking(move || graph_tables::read(&dir, t))
            .await
            .map_err(|source| Error::Task {
                what: "reading a past snapshot",
                source,
            })
            .and_then(|read| read);
        match read {
            Ok(Some(rendered)) => return Ok(rendered),
            Ok(None) => {}
            Err(error) => warn!(snapshot_time_us = t, %error, "rendering a past snapshot again"),
        }
        crate::render::compute(&self.data_dir, t, &self.local_networks).await
    }

    /// The rendered snapshot times, oldest first. Listed again only when the directory
    /// changed: a file added within the same tick of the file system's clock as the last
    /// listing shows with the next change (the next snapshot written, or retention), and
    /// what this process rendered is held anyway.
    pub fn times(&self) -> Result<Arc<[i64]>, Error> {
        let dir = self.data_dir.join(table::GRAPH_NODES);
        let modified = std::fs::metadata(&dir).and_then(|m| m.modified()).ok();
        let mut listed = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(modified), Some((at, times))) = (modified, listed.as_ref())
            && modified == *at
        {
            return Ok(Arc::clone(times));
        }
        let mut times: Vec<i64> = store::list(&self.data_dir, table::GRAPH_NODES)?
            .into_iter()
            .filter(|f| f.writer == store::RENDERER_WRITER)
            .map(|f| f.snapshot_time_us)
            .collect();
        times.dedup();
        let times: Arc<[i64]> = times.into();
        *listed = modified.map(|at| (at, Arc::clone(&times)));
        Ok(times)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    pub fn local_networks(&self) -> &[IpNetwork] {
        &self.local_networks
    }

    /// The newest snapshot time at or before `time_us` that is rendered on disk or was handed
    /// over (its files are written before it is, but a listing may not show them yet).
    fn rendered_at_or_before(&self, time_us: i64) -> Result<Option<i64>, Error> {
        let on_disk = self.times()?.iter().copied().rfind(|&t| t <= time_us);
        let held = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.held.range(..=time_us).next_back().map(|(&t, _)| t)
        };
        Ok(on_disk.max(held))
    }

    /// Snapshot `t` if held; when `travelling`, it is kept as the moment of time travel
    /// whether held yet or not.
    fn cached(&self, t: i64, travelling: bool) -> Option<Arc<Rendered>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if travelling {
            cache.travelled = Some(t);
        }
        cache.get(t)
    }
}

/// Rendered snapshots by time, bounded by their size, the least recently used leaving first.
struct Cache {
    /// Each snapshot, its size, and when it was last used.
    held: BTreeMap<i64, (Arc<Rendered>, usize, u64)>,
    bytes: usize,
    limit: usize,
    uses: u64,
    /// The moment of time travel asked for last, kept whatever its size.
    travelled: Option<i64>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            held: BTreeMap::new(),
            bytes: 0,
            limit: CACHE_BYTES,
            uses: 0,
            travelled: None,
        }
    }
}

impl Cache {
    fn get(&mut self, t: i64) -> Option<Arc<Rendered>> {
        self.uses += 1;
        let (rendered, _, used) = self.held.get_mut(&t)?;
        *used = self.uses;
        Some(Arc::clone(rendered))
    }

    /// Holds `rendered` (of `size` bytes), and returns what no longer fits, for the caller
    /// to free outside the lock.
    fn insert(&mut self, rendered: Arc<Rendered>, size: usize) -> Vec<Arc<Rendered>> {
        self.uses += 1;
        let t = rendered.snapshot_time_us;
        let mut evicted = Vec::new();
        if let Some((old, old_size, _)) = self.held.insert(t, (rendered, size, self.uses)) {
            self.bytes -= old_size;
            evicted.push(old);
        }
        self.bytes += size;
        while self.bytes > self.limit && self.held.len() > 2 {
            let kept: Vec<i64> = self
                .held
                .keys()
                .rev()
                .take(2)
                .copied()
                .chain(self.travelled)
                .collect();
            let Some(evict) = self
                .held
                .iter()
                .filter(|(t, _)| !kept.contains(t))
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(&t, _)| t)
            else {
                break;
            };
            if let Some((old, size, _)) = self.held.remove(&evict) {
                self.bytes -= size;
                evicted.push(old);
            }
        }
        evicted
    }
}

/// A collector that reported in a snapshot, as `GET /api/probes` lists it.
pub struct HostReport {
    pub host_id: String,
    pub host_name: String,
    pub last_seen_us: i64,
}

/// The hosts of snapshot `snapshot_time_us`, from its merged `hosts` table.
pub async fn host_reports(
    data_dir: &std::path::Path,
    snapshot_time_us: i64,
) -> Result<Vec<HostReport>, Error> {
    use arrow::{
        array::{Array, Int64Array, StringArray},
        datatypes::DataType,
    };
    let files = store::files_at(data_dir, table::HOSTS, snapshot_time_us)?;
    let ctx = crate::render::context();
    crate::render::register_files(
        &ctx,
        table::HOSTS,
        &crate::render::schema_of(table::HOSTS),
        &files,
    )?;
    let what = "the hosts of a snapshot";
    let (_, batches) = crate::render::run(
        &ctx,
        what,
        "SELECT host_id, COALESCE(MAX(host_name), host_id) AS host_name, \
         CAST(MAX(last_seen) AS BIGINT) AS last_seen FROM hosts GROUP BY host_id ORDER BY host_id",
    )
    .await?;
    let mut hosts = Vec::new();
    for batch in &batches {
        let ids =
            crate::render::typed_column::<StringArray>(batch, "host_id", what, DataType::Utf8)?;
        let names =
            crate::render::typed_column::<StringArray>(batch, "host_name", what, DataType::Utf8)?;
        let seen =
            crate::render::typed_column::<Int64Array>(batch, "last_seen", what, DataType::Int64)?;
        for row in 0..batch.num_rows() {
            if ids.is_null(row) {
                continue;
            }
            hosts.push(HostReport {
                host_id: ids.value(row).to_owned(),
                host_name: if names.is_null(row) {
                    String::new()
                } else {
                    names.value(row).to_owned()
                },
                last_seen_us: if seen.is_null(row) {
                    0
                } else {
                    seen.value(row)
                },
            });
        }
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;

    fn rendered(t: i64) -> Arc<Rendered> {
        let mut rendered = Rendered {
            snapshot_time_us: t,
            views: [(
                scope_schemas::View::Hosts,
                vec![scope_schemas::RenderedNode {
                    view: "hosts".into(),
                    id: "host".into(),
                    label: "host".into(),
                    label_minor: String::new(),
                    rank: String::new(),
                    shape: "circle".into(),
                    pseudo: false,
                    adjacency: Vec::new(),
                    metadata: BTreeMap::new(),
                    snapshot_time_us: t,
                }],
            )]
            .into(),
            graphs: BTreeMap::new(),
            connections: 0,
            files: Vec::new(),
            rejected_cidrs: Vec::new(),
            index: Index::default(),
        };
        rendered.index = Index::of(&rendered);
        Arc::new(rendered)
    }

    #[test]
    fn the_cache_keeps_the_newest_two_and_then_the_recently_used_within_its_bytes() {
        let mut cache = Cache {
            limit: 0,
            ..Cache::default()
        };
        let one = rendered(0).index.heap_bytes();
        assert!(one > 0);
        cache.limit = 3 * one;
        let insert = |cache: &mut Cache, t| cache.insert(rendered(t), one).len();
        for t in 1..=3 {
            assert_eq!(insert(&mut cache, t), 0);
        }
        // A moment of time travel is used again; inserting newer snapshots evicts the least
        // recently used of the older ones, never the newest two.
        assert!(cache.get(1).is_some());
        assert_eq!(insert(&mut cache, 4), 1);
        assert_eq!(cache.held.keys().copied().collect::<Vec<_>>(), [1, 3, 4]);
        cache.limit = 0;
        assert_eq!(insert(&mut cache, 5), 2);
        assert_eq!(cache.held.keys().copied().collect::<Vec<_>>(), [4, 5]);
        assert_eq!(cache.bytes, 2 * one);
    }

    /// Every request asks which times are rendered: the directory is listed again only once
    /// it changed, and then shows what was added and deleted.
    #[test]
    fn the_times_on_disk_are_listed_again_when_the_directory_changes() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::new(dir.path().to_path_buf(), &[]);
        let write = |t| {
            let path = dir.path().join(scope_store::file_path(
                table::GRAPH_NODES,
                t,
                store::RENDERER_WRITER,
            ));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
            path
        };
        assert!(snapshots.times().unwrap().is_empty());
        let first = write(1);
        let listed = snapshots.times().unwrap();
        assert_eq!(*listed, [1]);
        assert!(
            Arc::ptr_eq(&listed, &snapshots.times().unwrap()),
            "listed again"
        );
        write(2);
        assert_eq!(*snapshots.times().unwrap(), [1, 2]);
        std::fs::remove_file(first).unwrap();
        assert_eq!(*snapshots.times().unwrap(), [2]);
    }

    #[test]
    fn the_moment_of_time_travel_stays_however_large() {
        let one = rendered(0).index.heap_bytes();
        let mut cache = Cache {
            limit: one,
            ..Cache::default()
        };
        cache.travelled = Some(1);
        for t in 1..=5 {
            cache.insert(rendered(t), one);
        }
        assert_eq!(cache.held.keys().copied().collect::<Vec<_>>(), [1, 4, 5]);
        assert!(cache.get(1).is_some());
        // Travelling elsewhere lets it go with the next snapshot.
        cache.travelled = Some(4);
        cache.insert(rendered(6), one);
        assert_eq!(cache.held.keys().copied().collect::<Vec<_>>(), [4, 5, 6]);
    }
}
