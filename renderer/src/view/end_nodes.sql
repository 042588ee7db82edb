-- end_nodes: each connection's two ends as the nodes they are in every view: the endpoint
-- (`<host_id>;<addr>;<port>`); the process (its id and name) and what it is in (container,
-- image, container hostname, pod, controller, or the pseudo node that stands in where it is
-- in none), all from its row of process_parents; the host, where known; and the pseudo node
-- of an end of no known host. An end whose process is unknown has none of these: the
-- process, container and Kubernetes views drop its edge.
--
-- An endpoint id carries its host even for a public address (Weave Scope leaves it out
-- there): the same address can belong to several hosts (a default bridge such as 172.17.0.1),
-- and loopback belongs to every host.
SELECT
    e.snapshot_time,
    e.client_pseudo,
    e.client_host_id || ';' || e.client_addr || ';' || CAST(e.client_port AS VARCHAR)
        AS client_endpoint,
    cq.id AS client_process,
    cq.name AS client_name,
    ch.id AS client_host,
    cq.container AS client_container,
    cq.image AS client_image,
    cq.container_hostname AS client_container_hostname,
    cq.uncontained AS client_uncontained,
    cq.pod AS client_pod,
    cq.controller AS client_controller,
    cq.unmanaged AS client_unmanaged,
    cq.unmanaged_id AS client_unmanaged_id,
    e.server_pseudo,
    e.server_host_id || ';' || e.server_addr || ';' || CAST(e.server_port AS VARCHAR)
        AS server_endpoint,
    sq.id AS server_process,
    sq.name AS server_name,
    sh.id AS server_host,
    sq.container AS server_container,
    sq.image AS server_image,
    sq.container_hostname AS server_container_hostname,
    sq.uncontained AS server_uncontained,
    sq.pod AS server_pod,
    sq.controller AS server_controller,
    sq.unmanaged AS server_unmanaged,
    sq.unmanaged_id AS server_unmanaged_id,
    e.server_port
FROM conn_ends e
LEFT JOIN process_parents cq
    ON cq.snapshot_time = e.snapshot_time AND cq.host_id = e.client_host_id AND cq.pid = e.client_pid
LEFT JOIN process_parents sq
    ON sq.snapshot_time = e.snapshot_time AND sq.host_id = e.server_host_id AND sq.pid = e.server_pid
LEFT JOIN host_info ch ON ch.snapshot_time = e.snapshot_time AND ch.host_id = e.client_host_id
LEFT JOIN host_info sh ON sh.snapshot_time = e.snapshot_time AND sh.host_id = e.server_host_id
