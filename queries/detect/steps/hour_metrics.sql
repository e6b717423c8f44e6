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
-- One row per metric: the two arrays unnest side by side, so `h` is computed once (a UNION ALL
-- of seven SELECTs over `h` computed it seven times).
SELECT interface_id, account_id, vpc_id, hour, hod, weekend,
       unnest(make_array('flows', 'bytes', 'packets', 'in_flows', 'in_sources', 'out_public_bytes', 'rejects')) AS metric,
       unnest(make_array(flows, bytes, packets, in_flows, in_sources, out_public_bytes, rejects)) AS value
FROM h
