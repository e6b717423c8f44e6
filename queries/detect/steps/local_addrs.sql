-- name: local_addrs
-- description: Each interface's own addresses. On its own side a record carries the interface's primary private address, so that address is in every rollup row of the interface's IPv4 traffic and no other address is in more rows. Another address in a large share of records is its own too (its IPv6 address, say) only if it seldom meets the primary: a busy peer, such as the load balancer in front of a server or an attacker in a short batch, meets it in nearly every record
-- param: min_share int = 20: percent of the interface's records an own address appears in
WITH candidates AS (
  SELECT interface_id, addr, n,
         row_number() OVER (PARTITION BY interface_id ORDER BY rows_seen DESC, n DESC, addr) AS rank
  FROM addr_shares
  WHERE n * 100 >= ${min_share} * total
),
-- Records between each candidate and the interface's primary address, from either side.
met AS (
  SELECT r.interface_id, o.addr, r.records
  FROM rollup r
  JOIN candidates p ON p.interface_id = r.interface_id AND p.addr = r.srcaddr AND p.rank = 1
  JOIN candidates o ON o.interface_id = r.interface_id AND o.addr = r.dstaddr
  UNION ALL
  SELECT r.interface_id, o.addr, r.records
  FROM rollup r
  JOIN candidates p ON p.interface_id = r.interface_id AND p.addr = r.dstaddr AND p.rank = 1
  JOIN candidates o ON o.interface_id = r.interface_id AND o.addr = r.srcaddr
)
SELECT c.interface_id, c.addr
FROM candidates c
LEFT JOIN (SELECT interface_id, addr, sum(records) AS n FROM met GROUP BY interface_id, addr) m
  ON m.interface_id = c.interface_id AND m.addr = c.addr
WHERE c.rank = 1 OR coalesce(m.n, 0) * 2 < c.n
