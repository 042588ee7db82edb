-- containers-by-image: one node per image (without its tag), `<image>;<container_image>`, a
-- stack of hexagons labelled "1 container" / "N containers", over all hosts, as Scope.
SELECT
    snapshot_time,
    'containers-by-image' AS view,
    image || ';<container_image>' AS id,
    image AS label,
    CASE WHEN COUNT(*) = 1 THEN '1 container'
         ELSE CAST(COUNT(*) AS VARCHAR) || ' containers' END AS label_minor,
    image AS rank,
    'hexagon' AS shape,
    false AS pseudo,
    image AS meta_docker_image_name,
    CASE WHEN bool_and(system) THEN 'true' END AS meta_system
FROM container_info
WHERE state <> 'exited'
GROUP BY snapshot_time, image
ORDER BY id
