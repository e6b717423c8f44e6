-- name: traffic_to_address
-- description: Flows received by one address, per source and port
-- param: addr text: the destination address (IPv4 or IPv6, as logged)
-- param: limit int = 100: rows at most
SELECT interface_id, srcaddr, dstport, protocol, action,
       count(*) AS flows, sum(bytes) AS bytes, min(start) AS first_start, max("end") AS last_end
FROM flows
WHERE dstaddr = ${addr}
GROUP BY interface_id, srcaddr, dstport, protocol, action
ORDER BY bytes DESC NULLS LAST, interface_id, srcaddr, dstport, protocol, action
LIMIT ${limit}
