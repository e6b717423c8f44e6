-- name: top_talking_instances
-- description: Instances that moved the most bytes (needs instance-id in the format)
-- param: limit int = 20: rows at most
SELECT instance_id, sum(bytes) AS bytes, sum(packets) AS packets, count(*) AS flows
FROM flows
WHERE instance_id IS NOT NULL
GROUP BY instance_id
ORDER BY bytes DESC NULLS LAST, instance_id
LIMIT ${limit}
