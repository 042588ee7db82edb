-- edges: client -> server in every view, one edge per pair with its connection count.
-- - processes: process to process; an end owned by no known process (its pid is unknown or
--   not in `processes`) drops the edge.
-- - processes-by-name: the processes view's edges with each process replaced by its name.
-- - hosts: host to host, whether or not the owning processes are known; a connection inside
--   one host is an edge from the host to itself, as in Weave Scope.
-- - endpoints: connection end to connection end (address and port), Weave Scope's raw
--   topology: every connection, whether or not its processes are known, so that an edge
--   the process views drop can still be found here.
-- An end of no known host is its pseudo node in every view. `ports` breaks the count down by
-- server port (`<port>:<connections>`, comma-separated, by port), for the connections tables
-- of a node's details.
SELECT snapshot_time, "view", src, dst, src_pseudo, dst_pseudo, SUM(connections) AS connections,
       string_agg(CAST(server_port AS VARCHAR) || ':' || CAST(connections AS VARCHAR), ','
                  ORDER BY server_port) AS ports
FROM (
SELECT snapshot_time, "view", src, dst, src_pseudo, dst_pseudo, server_port, COUNT(*) AS connections
FROM (
    SELECT snapshot_time, 'processes' AS view,
           COALESCE(client_pseudo, client_process) AS src, COALESCE(server_pseudo, server_process) AS dst,
           client_pseudo IS NOT NULL AS src_pseudo, server_pseudo IS NOT NULL AS dst_pseudo,
           server_port
    FROM end_nodes
    UNION ALL
    SELECT snapshot_time, 'processes-by-name' AS view,
           COALESCE(client_pseudo, client_name), COALESCE(server_pseudo, server_name),
           client_pseudo IS NOT NULL, server_pseudo IS NOT NULL, server_port
    FROM end_nodes
    UNION ALL
    SELECT snapshot_time, 'hosts' AS view,
           COALESCE(client_pseudo, client_host), COALESCE(server_pseudo, server_host),
           client_pseudo IS NOT NULL, server_pseudo IS NOT NULL, server_port
    FROM end_nodes
    UNION ALL
    SELECT snapshot_time, 'endpoints' AS view,
           COALESCE(client_pseudo, client_endpoint), COALESCE(server_pseudo, server_endpoint),
           client_pseudo IS NOT NULL, server_pseudo IS NOT NULL, server_port
    FROM end_nodes
) ends
WHERE src IS NOT NULL AND dst IS NOT NULL
GROUP BY snapshot_time, "view", src, src_pseudo, dst, dst_pseudo, server_port
) by_port
GROUP BY snapshot_time, "view", src, src_pseudo, dst, dst_pseudo
