-- services: one node per service, `<cluster_id>/<uid>;<service>`, a heptagon, labelled by its
-- name with its namespace as minor label and rank. The connections to its pods (through its
-- cluster IP, DNAT resolved by the collectors, or to the pods directly) are its edges and its
-- `connections_count`.
SELECT
    s.snapshot_time,
    'services' AS view,
    s.cluster_id || '/' || s.uid || ';<service>' AS id,
    COALESCE(s.name, s.uid) AS label,
    COALESCE(s.namespace, '') AS label_minor,
    COALESCE(s.namespace, '') AS rank,
    'heptagon' AS shape,
    false AS pseudo,
    s.cluster_id AS meta_kubernetes_cluster,
    s.namespace AS meta_kubernetes_namespace,
    s.name AS meta_kubernetes_name,
    s.cluster_ip AS meta_kubernetes_ip,
    array_to_string(s.ports, ', ') AS meta_kubernetes_ports,
    s.labels AS "meta_kubernetes_labels_*",
    COALESCE(n.connections, 0.0) AS metric_connections_count
FROM kubernetes_objects s
LEFT JOIN view_node_connections n
    ON n.snapshot_time = s.snapshot_time AND n.node = s.cluster_id || '/' || s.uid || ';<service>'
WHERE s.kind = 'service'
ORDER BY id
