-- conn_ends: each connection with its two ends' hosts and, for an end of no known host, the
-- pseudo node that stands for it in every view.
--
-- An end no host reported, at an address of one reporting host (`host_addrs`), is that
-- host's: its host is known, its process is not. The hosts view draws it as the host; the
-- process views drop the edge, as they drop any end without a known process (Weave Scope
-- draws no pseudo node for an address inside its local networks either).
-- Any other unreported address inside a local network of the snapshot (or loopback) is a
-- node of its own, `;<addr>`; the rest is the Internet: `in-theinternet` when it is the
-- client (the connection came in), `out-theinternet` when it is the server (it went out).
SELECT
    c.snapshot_time,
    COALESCE(c.client_host_id, ca.host_id) AS client_host_id,
    c.client_pid,
    c.client_addr,
    COALESCE(c.server_host_id, sa.host_id) AS server_host_id,
    c.server_pid,
    c.server_addr,
    CASE WHEN c.client_host_id IS NOT NULL OR ca.host_id IS NOT NULL THEN NULL
         WHEN scope_is_local(c.snapshot_time, c.client_addr) THEN ';' || c.client_addr
         ELSE 'in-theinternet' END AS client_pseudo,
    CASE WHEN c.server_host_id IS NOT NULL OR sa.host_id IS NOT NULL THEN NULL
         WHEN scope_is_local(c.snapshot_time, c.server_addr) THEN ';' || c.server_addr
         ELSE 'out-theinternet' END AS server_pseudo
FROM connections c
LEFT JOIN host_addrs ca ON ca.snapshot_time = c.snapshot_time AND ca.addr = c.client_addr
LEFT JOIN host_addrs sa ON sa.snapshot_time = c.snapshot_time AND sa.addr = c.server_addr
