-- connections: one row per TCP connection, its two ends joined.
--
-- A host reports each end it owns as a row of `sockets`: the client's end is `outbound`
-- (local = client, remote = server), the server's end is `inbound` (local = server,
-- remote = client). Both ends of one connection carry the same four-tuple, reversed, so the
-- pairing is a full outer join on it: an end whose other side no host reported (the Internet,
-- a host without a collector) stays, with that side's host, pid and process null.
--
-- Ends pair only within one snapshot (`snapshot_time`), so the same SQL over `history.*`
-- gives each snapshot's connections.
--
-- Loopback tuples repeat on every host and in every network namespace, so a loopback end only
-- pairs with an end of the same host and namespace (`addr_scope`). Host-local networks (a
-- container bridge, `local_networks.host_local`) repeat across hosts too: two Docker hosts
-- both run 172.17.0.2 -> 172.17.0.3. An end whose two addresses are inside one host-local
-- network of its host never left that host, so it only pairs with an end of the same host
-- (as Weave Scope scoped its Docker bridge's addresses by host). Both addresses, not the local
-- one alone: a pod bridge routed between nodes (a subnet per node) is host-local too, and a
-- connection from one node's pods to another's must still pair. Other addresses pair across
-- hosts.
--
-- One four-tuple can carry several connections in a window, one after another: a client may
-- reuse its port as soon as the previous connection closed. Rows of the same end are merged
-- per first_seen, which two writers of the same connection agree on (the latest last_seen,
-- closed if either saw it closed); each first_seen left is a connection. An end with one
-- connection on its tuple pairs on the tuple alone, whatever the two hosts' clocks say; where
-- either side has several, a client's and a server's connection pair when their lifetimes
-- [first_seen, closed_at or the snapshot time] overlap.
WITH ends AS (
    SELECT
        snapshot_time, host_id, netns, direction, family,
        local_addr, local_port, remote_addr, remote_port, first_seen,
        MAX(pid) AS pid,
        MAX(process_name) AS process_name,
        MAX(last_seen) AS last_seen,
        MIN(COALESCE(closed_at, snapshot_time)) AS until,
        MIN(state) AS state, -- 'closed' < 'open'
        CASE WHEN scope_is_loopback(local_addr)
             THEN host_id || '/' || CAST(netns AS VARCHAR)
             WHEN scope_host_local_network(snapshot_time, host_id, local_addr)
                  = scope_host_local_network(snapshot_time, host_id, remote_addr)
             THEN host_id
             ELSE '' END AS addr_scope
    FROM sockets
    GROUP BY snapshot_time, host_id, netns, direction, family,
             local_addr, local_port, remote_addr, remote_port, first_seen
),
-- Ends whose tuple carries more than one connection. Read from `sockets` rather than `ends`:
-- DataFusion does not share a CTE between its uses, and computing `ends` twice made the
-- benchmark's render about 0.4 s slower (1.6-2.0 s against 1.15-1.45 s).
reused AS (
    SELECT snapshot_time, host_id, netns, direction, family,
           local_addr, local_port, remote_addr, remote_port
    FROM sockets
    GROUP BY snapshot_time, host_id, netns, direction, family,
             local_addr, local_port, remote_addr, remote_port
    HAVING MIN(first_seen) < MAX(first_seen)
),
flagged AS (
    SELECT e.*, r.host_id IS NOT NULL AS reused
    FROM ends e
    LEFT JOIN reused r
        ON  e.snapshot_time = r.snapshot_time AND e.host_id = r.host_id AND e.netns = r.netns
        AND e.direction = r.direction AND e.family = r.family
        AND e.local_addr = r.local_addr AND e.local_port = r.local_port
        AND e.remote_addr = r.remote_addr AND e.remote_port = r.remote_port
),
cli AS (SELECT * FROM flagged WHERE direction = 'outbound'),
srv AS (SELECT * FROM flagged WHERE direction = 'inbound')
SELECT
    COALESCE(cli.snapshot_time, srv.snapshot_time) AS snapshot_time,
    COALESCE(cli.family, srv.family) AS family,
    cli.host_id AS client_host_id,
    cli.pid AS client_pid,
    cli.process_name AS client_process,
    COALESCE(cli.local_addr, srv.remote_addr) AS client_addr,
    COALESCE(cli.local_port, srv.remote_port) AS client_port,
    srv.host_id AS server_host_id,
    srv.pid AS server_pid,
    srv.process_name AS server_process,
    COALESCE(srv.local_addr, cli.remote_addr) AS server_addr,
    COALESCE(srv.local_port, cli.remote_port) AS server_port,
    least(cli.first_seen, srv.first_seen) AS first_seen,
    greatest(cli.last_seen, srv.last_seen) AS last_seen,
    CASE WHEN cli.state = 'closed' OR srv.state = 'closed' THEN 'closed' ELSE 'open' END AS state
FROM cli
FULL OUTER JOIN srv
    ON  cli.snapshot_time = srv.snapshot_time
    AND cli.family = srv.family
    AND cli.local_addr = srv.remote_addr
    AND cli.local_port = srv.remote_port
    AND cli.remote_addr = srv.local_addr
    AND cli.remote_port = srv.local_port
    AND cli.addr_scope = srv.addr_scope
    AND (NOT (cli.reused OR srv.reused)
         OR (cli.first_seen <= srv.until AND srv.first_seen <= cli.until))
ORDER BY client_addr, client_port, server_addr, server_port, client_host_id, server_host_id,
         first_seen
