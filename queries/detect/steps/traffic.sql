-- name: traffic
-- description: The rollup seen from each interface: direction, remote side, its network, the service port and which side offers it. A port above 1023 that the rollup folded away as a client's, but that met many different ports on the other side, is a service (gRPC on 50051, NodePorts, an exporter above the ephemeral range): its rows are turned around
-- param: min_client_ports int = 5: different ports on the other side a folded port must meet to be taken for a service
-- uses: is_private_ip, ip_network (flowlens functions)
-- A row's direction is its record's flow-direction field where the format has one; only rows
-- without it are placed by the interface's own addresses (two joins that would otherwise
-- probe every row).
WITH sided AS (
  SELECT r.*, r.flow_direction AS direction FROM rollup r WHERE r.flow_direction IS NOT NULL
  UNION ALL
  SELECT r.*,
         CASE WHEN d.addr IS NOT NULL THEN 'ingress'
              WHEN s.addr IS NOT NULL THEN 'egress' END AS direction
  FROM rollup r
  LEFT JOIN local_addrs d ON d.interface_id = r.interface_id AND d.addr = r.dstaddr
  LEFT JOIN local_addrs s ON s.interface_id = r.interface_id AND s.addr = r.srcaddr
  WHERE r.flow_direction IS NULL
),
ported AS (
  SELECT *,
         CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END AS remote,
         CASE WHEN direction = 'ingress' THEN dport ELSE sport END AS local_port,
         CASE WHEN direction = 'ingress' THEN sport ELSE dport END AS remote_port
  FROM sided
),
folded AS (
  SELECT *,
         CASE WHEN folded_low = folded_high THEN folded_low END AS hidden_port,
         CASE WHEN local_port = -1 THEN 'local' WHEN remote_port = -1 THEN 'remote' END AS hidden_side,
         CASE WHEN local_port = -1 THEN remote_port ELSE local_port END AS other_port
  FROM ported
),
-- Ports folded away on one side that met many different (ephemeral-looking) ports on the
-- other in accepted traffic: the interface's services ('local') and the remote services it
-- uses ('remote'). Rows are distinct address and port pairs, so rows that do not all share
-- one port on the other side count its ports closely enough.
services AS (
  SELECT interface_id, hidden_side, hidden_port
  FROM folded
  WHERE hidden_port IS NOT NULL AND hidden_side IS NOT NULL AND other_port > 1023
    AND action = 'ACCEPT' AND log_status = 'OK'
  GROUP BY interface_id, hidden_side, hidden_port
  HAVING count(*) >= ${min_client_ports} AND min(other_port) < max(other_port)
),
turned AS (
  SELECT p.interface_id, p.account_id, p.vpc_id, p.hour, p.direction, p.remote, p.protocol, p.action,
         p.log_status, p.records, p.bytes, p.packets, p.first_start, p.last_end,
         CASE WHEN v.hidden_side = 'local' THEN p.hidden_port WHEN v.hidden_side = 'remote' THEN CAST(-1 AS BIGINT)
              ELSE p.local_port END AS local_port,
         CASE WHEN v.hidden_side = 'local' THEN CAST(-1 AS BIGINT) WHEN v.hidden_side = 'remote' THEN p.hidden_port
              ELSE p.remote_port END AS remote_port
  FROM folded p
  LEFT JOIN services v
    ON v.interface_id = p.interface_id AND v.hidden_side = p.hidden_side AND v.hidden_port = p.hidden_port
)
SELECT interface_id, account_id, vpc_id, hour,
       CAST((hour % 86400) / 3600 AS BIGINT) AS hod,
       ((hour / 86400) + 3) % 7 >= 5 AS weekend,
       direction, remote, ip_network(remote, 24, 48) AS remote_net,
       NOT is_private_ip(remote) AS public_remote,
       local_port, remote_port,
       CASE WHEN remote_port = -1 THEN 'local'
            WHEN local_port = -1 THEN 'remote'
            WHEN local_port <= remote_port THEN 'local'
            ELSE 'remote' END AS service_side,
       CASE WHEN remote_port = -1 THEN local_port
            WHEN local_port = -1 THEN remote_port
            ELSE least(local_port, remote_port) END AS service_port,
       protocol, action, log_status, records, bytes, packets, first_start, last_end
FROM turned
