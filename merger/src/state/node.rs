//! Typed values of a report node.

use scope_schemas::Node;

/// A number the collector may publish either as a metric or as a latest value.
pub(super) fn node_f64(node: &Node, key: &str) -> Option<f64> {
    node.metric(key)
        .or_else(|| node.latest(key).and_then(|v| v.trim().parse().ok()))
        .filter(|v: &f64| v.is_finite())
}

pub(super) fn node_i64(node: &Node, key: &str) -> Option<i64> {
    if let Some(v) = node.latest(key).and_then(|v| v.trim().parse::<i64>().ok()) {
        return Some(v);
    }
    // `as` saturates; the range check keeps absurd values out instead of clamping them.
    node_f64(node, key)
        .filter(|v| v.abs() < 9.0e18)
        .map(|v| v.round() as i64)
}

pub(super) fn node_i32(node: &Node, key: &str) -> Option<i32> {
    node_i64(node, key).and_then(|v| i32::try_from(v).ok())
}
