-- pod_services: which services select each pod (`<cluster_id>/<uid>;<service>`): a
-- service of the pod's namespace whose selector all its labels match (`scope_selects`). A
-- pod may be in several services, or in none.
SELECT
    p.snapshot_time,
    p.id AS pod,
    s.cluster_id || '/' || s.uid || ';<service>' AS service
FROM pod_info p
JOIN kubernetes_objects s
    ON s.snapshot_time = p.snapshot_time AND s.cluster_id = p.cluster_id
    AND s.kind = 'service' AND s.namespace = p.namespace
WHERE scope_selects(s.selector, p.labels)
