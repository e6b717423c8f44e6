-- name: nat_gateway_top_consumers
-- description: Private sources sending the most bytes to the internet through NAT gateways (interfaces whose resource-id is nat-…, or the one given)
-- param: interface text = '': a NAT gateway's interface id (default: every interface with a nat-… resource-id)
-- param: limit int = 20: rows at most
-- uses: is_private_ip (flowlens function)
SELECT interface_id,
       CASE WHEN pkt_srcaddr IS NOT NULL AND pkt_srcaddr <> srcaddr THEN pkt_srcaddr ELSE srcaddr END AS source,
       sum(bytes) AS bytes, count(DISTINCT dstaddr) AS destinations, count(*) AS flows
FROM flows
WHERE (interface_id = ${interface} OR (${interface} = '' AND resource_id LIKE 'nat-%'))
  AND NOT is_private_ip(dstaddr)
  AND is_private_ip(CASE WHEN pkt_srcaddr IS NOT NULL AND pkt_srcaddr <> srcaddr THEN pkt_srcaddr ELSE srcaddr END)
GROUP BY 1, 2
ORDER BY bytes DESC NULLS LAST, interface_id, source
LIMIT ${limit}
