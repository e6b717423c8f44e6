-- name: egress_to_public
-- description: Bytes each interface sent to public addresses, and to how many
-- uses: is_private_ip (flowlens function)
SELECT interface_id, sum(bytes) AS bytes, count(DISTINCT dstaddr) AS destinations, count(*) AS flows
FROM flows
WHERE action = 'ACCEPT' AND is_private_ip(srcaddr) AND NOT is_private_ip(dstaddr)
GROUP BY interface_id
ORDER BY bytes DESC NULLS LAST, interface_id
