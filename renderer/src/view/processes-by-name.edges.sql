-- processes-by-name: the processes view's edges with each process replaced by its name.
SELECT snapshot_time, 'processes-by-name' AS view, src, dst, src_pseudo, dst_pseudo,
       COUNT(*) AS connections
FROM (
    SELECT
        e.snapshot_time,
        COALESCE(e.client_pseudo, c.name) AS src,
        e.client_pseudo IS NOT NULL AS src_pseudo,
        COALESCE(e.server_pseudo, s.name) AS dst,
        e.server_pseudo IS NOT NULL AS dst_pseudo
    FROM conn_ends e
    LEFT JOIN process_info c
        ON c.snapshot_time = e.snapshot_time AND c.host_id = e.client_host_id AND c.pid = e.client_pid
    LEFT JOIN process_info s
        ON s.snapshot_time = e.snapshot_time AND s.host_id = e.server_host_id AND s.pid = e.server_pid
) ends
WHERE src IS NOT NULL AND dst IS NOT NULL
GROUP BY snapshot_time, src, src_pseudo, dst, dst_pseudo
ORDER BY src, dst
