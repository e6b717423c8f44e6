-- name: rejected_traffic
-- description: All rejected flows per interface, protocol and destination port
-- param: limit int = 100: rows at most
SELECT interface_id, protocol, dstport, count(*) AS flows,
       count(DISTINCT srcaddr) AS sources, sum(packets) AS packets
FROM flows
WHERE action = 'REJECT'
GROUP BY interface_id, protocol, dstport
ORDER BY flows DESC NULLS LAST, interface_id, protocol, dstport
LIMIT ${limit}
