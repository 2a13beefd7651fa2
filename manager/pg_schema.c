/* SPDX-License-Identifier: MIT */
/*
 * pg_schema.c - the tables jobqd --backend keeps in PostgreSQL, and their
 * migrations.
 *
 * jobq_schema holds one row per migration applied; the schema's version
 * is its largest. Migration N is one DO block, so that it is one
 * statement and therefore one transaction through the pipeline (pg.c):
 * it takes a transaction-scoped advisory lock first and checks the
 * version again under it, so managers that start together on an empty
 * database create it once and the others find it done.
 *
 * What a manager does with the version it finds (pg.h):
 *   - none (empty database): --migrate or a plain start creates it. A
 *     plain start may, since there is nothing another host could be
 *     running against;
 *   - older than ours: only --migrate moves it forward. Other hosts may
 *     still run the older binary, and a migration is a decision for
 *     whoever upgrades them all, so a plain start refuses and names it;
 *   - newer than ours: refused always, with both versions: this binary
 *     would not know the columns a newer one relies on.
 *
 * A migration is never edited once released: a change is a new one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

/* The advisory lock key of migrations ("jobq" in ASCII). */
#define SCHEMA_LOCK "1785684593"

/*
 * The states are proto.h's JOBQ_JS_* numbers: 1 waiting (on --after),
 * 2 delayed, 3 ready, 4 running, 5 succeeded, 6 failed (a retry is
 * pending), 7 dead, 8 cancelled. A job is live in 1, 2, 3, 4 and 6; the
 * unique index covers live jobs only, as the local manager frees a key
 * when its job finishes.
 */
static const char *const migrations[] = {
    /* 1: jobs, their dependencies, queue settings, named queues and the
     * key/value store. */
    "DO $m$ BEGIN\n"
    "PERFORM pg_advisory_xact_lock(" SCHEMA_LOCK ");\n"
    "CREATE TABLE IF NOT EXISTS jobq_schema (\n"
    "  version integer PRIMARY KEY,\n"
    "  applied_at timestamptz NOT NULL DEFAULT now());\n"
    "IF EXISTS (SELECT 1 FROM jobq_schema WHERE version >= 1) THEN\n"
    "  RETURN;\n"
    "END IF;\n"
    "CREATE SEQUENCE jobq_lease_token;\n"
    "CREATE TABLE jobq_jobs (\n"
    "  id bigserial PRIMARY KEY,\n"
    "  type text NOT NULL,\n"
    "  queue text NOT NULL DEFAULT 'default',\n"
    "  state smallint NOT NULL CHECK (state BETWEEN 1 AND 8),\n"
    "  priority integer NOT NULL DEFAULT 0,\n"
    "  run_at timestamptz NOT NULL DEFAULT now(),\n"
    "  attempts integer NOT NULL DEFAULT 0,\n"
    "  max_attempts integer NOT NULL DEFAULT 4,\n"
    "  timeout_ms bigint NOT NULL DEFAULT 60000,\n"
    /* The lease: who runs it, the token its answers must carry, and
     * when it is taken back. slot: the run holds one of its queue's
     * parallel slots (meaningful while running). */
    "  lease_owner text,\n"
    "  lease_token bigint,\n"
    "  lease_until timestamptz,\n"
    "  slot boolean NOT NULL DEFAULT false,\n"
    "  unique_key text,\n"
    "  args bytea,\n"
    "  result bytea,\n"
    "  error text,\n"
    "  progress real,\n"
    "  created_at timestamptz NOT NULL DEFAULT now(),\n"
    "  started_at timestamptz,\n"
    "  finished_at timestamptz);\n"
    "CREATE UNIQUE INDEX jobq_jobs_unique ON jobq_jobs (unique_key)\n"
    "  WHERE unique_key IS NOT NULL AND state IN (1, 2, 3, 4, 6);\n"
    /* What reserve scans: runnable jobs, best first. */
    "CREATE INDEX jobq_jobs_runnable ON jobq_jobs\n"
    "  (type, priority DESC, run_at, id) WHERE state IN (2, 3, 6);\n"
    "CREATE INDEX jobq_jobs_leases ON jobq_jobs (lease_until)\n"
    "  WHERE state = 4;\n"
    "CREATE INDEX jobq_jobs_finished ON jobq_jobs (finished_at)\n"
    "  WHERE state IN (5, 7, 8);\n"
    "CREATE INDEX jobq_jobs_waiting ON jobq_jobs (id) WHERE state = 1;\n"
    "CREATE TABLE jobq_deps (\n"
    "  job bigint NOT NULL REFERENCES jobq_jobs (id) ON DELETE CASCADE,\n"
    "  dep bigint NOT NULL REFERENCES jobq_jobs (id) ON DELETE CASCADE,\n"
    "  PRIMARY KEY (job, dep));\n"
    "CREATE INDEX jobq_deps_dep ON jobq_deps (dep);\n"
    /* running counts the slots taken (limited queues only); last_grant
     * is scratch for reserve, which must learn how many it got. */
    "CREATE TABLE jobq_queue_settings (\n"
    "  queue text PRIMARY KEY,\n"
    "  paused boolean NOT NULL DEFAULT false,\n"
    "  parallel integer NOT NULL DEFAULT 0 CHECK (parallel >= 0),\n"
    "  running integer NOT NULL DEFAULT 0,\n"
    "  last_grant integer NOT NULL DEFAULT 0);\n"
    "CREATE TABLE jobq_queues (\n"
    "  id serial PRIMARY KEY,\n"
    "  name text NOT NULL UNIQUE,\n"
    "  max_depth bigint NOT NULL DEFAULT 0);\n"
    "CREATE TABLE jobq_queue_items (\n"
    "  queue_id integer NOT NULL REFERENCES jobq_queues (id)\n"
    "    ON DELETE CASCADE,\n"
    "  seq bigserial,\n"
    "  type integer NOT NULL DEFAULT 0,\n"
    "  data bytea NOT NULL,\n"
    "  PRIMARY KEY (queue_id, seq));\n"
    "CREATE TABLE jobq_kv (\n"
    "  key text PRIMARY KEY,\n"
    "  value text NOT NULL,\n"
    "  version bigint NOT NULL DEFAULT 1);\n"
    "INSERT INTO jobq_schema (version) VALUES (1);\n"
    "END $m$",
    /* 2: the request that made a job: the client's session id and its
     * request id (the reconnecting client's, proto.h), so that a submit
     * resent after its answer was lost (a cut connection, a manager
     * killed after the commit) finds the job it made instead of making
     * a second. NULL for jobs submitted before, or by a client without
     * a session. */
    "DO $m$ BEGIN\n"
    "PERFORM pg_advisory_xact_lock(" SCHEMA_LOCK ");\n"
    "IF EXISTS (SELECT 1 FROM jobq_schema WHERE version >= 2) THEN\n"
    "  RETURN;\n"
    "END IF;\n"
    "ALTER TABLE jobq_jobs ADD COLUMN req_session bigint,\n"
    "  ADD COLUMN req_id bigint;\n"
    "CREATE UNIQUE INDEX jobq_jobs_request ON jobq_jobs\n"
    "  (req_session, req_id) WHERE req_session IS NOT NULL;\n"
    "INSERT INTO jobq_schema (version) VALUES (2);\n"
    "END $m$",
    /* 3: the key/value store shared by every host (kv_pg.c): values are
     * bytes with the object type of the local store (3, JOBQ_T_TEXT, for
     * the text values before), and every change draws its version from
     * one sequence, so that versions grow across a key's delete and
     * re-creation and a host can tell an older row from a newer one.
     * jobq_kv_requests: the changes made by clients' requests (session,
     * request id) and their answers, so that a change sent again after
     * its answer was lost is answered, not made twice; kept ten
     * minutes. */
    "DO $m$ BEGIN\n"
    "PERFORM pg_advisory_xact_lock(" SCHEMA_LOCK ");\n"
    "IF EXISTS (SELECT 1 FROM jobq_schema WHERE version >= 3) THEN\n"
    "  RETURN;\n"
    "END IF;\n"
    "CREATE SEQUENCE jobq_kv_version;\n"
    "PERFORM setval('jobq_kv_version',\n"
    "  greatest((SELECT max(version) FROM jobq_kv), 1));\n"
    "ALTER TABLE jobq_kv\n"
    "  ALTER COLUMN value TYPE bytea USING convert_to(value, 'UTF8'),\n"
    "  ALTER COLUMN version SET DEFAULT nextval('jobq_kv_version'),\n"
    "  ADD COLUMN type integer NOT NULL DEFAULT 3;\n"
    "CREATE TABLE jobq_kv_requests (\n"
    "  session bigint NOT NULL,\n"
    "  rid bigint NOT NULL,\n"
    "  n bigint NOT NULL DEFAULT 0,\n"
    "  version bigint NOT NULL,\n"
    "  done_at timestamptz NOT NULL DEFAULT now(),\n"
    "  PRIMARY KEY (session, rid));\n"
    "CREATE INDEX jobq_kv_requests_done ON jobq_kv_requests (done_at);\n"
    "INSERT INTO jobq_schema (version) VALUES (3);\n"
    "END $m$",
    /* 4: queues of objects shared by every host (queues_pg.c). A get
     * moves its rows from jobq_queue_items to jobq_queue_taken in one
     * statement, under the name of that fetch, and an acknowledgement
     * deletes them there: an answer lost with a cut connection is read
     * again by that name, and objects whose getter died go back with
     * their ids, so in their place. Version 1's jobq_queue_items (by
     * queue id, never written by any version) is replaced. */
    "DO $m$ BEGIN\n"
    "PERFORM pg_advisory_xact_lock(" SCHEMA_LOCK ");\n"
    "IF EXISTS (SELECT 1 FROM jobq_schema WHERE version >= 4) THEN\n"
    "  RETURN;\n"
    "END IF;\n"
    "DROP TABLE jobq_queue_items;\n"
    "CREATE TABLE jobq_queue_items (\n"
    "  id bigserial PRIMARY KEY,\n"
    "  queue text NOT NULL,\n"
    "  type integer NOT NULL,\n"
    "  data bytea NOT NULL);\n"
    "CREATE INDEX jobq_queue_items_queue ON jobq_queue_items (queue, id);\n"
    "CREATE TABLE jobq_queue_taken (\n"
    "  id bigint PRIMARY KEY,\n"
    "  fetched_by text NOT NULL,\n"
    "  queue text NOT NULL,\n"
    "  type integer NOT NULL,\n"
    "  data bytea NOT NULL,\n"
    "  taken_at timestamptz NOT NULL DEFAULT now());\n"
    "CREATE INDEX jobq_queue_taken_fetch ON jobq_queue_taken (fetched_by);\n"
    "CREATE INDEX jobq_queue_taken_at ON jobq_queue_taken (taken_at);\n"
    "INSERT INTO jobq_schema (version) VALUES (4);\n"
    "END $m$",
    /* 5: what every host must agree on about a queue of objects
     * (queues_pg.c): its limits and its count of unfinished objects
     * (put and not yet task_done), one row a queue. A put goes through
     * jobq_queue_put(), which locks that row and counts the queue's rows
     * in a statement of its own, after the lock: a single statement
     * would count in the snapshot it took before it waited for the lock,
     * missing the rows of the put it waited for, and two hosts could
     * both fill the last place. It returns how many of the leading
     * objects fit (all of them in a queue without limits). */
    "DO $m$ BEGIN\n"
    "PERFORM pg_advisory_xact_lock(" SCHEMA_LOCK ");\n"
    "IF EXISTS (SELECT 1 FROM jobq_schema WHERE version >= 5) THEN\n"
    "  RETURN;\n"
    "END IF;\n"
    "CREATE TABLE jobq_object_queues (\n"
    "  queue text PRIMARY KEY,\n"
    "  max_depth bigint NOT NULL DEFAULT 0 CHECK (max_depth >= 0),\n"
    "  max_bytes bigint NOT NULL DEFAULT 0 CHECK (max_bytes >= 0),\n"
    "  unfinished bigint NOT NULL DEFAULT 0 CHECK (unfinished >= 0));\n"
    "CREATE FUNCTION jobq_queue_put(q text, ts integer[], ls integer[],\n"
    "  d bytea, chan text) RETURNS integer LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  md bigint; mb bigint; have bigint; hb bigint;\n"
    "  n integer := coalesce(array_length(ls, 1), 0); k integer := 0;\n"
    "BEGIN\n"
    "  SELECT max_depth, max_bytes INTO md, mb FROM jobq_object_queues\n"
    "    WHERE queue = q FOR UPDATE;\n"
    "  IF NOT FOUND THEN\n"
    "    INSERT INTO jobq_object_queues (queue) VALUES (q)\n"
    "      ON CONFLICT (queue) DO NOTHING;\n"
    "    SELECT max_depth, max_bytes INTO md, mb FROM jobq_object_queues\n"
    "      WHERE queue = q FOR UPDATE;\n"
    "  END IF;\n"
    "  IF md > 0 OR mb > 0 THEN\n"
    /* A new snapshot: it sees every put committed before the lock. An
     * empty queue takes any object, as without a backend. */
    "    SELECT count(*), coalesce(sum(octet_length(data)), 0)\n"
    "      INTO have, hb FROM jobq_queue_items WHERE queue = q;\n"
    "    WHILE k < n AND NOT ((md > 0 AND have >= md) OR\n"
    "        (mb > 0 AND have > 0 AND hb + ls[k + 1] > mb)) LOOP\n"
    "      have := have + 1; hb := hb + ls[k + 1]; k := k + 1;\n"
    "    END LOOP;\n"
    "    n := k;\n"
    "  END IF;\n"
    "  IF n = 0 THEN\n"
    "    RETURN 0;\n"
    "  END IF;\n"
    "  INSERT INTO jobq_queue_items (queue, type, data)\n"
    "    SELECT q, t, substring(d FROM (o + 1)::integer FOR l)\n"
    "    FROM (SELECT i, t, l, sum(l) OVER (ORDER BY i) - l AS o\n"
    "      FROM unnest(ts, ls) WITH ORDINALITY AS u(t, l, i)) r\n"
    "    WHERE i <= n ORDER BY i;\n"
    "  UPDATE jobq_object_queues SET unfinished = unfinished + n\n"
    "    WHERE queue = q;\n"
    "  PERFORM pg_notify(chan, q);\n"
    "  RETURN n;\n"
    "END $f$;\n"
    "INSERT INTO jobq_schema (version) VALUES (5);\n"
    "END $m$",
    /* 6: who holds and waits for each named lock on each host, so that
     * `jobq locks` on any host lists them all (pg_locks.c). Touches
     * nothing earlier migrations made. */
    "DO $m$ BEGIN\n"
    "PERFORM pg_advisory_xact_lock(" SCHEMA_LOCK ");\n"
    "IF EXISTS (SELECT 1 FROM jobq_schema WHERE version >= 6) THEN\n"
    "  RETURN;\n"
    "END IF;\n"
    "CREATE TABLE jobq_lock_holders (\n"
    "  host text NOT NULL,\n"
    "  session integer NOT NULL,\n"
    "  session_start timestamptz,\n"
    "  name text NOT NULL,\n"
    "  kind smallint NOT NULL,\n"
    "  lim integer NOT NULL,\n"
    "  client bigint NOT NULL,\n"
    "  owner bigint NOT NULL,\n"
    "  pid integer NOT NULL,\n"
    "  waiting boolean NOT NULL,\n"
    "  units integer NOT NULL,\n"
    "  since timestamptz NOT NULL);\n"
    "CREATE INDEX jobq_lock_holders_name ON jobq_lock_holders (host, "
    "name);\n"
    "INSERT INTO jobq_schema (version) VALUES (6);\n"
    "END $m$",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
		   JOBQ__PG_SCHEMA_VERSION,
	       "one migration per schema version");

/* Two statements: one naming a table that may be missing does not
 * parse. */
static const char sql_exists[] =
    "SELECT (to_regclass('jobq_schema') IS NOT NULL)::integer";
static const char sql_version[] =
    "SELECT coalesce(max(version), 0) FROM jobq_schema";

struct step {
	bool done;
	int err;
	int64_t version;
	char msg[256];
};

static void step_cb(void *arg, int err, const PGresult *res)
{
	struct step *s = arg;

	s->done = true;
	s->err = err;
	if (err == 0 && res && PQntuples(res) == 1)
		s->version = jobq__pg_int(res, 0, 0);
	if (err == -EPROTO) {
		snprintf(s->msg, sizeof(s->msg), "%s",
			 PQresultErrorMessage(res));
		s->msg[strcspn(s->msg, "\n")] = '\0';
	}
}

static bool step_done(void *arg)
{
	return ((struct step *)arg)->done;
}

/* Runs @sql and waits for its answer; a cut connection is retried, since
 * every statement here is safe to run twice. */
static int run_step(struct jobq__pg *pg, const char *sql, struct step *s,
		    int timeout_ms, char *err, size_t errlen)
{
	/* A connection that keeps being cut gets as long as one answer. */
	for (int tries = 0;; tries++) {
		int ret;

		if (tries == 5) {
			snprintf(err, errlen,
				 "the connection was cut %d times in a row",
				 tries);
			return -ECONNRESET;
		}
		memset(s, 0, sizeof(*s));
		ret = jobq__pg_query(pg, sql, 0, NULL, step_cb, s);
		if (ret) {
			snprintf(err, errlen, "%s", strerror(-ret));
			return ret;
		}
		ret = jobq__pg_run(pg, step_done, s, timeout_ms);
		if (ret == -ETIMEDOUT) {
			snprintf(err, errlen,
				 "PostgreSQL did not answer within %d s",
				 timeout_ms / 1000);
			/* The query stays queued; closing the connection
			 * fails it. */
			return ret;
		}
		if (s->err == -ECONNRESET)
			continue;
		if (s->err) {
			snprintf(err, errlen, "%s", s->msg);
			return -EIO;
		}
		return 0;
	}
}

int jobq__pg_schema(struct jobq__pg *pg, int mode, int timeout_ms, int *found,
		    char *err, size_t errlen)
{
	struct step s;
	int ret, v;

	ret = run_step(pg, sql_exists, &s, timeout_ms, err, errlen);
	if (!ret && s.version)
		ret = run_step(pg, sql_version, &s, timeout_ms, err, errlen);
	if (ret)
		return ret;
	v = (int)s.version;
	*found = v;
	if (v > JOBQ__PG_SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "the database's jobq schema is version %d, newer "
			 "than this jobqd's %d: run a jobqd as new as the "
			 "one that migrated it",
			 v, JOBQ__PG_SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (v == JOBQ__PG_SCHEMA_VERSION)
		return 0;
	if (v == 0 && mode == JOBQ__PG_CHECK) {
		snprintf(err, errlen,
			 "the database has no jobq schema: run jobqd --backend "
			 "URL --migrate once");
		return -ESTALE;
	}
	if (mode == JOBQ__PG_CHECK || (v > 0 && mode != JOBQ__PG_MIGRATE)) {
		snprintf(err, errlen,
			 "the database's jobq schema is version %d, this "
			 "jobqd's is %d: run jobqd --backend URL --migrate "
			 "once (after every host runs this version)",
			 v, JOBQ__PG_SCHEMA_VERSION);
		return -ESTALE;
	}
	for (int i = v; i < JOBQ__PG_SCHEMA_VERSION; i++) {
		ret = run_step(pg, migrations[i], &s, timeout_ms, err, errlen);
		if (ret) {
			char m[256];

			snprintf(m, sizeof(m), "%s", err);
			snprintf(err, errlen, "migration to version %d: %s",
				 i + 1, m);
			return ret;
		}
	}
	return 0;
}
