-- name: addr_shares
-- description: Per interface and address: the records it appears in (either side), the rollup rows it appears in, and the interface's records in all; local_addrs picks the interface's own addresses from these
SELECT c.interface_id, c.addr, c.n, c.rows_seen, t.total
FROM (
  SELECT interface_id, addr, sum(records) AS n, count(*) AS rows_seen
  FROM (
    SELECT interface_id, srcaddr AS addr, records FROM rollup WHERE srcaddr IS NOT NULL
    UNION ALL
    SELECT interface_id, dstaddr AS addr, records FROM rollup WHERE dstaddr IS NOT NULL
  ) sides
  GROUP BY interface_id, addr
) c
JOIN (
  SELECT interface_id, sum(records) AS total FROM rollup WHERE log_status = 'OK' GROUP BY interface_id
) t ON c.interface_id = t.interface_id
