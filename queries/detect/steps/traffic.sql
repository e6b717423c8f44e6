-- name: traffic
-- description: The rollup seen from each interface: direction, remote side, its network, the service port and which side offers it
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
         CASE WHEN direction = 'ingress' THEN sport ELSE dport END AS remote_port
  FROM sided
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
FROM ported
