-- name: hour_metrics
-- description: Per interface and hour, the volumes baselines learn and detectors compare (long form: one row per metric)
WITH h AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, hour,
         max(hod) AS hod, bool_or(weekend) AS weekend,
         CAST(coalesce(sum(records) FILTER (WHERE log_status = 'OK'), 0) AS DOUBLE) AS flows,
         CAST(coalesce(sum(bytes), 0) AS DOUBLE) AS bytes,
         CAST(coalesce(sum(packets), 0) AS DOUBLE) AS packets,
         CAST(coalesce(sum(records) FILTER (WHERE direction = 'ingress' AND log_status = 'OK'), 0) AS DOUBLE) AS in_flows,
         CAST(coalesce(sum(bytes) FILTER (WHERE direction = 'egress' AND public_remote), 0) AS DOUBLE) AS out_public_bytes,
         CAST(coalesce(sum(records) FILTER (WHERE action = 'REJECT'), 0) AS DOUBLE) AS rejects,
         -- Services the interface itself opened: its rows with a remote service are distinct
         -- remote address and port pairs (its own port folded away), give or take accepted
         -- and rejected; a sweep or a vertical scan is hundreds of them in an hour.
         CAST(count(*) FILTER (WHERE direction = 'egress' AND service_side = 'remote' AND log_status = 'OK') AS DOUBLE) AS out_targets
  FROM traffic
  GROUP BY interface_id, hour
),
-- Per remote address in the hour, once for both: the sources that reached the interface
-- (counted; a DISTINCT per hour kept a set of strings for each) and the most packets it
-- sent to any one remote (a flood).
remotes AS (
  SELECT interface_id, hour,
         CAST(count(*) FILTER (WHERE ingress) AS DOUBLE) AS in_sources,
         max(out_packets) AS top_out_packets
  FROM (SELECT interface_id, hour, remote,
               bool_or(direction = 'ingress') AS ingress,
               sum(packets) FILTER (WHERE direction = 'egress') AS out_packets
        FROM traffic
        WHERE direction IN ('ingress', 'egress') AND log_status = 'OK' AND remote IS NOT NULL
        GROUP BY interface_id, hour, remote) r
  GROUP BY interface_id, hour
)
-- One row per metric: the two arrays unnest side by side, so `h` is computed once (a UNION ALL
-- of nine SELECTs over `h` computed it nine times).
SELECT h.interface_id, h.account_id, h.vpc_id, h.hour, h.hod, h.weekend,
       unnest(make_array('flows', 'bytes', 'packets', 'in_flows', 'in_sources', 'out_public_bytes', 'rejects',
                         'out_targets', 'top_out_packets')) AS metric,
       unnest(make_array(h.flows, h.bytes, h.packets, h.in_flows, coalesce(t.in_sources, 0), h.out_public_bytes,
                         h.rejects, h.out_targets, CAST(coalesce(t.top_out_packets, 0) AS DOUBLE))) AS value
FROM h LEFT JOIN remotes t ON t.interface_id = h.interface_id AND t.hour = h.hour
