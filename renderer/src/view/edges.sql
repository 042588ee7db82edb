-- edges: client -> server in every view, one edge per pair with its connection count.
-- - processes: process to process; an end owned by no known process (its pid is unknown or
--   not in `processes`) drops the edge.
-- - processes-by-name: the processes view's edges with each process replaced by its name.
-- - hosts: host to host, whether or not the owning processes are known; a connection inside
--   one host is an edge from the host to itself, as in Weave Scope.
-- - endpoints: connection end to connection end (address and port), Weave Scope's raw
--   topology: every connection, whether or not its processes are known, so that an edge
--   the process views drop can still be found here.
-- - containers, containers-by-image, containers-by-hostname: the processes view's edges with
--   each process replaced by its container, its image or its container's hostname; a process
--   in no container by its host's "Uncontained" pseudo node.
-- - pods, kube-controllers: each process replaced by its container's pod, or that pod's
--   controller (a pod with none kept as itself); a process in no pod by its host's
--   "Unmanaged" pseudo node.
-- - services: each pod replaced by every service that selects it; a process in no pod, or a
--   pod in no service, by its host's "Unmanaged" pseudo node.
--   A snapshot without pods has no Kubernetes views (no cluster collector, or no cluster).
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
    SELECT snapshot_time, 'containers' AS view,
           COALESCE(client_pseudo, client_container), COALESCE(server_pseudo, server_container),
           client_pseudo IS NOT NULL OR client_uncontained,
           server_pseudo IS NOT NULL OR server_uncontained, server_port
    FROM end_nodes
    UNION ALL
    SELECT snapshot_time, 'containers-by-image' AS view,
           COALESCE(client_pseudo, client_image), COALESCE(server_pseudo, server_image),
           client_pseudo IS NOT NULL OR client_uncontained,
           server_pseudo IS NOT NULL OR server_uncontained, server_port
    FROM end_nodes
    UNION ALL
    SELECT snapshot_time, 'containers-by-hostname' AS view,
           COALESCE(client_pseudo, client_container_hostname),
           COALESCE(server_pseudo, server_container_hostname),
           client_pseudo IS NOT NULL OR client_uncontained,
           server_pseudo IS NOT NULL OR server_uncontained, server_port
    FROM end_nodes
    UNION ALL
    SELECT snapshot_time, 'pods' AS view,
           COALESCE(client_pseudo, client_pod), COALESCE(server_pseudo, server_pod),
           client_pseudo IS NOT NULL OR client_unmanaged,
           server_pseudo IS NOT NULL OR server_unmanaged, server_port
    FROM end_nodes
    WHERE snapshot_time IN (SELECT snapshot_time FROM pod_info)
    UNION ALL
    SELECT snapshot_time, 'kube-controllers' AS view,
           COALESCE(client_pseudo, client_controller), COALESCE(server_pseudo, server_controller),
           client_pseudo IS NOT NULL OR client_unmanaged,
           server_pseudo IS NOT NULL OR server_unmanaged, server_port
    FROM end_nodes
    WHERE snapshot_time IN (SELECT snapshot_time FROM pod_info)
    UNION ALL
    SELECT e.snapshot_time, 'services' AS view,
           COALESCE(e.client_pseudo, cs.service, e.client_unmanaged_id),
           COALESCE(e.server_pseudo, ss.service, e.server_unmanaged_id),
           e.client_pseudo IS NOT NULL OR cs.service IS NULL,
           e.server_pseudo IS NOT NULL OR ss.service IS NULL, e.server_port
    FROM end_nodes e
    LEFT JOIN pod_services cs ON cs.snapshot_time = e.snapshot_time AND cs.pod = e.client_pod
    LEFT JOIN pod_services ss ON ss.snapshot_time = e.snapshot_time AND ss.pod = e.server_pod
    WHERE e.snapshot_time IN (SELECT snapshot_time FROM pod_info)
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
