//! A rendered snapshot as its `graph_nodes` and `graph_edges` tables, and back.
//!
//! The render writes each view's nodes with everything the HTTP API shows of them (metadata,
//! metrics, parents) and its edges with their ports, so the API answers a past moment
//! (`?timestamp=`) by reading the two files the renderer wrote, rather than rendering that
//! moment again from its merged tables (seconds of SQL at 10,000 processes). Files written
//! before those columns existed, or naming a view this build does not render, read as `None`:
//! that moment is rendered again.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::Arc,
};

use arrow::{
    array::{
        Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    },
    compute::cast,
    datatypes::{DataType, Float64Type},
    error::ArrowError,
};
use scope_schemas::{RenderedNode, View, snapshot::table, tables};
use scope_store::file_path;

use crate::{
    Error,
    index::Index,
    render::{Graph, MetaMap, Rendered, edge_rows, sort_edges, typed_column},
    store,
};

/// One view's rows of `graph_nodes`: `nodes` (sorted by id, one per id) with the metrics and
/// parents `graph` holds for them.
pub(crate) fn nodes_batch(
    view: View,
    snapshot_time_us: i64,
    nodes: &[RenderedNode],
    graph: &Graph,
) -> Result<RecordBatch, Error> {
    let schema_error = |source| Error::Schema {
        table: table::GRAPH_NODES.into(),
        source,
    };
    let text = |f: fn(&RenderedNode) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(nodes.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(nodes.iter().map(|_| snapshot_time_us))
                .with_timezone(tables::TIMEZONE),
        ),
        Arc::new(StringArray::from_iter_values(
            nodes.iter().map(|_| view.name()),
        )),
        text(|n| &n.id),
        text(|n| &n.label),
        text(|n| &n.label_minor),
        text(|n| &n.rank),
        text(|n| &n.shape),
        Arc::new(BooleanArray::from_iter(
            nodes.iter().map(|n| Some(n.pseudo)),
        )),
        tables::labels_column(nodes.iter().map(|n| &n.metadata)).map_err(schema_error)?,
        tables::numbers_column(nodes.iter().map(|n| {
            let metrics = graph.metrics.get(&n.id).map_or(&[][..], Vec::as_slice);
            metrics.iter().map(|(id, value)| (id, *value))
        }))
        .map_err(schema_error)?,
        tables::labels_column(nodes.iter().map(|n| {
            let parents = graph.parents.get(&n.id).map_or(&[][..], Vec::as_slice);
            parents.iter().map(|(view, id)| (view, id))
        }))
        .map_err(schema_error)?,
    ];
    RecordBatch::try_new(Arc::clone(&tables::GRAPH_NODES), columns).map_err(schema_error)
}

/// Snapshot `snapshot_time_us` as the renderer wrote it, or `None` where its files cannot
/// say everything the API shows (written by an older build).
pub(crate) fn read(data_dir: &Path, snapshot_time_us: i64) -> Result<Option<Rendered>, Error> {
    let path = |name| data_dir.join(file_path(name, snapshot_time_us, store::RENDERER_WRITER));
    let Some(graphs) = read_edges(&store::read(&path(table::GRAPH_EDGES))?)? else {
        return Ok(None);
    };
    let nodes = store::read(&path(table::GRAPH_NODES))?;
    let Some((views, graphs)) = read_nodes(snapshot_time_us, &nodes, graphs)? else {
        return Ok(None);
    };
    let mut rendered = Rendered {
        snapshot_time_us,
        views,
        graphs,
        connections: store::rows(&path(table::CONNECTIONS))?,
        files: Vec::new(),
        rejected_cidrs: Vec::new(),
        index: Index::default(),
    };
    rendered.index = Index::of(&rendered);
    Ok(Some(rendered))
}

type Views = BTreeMap<View, Vec<RenderedNode>>;
type Graphs = BTreeMap<View, Graph>;

fn view_named(name: &str) -> Option<View> {
    View::ALL.into_iter().find(|v| v.name() == name)
}

/// Each view's graph with its edges (sorted) and nothing else yet; `None` without `ports`.
fn read_edges(batches: &[RecordBatch]) -> Result<Option<Graphs>, Error> {
    let mut graphs: Graphs = View::ALL.map(|v| (v, Graph::default())).into();
    for batch in batches {
        if batch.column_by_name("ports").is_none() {
            return Ok(None);
        }
        let view = typed_column::<StringArray>(batch, "view", table::GRAPH_EDGES, DataType::Utf8)?;
        for (row, edge) in edge_rows(batch)? {
            let Some(graph) = view_named(view.value(row)).and_then(|v| graphs.get_mut(&v)) else {
                return Ok(None);
            };
            graph.edges.push(edge);
        }
    }
    for graph in graphs.values_mut() {
        sort_edges(&mut graph.edges);
    }
    Ok(Some(graphs))
}

/// Each view's nodes with their adjacency from `graphs`' edges, and `graphs` completed with
/// their metrics and parents; `None` without those columns or with a view this build lacks.
fn read_nodes(
    snapshot_time_us: i64,
    batches: &[RecordBatch],
    mut graphs: Graphs,
) -> Result<Option<(Views, Graphs)>, Error> {
    let mut views: Views = View::ALL.map(|v| (v, Vec::new())).into();
    let t = table::GRAPH_NODES;
    for batch in batches {
        let Some(metrics) = batch.column_by_name("metrics").and_then(|c| c.as_map_opt()) else {
            return Ok(None);
        };
        let text = |name| typed_column::<StringArray>(batch, name, t, DataType::Utf8);
        let (view, id, label, label_minor, rank, shape) = (
            text("view")?,
            text("id")?,
            text("label")?,
            text("label_minor")?,
            text("rank")?,
            text("shape")?,
        );
        let pseudo = typed_column::<BooleanArray>(batch, "pseudo", t, DataType::Boolean)?;
        let metadata = MetaMap::new(batch, "metadata", "", t)?;
        let parents = MetaMap::new(batch, "parents", "", t)?;
        let metric_ids = cast(metrics.keys(), &DataType::Utf8).map_err(|source| Error::Schema {
            table: t.into(),
            source,
        })?;
        let metric_ids = metric_ids.as_string::<i32>();
        let metric_values = metrics
            .values()
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| Error::Schema {
                table: t.into(),
                source: ArrowError::SchemaError("metrics are not numbers".into()),
            })?;
        for row in 0..batch.num_rows() {
            let Some(v) = view_named(view.value(row)) else {
                return Ok(None);
            };
            let graph = graphs.entry(v).or_default();
            let node_id = id.value(row);
            let measured: Vec<(String, f64)> = MetaMap::range(metrics, row)
                .filter(|&i| !metric_values.is_null(i))
                .map(|i| (metric_ids.value(i).to_owned(), metric_values.value(i)))
                .collect();
            if !measured.is_empty() {
                graph.metrics.insert(node_id.to_owned(), measured);
            }
            let of: Vec<(String, String)> = parents.entries(row).collect();
            if !of.is_empty() {
                graph.parents.insert(node_id.to_owned(), of);
            }
            views.entry(v).or_default().push(RenderedNode {
                view: v.name().to_owned(),
                id: node_id.to_owned(),
                label: label.value(row).to_owned(),
                label_minor: label_minor.value(row).to_owned(),
                rank: rank.value(row).to_owned(),
                shape: shape.value(row).to_owned(),
                pseudo: pseudo.value(row),
                adjacency: Vec::new(),
                metadata: metadata.entries(row).collect(),
                snapshot_time_us,
            });
        }
    }
    for (v, nodes) in &mut views {
        let Some(graph) = graphs.get(v) else { continue };
        let mut adjacency: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for edge in &graph.edges {
            adjacency.entry(&edge.src).or_default().insert(&edge.dst);
        }
        for node in nodes {
            if let Some(dsts) = adjacency.get(node.id.as_str()) {
                node.adjacency = dsts.iter().map(|d| (*d).to_owned()).collect();
            }
        }
    }
    Ok(Some((views, graphs)))
}
