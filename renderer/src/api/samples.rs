//! The metric samples of a node's details: its metrics in each of the last snapshots up to the
//! one shown, read from the merged tables with the view's samples query
//! ([`crate::view::samples`]).

use std::{collections::BTreeSet, time::Duration};

use arrow::{
    array::{Array, Float64Array, Int64Array},
    datatypes::DataType,
};
use datafusion::common::ScalarValue;
use scope_schemas::{View, snapshot::table};

use super::{scope_json::NodeDetails, snapshots::Snapshots, topology};
use crate::{Error, render, store};

/// Snapshots a node's samples span at most: five minutes of 1 s ticks, which a sparkline can
/// still draw. (Scope kept 15 s.)
const MAX_SAMPLES: usize = 300;

/// Replaces the metrics of `details` (of `view`, in the snapshot at `snapshot_time_us`) with
/// the same metrics carrying their samples.
pub async fn add(
    snapshots: &Snapshots,
    view: View,
    snapshot_time_us: i64,
    details: &mut NodeDetails,
) -> Result<(), Error> {
    let Some((table, sql)) = crate::view::samples(view) else {
        return Ok(());
    };
    if details.summary.metrics.is_empty() {
        return Ok(());
    }
    let times: Vec<i64> = snapshots
        .times()?
        .into_iter()
        .filter(|&t| t <= snapshot_time_us)
        .collect();
    let wanted: BTreeSet<i64> = times.iter().rev().take(MAX_SAMPLES).copied().collect();
    let ctx = render::context();
    // The view's merged table, and the edges its connection counts come from.
    for name in [table, table::GRAPH_EDGES] {
        let files: Vec<_> = store::list(snapshots.data_dir(), name)?
            .into_iter()
            .filter(|f| wanted.contains(&f.snapshot_time_us))
            .map(|f| f.path)
            .collect();
        render::register_files(&ctx, name, &render::schema_of(name), &files)?;
    }
    let what = format!("metric samples of {}", details.summary.id);
    let id = ScalarValue::from(details.summary.id.as_str());
    let (_, batches) = render::run_with(&ctx, &what, sql, vec![id]).await?;

    for metric in &mut details.summary.metrics {
        let mut samples = Vec::new();
        for batch in &batches {
            let times =
                render::typed_column::<Int64Array>(batch, "snapshot_time", table, DataType::Int64)?;
            let Ok(values) =
                render::typed_column::<Float64Array>(batch, &metric.id, table, DataType::Float64)
            else {
                continue;
            };
            for row in 0..batch.num_rows() {
                if times.is_null(row) || values.is_null(row) {
                    continue;
                }
                samples.push(super::scope_json::Sample {
                    date: rfc3339(times.value(row)),
                    value: values.value(row),
                });
            }
        }
        *metric = topology::metric_row(&metric.id, metric.value, Some(samples));
    }
    Ok(())
}

/// Microseconds since the epoch as RFC 3339 UTC, as Scope dates its samples.
pub fn rfc3339(time_us: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_micros(time_us.max(0).unsigned_abs());
    humantime::format_rfc3339_micros(at).to_string()
}
