-- name: rollup
-- description: The one pass over the flows that baselines and detectors share: records per interface, hour, address pair and port pair (a client's ephemeral port folded to -1, with the lowest and highest port folded away, so `traffic` can tell a service above the ephemeral ports from a client's port)
-- param: since int: records ending at or after this Unix second
-- param: until int: records ending before this Unix second (each record counts in the hour it ends, so periods rolled up one after another never share a record)
SELECT interface_id, account_id, vpc_id, hour,
       srcaddr, dstaddr, sport, dport, protocol, action, log_status, flow_direction,
       count(*) AS records, sum(bytes) AS bytes, sum(packets) AS packets,
       min(start) AS first_start, max("end") AS last_end,
       min(folded) AS folded_low, max(folded) AS folded_high
FROM (
  SELECT interface_id, account_id, vpc_id, ("end" / 3600) * 3600 AS hour, srcaddr, dstaddr,
         -- A port above 1023 and above the other side's is taken for a client's ephemeral port:
         -- -1. Written as arithmetic (port - is_ephemeral * (port + 1)) rather than CASE, which
         -- evaluates 3x slower over 8 million rows; NULL ports stay NULL as with CASE.
         CAST(srcport AS BIGINT) - src_ephemeral * (CAST(srcport AS BIGINT) + 1) AS sport,
         CAST(dstport AS BIGINT) - dst_ephemeral * (CAST(dstport AS BIGINT) + 1) AS dport,
         -- The port folded away (at most one side is): a service above the clients' ports
         -- (gRPC on 50051, an exporter on 61001) is one value behind many -1 rows.
         CAST(srcport AS BIGINT) * src_ephemeral + CAST(dstport AS BIGINT) * dst_ephemeral AS folded,
         protocol, action, log_status, flow_direction, bytes, packets, start, "end"
  FROM (
    SELECT *,
           CAST(coalesce(srcport > dstport AND srcport > 1023, false) AS BIGINT) AS src_ephemeral,
           CAST(coalesce(dstport > srcport AND dstport > 1023, false) AS BIGINT) AS dst_ephemeral
    FROM flows
    WHERE "end" >= ${since} AND "end" < ${until} AND interface_id IS NOT NULL
  ) f
) t
-- An interface has one account and one VPC: grouping by them is cheaper than max() over strings
GROUP BY interface_id, account_id, vpc_id, hour, srcaddr, dstaddr, sport, dport, protocol, action, log_status, flow_direction
