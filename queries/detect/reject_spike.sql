-- name: reject_spike
-- description: Rejected flows of an interface far above its usual for that hour of day: a security group or network ACL change blocking legitimate traffic, or an attack
-- chart: rejects (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_rejects int = 100: rejected flows in the hour at least
-- param: ratio int = 5: times the baseline median for that hour at least
-- param: over_max_percent int = 150: percent of the baseline's largest hour at least
-- param: min_score int = 10: robust z-score (MAD units) at least
-- param: min_history int = 24: hours of baseline the interface needs
WITH d AS (
  SELECT *, (value - median) / greatest(1.4826 * mad, 0.1 * median, 5.0) AS score
  FROM deviations WHERE metric = 'rejects'
),
hits AS (
  SELECT * FROM d
  WHERE history_hours >= ${min_history} AND value >= ${min_rejects}
    AND value >= ${ratio} * greatest(median, 1.0) AND value * 100 >= ${over_max_percent} * max
    AND score >= ${min_score}
),
rejected AS (
  SELECT interface_id, hour, remote, local_port, records FROM traffic
  WHERE hour >= ${window_start} AND hour < ${window_end} AND action = 'REJECT'
),
top AS (
  SELECT r.interface_id, r.hour, r.remote_addrs, p.ports
  FROM (SELECT interface_id, hour, array_slice(array_agg(remote ORDER BY n DESC, remote), 1, 10) AS remote_addrs
        FROM (SELECT interface_id, hour, remote, sum(records) AS n FROM rejected GROUP BY interface_id, hour, remote) x
        GROUP BY interface_id, hour) r
  JOIN (SELECT interface_id, hour, array_slice(array_agg(local_port ORDER BY n DESC, local_port), 1, 10) AS ports
        FROM (SELECT interface_id, hour, local_port, sum(records) AS n FROM rejected GROUP BY interface_id, hour, local_port) y
        GROUP BY interface_id, hour) p
    ON p.interface_id = r.interface_id AND p.hour = r.hour
)
SELECT 'reject_spike' AS kind, h.interface_id, h.account_id, h.vpc_id, h.hour AS window_start, h.hour + 3600 AS window_end,
       h.score, CASE WHEN h.value >= 20 * greatest(h.median, 1.0) THEN 'high' ELSE 'medium' END AS severity,
       concat(h.interface_id, ' rejected ', CAST(CAST(h.value AS BIGINT) AS VARCHAR),
              ' flows in an hour; its baseline for that hour is ', CAST(CAST(h.median AS BIGINT) AS VARCHAR),
              ' (largest ', CAST(CAST(h.max AS BIGINT) AS VARCHAR), ')') AS summary,
       h.value AS observed, h.median AS baseline, t.remote_addrs, t.ports,
       h.mad AS baseline_mad, h.max AS baseline_max, h.samples AS baseline_samples, h.basis AS baseline_basis
FROM hits h LEFT JOIN top t ON t.interface_id = h.interface_id AND t.hour = h.hour
