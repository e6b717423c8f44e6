-- name: top_talking_subnets
-- description: Subnets that moved the most bytes (needs subnet-id in the format)
-- param: limit int = 20: rows at most
SELECT subnet_id, vpc_id, sum(bytes) AS bytes, sum(packets) AS packets, count(*) AS flows
FROM flows
WHERE subnet_id IS NOT NULL
GROUP BY subnet_id, vpc_id
ORDER BY bytes DESC NULLS LAST, subnet_id
LIMIT ${limit}
