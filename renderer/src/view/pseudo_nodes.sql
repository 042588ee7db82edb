-- The pseudo nodes at the ends of one view's edges (`view_edges`), labelled as Weave Scope
-- labels the Internet: a cloud, "The Internet" with the direction as minor label. A local
-- network's pseudo node (`;<cidr>`, see conn_ends.sql) stands for machines of that network
-- that run no collector: a cloud too, since it is a group of unseen peers as the Internet is,
-- labelled with its CIDR and "Local network", ranked by the CIDR. A host's "Uncontained"
-- node (`pseudo:uncontained:<host_id>`, container views) stands for its processes in no
-- container: a square, as the processes it groups, with the host id as minor label; its
-- "Unmanaged" node (`pseudo:unmanaged:<host_id>`, Kubernetes views) likewise for what runs
-- in no pod (or, in the services view, in no service).
SELECT DISTINCT
    snapshot_time,
    "view",
    id,
    CASE WHEN id IN ('in-theinternet', 'out-theinternet') THEN 'The Internet'
         WHEN starts_with(id, 'pseudo:uncontained:') THEN 'Uncontained'
         WHEN starts_with(id, 'pseudo:unmanaged:') THEN 'Unmanaged'
         ELSE substr(id, 2) END AS label,
    CASE WHEN id = 'in-theinternet' THEN 'Inbound connections'
         WHEN id = 'out-theinternet' THEN 'Outbound connections'
         WHEN starts_with(id, 'pseudo:uncontained:') THEN substr(id, 20)
         WHEN starts_with(id, 'pseudo:unmanaged:') THEN substr(id, 18)
         ELSE 'Local network' END AS label_minor,
    CASE WHEN id IN ('in-theinternet', 'out-theinternet') THEN id
         WHEN starts_with(id, 'pseudo:uncontained:') THEN 'uncontained'
         WHEN starts_with(id, 'pseudo:unmanaged:') THEN 'unmanaged'
         ELSE substr(id, 2) END AS rank,
    CASE WHEN starts_with(id, 'pseudo:') THEN 'square' ELSE 'cloud' END AS shape,
    true AS pseudo
FROM (
    SELECT snapshot_time, "view", src AS id FROM view_edges WHERE src_pseudo
    UNION ALL
    SELECT snapshot_time, "view", dst AS id FROM view_edges WHERE dst_pseudo
) ends
ORDER BY id
