-- host_addrs: the addresses that belong to exactly one reporting host, per snapshot: the
-- addresses of its interfaces (`local_networks`, the CIDR without its prefix length) and the
-- local addresses of its sockets. A connection end no host reported whose address is here is
-- that host's (a peer end that was missed, or outside the window), never the Internet.
-- Loopback is every host's, an address several hosts carry (a default bridge such as
-- 172.17.0.1 on every Docker host) names none of them, and an address inside a host-local
-- network of its host (a container on a bridge) may be another container's on the next host:
-- all three are left out (conn_ends.sql gives a host-local peer its host from the other end).
SELECT snapshot_time, addr, MIN(host_id) AS host_id
FROM (
    SELECT snapshot_time, host_id, split_part(cidr, '/', 1) AS addr FROM local_networks
    UNION ALL
    SELECT DISTINCT snapshot_time, host_id, local_addr AS addr FROM sockets
) a
WHERE NOT scope_is_loopback(addr)
  AND scope_host_local_network(snapshot_time, host_id, addr) IS NULL
GROUP BY snapshot_time, addr
HAVING COUNT(DISTINCT host_id) = 1
