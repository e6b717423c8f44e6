-- name: traffic
-- description: The rollup seen from each interface: direction, remote side, its network, the service port and which side offers it. A port above 1023 that the rollup folded away as a client's, but that met many different ports on the other side, is a service (gRPC on 50051, NodePorts, an exporter above the ephemeral range): its rows are turned around
-- param: min_client_ports int = 5: distinct ports on the other side a folded port must meet to be taken for a service
-- uses: is_private_ip, ip_network (flowlens functions)
WITH sided AS (
  SELECT r.*,
         CASE WHEN r.flow_direction IS NOT NULL THEN r.flow_direction
              WHEN d.addr IS NOT NULL THEN 'ingress'
              WHEN s.addr IS NOT NULL THEN 'egress' END AS direction
  FROM rollup r
  LEFT JOIN local_addrs d ON d.interface_id = r.interface_id AND d.addr = r.dstaddr
  LEFT JOIN local_addrs s ON s.interface_id = r.interface_id AND s.addr = r.srcaddr
),
ported AS (
  SELECT *,
         CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END AS remote,
         CASE WHEN direction = 'ingress' THEN dport ELSE sport END AS local_port,
         CASE WHEN direction = 'ingress' THEN sport ELSE dport END AS remote_port,
         CASE WHEN folded_low = folded_high THEN folded_low END AS hidden_port
  FROM sided
),
-- Ports folded away on one side that met many different (ephemeral-looking) ports on the
-- other in accepted traffic: the interface's services ('local') and the remote services it
-- uses ('remote').
services AS (
  SELECT interface_id, CASE WHEN local_port = -1 THEN 'local' ELSE 'remote' END AS side, hidden_port AS port
  FROM ported
  WHERE hidden_port IS NOT NULL AND action = 'ACCEPT' AND log_status = 'OK'
    AND ((local_port = -1 AND remote_port > 1023) OR (remote_port = -1 AND local_port > 1023))
  GROUP BY interface_id, CASE WHEN local_port = -1 THEN 'local' ELSE 'remote' END, hidden_port
  HAVING count(DISTINCT CASE WHEN local_port = -1 THEN remote_port ELSE local_port END) >= ${min_client_ports}
),
turned AS (
  SELECT p.interface_id, p.account_id, p.vpc_id, p.hour, p.direction, p.remote, p.protocol, p.action,
         p.log_status, p.records, p.bytes, p.packets, p.first_start, p.last_end,
         CASE WHEN l.port IS NOT NULL THEN p.hidden_port WHEN r.port IS NOT NULL THEN CAST(-1 AS BIGINT)
              ELSE p.local_port END AS local_port,
         CASE WHEN l.port IS NOT NULL THEN CAST(-1 AS BIGINT) WHEN r.port IS NOT NULL THEN p.hidden_port
              ELSE p.remote_port END AS remote_port
  FROM ported p
  LEFT JOIN services l
    ON p.local_port = -1 AND l.interface_id = p.interface_id AND l.side = 'local' AND l.port = p.hidden_port
  LEFT JOIN services r
    ON p.remote_port = -1 AND r.interface_id = p.interface_id AND r.side = 'remote' AND r.port = p.hidden_port
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
