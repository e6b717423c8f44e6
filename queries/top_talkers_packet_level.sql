-- name: top_talkers_packet_level
-- description: Packet-level address pairs (pkt-srcaddr, pkt-dstaddr: the addresses behind NAT gateways, TGW and EKS pods) that moved the most bytes
-- param: limit int = 20: rows at most
SELECT pkt_srcaddr, pkt_dstaddr, sum(bytes) AS bytes, sum(packets) AS packets, count(*) AS flows
FROM flows
WHERE pkt_srcaddr IS NOT NULL AND pkt_dstaddr IS NOT NULL
GROUP BY pkt_srcaddr, pkt_dstaddr
ORDER BY bytes DESC NULLS LAST, pkt_srcaddr, pkt_dstaddr
LIMIT ${limit}
