-- pods: one node per pod, `<cluster_id>/<uid>;<pod>`, a heptagon, labelled by its name with
-- its namespace as minor label and rank; its node's host and its controller as parents.
SELECT
    p.snapshot_time,
    'pods' AS view,
    p.id,
    p.label,
    p.label_minor,
    p.label_minor AS rank,
    'heptagon' AS shape,
    false AS pseudo,
    p.cluster_id AS meta_kubernetes_cluster,
    p.namespace AS meta_kubernetes_namespace,
    p.name AS meta_kubernetes_name,
    p.state AS meta_kubernetes_state,
    p.pod_ip AS meta_kubernetes_ip,
    p.node_name AS meta_kubernetes_node,
    p.controller_kind AS meta_kubernetes_controller_kind,
    p.controller_label AS meta_kubernetes_controller,
    p.labels AS "meta_kubernetes_labels_*",
    COALESCE(n.connections, 0.0) AS metric_connections_count,
    p.node_name || ';<host>' AS parent_hosts,
    p.controller_id AS "parent_kube-controllers"
FROM pod_info p
LEFT JOIN view_node_connections n ON n.snapshot_time = p.snapshot_time AND n.node = p.id
ORDER BY p.id
