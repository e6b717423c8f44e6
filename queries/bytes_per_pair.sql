-- name: bytes_per_pair
-- description: Total bytes between two addresses in both directions, whichever side sent them
-- param: limit int = 50: rows at most
SELECT CASE WHEN srcaddr < dstaddr THEN srcaddr ELSE dstaddr END AS addr_a,
       CASE WHEN srcaddr < dstaddr THEN dstaddr ELSE srcaddr END AS addr_b,
       sum(bytes) AS bytes, count(*) AS flows
FROM flows
WHERE srcaddr IS NOT NULL AND dstaddr IS NOT NULL
GROUP BY 1, 2
ORDER BY bytes DESC NULLS LAST, addr_a, addr_b
LIMIT ${limit}
