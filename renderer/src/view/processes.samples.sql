-- processes samples: one process node's metrics in each snapshot of `processes` and
-- `graph_edges` (registered with the snapshots the samples span), for the metric sparklines of
-- its details. $1 is the node id, made as process_info.sql makes it.
SELECT
    p.snapshot_time,
    MAX(p.cpu_usage_percent) AS process_cpu_usage_percent,
    CAST(MAX(p.memory_usage_bytes) AS DOUBLE) AS process_memory_usage_bytes,
    CAST(MAX(p.open_files_count) AS DOUBLE) AS open_files_count,
    COALESCE(MAX(c.connections), 0.0) AS connections_count
FROM processes p
LEFT JOIN (
    SELECT snapshot_time, CAST(SUM(connections) AS DOUBLE) AS connections
    FROM graph_edges
    WHERE "view" = 'processes' AND (src = $1 OR dst = $1)
    GROUP BY snapshot_time
) c ON c.snapshot_time = p.snapshot_time
WHERE p.host_id || ';' || CAST(p.pid AS VARCHAR) = $1
GROUP BY p.snapshot_time
ORDER BY p.snapshot_time
