-- hosts: one node per host, `<host_id>;<host>`, a circle, with its interfaces' networks and,
-- for the HTTP API, Weave Scope's host metrics and its connections (`metric_<id>`). No uptime in the metadata:
-- it changes every tick, and the view's topic carries only what changed.
SELECT
    h.snapshot_time,
    'hosts' AS view,
    h.id,
    h.label,
    h.label_minor,
    h.label_minor AS rank,
    'circle' AS shape,
    false AS pseudo,
    h.host_id AS meta_host_id,
    h.name AS meta_host_name,
    h.os AS meta_os,
    h.kernel_version AS meta_kernel_version,
    n.cidrs AS meta_local_networks,
    h.tracker_mode AS meta_tracker_mode,
    h.cpu_usage_percent AS metric_host_cpu_usage_percent,
    CAST(h.memory_usage_bytes AS DOUBLE) AS metric_host_mem_usage_bytes,
    h.load1 AS metric_load1,
    COALESCE(c.connections, 0.0) AS metric_connections_count
FROM host_info h
LEFT JOIN (
    SELECT snapshot_time, host_id, string_agg(cidr, ', ' ORDER BY cidr) AS cidrs
    FROM (SELECT DISTINCT snapshot_time, host_id, cidr FROM local_networks) d
    GROUP BY snapshot_time, host_id
) n ON n.snapshot_time = h.snapshot_time AND n.host_id = h.host_id
LEFT JOIN view_node_connections c ON c.snapshot_time = h.snapshot_time AND c.node = h.id
ORDER BY h.id
