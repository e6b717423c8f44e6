-- name: exfiltration
-- description: Bytes sent to public addresses far above the interface's usual for that hour, mostly to networks it never talked to (Panther: bytes z > 3 with unusual destinations)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_bytes int = 100000000: bytes to public addresses in the hour at least
-- param: ratio int = 5: times the baseline median for that hour at least
-- param: over_max_percent int = 150: percent of the baseline's largest hour at least
-- param: min_score int = 6: robust z-score (MAD units) at least
-- param: min_new_percent int = 50: share of the bytes going to networks not in the baseline
-- param: min_history int = 24: hours of baseline the interface needs
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
)
SELECT 'exfiltration' AS kind, d.interface_id, d.account_id, d.vpc_id, d.hour AS window_start, d.hour + 3600 AS window_end,
       d.score,
       CASE WHEN coalesce(p.new_bytes, 0) >= 1000000000 THEN 'critical' ELSE 'high' END AS severity,
       concat(d.interface_id, ' sent ', CAST(round(d.value / 1e6, 1) AS VARCHAR), ' MB to public addresses in an hour, ',
              CAST(round(coalesce(p.new_bytes, 0) / 1e6, 1) AS VARCHAR), ' MB of it to networks it never talked to (',
              array_to_string(p.new_addrs, ', '), '); its baseline for that hour is ',
              CAST(round(d.median / 1e6, 1) AS VARCHAR), ' MB (largest ', CAST(round(d.max / 1e6, 1) AS VARCHAR), ' MB)') AS summary,
       d.value AS observed, d.median AS baseline, p.remote_addrs, p.ports,
       p.new_addrs, coalesce(p.new_bytes, 0) AS new_bytes, d.mad AS baseline_mad, d.max AS baseline_max,
       d.samples AS baseline_samples, d.basis AS baseline_basis
FROM d JOIN per_hour p ON p.interface_id = d.interface_id AND p.hour = d.hour
WHERE d.history_hours >= ${min_history} AND d.value >= ${min_bytes}
  AND d.value >= ${ratio} * greatest(d.median, 1.0) AND d.value * 100 >= ${over_max_percent} * d.max
  AND d.score >= ${min_score}
  AND coalesce(p.new_bytes, 0) * 100 >= ${min_new_percent} * d.value
