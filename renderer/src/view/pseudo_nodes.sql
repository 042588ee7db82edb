-- The pseudo nodes at the ends of one view's edges (`view_edges`), labelled as Weave Scope
-- labels the Internet: a cloud, "The Internet" with the direction as minor label. A local
-- network's pseudo node (`;<cidr>`, see conn_ends.sql) stands for machines of that network
-- that run no collector: a cloud too, since it is a group of unseen peers as the Internet is,
-- labelled with its CIDR and "Local network", ranked by the CIDR.
SELECT DISTINCT
    snapshot_time,
    "view",
    id,
    CASE WHEN id IN ('in-theinternet', 'out-theinternet') THEN 'The Internet'
         ELSE substr(id, 2) END AS label,
    CASE id WHEN 'in-theinternet' THEN 'Inbound connections'
            WHEN 'out-theinternet' THEN 'Outbound connections'
            ELSE 'Local network' END AS label_minor,
    CASE WHEN id IN ('in-theinternet', 'out-theinternet') THEN id
         ELSE substr(id, 2) END AS rank,
    'cloud' AS shape,
    true AS pseudo
FROM (
    SELECT snapshot_time, "view", src AS id FROM view_edges WHERE src_pseudo
    UNION ALL
    SELECT snapshot_time, "view", dst AS id FROM view_edges WHERE dst_pseudo
) ends
ORDER BY id
