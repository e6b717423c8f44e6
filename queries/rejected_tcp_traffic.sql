-- name: rejected_tcp_traffic
-- description: Rejected TCP flows by source and destination port
-- param: limit int = 100: rows at most
SELECT interface_id, srcaddr, dstport, count(*) AS flows, sum(packets) AS packets
FROM flows
WHERE action = 'REJECT' AND protocol = 6
GROUP BY interface_id, srcaddr, dstport
ORDER BY flows DESC NULLS LAST, interface_id, srcaddr, dstport
LIMIT ${limit}
