-- name: explain_rejects
-- description: Rejected flows grouped by the rule that rejected them, from the inventory's security groups and network ACLs (needs --inventory DIR)
-- param: interface text = all: one interface's rejects, or all
-- param: limit int = 200: groups at most
-- uses: explain_reject, reject_cause, ip_network (flowlens functions; the first two need --inventory)
-- A client's ephemeral port is folded away (as the detectors do), so a scan of one port from
-- many source ports is one row per source before the rules are evaluated.
WITH rejected AS (
  SELECT interface_id, srcaddr, dstaddr, protocol,
         CASE WHEN srcport > dstport AND srcport > 1023 THEN -1 ELSE srcport END AS sport,
         CASE WHEN dstport > srcport AND dstport > 1023 THEN -1 ELSE dstport END AS dport,
         min(srcport) AS srcport, min(dstport) AS dstport,
         count(*) AS flows, sum(packets) AS packets, min(start) AS first_start, max("end") AS last_end
  FROM flows
  WHERE action = 'REJECT' AND log_status = 'OK' AND interface_id IS NOT NULL
    AND (${interface} = 'all' OR interface_id = ${interface})
  GROUP BY interface_id, srcaddr, dstaddr, protocol, 5, 6
),
explained AS (
  SELECT *,
         reject_cause(interface_id, srcaddr, dstaddr, srcport, dstport, protocol) AS cause,
         explain_reject(interface_id, srcaddr, dstaddr, srcport, dstport, protocol) AS explanation
  FROM rejected
)
SELECT interface_id, cause, explanation,
       CAST(sum(flows) AS BIGINT) AS flows, CAST(sum(packets) AS BIGINT) AS packets,
       count(DISTINCT srcaddr) AS sources, min(srcaddr) AS example_source,
       min(first_start) AS first_start, max(last_end) AS last_end
FROM explained
GROUP BY interface_id, cause, explanation
ORDER BY flows DESC, interface_id, explanation
LIMIT ${limit}
