-- name: volume_spike
-- description: Bytes, packets or flows of an interface far above its usual for that hour of day (the largest deviation of the three)
-- chart: bytes (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: ratio int = 5: times the baseline median for that hour at least
-- param: over_max_percent int = 150: percent of the baseline's largest hour at least
-- param: min_score int = 10: robust z-score (MAD units) at least
-- param: min_bytes int = 100000000: bytes in the hour at least, for a bytes spike
-- param: min_packets int = 100000: packets in the hour at least, for a packets spike
-- param: min_flows int = 1000: flows in the hour at least, for a flows spike
-- param: min_history int = 24: hours of baseline the interface needs
WITH d AS (
  SELECT *,
         (value - median) / greatest(1.4826 * mad, 0.1 * median,
            CASE metric WHEN 'bytes' THEN 1000000.0 WHEN 'packets' THEN 1000.0 ELSE 10.0 END) AS score
  FROM deviations
  WHERE metric IN ('bytes', 'packets', 'flows')
),
hits AS (
  SELECT *, row_number() OVER (PARTITION BY interface_id, hour ORDER BY score DESC, metric) AS pick
  FROM d
  WHERE history_hours >= ${min_history}
    AND value >= ${ratio} * greatest(median, 1.0) AND value * 100 >= ${over_max_percent} * max
    -- A burst that comes at a different hour every day (image pulls, CI jobs, a batch
    -- worker's odd upload) is within the interface's usual day, not its usual hour: a spike
    -- must also pass the largest hour of its whole day type.
    AND value * 100 >= ${over_max_percent} * coalesce(day_max, max)
    AND score >= ${min_score}
    AND value >= CASE metric WHEN 'bytes' THEN ${min_bytes} WHEN 'packets' THEN ${min_packets} ELSE ${min_flows} END
),
window_traffic AS (
  SELECT interface_id, hour, remote, service_port, bytes FROM traffic
  WHERE hour >= ${window_start} AND hour < ${window_end} AND remote IS NOT NULL
),
top AS (
  SELECT r.interface_id, r.hour, r.remote_addrs, p.ports
  FROM (SELECT interface_id, hour, array_slice(array_agg(remote ORDER BY bytes DESC, remote), 1, 10) AS remote_addrs
        FROM (SELECT interface_id, hour, remote, coalesce(sum(bytes), 0) AS bytes FROM window_traffic
              GROUP BY interface_id, hour, remote) x
        GROUP BY interface_id, hour) r
  JOIN (SELECT interface_id, hour, array_slice(array_agg(service_port ORDER BY bytes DESC, service_port), 1, 10) AS ports
        FROM (SELECT interface_id, hour, service_port, coalesce(sum(bytes), 0) AS bytes FROM window_traffic
              WHERE service_port IS NOT NULL GROUP BY interface_id, hour, service_port) y
        GROUP BY interface_id, hour) p
    ON p.interface_id = r.interface_id AND p.hour = r.hour
)
SELECT 'volume_spike' AS kind, h.interface_id, h.account_id, h.vpc_id, h.hour AS window_start, h.hour + 3600 AS window_end,
       h.score, CASE WHEN h.score >= 50 THEN 'medium' ELSE 'low' END AS severity,
       concat(h.interface_id, ' moved ', CAST(CAST(h.value AS BIGINT) AS VARCHAR), ' ', h.metric,
              ' in an hour; its baseline for that hour is ', CAST(CAST(h.median AS BIGINT) AS VARCHAR),
              ' (largest ', CAST(CAST(h.max AS BIGINT) AS VARCHAR), ')') AS summary,
       h.value AS observed, h.median AS baseline, t.remote_addrs, t.ports,
       h.metric, h.mad AS baseline_mad, h.max AS baseline_max, h.samples AS baseline_samples, h.basis AS baseline_basis
FROM hits h LEFT JOIN top t ON t.interface_id = h.interface_id AND t.hour = h.hour
WHERE h.pick = 1
