-- name: beaconing
-- description: Regular, periodic small flows from an interface to one new remote address over hours: the pattern of malware calling home, with a fixed period or with jitter around it (most gaps within max_jitter_percent of the median gap)
-- chart: flows (the hourly metric a report draws beside these findings)
-- uses: ip_network (flowlens function)
-- param: min_count int = 20: connections at least
-- param: min_span int = 7200: seconds between the first and the last at least
-- param: max_avg_bytes int = 20000: average bytes per connection at most
-- param: max_cv_percent int = 15: spread of the gaps between connections (standard deviation over mean) at most, for a fixed period
-- param: max_jitter_percent int = 50: for a jittered period, the 10th and 90th percentile gaps within this percent of the median gap
-- param: min_history int = 24: hours of baseline the interface needs (to every address an interface without history is new)
WITH outbound AS (
  SELECT interface_id, account_id, vpc_id, remote, remote_port, start, bytes
  FROM recent
  WHERE direction = 'egress' AND public_remote AND remote_port IS NOT NULL
    AND (local_port > remote_port OR local_port IS NULL)
),
-- Series that could be beacons, by cheap measures first (enough calls, long enough, small,
-- to an address new to an interface with history, not a fleet change), so the gaps are
-- sorted and measured for those few only.
candidates AS (
  SELECT o.interface_id, o.remote, o.remote_port
  FROM outbound o
  JOIN base_enis e ON e.interface_id = o.interface_id AND e.history_hours >= ${min_history}
  LEFT JOIN (SELECT DISTINCT interface_id, remote FROM base_peers) p
    ON p.interface_id = o.interface_id AND p.remote = o.remote
  LEFT JOIN fleet_changes c ON c.interface_id = o.interface_id AND c.remote_net = ip_network(o.remote, 24, 48)
  WHERE p.interface_id IS NULL AND c.interface_id IS NULL
  GROUP BY o.interface_id, o.remote, o.remote_port
  HAVING count(*) >= ${min_count} AND max(o.start) - min(o.start) >= ${min_span}
     AND avg(o.bytes) <= ${max_avg_bytes}
),
calls AS (
  SELECT o.interface_id, o.account_id, o.vpc_id, o.remote, o.remote_port, o.start, o.bytes,
         o.start - lag(o.start) OVER (PARTITION BY o.interface_id, o.remote, o.remote_port ORDER BY o.start) AS gap
  FROM outbound o
  JOIN candidates c ON c.interface_id = o.interface_id AND c.remote = o.remote AND c.remote_port = o.remote_port
),
series AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, remote, remote_port,
         count(*) AS calls, min(start) AS first_call, max(start) AS last_call,
         avg(bytes) AS avg_bytes, avg(gap) AS mean_gap, stddev(gap) AS sd_gap,
         approx_percentile_cont(CAST(gap AS DOUBLE), 0.1) AS p10_gap,
         approx_percentile_cont(CAST(gap AS DOUBLE), 0.5) AS median_gap,
         approx_percentile_cont(CAST(gap AS DOUBLE), 0.9) AS p90_gap
  FROM calls GROUP BY interface_id, remote, remote_port
)
SELECT 'beaconing' AS kind, s.interface_id, s.account_id, s.vpc_id,
       s.first_call AS window_start, s.last_call AS window_end,
       s.calls / (1.0 + 10.0 * s.sd_gap / s.mean_gap) AS score,
       CASE WHEN s.sd_gap <= 0.05 * s.mean_gap THEN 'high' ELSE 'medium' END AS severity,
       concat(s.interface_id, ' called ', s.remote, ':', CAST(s.remote_port AS VARCHAR), ' ',
              CAST(s.calls AS VARCHAR), ' times every ', CAST(round(s.mean_gap) AS VARCHAR),
              ' s (standard deviation ', CAST(round(s.sd_gap, 1) AS VARCHAR), ' s) over ',
              CAST(round((s.last_call - s.first_call) / 3600.0, 1) AS VARCHAR), ' hours, ',
              CAST(round(s.avg_bytes) AS VARCHAR), ' bytes each; the address is new to it') AS summary,
       s.mean_gap AS observed, s.sd_gap AS baseline,
       make_array(s.remote) AS remote_addrs, make_array(s.remote_port) AS ports,
       s.calls, s.mean_gap AS period_seconds, s.sd_gap AS period_stddev, s.avg_bytes,
       CASE WHEN s.sd_gap * 100 <= ${max_cv_percent} * s.mean_gap THEN 'fixed' ELSE 'jittered' END AS period
FROM series s
WHERE s.mean_gap > 0
  AND (s.sd_gap * 100 <= ${max_cv_percent} * s.mean_gap
       OR (s.median_gap > 0 AND s.p10_gap * 100 >= (100 - ${max_jitter_percent}) * s.median_gap
           AND s.p90_gap * 100 <= (100 + ${max_jitter_percent}) * s.median_gap))
