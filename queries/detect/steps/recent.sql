-- name: recent
-- description: The detection window's records, one by one, seen from each interface
-- param: since int: window start (Unix seconds)
-- param: until int: window end (Unix seconds)
-- uses: is_private_ip, ip_network (flowlens functions)
WITH sided AS (
  SELECT f.interface_id, f.account_id, f.vpc_id, f.srcaddr, f.dstaddr, f.srcport, f.dstport,
         f.protocol, f.packets, f.bytes, f.start, f."end", f.action, f.tcp_flags,
         CASE WHEN f.flow_direction IS NOT NULL THEN f.flow_direction
              WHEN d.addr IS NOT NULL THEN 'ingress'
              WHEN s.addr IS NOT NULL THEN 'egress' END AS direction
  FROM flows f
  LEFT JOIN local_addrs d ON d.interface_id = f.interface_id AND d.addr = f.dstaddr
  LEFT JOIN local_addrs s ON s.interface_id = f.interface_id AND s.addr = f.srcaddr
  WHERE f."end" >= ${since} AND f.start < ${until} AND f.log_status = 'OK'
)
SELECT interface_id, account_id, vpc_id, direction, action, protocol, packets, bytes, start, "end",
       tcp_flags,
       CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END AS remote,
       CASE WHEN direction = 'ingress' THEN dstport ELSE srcport END AS local_port,
       CASE WHEN direction = 'ingress' THEN srcport ELSE dstport END AS remote_port,
       NOT is_private_ip(CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END) AS public_remote,
       ip_network(CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END, 24, 48) AS remote_net
FROM sided
