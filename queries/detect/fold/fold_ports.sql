-- name: fold_ports
-- description: A baseline's services with new ones added; the busiest remote's hour is the larger of the two, since an hour's flows are never split across folds of whole hours
SELECT interface_id, protocol, service_side, service_port, sum(flows) AS flows,
       sum(hours_seen) AS hours_seen, max(max_remote_hour_flows) AS max_remote_hour_flows
FROM (SELECT * FROM old_ports UNION ALL SELECT * FROM new_ports) p
GROUP BY interface_id, protocol, service_side, service_port
