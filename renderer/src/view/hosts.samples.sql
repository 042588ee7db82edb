-- hosts samples: one host node's metrics in each snapshot of `hosts` (registered with the
-- snapshots the samples span). $1 is the node id, made as host_info.sql makes it.
SELECT
    snapshot_time,
    MAX(cpu_usage_percent) AS host_cpu_usage_percent,
    CAST(MAX(memory_usage_bytes) AS DOUBLE) AS host_mem_usage_bytes,
    MAX(load1) AS load1
FROM hosts
WHERE host_id || ';<host>' = $1
GROUP BY snapshot_time
ORDER BY snapshot_time
