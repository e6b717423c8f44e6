-- name: rejected_by_eni_port_hourly
-- description: Rejected flows per interface and destination port, hour by hour (hour as Unix seconds)
-- param: min_flows int = 1: hide hours with fewer rejected flows
SELECT interface_id, dstport, ("end" / 3600) * 3600 AS hour,
       count(*) AS flows, count(DISTINCT srcaddr) AS sources
FROM flows
WHERE action = 'REJECT'
GROUP BY interface_id, dstport, ("end" / 3600) * 3600
HAVING count(*) >= ${min_flows}
ORDER BY interface_id, dstport, hour
