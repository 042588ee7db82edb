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
    tracker_mode,
    load1,
    cpu_usage_percent,
    memory_usage_bytes
FROM (
    SELECT
        snapshot_time,
        host_id,
        COALESCE(NULLIF(MAX(host_name), ''), host_id) AS name,
        MAX(os) AS os,
        MAX(kernel_version) AS kernel_version,
        MAX(tracker_mode) AS tracker_mode,
        MAX(load1) AS load1,
        MAX(cpu_usage_percent) AS cpu_usage_percent,
        MAX(memory_usage_bytes) AS memory_usage_bytes
    FROM hosts
    GROUP BY snapshot_time, host_id
) h
