-- container_info: one row per container with its node id and Weave Scope's labels: the name
-- (else the first 12 digits of its id) is the label, the host's name the minor label, the
-- image without its tag or digest the rank (`local/busybox:1` -> `local/busybox`), as in
-- Scope's containers view. `system` marks what Scope's "system containers" option hides:
-- Kubernetes' own (namespace kube-system) and containers labelled `works.weave.role=system`.
SELECT
    c.snapshot_time,
    c.host_id,
    c.container_id,
    c.container_id || ';<container>' AS id,
    COALESCE(NULLIF(c.name, ''), substr(c.container_id, 1, 12)) AS label,
    COALESCE(h.name, c.host_id) AS label_minor,
    COALESCE(regexp_replace(c.image_name, '(@.*|:[^:/]*)$', ''), '<unknown image>') AS image,
    CASE WHEN regexp_like(c.image_name, ':[^:/@]*$')
         THEN regexp_replace(c.image_name, '^.*:([^:/@]*)$', '${1}') END AS image_tag,
    COALESCE(NULLIF(c.hostname, ''), substr(c.container_id, 1, 12)) AS hostname,
    c.runtime,
    c.image_name,
    c.image_id,
    c.state,
    c.pod_name,
    c.pod_namespace,
    c.pod_uid,
    c.labels,
    c.ips,
    c.ports,
    c.cpu_usage_percent,
    c.memory_usage_bytes,
    COALESCE(c.pod_namespace = 'kube-system' OR c.labels['works.weave.role'] = 'system', false)
        AS system
FROM containers c
LEFT JOIN host_info h ON h.snapshot_time = c.snapshot_time AND h.host_id = c.host_id
