-- process_info: one row per process with its node id and Weave Scope's labels: the name is
-- the label and the rank, "<host name> (<pid>)" the minor label; a process without a name is
-- labelled by its pid, with the host name as minor label and rank.
SELECT
    p.snapshot_time,
    p.host_id,
    p.pid,
    p.host_id || ';' || CAST(p.pid AS VARCHAR) AS id,
    p.name,
    COALESCE(p.name, CAST(p.pid AS VARCHAR)) AS label,
    CASE WHEN p.name IS NULL THEN COALESCE(h.name, p.host_id)
         ELSE COALESCE(h.name, p.host_id) || ' (' || CAST(p.pid AS VARCHAR) || ')' END
        AS label_minor,
    COALESCE(p.name, h.name, p.host_id) AS rank,
    p.ppid,
    p.cmdline,
    p.threads,
    p.cpu_usage_percent,
    p.memory_usage_bytes,
    p.open_files_count,
    p.container_id
FROM (
    SELECT
        snapshot_time,
        host_id,
        pid,
        NULLIF(MAX(name), '') AS name,
        MAX(ppid) AS ppid,
        MAX(cmdline) AS cmdline,
        MAX(threads) AS threads,
        MAX(cpu_usage_percent) AS cpu_usage_percent,
        MAX(memory_usage_bytes) AS memory_usage_bytes,
        MAX(open_files_count) AS open_files_count,
        MAX(container_id) AS container_id
    FROM processes
    GROUP BY snapshot_time, host_id, pid
) p
LEFT JOIN host_info h ON h.snapshot_time = p.snapshot_time AND h.host_id = p.host_id
