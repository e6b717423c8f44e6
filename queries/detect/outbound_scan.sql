-- name: outbound_scan
-- description: The interface itself opening connections to many distinct remote addresses on one port (a sweep) or to many ports of one remote (a vertical scan), far above the number of remote services it usually opens in that hour; a sweep of private addresses on a remote-access or file-sharing port is lateral movement and is named so (GuardDuty's Recon:EC2/Portscan, Impact:EC2/PortSweep)
-- chart: out_targets (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_targets int = 100: distinct remote address and port pairs the interface opened in the hour at least
-- param: ratio int = 5: times the baseline median for that hour at least
-- param: over_max_percent int = 150: percent of the baseline's largest hour (for that hour of day, and for any hour of that day type) at least
-- param: min_score int = 10: robust z-score (MAD units) at least
-- param: min_history int = 24: hours of baseline the interface needs
-- param: lateral_ports ints = 22,135,139,445,3389,5985,5986: ports a sweep of private addresses on is lateral movement
-- uses: is_private_ip (flowlens function)
WITH d AS (
  SELECT *, (value - median) / greatest(1.4826 * mad, 0.1 * median, 5.0) AS score
  FROM deviations WHERE metric = 'out_targets'
),
hits AS (
  SELECT * FROM d
  WHERE history_hours >= ${min_history} AND value >= ${min_targets}
    AND value >= ${ratio} * greatest(median, 1.0) AND value * 100 >= ${over_max_percent} * max
    -- Bursts at a different hour every day (CI jobs, image pulls) are the interface's usual
    -- day: beyond its usual hour, a hit must pass the largest hour of its whole day type.
    AND value * 100 >= ${over_max_percent} * coalesce(day_max, max)
    AND score >= ${min_score}
),
opened AS (
  SELECT r.interface_id, h.hour, r.remote, r.remote_port, r.action
  FROM recent r JOIN hits h ON h.interface_id = r.interface_id AND h.hour = (r."end" / 3600) * 3600
  WHERE r.direction = 'egress' AND r.remote_port IS NOT NULL
    AND (r.local_port IS NULL OR r.local_port > r.remote_port OR r.local_port > 1023)
),
-- The widest sweep (one port, most addresses) and the deepest scan (one address, most ports).
sweep AS (
  SELECT interface_id, hour, remote_port, count(DISTINCT remote) AS remotes,
         bool_and(is_private_ip(remote)) AS private,
         array_slice(array_sort(array_agg(DISTINCT remote)), 1, 10) AS sample,
         row_number() OVER (PARTITION BY interface_id, hour ORDER BY count(DISTINCT remote) DESC, remote_port) AS pick
  FROM opened GROUP BY interface_id, hour, remote_port
),
deep AS (
  SELECT interface_id, hour, remote, count(DISTINCT remote_port) AS ports,
         array_slice(array_sort(array_agg(DISTINCT remote_port)), 1, 25) AS sample,
         row_number() OVER (PARTITION BY interface_id, hour ORDER BY count(DISTINCT remote_port) DESC, remote) AS pick
  FROM opened GROUP BY interface_id, hour, remote
),
shaped AS (
  SELECT h.*, s.remote_port AS sweep_port, s.remotes AS sweep_remotes, s.private AS sweep_private,
         s.sample AS sweep_sample, p.remote AS deep_remote, p.ports AS deep_ports, p.sample AS deep_sample,
         coalesce(s.remotes, 0) >= coalesce(p.ports, 0) AS horizontal
  FROM hits h
  LEFT JOIN sweep s ON s.interface_id = h.interface_id AND s.hour = h.hour AND s.pick = 1
  LEFT JOIN deep p ON p.interface_id = h.interface_id AND p.hour = h.hour AND p.pick = 1
)
SELECT 'outbound_scan' AS kind, interface_id, account_id, vpc_id, hour AS window_start, hour + 3600 AS window_end,
       score,
       CASE WHEN horizontal AND sweep_private AND sweep_port IN (${lateral_ports}) THEN 'high'
            WHEN value >= 20 * greatest(median, 1.0) THEN 'high' ELSE 'medium' END AS severity,
       CASE WHEN horizontal THEN
              concat(interface_id, ' opened port ', CAST(sweep_port AS VARCHAR), ' on ', CAST(sweep_remotes AS VARCHAR),
                     CASE WHEN sweep_private THEN ' private' ELSE '' END, ' addresses in an hour (',
                     CAST(CAST(value AS BIGINT) AS VARCHAR), ' remote services in all; its baseline for that hour is ',
                     CAST(CAST(median AS BIGINT) AS VARCHAR), ', largest ', CAST(CAST(max AS BIGINT) AS VARCHAR), ')',
                     CASE WHEN sweep_private AND sweep_port IN (${lateral_ports})
                          THEN ': a sweep for hosts to move to (lateral movement)' ELSE ': a sweep' END)
            ELSE
              concat(interface_id, ' opened ', CAST(deep_ports AS VARCHAR), ' ports of ', deep_remote, ' in an hour (',
                     CAST(CAST(value AS BIGINT) AS VARCHAR), ' remote services in all; its baseline for that hour is ',
                     CAST(CAST(median AS BIGINT) AS VARCHAR), ', largest ', CAST(CAST(max AS BIGINT) AS VARCHAR),
                     '): a port scan of that host')
       END AS summary,
       value AS observed, median AS baseline,
       CASE WHEN horizontal THEN sweep_sample ELSE make_array(deep_remote) END AS remote_addrs,
       CASE WHEN horizontal THEN make_array(sweep_port) ELSE deep_sample END AS ports,
       CASE WHEN horizontal THEN 'horizontal' ELSE 'vertical' END AS shape,
       CASE WHEN horizontal THEN sweep_remotes ELSE deep_ports END AS breadth,
       horizontal AND coalesce(sweep_private, false) AND sweep_port IN (${lateral_ports}) AS lateral_movement,
       mad AS baseline_mad, max AS baseline_max, samples AS baseline_samples, basis AS baseline_basis
FROM shaped
