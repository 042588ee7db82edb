-- process_parents: each process (its id and name, from process_info) with what it is in
-- the container and Kubernetes views; how a node with no parent there is drawn is each view's
-- choice (see edges.sql):
-- - its container, image and container hostname, else its host's "Uncontained" pseudo node
--   (`pseudo:uncontained:<host_id>`, Weave Scope's);
-- - its container's pod (by the pod's uid, from CRI labels or the cgroup path) and that pod's
--   controller, else its host's "Unmanaged" pseudo node (`pseudo:unmanaged:<host_id>`).
SELECT
    p.snapshot_time,
    p.host_id,
    p.pid,
    p.id,
    p.name,
    COALESCE(c.id, 'pseudo:uncontained:' || p.host_id) AS container,
    COALESCE(c.image || ';<container_image>', 'pseudo:uncontained:' || p.host_id) AS image,
    COALESCE(c.hostname, 'pseudo:uncontained:' || p.host_id) AS container_hostname,
    c.id IS NULL AS uncontained,
    COALESCE(k.id, 'pseudo:unmanaged:' || p.host_id) AS pod,
    COALESCE(k.controller_id, 'pseudo:unmanaged:' || p.host_id) AS controller,
    k.id IS NULL AS unmanaged,
    'pseudo:unmanaged:' || p.host_id AS unmanaged_id
FROM process_info p
LEFT JOIN container_info c
    ON c.snapshot_time = p.snapshot_time AND c.host_id = p.host_id
    AND c.container_id = p.container_id
LEFT JOIN pod_info k ON k.snapshot_time = c.snapshot_time AND k.uid = c.pod_uid
