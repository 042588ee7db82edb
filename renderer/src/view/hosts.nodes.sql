-- hosts: one node per host, `<host_id>;<host>`, a circle.
SELECT
    snapshot_time,
    'hosts' AS view,
    id,
    label,
    label_minor,
    label_minor AS rank,
    'circle' AS shape,
    false AS pseudo,
    name AS meta_host_name,
    os AS meta_os,
    kernel_version AS meta_kernel_version,
    tracker_mode AS meta_tracker_mode
FROM host_info
ORDER BY id
