-- conn_ends: each connection with, for an end no host reported, the pseudo node that stands
-- for it in every view. An address inside a reported local network (or loopback) is a node of
-- its own, `;<addr>`; any other address is the Internet: `in-theinternet` when it is the
-- client (the connection came in), `out-theinternet` when it is the server (it went out).
SELECT
    snapshot_time,
    client_host_id,
    client_pid,
    client_addr,
    server_host_id,
    server_pid,
    server_addr,
    CASE WHEN client_host_id IS NOT NULL THEN NULL
         WHEN scope_is_local(client_addr) THEN ';' || client_addr
         ELSE 'in-theinternet' END AS client_pseudo,
    CASE WHEN server_host_id IS NOT NULL THEN NULL
         WHEN scope_is_local(server_addr) THEN ';' || server_addr
         ELSE 'out-theinternet' END AS server_pseudo
FROM connections
