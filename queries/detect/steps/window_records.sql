-- name: window_records
-- description: The records the window's rollup and `recent` read, decoded once and held in memory for both when detection runs on one machine (a cluster reads them where they lie, once for each): every record ending in the window (the rollup's) or starting in it while ending later (`recent`'s), with the columns the two read
-- param: since int: records ending at or after this Unix second
-- param: until int: records ending, or starting, before this Unix second
SELECT interface_id, account_id, vpc_id, srcaddr, dstaddr, srcport, dstport, protocol, action,
       log_status, flow_direction, bytes, packets, start, "end", tcp_flags
FROM flows
-- Both bounds in a form the scan turns into the objects to read (`end < until` alone is the
-- rollup's; a record starting in the window and ending after it is `recent`'s).
WHERE "end" >= ${since} AND ("end" < ${until} OR start < ${until})
