-- The pseudo nodes at the ends of one view's edges (`view_edges`), labelled as Weave Scope
-- does: the Internet is a cloud, an unknown address a circle labelled with the address.
SELECT DISTINCT
    snapshot_time,
    "view",
    id,
    CASE WHEN id IN ('in-theinternet', 'out-theinternet') THEN 'The Internet'
         ELSE substr(id, 2) END AS label,
    CASE id WHEN 'in-theinternet' THEN 'Inbound connections'
            WHEN 'out-theinternet' THEN 'Outbound connections'
            ELSE '' END AS label_minor,
    CASE WHEN id IN ('in-theinternet', 'out-theinternet') THEN id
         ELSE substr(id, 2) END AS rank,
    CASE WHEN id IN ('in-theinternet', 'out-theinternet') THEN 'cloud'
         ELSE 'circle' END AS shape,
    true AS pseudo
FROM (
    SELECT snapshot_time, "view", src AS id FROM view_edges WHERE src_pseudo
    UNION ALL
    SELECT snapshot_time, "view", dst AS id FROM view_edges WHERE dst_pseudo
) ends
ORDER BY id
