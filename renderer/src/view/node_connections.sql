-- view_node_connections: per node of one view, the connections at either end of its edges
-- (`view_edges`), a self-edge counted once: the nodes' `connections_count` metric.
SELECT snapshot_time, node, CAST(SUM(connections) AS DOUBLE) AS connections
FROM (
    SELECT snapshot_time, src AS node, connections FROM view_edges
    UNION ALL
    SELECT snapshot_time, dst AS node, connections FROM view_edges WHERE dst <> src
) ends
GROUP BY snapshot_time, node
