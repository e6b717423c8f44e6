-- name: dns_anomaly
-- description: DNS from the interface to a resolver it never used (not its usual resolvers; the VPC's own resolver is not in flow logs at all), or far more DNS to one resolver in an hour than its baseline's busiest: tunnelling and exfiltration over DNS (GuardDuty's Trojan:EC2/DNSDataExfiltration). A resolver that many interfaces start using in the same hour is a configuration change, not a finding
-- chart: flows (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: ports ints = 53,853: DNS and DNS over TLS
-- param: min_flows int = 20: flows to a new resolver in the window at least
-- param: min_volume int = 500: flows to one resolver in an hour at least, for a volume anomaly
-- param: factor int = 5: times the baseline's busiest resolver hour, for a volume anomaly
-- param: min_history int = 48: hours of baseline the interface needs
-- param: fleet_min_interfaces int = 3: interfaces starting with the same new resolver in the same hour that make it a change
WITH dns AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, remote, hour,
         sum(records) AS flows, coalesce(sum(bytes), 0) AS bytes,
         min(first_start) AS first_start, max(last_end) AS last_end,
         bool_or(public_remote) AS public_remote, max(service_port) AS port
  FROM traffic
  WHERE hour >= ${window_start} AND hour < ${window_end}
    AND direction = 'egress' AND service_side = 'remote' AND service_port IN (${ports})
    AND protocol IN (6, 17) AND log_status = 'OK' AND remote IS NOT NULL
  GROUP BY interface_id, remote, hour
),
per_remote AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, remote,
         sum(flows) AS flows, sum(bytes) AS bytes, max(flows) AS peak_flows,
         min(first_start) AS first_start, max(last_end) AS last_end, min(hour) AS first_hour,
         count(*) AS hours, bool_or(public_remote) AS public_remote, max(port) AS port
  FROM dns GROUP BY interface_id, remote
),
judged AS (
  SELECT r.*, k.interface_id IS NULL AS new_resolver, coalesce(b.busiest, 0) AS base_peak
  FROM per_remote r
  JOIN base_enis e ON e.interface_id = r.interface_id AND e.history_hours >= ${min_history}
  LEFT JOIN (SELECT DISTINCT interface_id, remote FROM base_peers) k
    ON k.interface_id = r.interface_id AND k.remote = r.remote
  LEFT JOIN (SELECT interface_id, max(max_remote_hour_flows) AS busiest FROM base_ports
             WHERE service_side = 'remote' AND service_port IN (${ports}) GROUP BY interface_id) b
    ON b.interface_id = r.interface_id
),
fleet AS (
  SELECT remote, first_hour, count(DISTINCT interface_id) AS interfaces
  FROM judged WHERE new_resolver GROUP BY remote, first_hour
),
found AS (
  SELECT j.*,
         j.new_resolver AND j.flows >= ${min_flows} AND coalesce(f.interfaces, 0) < ${fleet_min_interfaces} AS unusual_resolver,
         j.peak_flows >= ${min_volume} AND j.peak_flows >= ${factor} * j.base_peak AS volume
  FROM judged j LEFT JOIN fleet f ON f.remote = j.remote AND f.first_hour = j.first_hour
)
SELECT 'dns_anomaly' AS kind, interface_id, account_id, vpc_id, first_start AS window_start, last_end AS window_end,
       CASE WHEN volume THEN CAST(peak_flows AS DOUBLE) / greatest(${min_volume}, ${factor} * base_peak)
            ELSE CAST(flows AS DOUBLE) / ${min_flows} END AS score,
       CASE WHEN volume AND new_resolver THEN 'high' WHEN volume OR public_remote THEN 'medium' ELSE 'low' END AS severity,
       concat(interface_id, ' sent ', CAST(flows AS VARCHAR), ' DNS flows (', CAST(round(bytes / 1e3, 1) AS VARCHAR),
              ' kB) to ', remote, ':', CAST(port AS VARCHAR), ' over ', CAST(hours AS VARCHAR), ' hours',
              CASE WHEN new_resolver THEN ', a resolver it never used before' ELSE '' END,
              CASE WHEN volume THEN concat('; up to ', CAST(peak_flows AS VARCHAR), ' in an hour, against ',
                                           CAST(base_peak AS VARCHAR), ' to its busiest resolver in its baseline (tunnelling?)')
                   ELSE '' END) AS summary,
       CAST(flows AS DOUBLE) AS observed, CAST(base_peak AS DOUBLE) AS baseline,
       make_array(remote) AS remote_addrs, make_array(port) AS ports,
       new_resolver, peak_flows, bytes, hours
FROM found
WHERE unusual_resolver OR volume
