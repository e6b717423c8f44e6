-- name: hour_metrics
-- description: Per interface and hour, the volumes baselines learn and detectors compare (long form: one row per metric)
WITH h AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, hour,
         max(hod) AS hod, bool_or(weekend) AS weekend,
         CAST(coalesce(sum(records) FILTER (WHERE log_status = 'OK'), 0) AS DOUBLE) AS flows,
         CAST(coalesce(sum(bytes), 0) AS DOUBLE) AS bytes,
         CAST(coalesce(sum(packets), 0) AS DOUBLE) AS packets,
         CAST(coalesce(sum(records) FILTER (WHERE direction = 'ingress' AND log_status = 'OK'), 0) AS DOUBLE) AS in_flows,
         CAST(count(DISTINCT remote) FILTER (WHERE direction = 'ingress' AND log_status = 'OK') AS DOUBLE) AS in_sources,
         CAST(coalesce(sum(bytes) FILTER (WHERE direction = 'egress' AND public_remote), 0) AS DOUBLE) AS out_public_bytes,
         CAST(coalesce(sum(records) FILTER (WHERE action = 'REJECT'), 0) AS DOUBLE) AS rejects
  FROM traffic
  GROUP BY interface_id, hour
)
SELECT interface_id, account_id, vpc_id, hour, hod, weekend, 'flows' AS metric, flows AS value FROM h
UNION ALL SELECT interface_id, account_id, vpc_id, hour, hod, weekend, 'bytes', bytes FROM h
UNION ALL SELECT interface_id, account_id, vpc_id, hour, hod, weekend, 'packets', packets FROM h
UNION ALL SELECT interface_id, account_id, vpc_id, hour, hod, weekend, 'in_flows', in_flows FROM h
UNION ALL SELECT interface_id, account_id, vpc_id, hour, hod, weekend, 'in_sources', in_sources FROM h
UNION ALL SELECT interface_id, account_id, vpc_id, hour, hod, weekend, 'out_public_bytes', out_public_bytes FROM h
UNION ALL SELECT interface_id, account_id, vpc_id, hour, hod, weekend, 'rejects', rejects FROM h
