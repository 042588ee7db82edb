-- processes samples: one process node's metrics in each snapshot of `processes` (registered
-- with the snapshots the samples span), for the metric sparklines of its details. $1 is the
-- node id, made as process_info.sql makes it.
SELECT
    snapshot_time,
    MAX(cpu_usage_percent) AS process_cpu_usage_percent,
    CAST(MAX(memory_usage_bytes) AS DOUBLE) AS process_memory_usage_bytes,
    CAST(MAX(open_files_count) AS DOUBLE) AS open_files_count
FROM processes
WHERE host_id || ';' || CAST(pid AS VARCHAR) = $1
GROUP BY snapshot_time
ORDER BY snapshot_time
