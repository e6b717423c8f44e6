-- name: nacl_return_reject
-- description: The stateless network ACL mistake: an interface's outbound requests are accepted but the replies to its ephemeral ports (1024-65535) are rejected
-- chart: rejects (the hourly metric a report draws beside these findings)
-- param: min_rejects int = 5: rejected replies from one peer and port at least
SELECT 'nacl_return_reject' AS kind, o.interface_id, max(o.account_id) AS account_id, max(o.vpc_id) AS vpc_id,
       min(i.start) AS window_start, max(i."end") AS window_end,
       CAST(count(*) AS DOUBLE) / ${min_rejects} AS score, 'medium' AS severity,
       concat('Replies from ', o.remote, ':', CAST(o.remote_port AS VARCHAR), ' to ', o.interface_id,
              ' were rejected ', CAST(count(*) AS VARCHAR), ' times on ',
              CAST(count(DISTINCT i.local_port) AS VARCHAR),
              ' ephemeral ports while its requests were accepted: a network ACL likely lacks an inbound rule for ports 1024-65535') AS summary,
       CAST(count(*) AS DOUBLE) AS observed, 0.0 AS baseline,
       make_array(o.remote) AS remote_addrs, make_array(o.remote_port) AS ports,
       count(DISTINCT i.local_port) AS ephemeral_ports
FROM recent o
JOIN recent i
  ON i.interface_id = o.interface_id AND i.remote = o.remote
 AND i.remote_port = o.remote_port AND i.local_port = o.local_port
WHERE o.direction = 'egress' AND o.action = 'ACCEPT'
  AND i.direction = 'ingress' AND i.action = 'REJECT'
  AND i.local_port BETWEEN 1024 AND 65535
GROUP BY o.interface_id, o.remote, o.remote_port
HAVING count(*) >= ${min_rejects}
