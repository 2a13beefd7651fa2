-- One job taken and completed, as a worker does it: take the oldest ready
-- one that no other worker holds (SKIP LOCKED) in one transaction, then
-- store its result in another. When none is ready the take returns 0 and
-- the round does nothing.
WITH j AS (
  SELECT id FROM bq_jobs WHERE state = 0
  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
), u AS (
  UPDATE bq_jobs b SET state = 1 FROM j WHERE b.id = j.id RETURNING b.id
)
SELECT coalesce(max(id), 0) AS id FROM u \gset
\if :id > 0
UPDATE bq_jobs SET state = 2, result = 'ok', finished_at = now()
  WHERE id = :id;
\endif
