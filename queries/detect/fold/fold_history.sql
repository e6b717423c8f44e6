-- name: fold_history
-- description: A baseline's hourly metrics with new ones added (a day's, or a scheduled batch's). An hour met twice (a batch that ended mid-hour) adds up, except distinct sources, which keep the larger count; hours before keep_since are dropped
-- param: keep_since int: the first hour kept (Unix seconds)
SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, hour,
       max(hod) AS hod, bool_or(weekend) AS weekend, metric,
       CASE WHEN metric = 'in_sources' THEN max(value) ELSE sum(value) END AS value
FROM (SELECT * FROM old_history UNION ALL SELECT * FROM new_history) h
WHERE hour >= ${keep_since}
GROUP BY interface_id, hour, metric
