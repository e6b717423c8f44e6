-- name: base_ports
-- description: Each interface's usual services: protocol and port, offered locally or used remotely, in accepted traffic; with the busiest single remote's flows in an hour
-- param: since int: baseline start (Unix seconds)
-- param: until int: baseline end (Unix seconds)
WITH per_remote_hour AS (
  SELECT interface_id, protocol, service_side, service_port, remote, hour, sum(records) AS flows
  FROM traffic
  WHERE hour >= ${since} AND hour < ${until} AND log_status = 'OK' AND action = 'ACCEPT'
    AND service_port IS NOT NULL AND service_port >= 0
  GROUP BY interface_id, protocol, service_side, service_port, remote, hour
)
SELECT interface_id, protocol, service_side, service_port,
       sum(flows) AS flows, count(DISTINCT hour) AS hours_seen,
       max(flows) AS max_remote_hour_flows
FROM per_remote_hour
GROUP BY interface_id, protocol, service_side, service_port
