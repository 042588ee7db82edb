-- processes: one node per process, `<host_id>;<pid>`. Columns `meta_<key>` become the
-- published node's metadata; `metric_<id>` (Weave Scope's metric ids) and `parent_<view>`
-- are what the HTTP API adds: the process's usage and connections, its host's node and its
-- container's (its host's "Uncontained" pseudo node when it runs in none).
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
    p.host_id || ';<host>' AS parent_hosts,
    COALESCE(ci.id, 'pseudo:uncontained:' || p.host_id) AS parent_containers
FROM process_info p
LEFT JOIN container_info ci
    ON ci.snapshot_time = p.snapshot_time AND ci.host_id = p.host_id
    AND ci.container_id = p.container_id
LEFT JOIN view_node_connections c ON c.snapshot_time = p.snapshot_time AND c.node = p.id
ORDER BY p.id
