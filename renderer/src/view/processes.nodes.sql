-- processes: one node per process, `<host_id>;<pid>`. Columns `meta_<key>` become the
-- published node's metadata.
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
    CAST(threads AS VARCHAR) AS meta_threads
FROM process_info
ORDER BY id
