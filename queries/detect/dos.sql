-- name: dos
-- description: Inbound flows far above the interface's usual for that hour of day, from many sources
-- chart: in_flows (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_flows int = 1000: inbound flows in the hour at least
-- param: min_sources int = 100: distinct sources in the hour at least
-- param: ratio int = 5: times the baseline median for that hour at least
-- param: over_max_percent int = 150: percent of the baseline's largest hour at least
-- param: min_score int = 10: robust z-score (MAD units) at least
-- param: min_history int = 24: hours of baseline the interface needs
WITH d AS (
  SELECT f.*, s.value AS sources,
         (f.value - f.median) / greatest(1.4826 * f.mad, 0.1 * f.median, 10.0) AS score
  FROM deviations f
  JOIN deviations s ON s.interface_id = f.interface_id AND s.hour = f.hour AND s.metric = 'in_sources'
  WHERE f.metric = 'in_flows'
),
hits AS (
  SELECT * FROM d
  WHERE history_hours >= ${min_history} AND value >= ${min_flows} AND sources >= ${min_sources}
    AND value >= ${ratio} * greatest(median, 1.0) AND value * 100 >= ${over_max_percent} * max
    AND score >= ${min_score}
),
by_source AS (
  SELECT r.interface_id, (r."end" / 3600) * 3600 AS hour, r.remote, count(*) AS n
  FROM recent r JOIN hits h ON h.interface_id = r.interface_id AND h.hour = (r."end" / 3600) * 3600
  WHERE r.direction = 'ingress'
  GROUP BY r.interface_id, (r."end" / 3600) * 3600, r.remote
),
by_port AS (
  SELECT r.interface_id, (r."end" / 3600) * 3600 AS hour, r.local_port, count(*) AS n
  FROM recent r JOIN hits h ON h.interface_id = r.interface_id AND h.hour = (r."end" / 3600) * 3600
  WHERE r.direction = 'ingress'
  GROUP BY r.interface_id, (r."end" / 3600) * 3600, r.local_port
),
top AS (
  SELECT s.interface_id, s.hour, s.remote_addrs, p.ports
  FROM (SELECT interface_id, hour, array_slice(array_agg(remote ORDER BY n DESC, remote), 1, 10) AS remote_addrs
        FROM by_source GROUP BY interface_id, hour) s
  JOIN (SELECT interface_id, hour, array_slice(array_agg(local_port ORDER BY n DESC, local_port), 1, 10) AS ports
        FROM by_port GROUP BY interface_id, hour) p
    ON p.interface_id = s.interface_id AND p.hour = s.hour
)
SELECT 'dos' AS kind, h.interface_id, h.account_id, h.vpc_id, h.hour AS window_start, h.hour + 3600 AS window_end,
       h.score, CASE WHEN h.value >= 20 * greatest(h.median, 1.0) THEN 'critical' ELSE 'high' END AS severity,
       concat(h.interface_id, ' received ', CAST(CAST(h.value AS BIGINT) AS VARCHAR), ' inbound flows from ',
              CAST(CAST(h.sources AS BIGINT) AS VARCHAR), ' sources in an hour; its baseline for that hour is ',
              CAST(CAST(h.median AS BIGINT) AS VARCHAR), ' (largest ', CAST(CAST(h.max AS BIGINT) AS VARCHAR), ')') AS summary,
       h.value AS observed, h.median AS baseline, t.remote_addrs, t.ports,
       h.sources, h.mad AS baseline_mad, h.max AS baseline_max, h.samples AS baseline_samples, h.basis AS baseline_basis
FROM hits h LEFT JOIN top t ON t.interface_id = h.interface_id AND t.hour = h.hour
