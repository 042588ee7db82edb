-- conn_ends: each connection with its two ends (host, pid, process, address, port) and, for
-- an end of no known host, the pseudo node that stands for it in every view.
--
-- An end no host reported, at an address of one reporting host (`host_addrs`), is that
-- host's: its host is known, its process is not. The hosts and endpoints views draw it as
-- the host's; the process views drop the edge, as they drop any end without a known process.
-- An unreported loopback end is the other end's host's: loopback ends pair only within one
-- host (see connections.sql), so its peer cannot be anywhere else. So is an unreported end
-- inside a host-local network of the other end's host (a container on its bridge that no
-- process was seen for): nothing outside that host has the address, and another host's
-- container with the same address (`host_addrs` leaves those out) is another machine.
-- Any other unreported address inside a local network of the snapshot is a pseudo node for
-- that network, `;<cidr>` (its most specific network, `scope_local_network`): a machine
-- without a collector is a member of a network the user knows, not the Internet (Weave
-- Scope's issue 1846, where such peers were dropped), and one node per network keeps a busy
-- subnet of unknown peers from drawing a node per address. The rest is the Internet:
-- `in-theinternet` when it is the client (the connection came in), `out-theinternet` when it
-- is the server (it went out).
SELECT
    snapshot_time,
    client_host_id,
    client_pid,
    client_process,
    client_addr,
    client_port,
    server_host_id,
    server_pid,
    server_process,
    server_addr,
    server_port,
    CASE WHEN client_host_id IS NOT NULL THEN NULL
         ELSE COALESCE(';' || scope_local_network(snapshot_time, client_addr), 'in-theinternet')
         END AS client_pseudo,
    CASE WHEN server_host_id IS NOT NULL THEN NULL
         ELSE COALESCE(';' || scope_local_network(snapshot_time, server_addr), 'out-theinternet')
         END AS server_pseudo
FROM (
    SELECT
        c.snapshot_time,
        COALESCE(c.client_host_id,
                 CASE WHEN scope_is_loopback(c.client_addr)
                        OR scope_host_local_network(c.snapshot_time, c.server_host_id,
                                                    c.client_addr) IS NOT NULL
                      THEN c.server_host_id END,
                 ca.host_id)
            AS client_host_id,
        c.client_pid,
        c.client_process,
        c.client_addr,
        c.client_port,
        COALESCE(c.server_host_id,
                 CASE WHEN scope_is_loopback(c.server_addr)
                        OR scope_host_local_network(c.snapshot_time, c.client_host_id,
                                                    c.server_addr) IS NOT NULL
                      THEN c.client_host_id END,
                 sa.host_id)
            AS server_host_id,
        c.server_pid,
        c.server_process,
        c.server_addr,
        c.server_port
    FROM connections c
    LEFT JOIN host_addrs ca ON ca.snapshot_time = c.snapshot_time AND ca.addr = c.client_addr
    LEFT JOIN host_addrs sa ON sa.snapshot_time = c.snapshot_time AND sa.addr = c.server_addr
) e
