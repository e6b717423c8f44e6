-- name: ssh_rdp_traffic
-- description: SSH (22) and RDP (3389) flows, accepted and rejected
-- param: limit int = 100: rows at most
SELECT interface_id, srcaddr, dstaddr, dstport, action,
       count(*) AS flows, sum(bytes) AS bytes
FROM flows
WHERE dstport IN (22, 3389) AND protocol = 6
GROUP BY interface_id, srcaddr, dstaddr, dstport, action
ORDER BY flows DESC NULLS LAST, interface_id, srcaddr, dstaddr, dstport, action
LIMIT ${limit}
