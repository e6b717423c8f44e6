-- name: exfiltration
-- description: Bytes sent to public addresses far above the interface's usual for that hour, mostly to networks it never talked to (Panther: bytes z > 3 with unusual destinations); or, spread over many hours each below that, bytes to new networks over the whole window far above the interface's usual day (slow exfiltration)
-- chart: out_public_bytes (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_bytes int = 100000000: bytes to public addresses in the hour at least
-- param: ratio int = 5: times the baseline median for that hour at least
-- param: over_max_percent int = 150: percent of the baseline's largest hour at least
-- param: min_score int = 6: robust z-score (MAD units) at least
-- param: min_new_percent int = 50: share of the bytes going to networks not in the baseline
-- param: min_history int = 24: hours of baseline the interface needs
-- param: slow_min_bytes int = 250000000: bytes to new public networks over the window at least, for slow exfiltration
-- param: slow_min_hours int = 3: hours the bytes to one new address are spread over at least
-- param: min_days int = 3: days of baseline the daily comparison needs
WITH d AS (
  SELECT *, (value - median) / greatest(1.4826 * mad, 0.1 * median, 1000000.0) AS score
  FROM deviations WHERE metric = 'out_public_bytes'
),
dest AS (
  SELECT t.interface_id, t.hour, t.remote, t.remote_net, sum(t.bytes) AS bytes,
         max(t.service_port) AS port, bool_and(p.remote_net IS NULL) AS new_network
  FROM traffic t
  LEFT JOIN (SELECT DISTINCT interface_id, remote_net FROM base_peers) p
    ON p.interface_id = t.interface_id AND p.remote_net = t.remote_net
  WHERE t.hour >= ${window_start} AND t.hour < ${window_end}
    AND t.direction = 'egress' AND t.public_remote AND t.bytes > 0
  GROUP BY t.interface_id, t.hour, t.remote, t.remote_net
),
per_hour AS (
  SELECT interface_id, hour, sum(bytes) FILTER (WHERE new_network) AS new_bytes,
         array_slice(array_agg(remote ORDER BY bytes DESC, remote), 1, 10) AS remote_addrs,
         array_slice(array_sort(array_agg(DISTINCT port)), 1, 10) AS ports,
         array_slice(array_agg(remote ORDER BY bytes DESC, remote) FILTER (WHERE new_network), 1, 10) AS new_addrs
  FROM dest GROUP BY interface_id, hour
),
hourly AS (
SELECT 'exfiltration' AS kind, d.interface_id, d.account_id, d.vpc_id, d.hour AS window_start, d.hour + 3600 AS window_end,
       d.score,
       CASE WHEN coalesce(p.new_bytes, 0) >= 1000000000 THEN 'critical' ELSE 'high' END AS severity,
       concat(d.interface_id, ' sent ', CAST(round(d.value / 1e6, 1) AS VARCHAR), ' MB to public addresses in an hour, ',
              CAST(round(coalesce(p.new_bytes, 0) / 1e6, 1) AS VARCHAR), ' MB of it to networks it never talked to (',
              array_to_string(p.new_addrs, ', '), '); its baseline for that hour is ',
              CAST(round(d.median / 1e6, 1) AS VARCHAR), ' MB (largest ', CAST(round(d.max / 1e6, 1) AS VARCHAR), ' MB)') AS summary,
       d.value AS observed, d.median AS baseline, p.remote_addrs, p.ports,
       p.new_addrs, coalesce(p.new_bytes, 0) AS new_bytes, d.mad AS baseline_mad, d.max AS baseline_max,
       d.samples AS baseline_samples, d.basis AS baseline_basis, 'fast' AS pace
FROM d JOIN per_hour p ON p.interface_id = d.interface_id AND p.hour = d.hour
WHERE d.history_hours >= ${min_history} AND d.value >= ${min_bytes}
  AND d.value >= ${ratio} * greatest(d.median, 1.0) AND d.value * 100 >= ${over_max_percent} * d.max
  AND d.score >= ${min_score}
  AND coalesce(p.new_bytes, 0) * 100 >= ${min_new_percent} * d.value
),
-- The interface's days in its baseline: bytes to public addresses per day.
daily AS (
  SELECT interface_id, median(bytes) AS median, max(bytes) AS max, count(*) AS days
  FROM (SELECT interface_id, hour / 86400 AS day, sum(value) AS bytes FROM history
        WHERE metric = 'out_public_bytes' AND hour < ${window_start} GROUP BY interface_id, hour / 86400) x
  GROUP BY interface_id
),
new_remotes AS (
  SELECT d.interface_id, d.remote, sum(d.bytes) AS bytes, count(DISTINCT d.hour) AS hours,
         min(d.hour) AS first_hour, max(d.hour) AS last_hour, max(d.port) AS port
  FROM dest d LEFT JOIN fleet_changes c ON c.interface_id = d.interface_id AND c.remote_net = d.remote_net
  WHERE d.new_network AND c.interface_id IS NULL GROUP BY d.interface_id, d.remote
),
spread AS (
  SELECT interface_id, sum(bytes) AS new_bytes, max(hours) AS hours,
         min(first_hour) AS first_hour, max(last_hour) + 3600 AS last_hour,
         array_slice(array_agg(remote ORDER BY bytes DESC, remote), 1, 10) AS new_addrs,
         array_slice(array_sort(array_agg(DISTINCT port)), 1, 10) AS ports
  FROM new_remotes GROUP BY interface_id
),
slow AS (
  SELECT 'exfiltration' AS kind, s.interface_id, e.account_id, e.vpc_id, s.first_hour AS window_start, s.last_hour AS window_end,
         s.new_bytes / greatest(${ratio} * y.median, ${over_max_percent} * y.max / 100.0, 1000000.0) AS score,
         CASE WHEN s.new_bytes >= 1000000000 THEN 'critical' ELSE 'high' END AS severity,
         concat(s.interface_id, ' sent ', CAST(round(s.new_bytes / 1e6, 1) AS VARCHAR), ' MB to networks it never talked to (',
                array_to_string(s.new_addrs, ', '), ') spread over ', CAST(s.hours AS VARCHAR),
                ' hours, no hour of it unusual alone; its usual day sends ', CAST(round(y.median / 1e6, 1) AS VARCHAR),
                ' MB to public addresses (largest ', CAST(round(y.max / 1e6, 1) AS VARCHAR), ' MB over ',
                CAST(y.days AS VARCHAR), ' days)') AS summary,
         CAST(s.new_bytes AS DOUBLE) AS observed, y.median AS baseline, s.new_addrs AS remote_addrs, s.ports,
         s.new_addrs, s.new_bytes, CAST(NULL AS DOUBLE) AS baseline_mad, y.max AS baseline_max,
         y.days AS baseline_samples, 'daily' AS baseline_basis, 'slow' AS pace
  FROM spread s
  JOIN daily y ON y.interface_id = s.interface_id
  JOIN base_enis e ON e.interface_id = s.interface_id
  LEFT JOIN (SELECT DISTINCT interface_id FROM hourly) h ON h.interface_id = s.interface_id
  WHERE h.interface_id IS NULL AND e.history_hours >= ${min_history} AND y.days >= ${min_days}
    AND s.hours >= ${slow_min_hours} AND s.new_bytes >= ${slow_min_bytes}
    AND s.new_bytes >= ${ratio} * y.median AND s.new_bytes * 100 >= ${over_max_percent} * y.max
)
SELECT * FROM hourly
UNION ALL
SELECT * FROM slow
