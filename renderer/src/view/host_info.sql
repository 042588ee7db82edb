-- host_info: one row per host with its node id and Weave Scope's labels: the host name up to
-- its first dot is the label, the rest (the domain), if any, the minor label and the rank.
-- A host without a reported name is named by its id.
SELECT
    snapshot_time,
    host_id,
    host_id || ';<host>' AS id,
    name,
    CASE WHEN strpos(name, '.') > 0 THEN substr(name, 1, strpos(name, '.') - 1) ELSE name END
        AS label,
    CASE WHEN strpos(name, '.') > 0 THEN substr(name, strpos(name, '.') + 1) ELSE '' END
        AS label_minor,
    os,
    kernel_version,
    tracker_mode
FROM (
    SELECT
        snapshot_time,
        host_id,
        COALESCE(NULLIF(MAX(host_name), ''), host_id) AS name,
        MAX(os) AS os,
        MAX(kernel_version) AS kernel_version,
        MAX(tracker_mode) AS tracker_mode
    FROM hosts
    GROUP BY snapshot_time, host_id
) h
