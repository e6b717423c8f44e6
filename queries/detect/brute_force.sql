-- name: brute_force
-- description: Many sessions or attempts from one remote address to a remote-access port (SSH, RDP, WinRM) in an hour, far above the interface's busiest remote for that port in its baseline
-- chart: in_flows (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: ports ints = 22,3389,5985,5986: remote-access ports
-- param: min_attempts int = 30: attempts from one address in one hour at least
-- param: factor int = 5: times the baseline's busiest single remote in an hour
SELECT 'brute_force' AS kind, t.interface_id, max(t.account_id) AS account_id, max(t.vpc_id) AS vpc_id,
       t.hour AS window_start, t.hour + 3600 AS window_end,
       CAST(sum(t.records) AS DOUBLE) / greatest(CAST(${min_attempts} AS DOUBLE), ${factor} * CAST(coalesce(max(p.max_remote_hour_flows), 0) AS DOUBLE)) AS score,
       CASE WHEN sum(t.records) FILTER (WHERE t.action = 'ACCEPT') > 0 THEN 'high' ELSE 'medium' END AS severity,
       concat(t.remote, ' made ', CAST(sum(t.records) AS VARCHAR), ' attempts on port ',
              CAST(t.local_port AS VARCHAR), ' of ', t.interface_id, ' in an hour (',
              CAST(coalesce(sum(t.records) FILTER (WHERE t.action = 'ACCEPT'), 0) AS VARCHAR),
              ' accepted); the busiest address in its baseline made ',
              CAST(coalesce(max(p.max_remote_hour_flows), 0) AS VARCHAR), ' in an hour') AS summary,
       CAST(sum(t.records) AS DOUBLE) AS observed,
       CAST(coalesce(max(p.max_remote_hour_flows), 0) AS DOUBLE) AS baseline,
       make_array(t.remote) AS remote_addrs, make_array(t.local_port) AS ports,
       coalesce(sum(t.records) FILTER (WHERE t.action = 'ACCEPT'), 0) AS accepted
FROM traffic t
LEFT JOIN base_ports p
  ON p.interface_id = t.interface_id AND p.protocol = t.protocol
 AND p.service_side = 'local' AND p.service_port = t.local_port
WHERE t.hour >= ${window_start} AND t.hour < ${window_end}
  AND t.direction = 'ingress' AND t.protocol = 6 AND t.local_port IN (${ports})
  AND t.log_status = 'OK'
GROUP BY t.interface_id, t.hour, t.remote, t.local_port
HAVING sum(t.records) >= greatest(${min_attempts}, ${factor} * coalesce(max(p.max_remote_hour_flows), 0))
