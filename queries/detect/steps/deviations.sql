-- name: deviations
-- description: Each hour of the detection window next to the baseline for the same interface, metric, day type and hour of day (or all hours of that day type when the hour has fewer than min_samples days)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_samples int = 3: days an hour-of-day slot needs before it is used on its own
SELECT w.interface_id, w.account_id, w.vpc_id, w.hour, w.metric, w.value,
       COALESCE(s.median, d.median) AS median,
       COALESCE(s.mad, d.mad) AS mad,
       COALESCE(s.max, d.max) AS max,
       d.max AS day_max,
       -- What the baseline compares with: the same hour of day on earlier days (samples
       -- are days), or every hour of the day type when that slot has too few (samples are
       -- hours).
       COALESCE(s.n, d.n, 0) AS samples,
       CASE WHEN s.n IS NOT NULL THEN 'hour_of_day' ELSE 'day_type' END AS basis,
       COALESCE(e.history_hours, 0) AS history_hours
FROM hour_metrics w
LEFT JOIN base_hours s
  ON s.interface_id = w.interface_id AND s.weekend = w.weekend AND s.hod = w.hod
 AND s.metric = w.metric AND s.n >= ${min_samples}
LEFT JOIN base_hours d
  ON d.interface_id = w.interface_id AND d.weekend = w.weekend AND d.hod = -1 AND d.metric = w.metric
LEFT JOIN base_enis e ON e.interface_id = w.interface_id
WHERE w.hour >= ${window_start} AND w.hour < ${window_end}
