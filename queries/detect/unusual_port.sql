-- name: unusual_port
-- description: Accepted traffic on a protocol and port the interface has no history of, as a service it offers or one it uses (GuardDuty's NetworkPortUnusual); known-bad ports rank higher
-- chart: flows (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_flows int = 4: flows on the new port at least
-- param: known_bad ints = 3333,4444,5555,6666,6667,6697,14444,14433,45560,1080,31337,4443: ports of mining pools, IRC, shells and proxies
-- param: min_history int = 48: hours of baseline the interface needs
WITH seen AS (
  SELECT t.interface_id, max(t.account_id) AS account_id, max(t.vpc_id) AS vpc_id,
         t.protocol, t.service_side, t.service_port,
         min(t.first_start) AS window_start, max(t.last_end) AS window_end,
         sum(t.records) AS flows, coalesce(sum(t.bytes), 0) AS bytes,
         bool_or(t.public_remote) AS public_remote,
         array_slice(array_sort(array_agg(DISTINCT t.remote)), 1, 10) AS remote_addrs
  FROM traffic t
  LEFT JOIN base_ports p
    ON p.interface_id = t.interface_id AND p.protocol = t.protocol
   AND p.service_side = t.service_side AND p.service_port = t.service_port
  JOIN base_enis e ON e.interface_id = t.interface_id
  LEFT JOIN fleet_changes c ON c.interface_id = t.interface_id AND c.remote_net = t.remote_net
  WHERE t.hour >= ${window_start} AND t.hour < ${window_end}
    AND t.action = 'ACCEPT' AND t.log_status = 'OK'
    AND t.service_port IS NOT NULL AND t.service_port >= 0
    AND p.interface_id IS NULL AND e.history_hours >= ${min_history} AND c.interface_id IS NULL
  GROUP BY t.interface_id, t.protocol, t.service_side, t.service_port
)
SELECT 'unusual_port' AS kind, interface_id, account_id, vpc_id, window_start, window_end,
       CAST(flows AS DOUBLE) / ${min_flows} AS score,
       CASE WHEN service_port IN (${known_bad}) THEN 'high'
            WHEN public_remote THEN 'medium' ELSE 'low' END AS severity,
       concat(interface_id, CASE service_side WHEN 'remote' THEN ' used ' ELSE ' served ' END,
              protocol_name(protocol), ' port ', CAST(service_port AS VARCHAR),
              CASE service_side WHEN 'remote' THEN ' on ' ELSE ' to ' END,
              array_to_string(remote_addrs, ', '), ' (', CAST(flows AS VARCHAR),
              ' flows), a port it has no history of',
              CASE WHEN service_port IN (${known_bad}) THEN ' and one common for malware' ELSE '' END) AS summary,
       CAST(flows AS DOUBLE) AS observed, 0.0 AS baseline, remote_addrs,
       make_array(service_port) AS ports, service_side, protocol, flows, bytes
FROM seen
WHERE flows >= ${min_flows}
