-- One job submitted: one transaction, acknowledged by its commit.
INSERT INTO bq_jobs (args) VALUES ('{"n": 1}');
