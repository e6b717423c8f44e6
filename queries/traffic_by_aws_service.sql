-- name: traffic_by_aws_service
-- description: Bytes to and from AWS services (pkt-src-aws-service, pkt-dst-aws-service), per interface
SELECT interface_id, COALESCE(pkt_dst_aws_service, pkt_src_aws_service) AS aws_service,
       sum(bytes) AS bytes, count(*) AS flows
FROM flows
WHERE pkt_dst_aws_service IS NOT NULL OR pkt_src_aws_service IS NOT NULL
GROUP BY interface_id, COALESCE(pkt_dst_aws_service, pkt_src_aws_service)
ORDER BY bytes DESC NULLS LAST, interface_id, aws_service
