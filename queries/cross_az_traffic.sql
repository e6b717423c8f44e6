-- name: cross_az_traffic
-- description: Bytes between private addresses in different availability zones (billed as cross-AZ), from interfaces whose format has az-id
-- uses: is_private_ip (flowlens function)
WITH addr_az AS (
  -- An interface's own address is the source of its egress records.
  SELECT DISTINCT srcaddr AS addr, az_id
  FROM flows
  WHERE az_id IS NOT NULL AND flow_direction = 'egress' AND is_private_ip(srcaddr)
)
SELECT src.az_id AS src_az, dst.az_id AS dst_az, sum(f.bytes) AS bytes, count(*) AS flows
FROM flows f
JOIN addr_az src ON f.srcaddr = src.addr
JOIN addr_az dst ON f.dstaddr = dst.addr
WHERE f.flow_direction = 'egress' AND src.az_id <> dst.az_id
GROUP BY src.az_id, dst.az_id
ORDER BY bytes DESC NULLS LAST, src_az, dst_az
