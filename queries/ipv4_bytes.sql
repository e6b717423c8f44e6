-- name: ipv4_bytes
-- description: Bytes and flows over IPv4, per interface
SELECT interface_id, count(*) AS flows, sum(bytes) AS bytes
FROM flows
WHERE srcaddr LIKE '%.%'
GROUP BY interface_id
ORDER BY bytes DESC NULLS LAST, interface_id
