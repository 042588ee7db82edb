-- containers-by-hostname: one node per container hostname (its id, as Scope's), the
-- containers sharing it grouped ("N containers"): a pod's containers share its hostname.
SELECT
    snapshot_time,
    'containers-by-hostname' AS view,
    hostname AS id,
    hostname AS label,
    CASE WHEN COUNT(*) = 1 THEN '1 container'
         ELSE CAST(COUNT(*) AS VARCHAR) || ' containers' END AS label_minor,
    hostname AS rank,
    'hexagon' AS shape,
    false AS pseudo,
    CASE WHEN bool_and(system) THEN 'true' END AS meta_system
FROM container_info
WHERE state <> 'exited'
GROUP BY snapshot_time, hostname
ORDER BY id
