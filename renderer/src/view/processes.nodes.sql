-- processes: one node per process, `<host_id>;<pid>`. Columns `meta_<key>` become the
-- published node's metadata; `metric_<id>` (Weave Scope's metric ids) and `parent_<view>`
-- are what the HTTP API adds: the process's usage and connections, and its host's node.
SELECT
    p.snapshot_time,
    'processes' AS view,
    p.id,
    p.label,
    p.label_minor,
    p.rank,
    'square' AS shape,
    false AS pseudo,
    p.host_id AS meta_host_id,
    CAST(p.pid AS VARCHAR) AS meta_pid,
    CAST(p.ppid AS VARCHAR) AS meta_ppid,
    p.cmdline AS meta_cmdline,
    CAST(p.threads AS VARCHAR) AS meta_threads,
    p.cpu_usage_percent AS metric_process_cpu_usage_percent,
    CAST(p.memory_usage_bytes AS DOUBLE) AS metric_process_memory_usage_bytes,
    CAST(p.open_files_count AS DOUBLE) AS metric_open_files_count,
    COALESCE(c.connections, 0.0) AS metric_connections_count,
    p.host_id || ';<host>' AS parent_hosts
FROM process_info p
-- Connections at either end of the node's edges in this view.
LEFT JOIN (
    SELECT snapshot_time, node, CAST(SUM(connections) AS DOUBLE) AS connections
    FROM (
        SELECT snapshot_time, src AS node, connections FROM view_edges
        UNION ALL
        SELECT snapshot_time, dst AS node, connections FROM view_edges WHERE dst <> src
    ) ends
    GROUP BY snapshot_time, node
) c ON c.snapshot_time = p.snapshot_time AND c.node = p.id
ORDER BY p.id
