-- connections: one row per TCP connection, its two ends joined.
--
-- A host reports each end it owns as a row of `sockets`: the client's end is `outbound`
-- (local = client, remote = server), the server's end is `inbound` (local = server,
-- remote = client). Both ends of one connection carry the same four-tuple, reversed, so the
-- pairing is a full outer join on it: an end whose other side no host reported (the Internet,
-- a host without a collector) stays, with that side's host, pid and process null.
--
-- Loopback tuples repeat on every host and in every network namespace, so a loopback end only
-- pairs with an end of the same host and namespace (`addr_scope`); other addresses pair across
-- hosts. Rows of the same end from two writers are merged first (the earliest first_seen,
-- the latest last_seen, closed if any of them saw it closed).
WITH ends AS (
    SELECT
        snapshot_time, host_id, netns, direction, family,
        local_addr, local_port, remote_addr, remote_port,
        MAX(pid) AS pid,
        MAX(process_name) AS process_name,
        MIN(first_seen) AS first_seen,
        MAX(last_seen) AS last_seen,
        MIN(state) AS state, -- 'closed' < 'open'
        CASE WHEN scope_is_loopback(local_addr)
             THEN host_id || '/' || CAST(netns AS VARCHAR)
             ELSE '' END AS addr_scope
    FROM sockets
    GROUP BY snapshot_time, host_id, netns, direction, family,
             local_addr, local_port, remote_addr, remote_port
),
cli AS (SELECT * FROM ends WHERE direction = 'outbound'),
srv AS (SELECT * FROM ends WHERE direction = 'inbound')
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
    ON  cli.family = srv.family
    AND cli.local_addr = srv.remote_addr
    AND cli.local_port = srv.remote_port
    AND cli.remote_addr = srv.local_addr
    AND cli.remote_port = srv.local_port
    AND cli.addr_scope = srv.addr_scope
ORDER BY client_addr, client_port, server_addr, server_port, client_host_id, server_host_id
