-- name: top_talkers
-- description: Address pairs that moved the most bytes
-- param: limit int = 20: rows at most
SELECT srcaddr, dstaddr, sum(bytes) AS bytes, sum(packets) AS packets, count(*) AS flows
FROM flows
WHERE log_status = 'OK'
GROUP BY srcaddr, dstaddr
ORDER BY bytes DESC NULLS LAST, srcaddr, dstaddr
LIMIT ${limit}
