-- name: nacl_return_rejects
-- description: Stateless network ACL mistakes: outbound requests accepted, the peer's replies to ephemeral ports (1024-65535) rejected
SELECT o.interface_id, o.srcaddr AS local_addr, o.dstaddr AS peer, o.dstport AS service_port,
       count(DISTINCT i.dstport) AS rejected_ephemeral_ports, count(*) AS rejected_replies
FROM flows o
JOIN flows i
  ON i.interface_id = o.interface_id
 AND i.srcaddr = o.dstaddr AND i.dstaddr = o.srcaddr
 AND i.srcport = o.dstport AND i.dstport = o.srcport
WHERE o.action = 'ACCEPT' AND i.action = 'REJECT'
  AND i.dstport BETWEEN 1024 AND 65535
GROUP BY o.interface_id, o.srcaddr, o.dstaddr, o.dstport
ORDER BY rejected_replies DESC NULLS LAST, o.interface_id, local_addr, peer, service_port
