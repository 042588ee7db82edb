//! Which rendered snapshot answers a request, and a small cache of them.
//!
//! The API reads what the renderers wrote to the data dir, not what this process rendered:
//! several renderers (one of which renders at a time) can serve the same map, and a request
//! for a past moment (`?timestamp=`) names a snapshot this process may never have held. A
//! snapshot time is rendered once its `graph_nodes` file exists (written last); it is
//! recomputed from its files on first use ([`crate::render::compute`], the same pure function
//! the renderer ran), and the renderer of this process hands over what it rendered, so the
//! live map costs no second render.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use ip_network::IpNetwork;
use scope_schemas::snapshot::table;

use crate::{Error, render::Rendered, store};

/// Snapshots kept in memory: the live one, the one before (a websocket diffs against it) and
/// a few moments of time travel.
const CAPACITY: usize = 8;

pub struct Snapshots {
    data_dir: PathBuf,
    /// `--local-networks`, which every render and query counts as local.
    local_networks: Arc<[IpNetwork]>,
    cache: Mutex<BTreeMap<i64, Arc<Rendered>>>,
    /// One computation at a time: concurrent requests for a new snapshot wait for the first
    /// one's result instead of each rendering it.
    computing: tokio::sync::Mutex<()>,
    /// The newest snapshot time held, for websockets to wake up on rather than wait a tick.
    newest: tokio::sync::watch::Sender<i64>,
}

impl Snapshots {
    pub fn new(data_dir: PathBuf, local_networks: &[IpNetwork]) -> Arc<Snapshots> {
        Arc::new(Snapshots {
            data_dir,
            local_networks: local_networks.into(),
            cache: Mutex::default(),
            computing: tokio::sync::Mutex::new(()),
            newest: tokio::sync::watch::Sender::new(i64::MIN),
        })
    }

    /// Keeps what the renderer of this process just rendered.
    pub fn insert(&self, rendered: Arc<Rendered>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let t = rendered.snapshot_time_us;
        cache.insert(t, rendered);
        while cache.len() > CAPACITY {
            cache.pop_first();
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

    /// The newest rendered snapshot, if any.
    pub async fn latest(&self) -> Result<Option<Arc<Rendered>>, Error> {
        self.at(i64::MAX).await
    }

    /// The snapshot in force at `time_us`: the newest rendered at or before it.
    pub async fn at(&self, time_us: i64) -> Result<Option<Arc<Rendered>>, Error> {
        let Some(t) = self.rendered_at_or_before(time_us)? else {
            return Ok(None);
        };
        if let Some(hit) = self.cached(t) {
            return Ok(Some(hit));
        }
        let _one = self.computing.lock().await;
        if let Some(hit) = self.cached(t) {
            return Ok(Some(hit));
        }
        let rendered =
            Arc::new(crate::render::compute(&self.data_dir, t, &self.local_networks).await?);
        self.insert(Arc::clone(&rendered));
        Ok(Some(rendered))
    }

    /// The rendered snapshot times, oldest first.
    pub fn times(&self) -> Result<Vec<i64>, Error> {
        let mut times: Vec<i64> = store::list(&self.data_dir, table::GRAPH_NODES)?
            .into_iter()
            .filter(|f| f.writer == store::RENDERER_WRITER)
            .map(|f| f.snapshot_time_us)
            .collect();
        times.dedup();
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
        let on_disk = self.times()?.into_iter().rfind(|&t| t <= time_us);
        let held = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.range(..=time_us).next_back().map(|(&t, _)| t)
        };
        Ok(on_disk.max(held))
    }

    fn cached(&self, t: i64) -> Option<Arc<Rendered>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(&t).cloned()
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
