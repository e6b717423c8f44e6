-- name: local_addrs
-- description: Each interface's own addresses: those on one side of a large share of its records (its primary private address is in every record)
-- param: min_share int = 20: percent of the interface's records an own address appears in
WITH sides AS (
  SELECT interface_id, srcaddr AS addr, records FROM rollup WHERE srcaddr IS NOT NULL
  UNION ALL
  SELECT interface_id, dstaddr AS addr, records FROM rollup WHERE dstaddr IS NOT NULL
),
totals AS (
  SELECT interface_id, sum(records) AS total FROM rollup WHERE log_status = 'OK' GROUP BY interface_id
),
counts AS (
  SELECT interface_id, addr, sum(records) AS n FROM sides GROUP BY interface_id, addr
)
SELECT c.interface_id, c.addr
FROM counts c JOIN totals t ON c.interface_id = t.interface_id
WHERE c.n * 100 >= ${min_share} * t.total
