-- hosts samples: one host node's metrics in each snapshot of `hosts` and `graph_edges`
-- (registered with the snapshots the samples span). $1 is the node id, made as host_info.sql
-- makes it.
SELECT
    h.snapshot_time,
    MAX(h.cpu_usage_percent) AS host_cpu_usage_percent,
    CAST(MAX(h.memory_usage_bytes) AS DOUBLE) AS host_mem_usage_bytes,
    MAX(h.load1) AS load1,
    COALESCE(MAX(c.connections), 0.0) AS connections_count
FROM hosts h
LEFT JOIN (
    SELECT snapshot_time, CAST(SUM(connections) AS DOUBLE) AS connections
    FROM graph_edges
    WHERE "view" = 'hosts' AND (src = $1 OR dst = $1)
    GROUP BY snapshot_time
) c ON c.snapshot_time = h.snapshot_time
WHERE h.host_id || ';<host>' = $1
GROUP BY h.snapshot_time
ORDER BY h.snapshot_time
