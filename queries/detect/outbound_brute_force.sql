-- name: outbound_brute_force
-- description: Many short sessions from the interface to a remote-access port (SSH, RDP, WinRM) of one remote in an hour, far above the busiest remote it reached on that port in its baseline: a taken-over instance guessing passwords elsewhere (GuardDuty's UnauthorizedAccess:EC2/SSHBruteForce, outbound)
-- chart: flows (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: ports ints = 22,3389,5985,5986: remote-access ports
-- param: min_attempts int = 30: sessions to one address in one hour at least
-- param: factor int = 5: times the baseline's busiest single remote on that port in an hour
-- param: max_avg_bytes int = 50000: average bytes per session at most (logins, not file copies)
-- param: min_history int = 24: hours of baseline the interface needs (a new CI runner's git clones have none to compare with)
SELECT 'outbound_brute_force' AS kind, t.interface_id, max(t.account_id) AS account_id, max(t.vpc_id) AS vpc_id,
       t.hour AS window_start, t.hour + 3600 AS window_end,
       CAST(sum(t.records) AS DOUBLE) / greatest(CAST(${min_attempts} AS DOUBLE), ${factor} * CAST(coalesce(max(p.max_remote_hour_flows), 0) AS DOUBLE)) AS score,
       CASE WHEN NOT bool_or(t.public_remote) THEN 'high' ELSE 'medium' END AS severity,
       concat(t.interface_id, ' opened ', CAST(sum(t.records) AS VARCHAR), ' sessions to port ',
              CAST(t.remote_port AS VARCHAR), ' of ', t.remote, ' in an hour (',
              CAST(round(coalesce(sum(t.bytes), 0) / sum(t.records)) AS VARCHAR),
              ' bytes each on average); the busiest address it reached on that port in its baseline took ',
              CAST(coalesce(max(p.max_remote_hour_flows), 0) AS VARCHAR), ' in an hour',
              CASE WHEN NOT bool_or(t.public_remote) THEN ' (an internal host: lateral movement)' ELSE '' END) AS summary,
       CAST(sum(t.records) AS DOUBLE) AS observed,
       CAST(coalesce(max(p.max_remote_hour_flows), 0) AS DOUBLE) AS baseline,
       make_array(t.remote) AS remote_addrs, make_array(t.remote_port) AS ports,
       sum(t.records) AS sessions, coalesce(sum(t.bytes), 0) AS bytes,
       coalesce(sum(t.records) FILTER (WHERE t.action = 'REJECT'), 0) AS rejected
FROM traffic t
JOIN base_enis e ON e.interface_id = t.interface_id AND e.history_hours >= ${min_history}
LEFT JOIN base_ports p
  ON p.interface_id = t.interface_id AND p.protocol = t.protocol
 AND p.service_side = 'remote' AND p.service_port = t.remote_port
WHERE t.hour >= ${window_start} AND t.hour < ${window_end}
  AND t.direction = 'egress' AND t.protocol = 6 AND t.service_side = 'remote' AND t.remote_port IN (${ports})
  AND t.log_status = 'OK'
GROUP BY t.interface_id, t.hour, t.remote, t.remote_port
HAVING sum(t.records) >= greatest(${min_attempts}, ${factor} * coalesce(max(p.max_remote_hour_flows), 0))
   AND coalesce(sum(t.bytes), 0) <= ${max_avg_bytes} * sum(t.records)
