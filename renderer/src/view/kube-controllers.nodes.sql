-- kube-controllers: one node per controller of a pod (pod_info: a deployment, a daemon set,
-- a stateful set, a cron job, a replica set or job without one), labelled by its name with
-- "<N> pods" as minor label, ranked by kind; a pod with no controller is kept as itself. Its
-- id is the controller's (`<cluster_id>/<uid>;<deployment>`, ...), or the pod's; its labels
-- are the controller object's (the pod's for a bare pod).
SELECT
    c.snapshot_time,
    'kube-controllers' AS view,
    c.id,
    c.label,
    CASE WHEN c.pods = 1 THEN '1 pod' ELSE CAST(c.pods AS VARCHAR) || ' pods' END AS label_minor,
    c.kind AS rank,
    CASE c.kind
        WHEN 'DaemonSet' THEN 'pentagon'
        WHEN 'StatefulSet' THEN 'octagon'
        WHEN 'CronJob' THEN 'triangle'
        WHEN 'Job' THEN 'triangle'
        ELSE 'heptagon' END AS shape,
    false AS pseudo,
    c.kind AS meta_kubernetes_kind,
    c.namespace AS meta_kubernetes_namespace,
    CAST(c.pods AS VARCHAR) AS meta_kubernetes_pods,
    o.labels AS "meta_kubernetes_labels_*",
    COALESCE(n.connections, 0.0) AS metric_connections_count
FROM (
    SELECT snapshot_time, controller_id AS id, MAX(controller_label) AS label,
           MAX(controller_kind) AS kind, MAX(namespace) AS namespace, COUNT(*) AS pods,
           MAX(cluster_id) AS cluster_id, MAX(controller_uid) AS uid
    FROM pod_info
    GROUP BY snapshot_time, controller_id
) c
LEFT JOIN kubernetes_objects o
    ON o.snapshot_time = c.snapshot_time AND o.cluster_id = c.cluster_id AND o.uid = c.uid
LEFT JOIN view_node_connections n ON n.snapshot_time = c.snapshot_time AND n.node = c.id
ORDER BY c.id
