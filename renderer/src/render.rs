//! Rendering one snapshot: its Parquet files in, the rendered tables and nodes out.
//!
//! Every writer (merger) of a snapshot time T wrote its own file per table; the files of T of
//! all writers are registered together as one table each, so several mergers sharing the
//! hosts between them render as one graph. The queries of [`crate::view`] then compute
//! `connections`, `graph_nodes` and `graph_edges`, which are written next to the snapshot
//! (writer [`store::RENDERER_WRITER`]) with the exact schemas of `scope_schemas::tables`,
//! and turned into one [`RenderedNode`] per node of each view for publishing.
//!
//! Rendering is a pure function of the files of T: rendering T again (a second announcement,
//! a second writer's announcement) rewrites the same tables, now including every file present.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow::{
    array::{
        Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, MapArray, RecordBatch,
        StringArray,
    },
    compute::cast,
    datatypes::{DataType, SchemaRef},
    error::ArrowError,
};
use datafusion::{
    datasource::{
        MemTable,
        file_format::parquet::ParquetFormat,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    },
    prelude::{SessionConfig, SessionContext},
};
use ip_network::IpNetwork;
use scope_schemas::{RenderedNode, View, snapshot::table, tables};

use crate::{Error, graph_tables, index::Index, network, store, view};

/// The result of rendering one snapshot.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub snapshot_time_us: i64,
    /// The nodes of each view, sorted by id, adjacency sorted: what is published.
    pub views: BTreeMap<View, Vec<RenderedNode>>,
    /// What the HTTP API shows of each view beyond its published nodes.
    pub graphs: BTreeMap<View, Graph>,
    /// Rows of the `connections` table.
    pub connections: usize,
    /// The files written: `connections`, `graph_nodes`, `graph_edges` (none by [`compute`]).
    pub files: Vec<PathBuf>,
    /// Local-network CIDRs of the snapshot that did not parse, with the reason.
    pub rejected_cidrs: Vec<(String, String)>,
    /// What the HTTP API looks up: each node's digest, its edges, the snapshot's size.
    pub index: Index,
}

/// One view's edges, metrics and parents: the node query's `metric_<id>` and `parent_<view>`
/// columns, which are not published on the view's topic (metrics change every tick, and the
/// topic carries only what changed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Client to server, sorted by source then destination.
    pub edges: Vec<Edge>,
    /// By node id: each non-null `metric_<id>` column, in column order.
    pub metrics: HashMap<String, Vec<(String, f64)>>,
    /// By node id: `(view name, parent node id)` of each non-null `parent_<view>` column.
    pub parents: HashMap<String, Vec<(String, String)>>,
}

/// An edge of a view, with the number of connections behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub src: String,
    pub dst: String,
    pub connections: i64,
    /// The connections by server port, by port.
    pub ports: Vec<(u16, i64)>,
}

/// The rendered tables of one snapshot, as written by [`render`].
struct Tables {
    connections: Vec<RecordBatch>,
    graph_nodes: Vec<RecordBatch>,
    graph_edges: Vec<RecordBatch>,
}

/// Renders snapshot `snapshot_time_us` of `data_dir`: reads the merged tables of every writer,
/// writes the rendered tables, and returns the nodes of every view. `local_networks` are
/// local in every snapshot beside the hosts' own (`--local-networks`).
pub async fn render(
    data_dir: &Path,
    snapshot_time_us: i64,
    local_networks: &[IpNetwork],
) -> Result<Rendered, Error> {
    let (mut rendered, tables) = compute_tables(data_dir, snapshot_time_us, local_networks).await?;
    for (name, schema, batches) in [
        (
            table::CONNECTIONS,
            &*tables::CONNECTIONS,
            &tables.connections,
        ),
        (
            table::GRAPH_EDGES,
            &*tables::GRAPH_EDGES,
            &tables.graph_edges,
        ),
        (
            table::GRAPH_NODES,
            &*tables::GRAPH_NODES,
            &tables.graph_nodes,
        ),
    ] {
        let written = store::write(
            data_dir,
            name,
            snapshot_time_us,
            store::RENDERER_WRITER,
            schema,
            batches,
        )?;
        rendered.files.push(written.path);
    }
    Ok(rendered)
}

/// Renders snapshot `snapshot_time_us` as [`render`] does, without writing anything: how the
/// HTTP API shows a snapshot the renderer of this process did not render (time travel, another
/// renderer's snapshot).
pub async fn compute(
    data_dir: &Path,
    snapshot_time_us: i64,
    local_networks: &[IpNetwork],
) -> Result<Rendered, Error> {
    Ok(compute_tables(data_dir, snapshot_time_us, local_networks)
        .await?
        .0)
}

async fn compute_tables(
    data_dir: &Path,
    snapshot_time_us: i64,
    local_networks: &[IpNetwork],
) -> Result<(Rendered, Tables), Error> {
    let mut merged = Vec::new();
    for name in table::MERGED {
        merged.push((name, store::files_at(data_dir, name, snapshot_time_us)?));
    }
    if merged.iter().all(|(_, files)| files.is_empty()) {
        return Err(Error::SnapshotMissing {
            snapshot_time_us,
            data_dir: data_dir.to_path_buf(),
        });
    }

    let ctx = context();
    for (name, files) in &merged {
        register_files(&ctx, name, &schema_of(name), files)?;
    }

    let rejected_cidrs = register_functions(&ctx, table::LOCAL_NETWORKS, local_networks).await?;

    let (_, connections) = run(&ctx, table::CONNECTIONS, view::CONNECTIONS).await?;
    let connections = conform(&connections, &tables::CONNECTIONS, table::CONNECTIONS)?;
    register_batches(
        &ctx,
        table::CONNECTIONS,
        &tables::CONNECTIONS,
        connections.clone(),
    )?;
    // Computed once each: every view reads them, and `edges` reads the ones before it.
    for (name, sql) in view::DERIVED {
        let (planned, batches) = run(&ctx, name, sql).await?;
        // What execution produced can differ from the plan in nullability: the batches say.
        let schema = batches.first().map_or(planned, RecordBatch::schema);
        register_batches(&ctx, name, &schema, batches)?;
    }

    let mut graph_nodes = Vec::new();
    let mut graph_edges = Vec::new();
    let mut views = BTreeMap::new();
    let mut graphs = BTreeMap::new();
    for view in View::ALL {
        let queries = view::sql(view);
        let what = |part: &str| format!("{part} of view {}", view.name());
        let (edges_schema, edges_raw) = run(&ctx, &what("edges"), &queries.edges).await?;
        register_batches(&ctx, view::VIEW_EDGES, &edges_schema, edges_raw.clone())?;
        let (counts_schema, counts) =
            run(&ctx, &what("node connections"), view::NODE_CONNECTIONS).await?;
        register_batches(&ctx, view::VIEW_NODE_CONNECTIONS, &counts_schema, counts)?;
        let nodes = run(&ctx, &what("nodes"), queries.nodes).await;
        let pseudo = run(&ctx, &what("pseudo nodes"), view::PSEUDO_NODES).await;
        for name in [view::VIEW_EDGES, view::VIEW_NODE_CONNECTIONS] {
            ctx.deregister_table(name)
                .map_err(|source| Error::Register {
                    table: name.into(),
                    source,
                })?;
        }
        let (_, nodes_raw) = nodes?;
        let (_, pseudo_raw) = pseudo?;

        let edges = conform(&edges_raw, &tables::GRAPH_EDGES, table::GRAPH_EDGES)?;
        let all_nodes: Vec<RecordBatch> = nodes_raw.iter().chain(&pseudo_raw).cloned().collect();
        let nodes = rendered_nodes(view, snapshot_time_us, &all_nodes, &edges)?;
        let graph = graph(&all_nodes, &edges)?;
        graph_nodes.push(graph_tables::nodes_batch(
            view,
            snapshot_time_us,
            &nodes,
            &graph,
        )?);
        graph_edges.extend(edges);
        views.insert(view, nodes);
        graphs.insert(view, graph);
    }

    let mut rendered = Rendered {
        snapshot_time_us,
        views,
        graphs,
        connections: connections.iter().map(RecordBatch::num_rows).sum(),
        files: Vec::new(),
        rejected_cidrs,
        index: Index::default(),
    };
    rendered.index = Index::of(&rendered);
    let tables = Tables {
        connections,
        graph_nodes,
        graph_edges,
    };
    Ok((rendered, tables))
}

/// Registers every SQL function the views use, wherever SQL over the snapshot tables is
/// answered (rendering, `scope sql`): `scope_is_loopback(addr)`,
/// `scope_selects(selector, labels)`, and
/// `scope_is_local([snapshot_time,] addr)` and `scope_local_network([snapshot_time,] addr)`
/// over the networks of every snapshot in `local_networks` (a table name: one snapshot's, or
/// `history.local_networks`) plus `configured` (`--local-networks`, local in every snapshot),
/// and `scope_host_local_network(snapshot_time, host_id, addr)` over its host-local ones.
/// Returns the CIDRs that did not parse, with the reason.
pub(crate) async fn register_functions(
    ctx: &SessionContext,
    local_networks: &str,
    configured: &[IpNetwork],
) -> Result<Vec<(String, String)>, Error> {
    let (_, batches) = run(
        ctx,
        "local networks",
        &format!("SELECT DISTINCT CAST(snapshot_time AS BIGINT) AS t, cidr FROM {local_networks}"),
    )
    .await?;
    let mut rows = Vec::new();
    for batch in &batches {
        let times = typed_column::<Int64Array>(batch, "t", table::LOCAL_NETWORKS, DataType::Int64)?;
        let cidrs = string_column(batch, "cidr", table::LOCAL_NETWORKS)?;
        rows.extend(
            times
                .iter()
                .zip(cidrs.iter())
                .filter_map(|(t, cidr)| Some((t?, cidr?.to_owned()))),
        );
    }
    let (networks, rejected) = network::Networks::from_rows(rows, configured);
    let networks = Arc::new(networks);
    ctx.register_udf(network::is_local_udf(Arc::clone(&networks)));
    ctx.register_udf(network::local_network_udf(networks));
    // `host_local` is null in snapshots written before it existed: not host-local.
    let (_, batches) = run(
        ctx,
        "host-local networks",
        &format!(
            "SELECT DISTINCT CAST(snapshot_time AS BIGINT) AS t, host_id, cidr \
             FROM {local_networks} WHERE host_local"
        ),
    )
    .await?;
    let mut rows = Vec::new();
    for batch in &batches {
        let times = typed_column::<Int64Array>(batch, "t", table::LOCAL_NETWORKS, DataType::Int64)?;
        let hosts = string_column(batch, "host_id", table::LOCAL_NETWORKS)?;
        let cidrs = string_column(batch, "cidr", table::LOCAL_NETWORKS)?;
        rows.extend(
            times
                .iter()
                .zip(hosts.iter())
                .zip(cidrs.iter())
                .filter_map(|((t, host), cidr)| Some((t?, host?.to_owned(), cidr?.to_owned()))),
        );
    }
    // Its CIDRs are among those above: any that does not parse is rejected there already.
    let (host_local, _) = network::HostLocalNetworks::from_rows(rows);
    ctx.register_udf(network::host_local_network_udf(host_local));
    ctx.register_udf(network::is_loopback_udf());
    ctx.register_udf(crate::selector::selects_udf());
    Ok(rejected)
}

/// A session for the snapshot tables: Parquet strings read as plain `Utf8` (the tables'
/// declared type), information schema on for `SHOW TABLES`.
pub(crate) fn context() -> SessionContext {
    let mut config = SessionConfig::new().with_information_schema(true);
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    SessionContext::new_with_config(config)
}

pub(crate) fn schema_of(name: &str) -> SchemaRef {
    // Every name passed here comes from `scope_schemas::snapshot::table`.
    tables::schema(name).unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()))
}

/// Registers `files` (Parquet, any writers) as table `name` with `schema`; no files is an
/// empty table.
pub(crate) fn register_files(
    ctx: &SessionContext,
    name: &str,
    schema: &SchemaRef,
    files: &[PathBuf],
) -> Result<(), Error> {
    let register_error = |source| Error::Register {
        table: name.to_owned(),
        source,
    };
    if files.is_empty() {
        return register_batches(ctx, name, schema, Vec::new());
    }
    let urls = files
        .iter()
        .map(|path| {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            ListingTableUrl::parse(path.to_string_lossy())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(register_error)?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(Arc::clone(schema));
    let provider = ListingTable::try_new(config).map_err(register_error)?;
    ctx.register_table(name, Arc::new(provider))
        .map_err(register_error)?;
    Ok(())
}

/// Registers in-memory `batches` as table `name`.
pub(crate) fn register_batches(
    ctx: &SessionContext,
    name: &str,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(), Error> {
    let register_error = |source| Error::Register {
        table: name.to_owned(),
        source,
    };
    let provider = MemTable::try_new(Arc::clone(schema), vec![batches]).map_err(register_error)?;
    ctx.register_table(name, Arc::new(provider))
        .map_err(register_error)?;
    Ok(())
}

fn query_error(what: &str) -> impl FnOnce(datafusion::error::DataFusionError) -> Error + '_ {
    move |source| Error::Query {
        what: what.to_owned(),
        source,
    }
}

/// Runs `sql`, returning the result's schema (also when it has no rows) and its batches.
pub(crate) async fn run(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    run_with(ctx, what, sql, Vec::new()).await
}

/// [`run`] with `$1`, `$2`, ... bound to `params`.
pub(crate) async fn run_with(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: Vec<datafusion::common::ScalarValue>,
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let mut frame = ctx.sql(sql).await.map_err(query_error(what))?;
    if !params.is_empty() {
        frame = frame.with_param_values(params).map_err(query_error(what))?;
    }
    let schema = Arc::clone(frame.schema().inner());
    let batches = frame.collect().await.map_err(query_error(what))?;
    Ok((schema, batches))
}

/// Rebuilds `batches` with exactly `schema`: its columns by name, in its order, cast to its
/// types; other columns dropped. Fails on a missing column or a null in a non-null column.
pub(crate) fn conform(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    table: &str,
) -> Result<Vec<RecordBatch>, Error> {
    let schema_error = |source| Error::Schema {
        table: table.to_owned(),
        source,
    };
    batches
        .iter()
        .map(|batch| {
            let columns = schema
                .fields()
                .iter()
                .map(|field| {
                    let column = batch.column_by_name(field.name()).ok_or_else(|| {
                        ArrowError::SchemaError(format!("no column {}", field.name()))
                    })?;
                    if column.data_type() == field.data_type() {
                        Ok(Arc::clone(column))
                    } else {
                        cast(column, field.data_type())
                    }
                })
                .collect::<Result<Vec<ArrayRef>, ArrowError>>()
                .map_err(schema_error)?;
            RecordBatch::try_new(Arc::clone(schema), columns).map_err(schema_error)
        })
        .collect()
}

/// A `MAP(VARCHAR, VARCHAR)` column of a node query whose entries become metadata
/// `<prefix><key>` ([`view::META_MAP_SUFFIX`]), or of `graph_nodes` (no prefix).
pub(crate) struct MetaMap {
    prefix: String,
    map: MapArray,
    /// Every row's keys and values, as plain strings whatever string type the plan produced.
    keys: StringArray,
    values: StringArray,
}

impl MetaMap {
    pub(crate) fn new(
        batch: &RecordBatch,
        name: &str,
        prefix: &str,
        table: &str,
    ) -> Result<Self, Error> {
        let schema_error = |message: String| Error::Schema {
            table: table.to_owned(),
            source: ArrowError::SchemaError(message),
        };
        let map = batch
            .column_by_name(name)
            .and_then(|column| column.as_map_opt())
            .ok_or_else(|| schema_error(format!("{name} is not a map")))?
            .clone();
        let text = |array: &ArrayRef| -> Result<StringArray, Error> {
            cast(array, &DataType::Utf8)
                .map(|array| array.as_string::<i32>().clone())
                .map_err(|e| schema_error(format!("{name}: {e}")))
        };
        Ok(MetaMap {
            prefix: prefix.to_owned(),
            keys: text(map.keys())?,
            values: text(map.values())?,
            map,
        })
    }

    /// The indices of row `row`'s entries in any map column's keys and values.
    pub(crate) fn range(map: &MapArray, row: usize) -> std::ops::Range<usize> {
        if map.is_null(row) {
            return 0..0;
        }
        let offsets = map.value_offsets();
        offsets[row] as usize..offsets[row + 1] as usize
    }

    /// Row `row`'s entries with a value, as metadata.
    pub(crate) fn entries(&self, row: usize) -> impl Iterator<Item = (String, String)> + '_ {
        Self::range(&self.map, row)
            .filter(|&i| !self.keys.is_null(i) && !self.values.is_null(i))
            .map(|i| {
                let key = format!("{}{}", self.prefix, self.keys.value(i));
                (key, self.values.value(i).to_owned())
            })
    }
}

fn string_column(batch: &RecordBatch, name: &str, table: &str) -> Result<StringArray, Error> {
    typed_column(batch, name, table, DataType::Utf8)
}

fn bool_column(batch: &RecordBatch, name: &str, table: &str) -> Result<BooleanArray, Error> {
    typed_column(batch, name, table, DataType::Boolean)
}

/// A column cast to `data_type`, as the concrete array type `A` of that data type.
pub(crate) fn typed_column<A: Array + Clone + 'static>(
    batch: &RecordBatch,
    name: &str,
    table: &str,
    data_type: DataType,
) -> Result<A, Error> {
    let schema_error = |source| Error::Schema {
        table: table.to_owned(),
        source,
    };
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| schema_error(ArrowError::SchemaError(format!("no column {name}"))))?;
    let column = cast(column, &data_type).map_err(schema_error)?;
    column
        .as_any()
        .downcast_ref::<A>()
        .cloned()
        .ok_or_else(|| schema_error(ArrowError::CastError(format!("{name} is not {data_type}"))))
}

/// The published form of a view: one node per id (a real node wins over a pseudo node of the
/// same id), its adjacency the destinations of its edges, its metadata the `meta_*` columns.
fn rendered_nodes(
    view: View,
    snapshot_time_us: i64,
    nodes: &[RecordBatch],
    edges: &[RecordBatch],
) -> Result<Vec<RenderedNode>, Error> {
    let mut adjacency: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for batch in edges {
        let src = string_column(batch, "src", table::GRAPH_EDGES)?;
        let dst = string_column(batch, "dst", table::GRAPH_EDGES)?;
        for (src, dst) in src.iter().zip(dst.iter()) {
            if let (Some(src), Some(dst)) = (src, dst) {
                adjacency
                    .entry(src.to_owned())
                    .or_default()
                    .insert(dst.to_owned());
            }
        }
    }

    let mut out: BTreeMap<String, RenderedNode> = BTreeMap::new();
    for batch in nodes {
        let t = table::GRAPH_NODES;
        let id = string_column(batch, "id", t)?;
        let label = string_column(batch, "label", t)?;
        let label_minor = string_column(batch, "label_minor", t)?;
        let rank = string_column(batch, "rank", t)?;
        let shape = string_column(batch, "shape", t)?;
        let pseudo = bool_column(batch, "pseudo", t)?;
        let mut metas = Vec::new();
        let mut meta_maps = Vec::new();
        for field in batch.schema().fields() {
            let Some(key) = field.name().strip_prefix(view::META_PREFIX) else {
                continue;
            };
            if let Some(prefix) = key.strip_suffix(view::META_MAP_SUFFIX) {
                meta_maps.push(MetaMap::new(batch, field.name(), prefix, t)?);
            } else {
                metas.push((key.to_owned(), string_column(batch, field.name(), t)?));
            }
        }
        for row in 0..batch.num_rows() {
            if id.is_null(row) {
                continue;
            }
            let id = id.value(row).to_owned();
            let text = |column: &StringArray| {
                if column.is_null(row) {
                    String::new()
                } else {
                    column.value(row).to_owned()
                }
            };
            let mut metadata: BTreeMap<String, String> = metas
                .iter()
                .filter(|(_, column)| !column.is_null(row))
                .map(|(key, column)| (key.clone(), column.value(row).to_owned()))
                .collect();
            for map in &meta_maps {
                metadata.extend(map.entries(row));
            }
            let node = RenderedNode {
                view: view.name().to_owned(),
                adjacency: adjacency
                    .get(&id)
                    .map(|d| d.iter().cloned().collect())
                    .unwrap_or_default(),
                id: id.clone(),
                label: text(&label),
                label_minor: text(&label_minor),
                rank: text(&rank),
                shape: text(&shape),
                pseudo: !pseudo.is_null(row) && pseudo.value(row),
                metadata,
                snapshot_time_us,
            };
            out.entry(id).or_insert(node);
        }
    }
    Ok(out.into_values().collect())
}

/// The edges of a batch with `graph_edges`' columns, each with its row; a row without both
/// ends is left out. What a render computed, and what it wrote read back.
pub(crate) fn edge_rows(batch: &RecordBatch) -> Result<Vec<(usize, Edge)>, Error> {
    let t = table::GRAPH_EDGES;
    let src = string_column(batch, "src", t)?;
    let dst = string_column(batch, "dst", t)?;
    let connections = typed_column::<Int64Array>(batch, "connections", t, DataType::Int64)?;
    let ports = string_column(batch, "ports", t)?;
    Ok((0..batch.num_rows())
        .filter(|&row| !src.is_null(row) && !dst.is_null(row))
        .map(|row| {
            let edge = Edge {
                src: src.value(row).to_owned(),
                dst: dst.value(row).to_owned(),
                connections: if connections.is_null(row) {
                    0
                } else {
                    connections.value(row)
                },
                ports: if ports.is_null(row) {
                    Vec::new()
                } else {
                    parse_ports(ports.value(row))
                },
            };
            (row, edge)
        })
        .collect())
}

/// [`Graph::edges`]' order: by source, then destination.
pub(crate) fn sort_edges(edges: &mut [Edge]) {
    edges.sort_by(|a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)));
}

/// `80:3,443:1` (edges.sql's `ports`) as `[(80, 3), (443, 1)]`.
fn parse_ports(text: &str) -> Vec<(u16, i64)> {
    text.split(',')
        .filter_map(|pair| {
            let (port, count) = pair.split_once(':')?;
            Some((port.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

/// A view's edges (from its conformed `graph_edges` batches), and the metrics and parents of
/// its nodes (from the node queries' `metric_` and `parent_` columns).
fn graph(nodes: &[RecordBatch], edges: &[RecordBatch]) -> Result<Graph, Error> {
    let mut graph = Graph::default();
    for batch in edges {
        graph
            .edges
            .extend(edge_rows(batch)?.into_iter().map(|(_, edge)| edge));
    }
    sort_edges(&mut graph.edges);
    for batch in nodes {
        let t = table::GRAPH_NODES;
        let id = string_column(batch, "id", t)?;
        let mut metrics = Vec::new();
        let mut parents = Vec::new();
        for field in batch.schema().fields() {
            let name = field.name();
            if let Some(key) = name.strip_prefix(view::METRIC_PREFIX) {
                let column = typed_column::<Float64Array>(batch, name, t, DataType::Float64)?;
                metrics.push((key.to_owned(), column));
            } else if let Some(parent_view) = name.strip_prefix(view::PARENT_PREFIX) {
                parents.push((parent_view.to_owned(), string_column(batch, name, t)?));
            }
        }
        for row in 0..batch.num_rows() {
            if id.is_null(row) {
                continue;
            }
            let id = id.value(row);
            let values: Vec<(String, f64)> = metrics
                .iter()
                .filter(|(_, column)| !column.is_null(row))
                .map(|(key, column)| (key.clone(), column.value(row)))
                .collect();
            if !values.is_empty() {
                graph.metrics.entry(id.to_owned()).or_insert(values);
            }
            let of: Vec<(String, String)> = parents
                .iter()
                .filter(|(_, column)| !column.is_null(row))
                .map(|(view, column)| (view.clone(), column.value(row).to_owned()))
                .collect();
            if !of.is_empty() {
                graph.parents.entry(id.to_owned()).or_insert(of);
            }
        }
    }
    Ok(graph)
}
