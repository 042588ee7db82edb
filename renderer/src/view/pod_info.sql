-- pod_info: one row per pod with its node id (`<cluster_id>/<uid>;<pod>`), Weave Scope's
-- labels (its name, its namespace as minor label) and its controller, as Scope's design
-- notes draw them: a pod maps to its replica set, else its daemon set (or stateful set, job:
-- whatever its controlling owner is); a replica set to its deployment and a job to its cron
-- job when they have one. A pod with no controller is its own controller (the controllers
-- view keeps it as it is). An owner whose kind is not one of Kubernetes' controllers (a
-- custom resource) is a controller of that kind, lower-cased.
SELECT
    snapshot_time,
    cluster_id,
    uid,
    namespace,
    name,
    labels,
    node_name,
    host_ip,
    pod_ip,
    state,
    id,
    label,
    label_minor,
    COALESCE(
        cluster_id || '/' || controller_uid || ';<' || COALESCE(
            CASE controller_kind
                WHEN 'Deployment' THEN 'deployment'
                WHEN 'ReplicaSet' THEN 'replica_set'
                WHEN 'DaemonSet' THEN 'daemon_set'
                WHEN 'StatefulSet' THEN 'stateful_set'
                WHEN 'Job' THEN 'job'
                WHEN 'CronJob' THEN 'cron_job'
            END,
            lower(controller_kind)) || '>',
        id) AS controller_id,
    COALESCE(controller_uid, uid) AS controller_uid,
    COALESCE(controller_name, label) AS controller_label,
    COALESCE(controller_kind, 'Pod') AS controller_kind
FROM (
    SELECT
        p.snapshot_time,
        p.cluster_id,
        p.uid,
        p.namespace,
        p.name,
        p.labels,
        p.node_name,
        p.host_ip,
        p.pod_ip,
        p.state,
        p.cluster_id || '/' || p.uid || ';<pod>' AS id,
        COALESCE(p.name, p.uid) AS label,
        COALESCE(p.namespace, '') AS label_minor,
        CASE WHEN o.owner_kind IN ('Deployment', 'CronJob') THEN o.owner_kind ELSE p.owner_kind END
            AS controller_kind,
        CASE WHEN o.owner_kind IN ('Deployment', 'CronJob') THEN o.owner_uid ELSE p.owner_uid END
            AS controller_uid,
        CASE WHEN o.owner_kind IN ('Deployment', 'CronJob') THEN o.owner_name ELSE p.owner_name END
            AS controller_name
    FROM kubernetes_objects p
    LEFT JOIN kubernetes_objects o
        ON o.snapshot_time = p.snapshot_time AND o.cluster_id = p.cluster_id
        AND o.uid = p.owner_uid
    WHERE p.kind = 'pod'
) pods
