//! The metric samples of a node's details: its metrics over every retained snapshot up to the
//! one shown (Scope kept 15 s), read from the merged tables with the view's samples query
//! ([`crate::view::samples`]), downsampled to a number of points a sparkline can draw.

use std::{collections::BTreeSet, time::Duration};

use arrow::{
    array::{Array, Float64Array, Int64Array},
    datatypes::DataType,
};
use datafusion::common::ScalarValue;
use scope_schemas::{View, snapshot::table};

use super::{scope_json::NodeDetails, snapshots::Snapshots, topology};
use crate::{Error, render, store};

/// Samples a metric has at most, spread over the retention: one hour of 1 s ticks (the default
/// retention) is one point every 12 s.
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
        .iter()
        .copied()
        .filter(|&t| t <= snapshot_time_us)
        .collect();
    let wanted = spread(&times, MAX_SAMPLES);
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

/// At most `count` of `times` (sorted), evenly spread from the first to the last, both kept:
/// a downsampled history reads only the snapshots it shows. A point stands for its moment, not
/// for the ones between (a spike between two points is not drawn).
fn spread(times: &[i64], count: usize) -> BTreeSet<i64> {
    if times.len() <= count {
        return times.iter().copied().collect();
    }
    let last = times.len() - 1;
    match count {
        0 => BTreeSet::new(),
        1 => BTreeSet::from([times[last]]),
        _ => (0..count).map(|i| times[i * last / (count - 1)]).collect(),
    }
}

/// Microseconds since the epoch as RFC 3339 UTC, as Scope dates its samples.
pub fn rfc3339(time_us: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_micros(time_us.max(0).unsigned_abs());
    humantime::format_rfc3339_micros(at).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::spread;

    #[test]
    fn samples_spread_over_the_whole_history() {
        let hour: Vec<i64> = (0..3600).collect();
        let points = spread(&hour, 300);
        assert_eq!(points.len(), 300);
        assert_eq!(points.first(), Some(&0), "the oldest snapshot");
        assert_eq!(points.last(), Some(&3599), "the one shown");
        let gaps: BTreeSet<i64> = points
            .iter()
            .zip(points.iter().skip(1))
            .map(|(a, b)| b - a)
            .collect();
        assert_eq!(gaps, BTreeSet::from([12, 13]), "evenly spread");
        assert_eq!(
            spread(&hour[..5], 300).len(),
            5,
            "fewer than the bound: all"
        );
        assert_eq!(spread(&hour, 1), BTreeSet::from([3599]));
    }
}
