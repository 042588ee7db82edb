-- processes-by-name: one node per process name (its id), over all hosts, labelled
-- "1 process" / "N processes". Processes without a name are left out, as in Weave Scope.
SELECT
    snapshot_time,
    'processes-by-name' AS view,
    name AS id,
    name AS label,
    CASE WHEN COUNT(*) = 1 THEN '1 process'
         ELSE CAST(COUNT(*) AS VARCHAR) || ' processes' END AS label_minor,
    name AS rank,
    'square' AS shape,
    false AS pseudo
FROM process_info
WHERE name IS NOT NULL
GROUP BY snapshot_time, name
ORDER BY id
