-- name: base_hours
-- description: The baseline of each interface's hourly volumes: median, median absolute deviation and maximum per metric, for each hour of day on weekdays and weekends (hod = -1: all hours of that day type)
-- param: since int: baseline start (Unix seconds)
-- param: until int: baseline end (Unix seconds)
WITH b AS (
  SELECT * FROM history WHERE hour >= ${since} AND hour < ${until}
),
slot AS (
  SELECT interface_id, weekend, hod, metric, median(value) AS median, max(value) AS max, count(*) AS n
  FROM b GROUP BY interface_id, weekend, hod, metric
),
slot_mad AS (
  SELECT b.interface_id, b.weekend, b.hod, b.metric, median(abs(b.value - s.median)) AS mad
  FROM b JOIN slot s
    ON s.interface_id = b.interface_id AND s.weekend = b.weekend AND s.hod = b.hod AND s.metric = b.metric
  GROUP BY b.interface_id, b.weekend, b.hod, b.metric
),
day AS (
  SELECT interface_id, weekend, metric, median(value) AS median, max(value) AS max, count(*) AS n
  FROM b GROUP BY interface_id, weekend, metric
),
day_mad AS (
  SELECT b.interface_id, b.weekend, b.metric, median(abs(b.value - d.median)) AS mad
  FROM b JOIN day d ON d.interface_id = b.interface_id AND d.weekend = b.weekend AND d.metric = b.metric
  GROUP BY b.interface_id, b.weekend, b.metric
)
SELECT s.interface_id, s.weekend, s.hod, s.metric, s.median, m.mad, s.max, s.n
FROM slot s JOIN slot_mad m
  ON m.interface_id = s.interface_id AND m.weekend = s.weekend AND m.hod = s.hod AND m.metric = s.metric
UNION ALL
SELECT d.interface_id, d.weekend, CAST(-1 AS BIGINT) AS hod, d.metric, d.median, m.mad, d.max, d.n
FROM day d JOIN day_mad m ON m.interface_id = d.interface_id AND m.weekend = d.weekend AND m.metric = d.metric
