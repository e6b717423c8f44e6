-- name: accepted_tcp_traffic
-- description: Accepted TCP flows: who reached which port, with volumes
-- param: limit int = 100: rows at most
SELECT interface_id, srcaddr, dstaddr, dstport,
       count(*) AS flows, sum(packets) AS packets, sum(bytes) AS bytes
FROM flows
WHERE action = 'ACCEPT' AND protocol = 6
GROUP BY interface_id, srcaddr, dstaddr, dstport
ORDER BY bytes DESC NULLS LAST, interface_id, srcaddr, dstaddr, dstport
LIMIT ${limit}
