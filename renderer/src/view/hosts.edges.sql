-- hosts: client host -> server host, whether or not the owning processes are known; a
-- connection inside one host is an edge from the host to itself, as in Weave Scope.
SELECT snapshot_time, 'hosts' AS view, src, dst, src_pseudo, dst_pseudo,
       COUNT(*) AS connections
FROM (
    SELECT
        e.snapshot_time,
        COALESCE(e.client_pseudo, c.id) AS src,
        e.client_pseudo IS NOT NULL AS src_pseudo,
        COALESCE(e.server_pseudo, s.id) AS dst,
        e.server_pseudo IS NOT NULL AS dst_pseudo
    FROM conn_ends e
    LEFT JOIN host_info c ON c.snapshot_time = e.snapshot_time AND c.host_id = e.client_host_id
    LEFT JOIN host_info s ON s.snapshot_time = e.snapshot_time AND s.host_id = e.server_host_id
) ends
WHERE src IS NOT NULL AND dst IS NOT NULL
GROUP BY snapshot_time, src, src_pseudo, dst, dst_pseudo
ORDER BY src, dst
