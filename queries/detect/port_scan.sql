-- name: port_scan
-- description: One remote address touching many distinct ports of an interface within a few minutes, mostly rejected (Zeek: 15+ ports in 5 minutes), or many ports spread over hours (a slow scan, one port every few seconds or minutes, that no short window sees)
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
hits AS (
  SELECT * FROM buckets WHERE ports >= ${min_ports} AND rejected * 100 >= ${min_reject_percent} * flows
),
fast AS (
  SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, remote,
         min(bucket) AS window_start, max(bucket) + ${bucket_seconds} AS window_end,
         max(ports) AS peak_ports, sum(flows) AS flows, sum(rejected) AS rejected, false AS slow,
         min(low_port) AS low_port, max(high_port) AS high_port
  FROM hits GROUP BY interface_id, remote
),
-- A remote no short window caught, over the whole window: the buckets add up to its flows,
-- and their ports to at least its distinct ports (checked exactly once the few left are joined).
slow AS (
  SELECT b.interface_id, max(b.account_id) AS account_id, max(b.vpc_id) AS vpc_id, b.remote,
         min(b.bucket) AS window_start, max(b.bucket) + ${bucket_seconds} AS window_end,
         max(b.ports) AS peak_ports, sum(b.flows) AS flows, sum(b.rejected) AS rejected, true AS slow,
         min(b.low_port) AS low_port, max(b.high_port) AS high_port
  FROM buckets b LEFT JOIN fast f ON f.interface_id = b.interface_id AND f.remote = b.remote
  WHERE f.remote IS NULL
  GROUP BY b.interface_id, b.remote
  HAVING sum(b.ports) >= ${slow_min_ports} AND sum(b.rejected) * 100 >= ${min_reject_percent} * sum(b.flows)
     AND max(b.bucket) - min(b.bucket) >= ${slow_min_seconds}
),
candidates AS (SELECT * FROM fast UNION ALL SELECT * FROM slow),
-- Rejected replies are not probes: a remote whose every flow came from the one port the
-- interface itself called it on is a server answering (nacl_return_reject's story).
asked AS (
  SELECT DISTINCT r.interface_id, r.remote, r.remote_port
  FROM recent r JOIN candidates c ON c.interface_id = r.interface_id AND c.remote = r.remote
  WHERE r.direction = 'egress' AND r.action = 'ACCEPT' AND c.low_port = c.high_port AND r.remote_port = c.low_port
),
scans AS (
  SELECT c.interface_id, c.account_id, c.vpc_id, c.remote, c.window_start, c.window_end,
         c.peak_ports, c.flows, c.rejected, c.slow
  FROM candidates c LEFT JOIN asked a ON a.interface_id = c.interface_id AND a.remote = c.remote
  WHERE a.remote IS NULL
),
-- The scan's own columns ride along in the GROUP BY, so `scans` (and the aggregation over
-- every recent flow beneath it) is computed once, not again for the final SELECT.
touched AS (
  SELECT s.interface_id, s.account_id, s.vpc_id, s.remote, s.window_start, s.window_end,
         s.peak_ports, s.flows, s.rejected, s.slow,
         count(DISTINCT r.local_port) AS ports_touched,
         array_slice(array_sort(array_agg(DISTINCT r.local_port)), 1, 25) AS ports,
         array_sort(array_agg(DISTINCT r.local_port) FILTER (WHERE r.action = 'ACCEPT')) AS open_ports
  FROM scans s JOIN recent r
    ON r.interface_id = s.interface_id AND r.remote = s.remote AND r.direction = 'ingress'
   AND r.start >= s.window_start AND r.start < s.window_end
  GROUP BY s.interface_id, s.account_id, s.vpc_id, s.remote, s.window_start, s.window_end,
           s.peak_ports, s.flows, s.rejected, s.slow
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
WHERE NOT s.slow OR s.ports_touched >= ${slow_min_ports}
