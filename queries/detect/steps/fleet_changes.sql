-- name: fleet_changes
-- description: Networks that several interfaces started to reach in the same hour of the detection window, none of which had reached them before: a deployment or a configuration change across the fleet, not a compromise of each. Detectors of new peers, new ports and beacons leave these out, and detect names them in its warnings
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_interfaces int = 3: interfaces starting on the same network in the same hour at least
WITH firsts AS (
  SELECT t.interface_id, t.remote_net, min(t.hour) AS first_hour
  FROM traffic t
  LEFT JOIN (SELECT DISTINCT interface_id, remote_net FROM base_peers) p
    ON p.interface_id = t.interface_id AND p.remote_net = t.remote_net
  WHERE t.hour >= ${window_start} AND t.hour < ${window_end}
    AND t.direction = 'egress' AND t.service_side = 'remote' AND t.action = 'ACCEPT'
    AND t.log_status = 'OK' AND t.remote_net IS NOT NULL AND p.interface_id IS NULL
  GROUP BY t.interface_id, t.remote_net
),
changes AS (
  SELECT remote_net, first_hour, count(*) AS interfaces
  FROM firsts GROUP BY remote_net, first_hour
  HAVING count(*) >= ${min_interfaces}
)
SELECT f.interface_id, f.remote_net, c.first_hour, c.interfaces
FROM firsts f JOIN changes c ON c.remote_net = f.remote_net AND c.first_hour = f.first_hour
