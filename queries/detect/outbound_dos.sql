-- name: outbound_dos
-- description: The interface flooding one remote address: far more packets to it in an hour than the interface ever sends to any one address in that hour, TCP or UDP (GuardDuty's Backdoor:EC2/DenialOfService). A bulk TCP transfer (full-size packets) is a transfer, not a flood: exfiltration judges those
-- chart: top_out_packets (the hourly metric a report draws beside these findings)
-- param: window_start int: detection window start (Unix seconds)
-- param: window_end int: detection window end (Unix seconds)
-- param: min_packets int = 200000: packets to one address in the hour at least
-- param: ratio int = 5: times the baseline median for that hour at least
-- param: over_max_percent int = 200: percent of the baseline's largest hour (for that hour of day, and for any hour of that day type) at least
-- param: min_score int = 10: robust z-score (MAD units) at least
-- param: min_history int = 24: hours of baseline the interface needs
-- param: bulk_packet_bytes int = 1000: average bytes per packet from which TCP to the address is a bulk transfer
-- uses: protocol_name (flowlens function)
WITH d AS (
  SELECT *, (value - median) / greatest(1.4826 * mad, 0.1 * median, 1000.0) AS score
  FROM deviations WHERE metric = 'top_out_packets'
),
hits AS (
  SELECT * FROM d
  WHERE history_hours >= ${min_history} AND value >= ${min_packets}
    AND value >= ${ratio} * greatest(median, 1.0) AND value * 100 >= ${over_max_percent} * max
    -- Bursts at a different hour every day (CI jobs, image pulls) are the interface's usual
    -- day: beyond its usual hour, a hit must pass the largest hour of its whole day type.
    AND value * 100 >= ${over_max_percent} * coalesce(day_max, max)
    AND score >= ${min_score}
),
target AS (
  SELECT r.interface_id, h.hour, r.remote, sum(r.packets) AS packets, count(*) AS flows,
         coalesce(sum(r.bytes), 0) AS bytes,
         array_slice(array_sort(array_agg(DISTINCT r.protocol)), 1, 3) AS protocols,
         array_slice(array_sort(array_agg(DISTINCT r.remote_port)), 1, 10) AS ports,
         bool_or(r.public_remote) AS public_remote
  FROM recent r JOIN hits h ON h.interface_id = r.interface_id AND h.hour = (r."end" / 3600) * 3600
  WHERE r.direction = 'egress'
  GROUP BY r.interface_id, h.hour, r.remote
),
top AS (
  SELECT *, row_number() OVER (PARTITION BY interface_id, hour ORDER BY packets DESC, remote) AS pick FROM target
)
SELECT 'outbound_dos' AS kind, h.interface_id, h.account_id, h.vpc_id, h.hour AS window_start, h.hour + 3600 AS window_end,
       h.score, CASE WHEN h.value >= 20 * greatest(h.max, 1.0) THEN 'critical' ELSE 'high' END AS severity,
       concat(h.interface_id, ' sent ', CAST(CAST(h.value AS BIGINT) AS VARCHAR), ' packets to ', t.remote,
              ' in an hour (', CAST(t.flows AS VARCHAR), ' flows, ', protocol_name(t.protocols[1]),
              '); the most it sends to any one address in that hour is ', CAST(CAST(h.median AS BIGINT) AS VARCHAR),
              ' (largest ', CAST(CAST(h.max AS BIGINT) AS VARCHAR), ')') AS summary,
       h.value AS observed, h.median AS baseline, make_array(t.remote) AS remote_addrs, t.ports,
       t.flows, t.bytes, t.protocols, h.mad AS baseline_mad, h.max AS baseline_max,
       h.samples AS baseline_samples, h.basis AS baseline_basis
FROM hits h JOIN top t ON t.interface_id = h.interface_id AND t.hour = h.hour AND t.pick = 1
WHERE NOT (array_length(t.protocols) = 1 AND t.protocols[1] = 6
           AND t.bytes >= ${bulk_packet_bytes} * t.packets)
