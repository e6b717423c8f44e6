-- name: base_enis
-- description: How much history the baseline has for each interface (from the baseline's hourly metrics)
-- param: since int: baseline start (Unix seconds)
-- param: until int: baseline end (Unix seconds)
SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id,
       count(DISTINCT hour) AS history_hours, min(hour) AS first_hour, max(hour) + 3600 AS last_hour
FROM history
WHERE hour >= ${since} AND hour < ${until} AND metric = 'flows'
GROUP BY interface_id
