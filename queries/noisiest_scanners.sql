-- name: noisiest_scanners
-- description: Public addresses with the most rejected flows, and how widely they probed
-- param: limit int = 20: rows at most
-- uses: is_private_ip (flowlens function)
SELECT srcaddr, count(*) AS rejected_flows, count(DISTINCT dstport) AS ports,
       count(DISTINCT interface_id) AS interfaces, min(start) AS first_start, max("end") AS last_end
FROM flows
WHERE action = 'REJECT' AND NOT is_private_ip(srcaddr)
GROUP BY srcaddr
ORDER BY rejected_flows DESC NULLS LAST, srcaddr
LIMIT ${limit}
