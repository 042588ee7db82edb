-- end_nodes: each connection's two ends as the nodes they are in every view: the endpoint
-- (`<host_id>;<addr>;<port>`), the process (its id and its name) and the host, where known,
-- and the pseudo node of an end of no known host.
--
-- An endpoint id carries its host even for a public address (Weave Scope leaves it out
-- there): the same address can belong to several hosts (a default bridge such as 172.17.0.1),
-- and loopback belongs to every host.
SELECT
    e.snapshot_time,
    e.client_pseudo,
    e.client_host_id || ';' || e.client_addr || ';' || CAST(e.client_port AS VARCHAR)
        AS client_endpoint,
    cp.id AS client_process,
    cp.name AS client_name,
    ch.id AS client_host,
    e.server_pseudo,
    e.server_host_id || ';' || e.server_addr || ';' || CAST(e.server_port AS VARCHAR)
        AS server_endpoint,
    sp.id AS server_process,
    sp.name AS server_name,
    sh.id AS server_host,
    e.server_port
FROM conn_ends e
LEFT JOIN process_info cp
    ON cp.snapshot_time = e.snapshot_time AND cp.host_id = e.client_host_id AND cp.pid = e.client_pid
LEFT JOIN process_info sp
    ON sp.snapshot_time = e.snapshot_time AND sp.host_id = e.server_host_id AND sp.pid = e.server_pid
LEFT JOIN host_info ch ON ch.snapshot_time = e.snapshot_time AND ch.host_id = e.client_host_id
LEFT JOIN host_info sh ON sh.snapshot_time = e.snapshot_time AND sh.host_id = e.server_host_id
