-- name: base_peers
-- description: Each interface's usual remote peers, by address and network, with which side offered the service and how often they were seen
-- param: since int: baseline start (Unix seconds)
-- param: until int: baseline end (Unix seconds)
SELECT interface_id, remote, remote_net, service_side,
       sum(records) AS flows, coalesce(sum(bytes), 0) AS bytes,
       count(DISTINCT hour) AS hours_seen, min(first_start) AS first_seen, max(last_end) AS last_seen
FROM traffic
WHERE hour >= ${since} AND hour < ${until} AND log_status = 'OK' AND remote IS NOT NULL
GROUP BY interface_id, remote, remote_net, service_side
