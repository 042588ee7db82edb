-- processes: one node per process, `<host_id>;<pid>`. Columns `meta_<key>` become the
-- published node's metadata; `metric_<id>` (Weave Scope's metric ids) and `parent_<view>`
-- are what the HTTP API adds: the process's usage, and its host's node.
SELECT
    snapshot_time,
    'processes' AS view,
    id,
    label,
    label_minor,
    rank,
    'square' AS shape,
    false AS pseudo,
    host_id AS meta_host_id,
    CAST(pid AS VARCHAR) AS meta_pid,
    CAST(ppid AS VARCHAR) AS meta_ppid,
    cmdline AS meta_cmdline,
    CAST(threads AS VARCHAR) AS meta_threads,
    cpu_usage_percent AS metric_process_cpu_usage_percent,
    CAST(memory_usage_bytes AS DOUBLE) AS metric_process_memory_usage_bytes,
    CAST(open_files_count AS DOUBLE) AS metric_open_files_count,
    host_id || ';<host>' AS parent_hosts
FROM process_info
ORDER BY id
