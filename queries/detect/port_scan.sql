-- name: port_scan
-- description: One remote address touching many distinct ports of an interface within a few minutes, mostly rejected (Zeek: 15+ ports in 5 minutes)
-- param: bucket_seconds int >= 1 = 300: length of the windows ports are counted in
-- param: min_ports int = 15: distinct ports of one interface in one window
-- param: min_reject_percent int = 50: share of the remote's flows that were rejected
WITH buckets AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, remote,
         (start / ${bucket_seconds}) * ${bucket_seconds} AS bucket,
         count(DISTINCT local_port) AS ports, count(*) AS flows,
         count(*) FILTER (WHERE action = 'REJECT') AS rejected
  FROM recent
  WHERE direction = 'ingress' AND protocol IN (6, 17)
  GROUP BY interface_id, remote, (start / ${bucket_seconds}) * ${bucket_seconds}
),
hits AS (
  SELECT * FROM buckets WHERE ports >= ${min_ports} AND rejected * 100 >= ${min_reject_percent} * flows
),
scans AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, remote,
         min(bucket) AS window_start, max(bucket) + ${bucket_seconds} AS window_end,
         max(ports) AS peak_ports, sum(flows) AS flows, sum(rejected) AS rejected
  FROM hits GROUP BY interface_id, remote
),
-- The scan's own columns ride along in the GROUP BY, so `scans` (and the aggregation over
-- every recent flow beneath it) is computed once, not again for the final SELECT.
touched AS (
  SELECT s.interface_id, s.account_id, s.vpc_id, s.remote, s.window_start, s.window_end,
         s.peak_ports, s.flows, s.rejected,
         count(DISTINCT r.local_port) AS ports_touched,
         array_slice(array_sort(array_agg(DISTINCT r.local_port)), 1, 25) AS ports,
         array_sort(array_agg(DISTINCT r.local_port) FILTER (WHERE r.action = 'ACCEPT')) AS open_ports
  FROM scans s JOIN recent r
    ON r.interface_id = s.interface_id AND r.remote = s.remote AND r.direction = 'ingress'
   AND r.start >= s.window_start AND r.start < s.window_end
  GROUP BY s.interface_id, s.account_id, s.vpc_id, s.remote, s.window_start, s.window_end,
           s.peak_ports, s.flows, s.rejected
)
SELECT 'port_scan' AS kind, s.interface_id, s.account_id, s.vpc_id, s.window_start, s.window_end,
       CAST(s.peak_ports AS DOUBLE) / ${min_ports} AS score,
       CASE WHEN array_length(s.open_ports) > 0 THEN 'high' ELSE 'medium' END AS severity,
       concat(s.remote, ' probed ', CAST(s.ports_touched AS VARCHAR), ' ports of ', s.interface_id,
              ' (up to ', CAST(s.peak_ports AS VARCHAR), ' in ', CAST(${bucket_seconds} / 60 AS VARCHAR),
              ' minutes; ', CAST(s.rejected AS VARCHAR), ' of ', CAST(s.flows AS VARCHAR), ' flows rejected)',
              CASE WHEN array_length(s.open_ports) > 0
                   THEN concat('; it reached open ports ', array_to_string(s.open_ports, ', ')) ELSE '' END) AS summary,
       CAST(s.peak_ports AS DOUBLE) AS observed, CAST(${min_ports} AS DOUBLE) AS baseline,
       make_array(s.remote) AS remote_addrs, s.ports,
       s.ports_touched, s.open_ports, s.flows, s.rejected
FROM touched s
