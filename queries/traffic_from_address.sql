-- name: traffic_from_address
-- description: Flows sent by one address, per destination and port
-- param: addr text: the source address (IPv4 or IPv6, as logged)
-- param: limit int = 100: rows at most
SELECT interface_id, dstaddr, dstport, protocol, action,
       count(*) AS flows, sum(bytes) AS bytes, min(start) AS first_start, max("end") AS last_end
FROM flows
WHERE srcaddr = ${addr}
GROUP BY interface_id, dstaddr, dstport, protocol, action
ORDER BY bytes DESC NULLS LAST, interface_id, dstaddr, dstport, protocol, action
LIMIT ${limit}
