-- endpoints: one node per connection end of a known host, `<host_id>;<addr>;<port>` (as
-- end_nodes.sql makes it), Weave Scope's raw endpoint topology: what to look at when a
-- process view drops an edge because a process is unknown. Labelled `<addr>:<port>`
-- (`[<addr>]:<port>` for IPv6, whose address has colons of its own), the host's name as
-- minor label and rank, so one host's endpoints sort together; a circle. A server end serves
-- many connections: its pid and process are those of any of them (they agree, as one socket
-- has one owner). An end whose host did not report it (an address of that host, or loopback)
-- has no pid or process.
SELECT
    n.snapshot_time,
    'endpoints' AS view,
    n.host_id || ';' || n.addr || ';' || CAST(n.port AS VARCHAR) AS id,
    CASE WHEN strpos(n.addr, ':') > 0 THEN '[' || n.addr || ']' ELSE n.addr END
        || ':' || CAST(n.port AS VARCHAR) AS label,
    COALESCE(h.name, n.host_id) AS label_minor,
    COALESCE(h.name, n.host_id) AS rank,
    'circle' AS shape,
    false AS pseudo,
    n.host_id AS meta_host_id,
    h.name AS meta_host_name,
    n.addr AS meta_addr,
    CAST(n.port AS VARCHAR) AS meta_port,
    CAST(n.pid AS VARCHAR) AS meta_pid,
    COALESCE(p.name, n.process) AS meta_process,
    h.id AS parent_hosts,
    p.id AS parent_processes
FROM (
    SELECT snapshot_time, host_id, addr, port, MAX(pid) AS pid, MAX(process) AS process
    FROM (
        SELECT snapshot_time, client_host_id AS host_id, client_addr AS addr,
               client_port AS port, client_pid AS pid, client_process AS process
        FROM conn_ends WHERE client_pseudo IS NULL
        UNION ALL
        SELECT snapshot_time, server_host_id, server_addr, server_port, server_pid,
               server_process
        FROM conn_ends WHERE server_pseudo IS NULL
    ) ends
    GROUP BY snapshot_time, host_id, addr, port
) n
LEFT JOIN host_info h ON h.snapshot_time = n.snapshot_time AND h.host_id = n.host_id
LEFT JOIN process_info p
    ON p.snapshot_time = n.snapshot_time AND p.host_id = n.host_id AND p.pid = n.pid
ORDER BY id
