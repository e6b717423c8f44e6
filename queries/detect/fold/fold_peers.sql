-- name: fold_peers
-- description: A baseline's peers with new ones added. The hours summed are distinct, because what is folded never overlaps what was (a day or batch is folded once)
SELECT interface_id, remote, remote_net, service_side, sum(flows) AS flows,
       sum(bytes) AS bytes, sum(hours_seen) AS hours_seen,
       min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM (SELECT * FROM old_peers UNION ALL SELECT * FROM new_peers) p
GROUP BY interface_id, remote, remote_net, service_side
