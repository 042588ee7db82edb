-- containers: one node per container, `<container_id>;<container>`, a hexagon, labelled as
-- container_info.sql says, with its processes as children (their `parent_containers`).
-- Stopped containers are nodes too; the API hides them unless asked (`?stopped=`), as Scope.
SELECT
    c.snapshot_time,
    'containers' AS view,
    c.id,
    c.label,
    c.label_minor,
    c.image AS rank,
    'hexagon' AS shape,
    false AS pseudo,
    c.host_id AS meta_host_id,
    c.container_id AS meta_docker_container_id,
    c.image AS meta_docker_image_name,
    c.image_tag AS meta_docker_image_tag,
    c.image_id AS meta_docker_image_id,
    c.state AS meta_docker_container_state,
    c.hostname AS meta_docker_container_hostname,
    c.runtime AS meta_container_runtime,
    array_to_string(c.ips, ', ') AS meta_docker_container_ips,
    array_to_string(c.ports, ', ') AS meta_docker_container_ports,
    c.pod_name AS meta_kubernetes_pod_name,
    c.pod_namespace AS meta_kubernetes_namespace,
    CASE WHEN c.system THEN 'true' END AS meta_system,
    c.labels AS "meta_docker_label_*",
    c.cpu_usage_percent AS metric_docker_cpu_total_usage,
    CAST(c.memory_usage_bytes AS DOUBLE) AS metric_docker_memory_usage,
    COALESCE(n.connections, 0.0) AS metric_connections_count,
    c.host_id || ';<host>' AS parent_hosts,
    c.image || ';<container_image>' AS "parent_containers-by-image"
FROM container_info c
LEFT JOIN view_node_connections n ON n.snapshot_time = c.snapshot_time AND n.node = c.id
ORDER BY c.id
