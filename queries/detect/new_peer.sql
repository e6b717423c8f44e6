-- name: new_peer
-- description: Sustained traffic the interface started with a public network it never talked to (inbound clients of public services are not counted)
-- chart: flows (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_flows int = 20: flows with the new network at least
-- param: min_hours int = 2: distinct hours of traffic with it at least
-- param: min_history int = 48: hours of baseline the interface needs
WITH peers AS (
  SELECT t.interface_id, max(t.account_id) AS account_id, max(t.vpc_id) AS vpc_id, t.remote_net,
         min(t.first_start) AS window_start, max(t.last_end) AS window_end,
         sum(t.records) AS flows, coalesce(sum(t.bytes), 0) AS bytes, count(DISTINCT t.hour) AS hours,
         array_slice(array_sort(array_agg(DISTINCT t.remote)), 1, 10) AS remote_addrs,
         array_slice(array_sort(array_agg(DISTINCT t.service_port)), 1, 10) AS ports
  FROM traffic t
  LEFT JOIN (SELECT DISTINCT interface_id, remote_net FROM base_peers) p
    ON p.interface_id = t.interface_id AND p.remote_net = t.remote_net
  JOIN base_enis e ON e.interface_id = t.interface_id
  -- A network the fleet started on together is a change (fleet_changes), not this interface's.
  LEFT JOIN fleet_changes c ON c.interface_id = t.interface_id AND c.remote_net = t.remote_net
  WHERE t.hour >= ${window_start} AND t.hour < ${window_end}
    AND t.action = 'ACCEPT' AND t.log_status = 'OK' AND t.public_remote
    AND t.service_side = 'remote' AND p.interface_id IS NULL AND c.interface_id IS NULL
    AND e.history_hours >= ${min_history}
  GROUP BY t.interface_id, t.remote_net
)
SELECT 'new_peer' AS kind, interface_id, account_id, vpc_id, window_start, window_end,
       CAST(flows AS DOUBLE) / ${min_flows} AS score,
       CASE WHEN bytes >= 100000000 THEN 'medium' ELSE 'low' END AS severity,
       concat(interface_id, ' talked to ', remote_net, ' (', array_to_string(remote_addrs, ', '), ') for ',
              CAST(hours AS VARCHAR), ' hours: ', CAST(flows AS VARCHAR), ' flows, ',
              CAST(round(bytes / 1e6, 1) AS VARCHAR), ' MB; it never talked to that network before') AS summary,
       CAST(flows AS DOUBLE) AS observed, 0.0 AS baseline, remote_addrs, ports,
       remote_net, hours, flows, bytes
FROM peers
WHERE flows >= ${min_flows} AND hours >= ${min_hours}
