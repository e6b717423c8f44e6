-- name: base_peers
-- description: Each interface's usual remote peers, by address and network, with which side offered the service and how often they were seen. A peer is one the interface talked to: a remote whose every flow was rejected (a scanner, a blocked probe) is not one, so a network that probed first and is reached later is still new to it, and the peers a baseline keeps do not grow with the internet's scanners
-- param: since int: baseline start (Unix seconds)
-- param: until int: baseline end (Unix seconds)
SELECT interface_id, remote, remote_net, service_side,
       sum(records) AS flows, coalesce(sum(bytes), 0) AS bytes,
       count(DISTINCT hour) AS hours_seen, min(first_start) AS first_seen, max(last_end) AS last_seen
FROM traffic
WHERE hour >= ${since} AND hour < ${until} AND log_status = 'OK' AND action = 'ACCEPT' AND remote IS NOT NULL
GROUP BY interface_id, remote, remote_net, service_side
