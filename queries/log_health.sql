-- name: log_health
-- description: Per interface: records, NODATA intervals (no traffic) and SKIPDATA records (records lost), first and last time seen
SELECT interface_id,
       count(*) FILTER (WHERE log_status = 'OK') AS ok_records,
       count(*) FILTER (WHERE log_status = 'NODATA') AS nodata,
       count(*) FILTER (WHERE log_status = 'SKIPDATA') AS skipdata,
       min(start) AS first_start, max("end") AS last_end
FROM flows
GROUP BY interface_id
ORDER BY skipdata DESC NULLS LAST, nodata DESC, interface_id
