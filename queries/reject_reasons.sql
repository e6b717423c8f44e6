-- name: reject_reasons
-- description: Flows rejected for a recorded reason (reject-reason: BPA for VPC Block Public Access, EC for encryption controls)
SELECT reject_reason, interface_id, dstport, count(*) AS flows, count(DISTINCT srcaddr) AS sources
FROM flows
WHERE action = 'REJECT' AND reject_reason IS NOT NULL
GROUP BY reject_reason, interface_id, dstport
ORDER BY flows DESC NULLS LAST, reject_reason, interface_id, dstport
