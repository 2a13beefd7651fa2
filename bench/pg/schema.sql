-- The plain SKIP LOCKED queue that jobq --backend is measured against:
-- what an application writes when it makes PostgreSQL its job queue by
-- hand (one row a job, a partial index over the ones waiting), with no
-- batching, no leases and no retries.
DROP TABLE IF EXISTS bq_jobs;
CREATE TABLE bq_jobs (
  id bigserial PRIMARY KEY,
  state smallint NOT NULL DEFAULT 0, -- 0 ready, 1 running, 2 done
  args text NOT NULL,
  result text,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX bq_jobs_ready ON bq_jobs (id) WHERE state = 0;
