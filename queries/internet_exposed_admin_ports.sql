-- name: internet_exposed_admin_ports
-- description: SSH, RDP and database ports that accepted connections from public addresses
-- param: ports ints = 22,3389,1433,1521,3306,5432,5984,6379,9200,11211,27017: administration and database ports
-- uses: is_private_ip (flowlens function)
SELECT interface_id, dstaddr, dstport,
       count(DISTINCT srcaddr) AS public_sources, count(*) AS flows, sum(bytes) AS bytes,
       min(start) AS first_start, max("end") AS last_end
FROM flows
WHERE action = 'ACCEPT' AND dstport IN (${ports})
  AND NOT is_private_ip(srcaddr) AND is_private_ip(dstaddr)
GROUP BY interface_id, dstaddr, dstport
ORDER BY public_sources DESC NULLS LAST, interface_id, dstport
