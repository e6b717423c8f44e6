-- name: admin_port_traffic
-- description: Flows to administration ports (SSH, Telnet, RDP, VNC, WinRM), accepted or not
-- param: ports ints = 22,23,3389,5900,5985,5986: the administration ports
-- param: limit int = 100: rows at most
SELECT interface_id, srcaddr, dstaddr, dstport, action,
       count(*) AS flows, sum(bytes) AS bytes
FROM flows
WHERE dstport IN (${ports})
GROUP BY interface_id, srcaddr, dstaddr, dstport, action
ORDER BY flows DESC NULLS LAST, interface_id, srcaddr, dstaddr, dstport, action
LIMIT ${limit}
