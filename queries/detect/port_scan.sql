-- name: port_scan
-- description: One remote address touching many distinct ports of an interface within a few minutes, mostly rejected (Zeek: 15+ ports in 5 minutes), or many ports spread over hours (a slow scan, one port every few seconds or minutes, that no short window sees)
-- chart: rejects (the hourly metric a report draws beside these findings)
-- param: bucket_seconds int >= 1 = 300: length of the windows ports are counted in
-- param: min_ports int = 15: distinct ports of one interface in one window
-- param: min_reject_percent int = 50: share of the remote's flows that were rejected
-- param: slow_min_ports int = 40: distinct ports of one interface from one remote over the whole window, for a slow scan
-- param: slow_min_seconds int = 3600: time a slow scan is spread over at least
WITH buckets AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, remote,
         (start / ${bucket_seconds}) * ${bucket_seconds} AS bucket,
         count(DISTINCT local_port) AS ports, count(*) AS flows,
         count(*) FILTER (WHERE action = 'REJECT') AS rejected,
         min(remote_port) AS low_port, max(remote_port) AS high_port
  FROM recent
  WHERE direction = 'ingress' AND protocol IN (6, 17)
  GROUP BY interface_id, remote, (start / ${bucket_seconds}) * ${bucket_seconds}
),
-- Each remote once: its buckets that are a scan on their own (fast), and all its buckets
-- (slow: their ports add up to at least its distinct ports, checked exactly below).
per_remote AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, remote,
         bool_or(hit) AS fast,
         min(bucket) FILTER (WHERE hit) AS fast_start, max(bucket) FILTER (WHERE hit) AS fast_last,
         max(ports) FILTER (WHERE hit) AS fast_peak, sum(flows) FILTER (WHERE hit) AS fast_flows,
         sum(rejected) FILTER (WHERE hit) AS fast_rejected,
         min(bucket) AS first_bucket, max(bucket) AS last_bucket, max(ports) AS peak_ports,
         sum(ports) AS port_sum, sum(flows) AS flows, sum(rejected) AS rejected,
         min(low_port) AS low_port, max(high_port) AS high_port
  FROM (SELECT *, ports >= ${min_ports} AND rejected * 100 >= ${min_reject_percent} * flows AS hit
        FROM buckets) b
  GROUP BY interface_id, remote
),
scans AS (
  SELECT interface_id, account_id, vpc_id, remote, NOT fast AS slow, low_port, high_port,
         CASE WHEN fast THEN fast_start ELSE first_bucket END AS window_start,
         CASE WHEN fast THEN fast_last ELSE last_bucket END + ${bucket_seconds} AS window_end,
         CASE WHEN fast THEN fast_peak ELSE peak_ports END AS peak_ports,
         CASE WHEN fast THEN fast_flows ELSE flows END AS flows,
         CASE WHEN fast THEN fast_rejected ELSE rejected END AS rejected
  FROM per_remote
  WHERE fast
     OR (port_sum >= ${slow_min_ports} AND rejected * 100 >= ${min_reject_percent} * flows
         AND last_bucket - first_bucket >= ${slow_min_seconds})
),
-- The scan's own columns ride along in the GROUP BY, so `scans` (and the aggregation over
-- every recent flow beneath it) is computed once, not again for the final SELECT. One pass
-- over the remote's flows also tells whether the interface called it: rejected replies
-- from the one port the interface itself called are not probes (nacl_return_reject's story).
touched AS (
  SELECT s.interface_id, s.account_id, s.vpc_id, s.remote, s.window_start, s.window_end,
         s.peak_ports, s.flows, s.rejected, s.slow, s.low_port, s.high_port,
         count(DISTINCT r.local_port) FILTER (WHERE r.direction = 'ingress' AND r.start >= s.window_start AND r.start < s.window_end) AS ports_touched,
         array_slice(array_sort(array_agg(DISTINCT r.local_port) FILTER (WHERE r.direction = 'ingress' AND r.start >= s.window_start AND r.start < s.window_end)), 1, 25) AS ports,
         array_sort(array_agg(DISTINCT r.local_port) FILTER (WHERE r.direction = 'ingress' AND r.start >= s.window_start AND r.start < s.window_end AND r.action = 'ACCEPT')) AS open_ports,
         bool_or(r.direction = 'egress' AND r.action = 'ACCEPT' AND r.remote_port = s.low_port) AS asked
  FROM scans s
  JOIN recent r ON r.interface_id = s.interface_id AND r.remote = s.remote
  GROUP BY s.interface_id, s.account_id, s.vpc_id, s.remote, s.window_start, s.window_end,
           s.peak_ports, s.flows, s.rejected, s.slow, s.low_port, s.high_port
)
SELECT 'port_scan' AS kind, s.interface_id, s.account_id, s.vpc_id, s.window_start, s.window_end,
       CASE WHEN s.slow THEN CAST(s.ports_touched AS DOUBLE) / ${slow_min_ports}
            ELSE CAST(s.peak_ports AS DOUBLE) / ${min_ports} END AS score,
       CASE WHEN array_length(s.open_ports) > 0 THEN 'high' ELSE 'medium' END AS severity,
       concat(s.remote, ' probed ', CAST(s.ports_touched AS VARCHAR), ' ports of ', s.interface_id,
              CASE WHEN s.slow
                   THEN concat(' slowly, over ', CAST(round((s.window_end - s.window_start) / 3600.0, 1) AS VARCHAR),
                               ' hours (never more than ', CAST(s.peak_ports AS VARCHAR), ' in ',
                               CAST(${bucket_seconds} / 60 AS VARCHAR), ' minutes; ')
                   ELSE concat(' (up to ', CAST(s.peak_ports AS VARCHAR), ' in ', CAST(${bucket_seconds} / 60 AS VARCHAR),
                               ' minutes; ') END,
              CAST(s.rejected AS VARCHAR), ' of ', CAST(s.flows AS VARCHAR), ' flows rejected)',
              CASE WHEN array_length(s.open_ports) > 0
                   THEN concat('; it reached open ports ', array_to_string(s.open_ports, ', ')) ELSE '' END) AS summary,
       CAST(s.peak_ports AS DOUBLE) AS observed, CAST(${min_ports} AS DOUBLE) AS baseline,
       make_array(s.remote) AS remote_addrs, s.ports,
       s.ports_touched, s.open_ports, s.flows, s.rejected,
       CASE WHEN s.slow THEN 'slow' ELSE 'fast' END AS pace
FROM touched s
WHERE (NOT s.slow OR s.ports_touched >= ${slow_min_ports})
  AND NOT (s.low_port = s.high_port AND coalesce(s.asked, false))
