/* SPDX-License-Identifier: MIT */
/*
 * test_pg.c - jobqd --backend's PostgreSQL client and job statements
 * (manager/pg*.c) against a real PostgreSQL 15 of the test's own
 * (pg_server.h): the schema and its refusals, each job operation's
 * promise, two connections racing as two hosts' managers would, the
 * connection cut and the server restarted, and LISTEN/NOTIFY wake-ups.
 *
 * Each case has a database of its own. The client is driven here by
 * poll(2) (jobq__pg_run() or drive() for two connections at once),
 * exactly as the manager's loop drives it, without a manager.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"
#include "pg.h"
#include "pg_server.h"

static struct jqt_pg server;

/* ------------------------------------------------------------------------
 * Answers, waited for.
 */
struct ans {
	bool done;
	int err;
	PGresult *res; /* a copy, or NULL */
	char state[6]; /* SQLSTATE of an error */
	char msg[256];
};

static void ans_cb(void *arg, int err, const PGresult *res)
{
	struct ans *a = arg;
	const char *st;

	a->done = true;
	a->err = err;
	if (err == -EPROTO) {
		st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(a->state, sizeof(a->state), "%s", st ? st : "");
		snprintf(a->msg, sizeof(a->msg), "%s",
			 PQresultErrorMessage(res));
	} else if (!err) {
		a->res =
		    PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
	}
}

static bool ans_done(void *arg)
{
	return ((struct ans *)arg)->done;
}

static void ans_clear(struct ans *a)
{
	PQclear(a->res);
	memset(a, 0, sizeof(*a));
}

/* Waits for @a on @pg (at most 20 s) and fails on a SQL error. */
static void wait_ok(struct jobq__pg *pg, struct ans *a)
{
	assert_int_equal(jobq__pg_run(pg, ans_done, a, 20000), 0);
	if (a->err)
		fprintf(stderr, "query failed: %d %s %s\n", a->err, a->state,
			a->msg);
	assert_int_equal(a->err, 0);
}

/* Runs @expr (which sends a query answering to ans_cb, &A) and waits
 * for it; A is the answer. */
static struct ans A;
#define SYNC(pg, expr)                                                         \
	do {                                                                   \
		ans_clear(&A);                                                 \
		assert_int_equal((expr), 0);                                   \
		wait_ok((pg), &A);                                             \
	} while (0)

/* Drives @n connections at once until @done(@arg) or @ms pass. */
static int drive(struct jobq__pg **pgs, int n, bool (*done)(void *), void *arg,
		 int ms)
{
	double end = jqt_now() + ms / 1000.0;

	while (jqt_now() < end) {
		struct pollfd p[8];
		uint64_t dl;
		uint32_t gen;

		for (int i = 0; i < n; i++)
			jobq__pg_ready(pgs[i], 0);
		if (done(arg))
			return 0;
		for (int i = 0; i < n; i++) {
			p[i].events =
			    jobq__pg_events(pgs[i], &p[i].fd, &dl, &gen);
			p[i].revents = 0;
			if (dl)
				jobq__pg_tick(pgs[i]);
		}
		if (poll(p, (nfds_t)n, 20) < 0)
			return -errno;
		for (int i = 0; i < n; i++)
			if (p[i].fd >= 0 && p[i].revents)
				jobq__pg_ready(pgs[i], p[i].revents);
	}
	return -ETIMEDOUT;
}

/* ------------------------------------------------------------------------
 * A database and a connection per case.
 */
struct ctx {
	char conninfo[PATH_MAX];
	struct jobq__pg *pg;
	struct jobq__pg *pg2; /* a second "host", when a case opens it */
	int ups, downs, notes, dones;
	char last_note[64], last_done[32];
};

static void on_state(void *c, bool up, const char *why)
{
	struct ctx *x = c;

	if (up)
		x->ups++;
	else
		x->downs++;
}

static void on_notify(void *c, const char *ch, const char *payload)
{
	struct ctx *x = c;

	if (!strcmp(ch, JOBQ__PG_DONE_CHANNEL)) {
		x->dones++;
		snprintf(x->last_done, sizeof(x->last_done), "%s", payload);
		return;
	}
	x->notes++;
	snprintf(x->last_note, sizeof(x->last_note), "%s", payload);
}

static struct jobq__pg *open_pg(struct ctx *x)
{
	static const char *const ch[] = {JOBQ__PG_CHANNEL,
					 JOBQ__PG_DONE_CHANNEL};
	struct jobq__pg_hooks h = {on_notify, on_state, x};
	struct jobq__pg *pg;
	char err[256];

	assert_int_equal(
	    jobq__pg_open(&pg, x->conninfo, ch, 2, &h, err, sizeof(err)), 0);
	return pg;
}

static bool pg_is_up(void *arg)
{
	return jobq__pg_up(arg);
}

static int setup(void **state)
{
	static int n;
	struct ctx *x = calloc(1, sizeof(*x));
	char name[32], err[256];
	int found;

	snprintf(name, sizeof(name), "t%d", ++n);
	if (jqt_pg_createdb(&server, name, x->conninfo, sizeof(x->conninfo)))
		return -1;
	x->pg = open_pg(x);
	if (jobq__pg_schema(x->pg, JOBQ__PG_CREATE, 20000, &found, err,
			    sizeof(err))) {
		fprintf(stderr, "schema: %s\n", err);
		return -1;
	}
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;

	jobq__pg_close(x->pg);
	jobq__pg_close(x->pg2);
	ans_clear(&A);
	free(x);
	return 0;
}

/* Column @col of job @id's row, as a number. */
static int job_col(struct ctx *x, const char *col, uint64_t id)
{
	return atoi(jqt_pg_ask(x->conninfo,
			       "SELECT %s FROM jobq_jobs WHERE id = %" PRIu64,
			       col, id));
}

static int job_state(struct ctx *x, uint64_t id)
{
	return job_col(x, "state", id);
}

static int job_attempts(struct ctx *x, uint64_t id)
{
	return job_col(x, "attempts", id);
}

static uint64_t submit(struct ctx *x, const struct jobq__pg_submit *s)
{
	SYNC(x->pg, jobq__pg_submit(x->pg, s, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	return (uint64_t)jobq__pg_int(A.res, 0, 0);
}

static uint64_t submit_simple(struct ctx *x, const char *type)
{
	struct jobq__pg_submit s = {.type = type};

	return submit(x, &s);
}

/* Reserves at most @max jobs of @type; returns how many, the first's id
 * and token in *@id, *@token. */
static int reserve(struct jobq__pg *pg, const char *type, uint32_t max,
		   uint64_t *id, uint64_t *token)
{
	const char *types[] = {type};

	SYNC(pg, jobq__pg_reserve(pg, "test", types, 1, max, ans_cb, &A));
	if (PQntuples(A.res) > 0) {
		if (id)
			*id = (uint64_t)jobq__pg_int(A.res, 0, 0);
		if (token)
			*token = (uint64_t)jobq__pg_int(A.res, 0, 1);
	}
	return PQntuples(A.res);
}

/* ------------------------------------------------------------------------
 * The schema.
 */
/* In a child: a manager starting on @arg (a connection string). */
static int create_schema(int idx, void *arg)
{
	struct ctx y = {0};
	char err[512];
	int found, ret;

	snprintf(y.conninfo, sizeof(y.conninfo), "%s", (const char *)arg);
	y.pg = open_pg(&y);
	ret = jobq__pg_schema(y.pg, JOBQ__PG_CREATE, 20000, &found, err,
			      sizeof(err));
	if (ret)
		fprintf(stderr, "schema: %s\n", err);
	jobq__pg_close(y.pg);
	return ret ? 1 : 0;
}
static void schema_versions(void **state)
{
	struct ctx *x = *state;
	char conninfo[PATH_MAX], err[512];
	struct ctx y = {0};
	int found;

	/* Made by setup (from nothing); a second start finds it. */
	assert_int_equal(jobq__pg_schema(x->pg, JOBQ__PG_CHECK, 20000, &found,
					 err, sizeof(err)),
			 0);
	assert_int_equal(found, JOBQ__PG_SCHEMA_VERSION);
	assert_int_equal(jobq__pg_schema(x->pg, JOBQ__PG_MIGRATE, 20000, &found,
					 err, sizeof(err)),
			 0);

	/* An empty database: only CHECK refuses, and says what to run. */
	assert_int_equal(
	    jqt_pg_createdb(&server, "empty", conninfo, sizeof(conninfo)), 0);
	snprintf(y.conninfo, sizeof(y.conninfo), "%s", conninfo);
	y.pg = open_pg(&y);
	assert_int_equal(jobq__pg_schema(y.pg, JOBQ__PG_CHECK, 20000, &found,
					 err, sizeof(err)),
			 -ESTALE);
	assert_non_null(strstr(err, "--migrate"));
	/* Managers creating it at once (processes of their own): one
	 * creates, every one succeeds. */
	{
		pid_t pids[3];
		int st[3];
		char rows[16];

		assert_int_equal(jqt_fork_n(3, create_schema, y.conninfo, pids),
				 0);
		assert_int_equal(jqt_wait_all(pids, 3, 60, st), 0);
		/* One row per migration, each applied once. */
		snprintf(rows, sizeof(rows), "%d", JOBQ__PG_SCHEMA_VERSION);
		assert_string_equal(
		    jqt_pg_ask(y.conninfo, "SELECT count(*) FROM jobq_schema"),
		    rows);
	}

	/* A newer schema is refused, naming both versions. */
	free(jqt_pg_exec(x->conninfo,
			 "INSERT INTO jobq_schema (version) VALUES (99)"));
	assert_int_equal(jobq__pg_schema(x->pg, JOBQ__PG_MIGRATE, 20000, &found,
					 err, sizeof(err)),
			 -EPROTONOSUPPORT);
	assert_int_equal(found, 99);
	assert_non_null(strstr(err, "99"));
	{
		char ours[32];

		snprintf(ours, sizeof(ours), "jobqd's %d",
			 JOBQ__PG_SCHEMA_VERSION);
		assert_non_null(strstr(err, ours));
	}
	jobq__pg_close(y.pg);
}

/* ------------------------------------------------------------------------
 * Submit and --unique.
 */
struct race {
	struct ans a[2];
};

static bool race_done(void *arg)
{
	struct race *r = arg;

	return r->a[0].done && r->a[1].done;
}

/* Two hosts submit the same key at the same moment, 40 times: each time
 * exactly one creates the job and both get its id. */
static void unique_exact_across_connections(void **state)
{
	struct ctx *x = *state;
	struct jobq__pg *both[2];

	x->pg2 = open_pg(x);
	both[0] = x->pg;
	both[1] = x->pg2;
	for (int k = 0; k < 40; k++) {
		struct jobq__pg_submit s = {.type = "t"};
		struct race r = {0};
		char key[32];
		int created = 0;

		snprintf(key, sizeof(key), "key-%d", k);
		s.unique = key;
		assert_int_equal(jobq__pg_submit(x->pg, &s, ans_cb, &r.a[0]),
				 0);
		assert_int_equal(jobq__pg_submit(x->pg2, &s, ans_cb, &r.a[1]),
				 0);
		assert_int_equal(drive(both, 2, race_done, &r, 20000), 0);
		assert_int_equal(r.a[0].err, 0);
		assert_int_equal(r.a[1].err, 0);
		assert_int_equal(jobq__pg_int(r.a[0].res, 0, 0),
				 jobq__pg_int(r.a[1].res, 0, 0));
		for (int i = 0; i < 2; i++)
			created += !strcmp(PQgetvalue(r.a[i].res, 0, 1), "t");
		assert_int_equal(created, 1);
		ans_clear(&r.a[0]);
		ans_clear(&r.a[1]);
	}
	assert_string_equal(
	    jqt_pg_ask(x->conninfo, "SELECT count(*) FROM jobq_jobs"), "40");

	/* The key is free again once its job finished. */
	{
		struct jobq__pg_submit s = {.type = "u", .unique = "once"};
		uint64_t id = submit(x, &s), id2, got, tok;

		assert_int_equal(submit(x, &s), id);
		assert_int_equal(reserve(x->pg, "u", 1, &got, &tok), 1);
		assert_int_equal(got, id);
		SYNC(x->pg,
		     jobq__pg_complete(x->pg, got, tok, NULL, 0, ans_cb, &A));
		id2 = submit(x, &s);
		assert_true(id2 != id);
	}
}

/* The same (session, request id) sent on two connections at once, as a
 * resend racing its first copy on a dead manager's connection: one job,
 * both answers name it, and the loser of the race, refused by the
 * request index, finds it when sent again. */
static void request_id_once(void **state)
{
	struct ctx *x = *state;
	struct jobq__pg *both[2];

	x->pg2 = open_pg(x);
	both[0] = x->pg;
	both[1] = x->pg2;
	for (int k = 1; k <= 20; k++) {
		struct jobq__pg_submit s = {
		    .type = "r", .session = 77, .rid = k};
		struct race r = {0};
		int created = 0, again = 0;

		assert_int_equal(jobq__pg_submit(x->pg, &s, ans_cb, &r.a[0]),
				 0);
		assert_int_equal(jobq__pg_submit(x->pg2, &s, ans_cb, &r.a[1]),
				 0);
		assert_int_equal(drive(both, 2, race_done, &r, 20000), 0);
		for (int i = 0; i < 2; i++) {
			if (r.a[i].err == -EPROTO &&
			    !strcmp(r.a[i].state, "23505")) {
				ans_clear(&r.a[i]);
				assert_int_equal(jobq__pg_submit(both[i], &s,
								 ans_cb,
								 &r.a[i]),
						 0);
				assert_int_equal(
				    drive(both, 2, race_done, &r, 20000), 0);
			}
			assert_int_equal(r.a[i].err, 0);
			assert_int_equal(PQntuples(r.a[i].res), 1);
			created += !strcmp(PQgetvalue(r.a[i].res, 0, 1), "t");
			again += !strcmp(PQgetvalue(r.a[i].res, 0, 4), "t");
		}
		assert_int_equal(jobq__pg_int(r.a[0].res, 0, 0),
				 jobq__pg_int(r.a[1].res, 0, 0));
		assert_int_equal(created, 1);
		assert_int_equal(again, 1);
		ans_clear(&r.a[0]);
		ans_clear(&r.a[1]);
	}
	assert_string_equal(
	    jqt_pg_ask(x->conninfo, "SELECT count(*) FROM jobq_jobs"), "20");

	/* Unlike a key, a request id keeps naming its job once it is
	 * final; another session's same number is another request. */
	{
		struct jobq__pg_submit s = {
		    .type = "u", .session = 78, .rid = 1};
		uint64_t id = submit(x, &s), got, tok;

		assert_int_equal(reserve(x->pg, "u", 1, &got, &tok), 1);
		assert_int_equal(got, id);
		SYNC(x->pg,
		     jobq__pg_complete(x->pg, got, tok, NULL, 0, ans_cb, &A));
		assert_int_equal(submit(x, &s), id);
		s.session = 79;
		assert_true(submit(x, &s) != id);
	}
}

/* ------------------------------------------------------------------------
 * Hand-out.
 */
struct grab {
	struct ans a[2];
	bool empty[2];
	uint8_t *seen;
	uint32_t nseen, max;
	struct jobq__pg *pgs[2];
	int dup;
};

static bool grab_step(void *arg)
{
	struct grab *g = arg;

	for (int i = 0; i < 2; i++) {
		const char *types[] = {"bulk"};

		if (!g->a[i].done)
			continue;
		if (g->a[i].err) {
			fprintf(stderr, "reserve: %s\n", g->a[i].msg);
			return true;
		}
		if (g->a[i].res) {
			int n = PQntuples(g->a[i].res);

			if (!n)
				g->empty[i] = true;
			for (int k = 0; k < n; k++) {
				uint64_t id =
				    (uint64_t)jobq__pg_int(g->a[i].res, k, 0);

				if (id >= g->max || g->seen[id]++)
					g->dup++;
				g->nseen++;
			}
		}
		ans_clear(&g->a[i]);
		if (!g->empty[i])
			assert_int_equal(jobq__pg_reserve(g->pgs[i], "h", types,
							  1, 7, ans_cb,
							  &g->a[i]),
					 0);
	}
	return g->empty[0] && g->empty[1];
}

/* Two managers hand out 300 jobs in batches of 7 at the same time: each
 * job goes out once. */
static void skip_locked_batches(void **state)
{
	struct ctx *x = *state;
	struct grab g = {0};
	struct ans subs[300];
	uint64_t last = 0;

	memset(subs, 0, sizeof(subs));
	for (int i = 0; i < 300; i++) {
		struct jobq__pg_submit s = {.type = "bulk"};

		assert_int_equal(jobq__pg_submit(x->pg, &s, ans_cb, &subs[i]),
				 0);
	}
	wait_ok(x->pg, &subs[299]);
	for (int i = 0; i < 300; i++) {
		assert_true(subs[i].done);
		assert_int_equal(subs[i].err, 0);
		last = (uint64_t)jobq__pg_int(subs[i].res, 0, 0);
		ans_clear(&subs[i]);
	}
	x->pg2 = open_pg(x);
	g.pgs[0] = x->pg;
	g.pgs[1] = x->pg2;
	g.max = (uint32_t)last + 1;
	g.seen = calloc(g.max, 1);
	/* Both start with an answer "done", so the first step sends. */
	g.a[0].done = g.a[1].done = true;
	assert_int_equal(drive(g.pgs, 2, grab_step, &g, 60000), 0);
	assert_int_equal(g.dup, 0);
	assert_int_equal(g.nseen, 300);
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT count(*) FROM jobq_jobs WHERE state = 4"),
	    "300");
	free(g.seen);
}

/* Higher priority first; a delayed job waits for its time. */
static void priority_and_delay(void **state)
{
	struct ctx *x = *state;
	struct jobq__pg_submit lo = {.type = "p"}, hi = {.type = "p"};
	struct jobq__pg_submit later = {.type = "d", .delay_ms = 400};
	const char *types[] = {"d"};
	uint64_t idh, got;
	double t0 = jqt_now();

	hi.priority = 5;
	submit(x, &lo);
	idh = submit(x, &hi);
	assert_int_equal(reserve(x->pg, "p", 1, &got, NULL), 1);
	assert_int_equal(got, idh);

	submit(x, &later);
	assert_int_equal(reserve(x->pg, "d", 1, NULL, NULL), 0);
	SYNC(x->pg, jobq__pg_next_run(x->pg, types, 1, ans_cb, &A));
	assert_true(jobq__pg_int(A.res, 0, 0) > 0);
	assert_true(jobq__pg_int(A.res, 0, 0) <= 400);
	while (reserve(x->pg, "d", 1, NULL, NULL) == 0) {
		assert_true(jqt_now() - t0 < 10);
		jqt_sleep(0.05);
	}
	assert_true(jqt_now() - t0 >= 0.35);
}

/* ------------------------------------------------------------------------
 * Leases, stale results, retries.
 */
static void lease_expiry_and_stale_result(void **state)
{
	struct ctx *x = *state;
	struct jobq__pg_submit s = {.type = "l", .timeout_ms = 100};
	uint64_t id = submit(x, &s), got, t1, t2;
	static const uint8_t res[] = {'o', 'k', 0, 1};

	assert_int_equal(reserve(x->pg, "l", 1, &got, &t1), 1);
	assert_int_equal(got, id);
	/* Not yet ended: nothing expires. */
	SYNC(x->pg, jobq__pg_expire(x->pg, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	jqt_sleep(0.3);
	SYNC(x->pg, jobq__pg_expire(x->pg, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	assert_int_equal(jobq__pg_int(A.res, 0, 0), id);
	assert_int_equal(job_state(x, id), 3);

	/* Another worker has it now, with another token. */
	assert_int_equal(reserve(x->pg, "l", 1, &got, &t2), 1);
	assert_int_equal(got, id);
	assert_true(t2 != t1);
	assert_int_equal(job_attempts(x, id), 2);
	/* The first worker's answers are refused. */
	SYNC(x->pg, jobq__pg_complete(x->pg, id, t1, res, 4, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	SYNC(x->pg, jobq__pg_progress(x->pg, id, t1, 0.5, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	SYNC(x->pg, jobq__pg_fail(x->pg, id, t1, "late", ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	/* The second's are taken. */
	SYNC(x->pg, jobq__pg_progress(x->pg, id, t2, 0.5, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	SYNC(x->pg, jobq__pg_extend(x->pg, id, t2, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	SYNC(x->pg, jobq__pg_complete(x->pg, id, t2, res, 4, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 5);
	SYNC(x->pg, jobq__pg_show(x->pg, id, ans_cb, &A));
	{
		size_t len;
		unsigned char *b = PQunescapeBytea(
		    (const unsigned char *)PQgetvalue(A.res, 0, 8), &len);

		assert_int_equal(len, 4);
		assert_memory_equal(b, res, 4);
		PQfreemem(b);
	}
	/* Out of attempts, an expired lease makes the job dead. */
	{
		struct jobq__pg_submit o = {
		    .type = "l1", .timeout_ms = 50, .max_attempts = 1};
		uint64_t id1 = submit(x, &o);

		assert_int_equal(reserve(x->pg, "l1", 1, NULL, NULL), 1);
		jqt_sleep(0.2);
		SYNC(x->pg, jobq__pg_expire(x->pg, ans_cb, &A));
		assert_int_equal(job_state(x, id1), 7);
	}
}

static void retries_backoff_dead(void **state)
{
	struct ctx *x = *state;
	struct jobq__pg_submit s = {.type = "r", .max_attempts = 2};
	uint64_t id = submit(x, &s), got, tok;
	double wait;

	assert_int_equal(reserve(x->pg, "r", 1, &got, &tok), 1);
	SYNC(x->pg, jobq__pg_fail(x->pg, id, tok, "boom", ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 6);
	/* First retry: 1 s with jitter in [0.5, 1.5). */
	wait = atof(jqt_pg_ask(x->conninfo,
			       "SELECT extract(epoch FROM run_at - now()) FROM "
			       "jobq_jobs WHERE id = %" PRIu64,
			       id));
	assert_true(wait > 0.3 && wait < 1.6);
	assert_int_equal(reserve(x->pg, "r", 1, NULL, NULL), 0);
	free(jqt_pg_exec(x->conninfo, "UPDATE jobq_jobs SET run_at = now()"));
	assert_int_equal(reserve(x->pg, "r", 1, &got, &tok), 1);
	SYNC(x->pg, jobq__pg_fail(x->pg, id, tok, "boom again", ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 7);
	assert_string_equal(
	    jqt_pg_ask(
		x->conninfo,
		"SELECT error || ' ' || attempts || ' ' || (finished_at IS "
		"NOT NULL) FROM jobq_jobs WHERE id = %" PRIu64,
		id),
	    "boom again 2 true");
}

/* ------------------------------------------------------------------------
 * Cancel and --after.
 */
static void cancel_queued_and_running(void **state)
{
	struct ctx *x = *state;
	uint64_t a = submit_simple(x, "c"), b, got, tok;

	SYNC(x->pg, jobq__pg_cancel(x->pg, a, ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 8);
	assert_int_equal(job_state(x, a), 8);
	/* Again: it stays cancelled. */
	SYNC(x->pg, jobq__pg_cancel(x->pg, a, ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 8);
	/* Unknown: no row. */
	SYNC(x->pg, jobq__pg_cancel(x->pg, 987654, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);

	b = submit_simple(x, "c");
	assert_int_equal(reserve(x->pg, "c", 1, &got, &tok), 1);
	assert_int_equal(got, b);
	SYNC(x->pg, jobq__pg_cancel(x->pg, b, ans_cb, &A));
	assert_int_equal(job_state(x, b), 8);
	/* Its worker's result comes too late. */
	SYNC(x->pg, jobq__pg_complete(x->pg, b, tok, NULL, 0, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	assert_int_equal(job_state(x, b), 8);
}

static void after_dependencies(void **state)
{
	struct ctx *x = *state;
	uint64_t a = submit_simple(x, "a"), b, c, d, got, tok;
	struct jobq__pg_submit s = {.type = "b", .after = &a, .nafter = 1};
	char msg[64];

	b = submit(x, &s);
	assert_int_equal(job_state(x, b), 1);
	assert_int_equal(reserve(x->pg, "b", 1, NULL, NULL), 0);
	assert_int_equal(reserve(x->pg, "a", 1, &got, &tok), 1);
	SYNC(x->pg, jobq__pg_complete(x->pg, a, tok, NULL, 0, ans_cb, &A));
	assert_int_equal(job_state(x, b), 3);
	assert_int_equal(reserve(x->pg, "b", 1, &got, NULL), 1);
	assert_int_equal(got, b);

	/* A dependency that dies takes its dependents, and theirs. */
	{
		struct jobq__pg_submit ds = {.type = "d", .max_attempts = 1};

		d = submit(x, &ds);
	}
	s.type = "c";
	s.after = &d;
	c = submit(x, &s);
	s.after = &c;
	{
		uint64_t e = submit(x, &s);

		assert_int_equal(reserve(x->pg, "d", 1, &got, &tok), 1);
		SYNC(x->pg, jobq__pg_fail(x->pg, d, tok, "no", ans_cb, &A));
		assert_int_equal(job_state(x, d), 7);
		assert_int_equal(job_state(x, c), 7);
		assert_int_equal(job_state(x, e), 7);
		snprintf(msg, sizeof(msg), "dependency %" PRIu64 " failed", d);
		assert_string_equal(
		    jqt_pg_ask(
			x->conninfo,
			"SELECT error FROM jobq_jobs WHERE id = %" PRIu64, c),
		    msg);
	}
	/* After a dead job: dead at once. After no job: refused. */
	s.after = &d;
	c = submit(x, &s);
	assert_int_equal(job_state(x, c), 7);
	{
		uint64_t none = 999999;
		struct jobq__pg_submit n = {
		    .type = "n", .after = &none, .nafter = 1};

		SYNC(x->pg, jobq__pg_submit(x->pg, &n, ans_cb, &A));
		assert_int_equal(PQntuples(A.res), 0);
	}
	/* The sweep releases a waiting job whose dependency succeeded
	 * unseen (as when it finished while the job was being submitted). */
	a = submit_simple(x, "a2");
	s.type = "b2";
	s.after = &a;
	b = submit(x, &s);
	free(jqt_pg_exec(x->conninfo,
			 "UPDATE jobq_jobs SET state = 5 WHERE type = 'a2'"));
	assert_int_equal(job_state(x, b), 1);
	SYNC(x->pg, jobq__pg_release(x->pg, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	assert_int_equal(job_state(x, b), 3);
}

/* ------------------------------------------------------------------------
 * Queue settings: parallel limits across hosts, pause.
 */
static void parallel_limit_and_pause(void **state)
{
	struct ctx *x = *state;
	struct jobq__pg_submit s = {.type = "q", .queue = "lim"};
	uint64_t id, tok;

	x->pg2 = open_pg(x);
	SYNC(x->pg, jobq__pg_queue_set(x->pg, "lim", -1, 2, ans_cb, &A));
	for (int i = 0; i < 5; i++)
		submit(x, &s);
	assert_int_equal(reserve(x->pg, "q", 10, &id, &tok), 2);
	assert_int_equal(reserve(x->pg2, "q", 10, NULL, NULL), 0);
	SYNC(x->pg, jobq__pg_complete(x->pg, id, tok, NULL, 0, ans_cb, &A));
	assert_int_equal(reserve(x->pg2, "q", 10, &id, &tok), 1);
	assert_int_equal(reserve(x->pg, "q", 10, NULL, NULL), 0);
	/* A failed run gives its slot back too. */
	SYNC(x->pg, jobq__pg_fail(x->pg, id, tok, "x", ans_cb, &A));
	/* Paused: nothing, though a slot is free. */
	SYNC(x->pg, jobq__pg_queue_set(x->pg, "lim", 1, -1, ans_cb, &A));
	assert_int_equal(reserve(x->pg2, "q", 10, NULL, NULL), 0);
	SYNC(x->pg, jobq__pg_queue_set(x->pg, "lim", 0, -1, ans_cb, &A));
	assert_int_equal(reserve(x->pg2, "q", 10, NULL, NULL), 1);
	assert_string_equal(
	    jqt_pg_ask(x->conninfo, "SELECT running FROM jobq_queue_settings"),
	    "2");
	/* Other queues are not limited. */
	s.queue = "free";
	for (int i = 0; i < 4; i++)
		submit(x, &s);
	assert_int_equal(reserve(x->pg, "q", 10, NULL, NULL), 4);
}

/* Many plain submits in one statement: ids in the requests' order, each
 * row naming its request, delays and args kept, and a request id that
 * made a job before skipped (its submit alone returns that job). */
static void submit_many_in_order(void **state)
{
	struct ctx *x = *state;
	static const uint8_t args[] = {'{', '}'};
	struct jobq__pg_submit s[4] = {
	    {.type = "m", .priority = 1, .args = args, .args_len = 2},
	    {.type = "m", .session = 9, .rid = 1},
	    {.type = "m2", .queue = "q", .delay_ms = 60000},
	    {.type = "m", .session = 9, .rid = 2},
	};
	const struct jobq__pg_submit *v[4] = {&s[0], &s[1], &s[2], &s[3]};
	uint64_t first, id[4];

	first = submit(x, &s[1]);
	SYNC(x->pg, jobq__pg_submit_many(x->pg, v, 4, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 3);
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 1);
	assert_int_equal(jobq__pg_int(A.res, 1, 0), 3);
	assert_int_equal(jobq__pg_int(A.res, 2, 0), 4);
	for (int i = 0; i < 3; i++)
		id[i] = (uint64_t)jobq__pg_int(A.res, i, 1);
	assert_true(first < id[0] && id[0] < id[1] && id[1] < id[2]);
	assert_int_equal(jobq__pg_int(A.res, 0, 2), 3);
	assert_int_equal(jobq__pg_int(A.res, 1, 2), 2);
	/* One notification: one type made ready. */
	assert_int_equal(jobq__pg_int(A.res, 0, 3), 1);
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT priority || ' ' || convert_from(args, 'UTF8')"
		       " FROM jobq_jobs WHERE id = %" PRIu64,
		       id[0]),
	    "1 {}");
	assert_string_equal(
	    jqt_pg_ask(
		x->conninfo,
		"SELECT queue || ' ' || (run_at > now() + interval '50 s')"
		" FROM jobq_jobs WHERE id = %" PRIu64,
		id[1]),
	    "q true");
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT req_session || ' ' || req_id FROM jobq_jobs"
		       " WHERE id = %" PRIu64,
		       id[2]),
	    "9 2");
	/* The one skipped, sent alone, is the first job. */
	SYNC(x->pg, jobq__pg_submit(x->pg, &s[1], ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), first);
	assert_string_equal(PQgetvalue(A.res, 0, 4), "t");
	/* Keys, dependencies and owners go alone. */
	s[0].unique = "k";
	assert_int_equal(jobq__pg_submit_many(x->pg, v, 1, ans_cb, &A),
			 -EINVAL);
}

/* ------------------------------------------------------------------------
 * A submit that reserves for a waiting worker of its host (an owner).
 */
/* Submits @s; returns the job's id and its lease token (0: not reserved)
 * in *@token. */
static uint64_t submit_tok(struct ctx *x, const struct jobq__pg_submit *s,
			   uint64_t *token)
{
	uint64_t id = submit(x, s);

	*token = (uint64_t)jobq__pg_int(A.res, 0, 5);
	return id;
}

static void submit_reserves_for_owner(void **state)
{
	struct ctx *x = *state;
	const char *types[] = {"h", "h2"};
	struct jobq__pg_submit s = {.type = "h",
				    .timeout_ms = 5000,
				    .owner = "me:1:0",
				    .types = types,
				    .ntypes = 2};
	struct jobq__pg_submit plain = {.type = "h2", .priority = 5};
	uint64_t id, id2, hi, tok, tok2, got, dep;

	/* Nothing waits: running for its owner, in the submit's own
	 * transaction, with its first attempt and a lease of its timeout,
	 * as a reserve makes it. No notification: no host need look. */
	id = submit_tok(x, &s, &tok);
	assert_true(tok > 0);
	assert_int_equal(jobq__pg_int(A.res, 0, 2), 0);
	assert_int_equal(job_state(x, id), 4);
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT attempts || ' ' || lease_owner || ' '"
		       " || (lease_until - started_at) || ' '"
		       " || (started_at = created_at) || ' ' || NOT slot"
		       " FROM jobq_jobs WHERE id = %" PRIu64,
		       id),
	    "1 me:1:0 00:00:05 true true");
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT lease_token FROM jobq_jobs WHERE id = %" PRIu64,
		       id),
	    jqt_pg_ask(x->conninfo, "SELECT %" PRIu64, tok));
	/* Its token is the run's: the result is taken. */
	SYNC(x->pg, jobq__pg_complete(x->pg, id, tok, NULL, 0, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	assert_int_equal(job_state(x, id), 5);

	/* Its lease ends as any run's: ready again, the attempt counted, and
	 * the first token refused once another run holds the job. */
	s.timeout_ms = 50;
	id = submit_tok(x, &s, &tok);
	assert_true(tok > 0);
	jqt_sleep(0.2);
	SYNC(x->pg, jobq__pg_expire(x->pg, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	assert_int_equal(job_state(x, id), 3);
	assert_int_equal(reserve(x->pg, "h", 1, &got, &tok2), 1);
	assert_int_equal(got, id);
	assert_int_equal(job_attempts(x, id), 2);
	SYNC(x->pg, jobq__pg_complete(x->pg, id, tok, NULL, 0, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	SYNC(x->pg, jobq__pg_complete(x->pg, id, tok2, NULL, 0, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	s.timeout_ms = 5000;

	/* A runnable job of another of the owner's types, of a higher
	 * priority or as high (older first), goes first: no hand-out. */
	hi = submit(x, &plain);
	id = submit_tok(x, &s, &tok);
	assert_int_equal(tok, 0);
	assert_int_equal(job_state(x, id), 3);
	s.priority = 5;
	id2 = submit_tok(x, &s, &tok);
	assert_int_equal(tok, 0);
	/* A reserve takes them best first. */
	assert_int_equal(reserve(x->pg, "h2", 1, &got, NULL), 1);
	assert_int_equal(got, hi);
	assert_int_equal(reserve(x->pg, "h", 1, &got, NULL), 1);
	assert_int_equal(got, id2);
	assert_int_equal(reserve(x->pg, "h", 1, &got, NULL), 1);
	assert_int_equal(got, id);
	/* One of a higher priority than every runnable one overtakes
	 * nothing. */
	submit(x, &plain);
	s.priority = 6;
	id = submit_tok(x, &s, &tok);
	assert_true(tok > 0);
	assert_int_equal(job_state(x, id), 4);
	assert_int_equal(reserve(x->pg, "h2", 1, NULL, NULL), 1);
	s.priority = 0;

	/* Paused or limited queues, delays and dependencies: never. */
	SYNC(x->pg, jobq__pg_queue_set(x->pg, "paused", 1, -1, ans_cb, &A));
	SYNC(x->pg, jobq__pg_queue_set(x->pg, "limited", -1, 3, ans_cb, &A));
	s.queue = "paused";
	id = submit_tok(x, &s, &tok);
	assert_int_equal(tok, 0);
	assert_int_equal(job_state(x, id), 3);
	assert_int_equal(reserve(x->pg, "h", 1, NULL, NULL), 0);
	SYNC(x->pg, jobq__pg_queue_set(x->pg, "paused", 0, -1, ans_cb, &A));
	assert_int_equal(reserve(x->pg, "h", 1, NULL, NULL), 1);
	s.queue = "limited";
	id = submit_tok(x, &s, &tok);
	assert_int_equal(tok, 0);
	assert_int_equal(job_state(x, id), 3);
	assert_string_equal(jqt_pg_ask(x->conninfo,
				       "SELECT running FROM jobq_queue_settings"
				       " WHERE queue = 'limited'"),
			    "0");
	assert_int_equal(reserve(x->pg, "h", 1, NULL, NULL), 1);
	s.queue = NULL;
	s.delay_ms = 1000;
	id = submit_tok(x, &s, &tok);
	assert_int_equal(tok, 0);
	assert_int_equal(job_state(x, id), 2);
	s.delay_ms = 0;
	dep = submit_simple(x, "nobody");
	s.after = &dep;
	s.nafter = 1;
	id = submit_tok(x, &s, &tok);
	assert_int_equal(tok, 0);
	assert_int_equal(job_state(x, id), 1);
	s.after = NULL;
	s.nafter = 0;

	/* Sent again after a lost answer: the same job and run. */
	s.session = 77;
	s.rid = 1;
	id = submit_tok(x, &s, &tok);
	assert_true(tok > 0);
	assert_int_equal(submit_tok(x, &s, &tok2), id);
	assert_string_equal(PQgetvalue(A.res, 0, 4), "t");
	assert_int_equal(tok2, tok);
	/* Without an owner, a submit reserves nothing. */
	plain.priority = 100;
	id = submit_tok(x, &plain, &tok);
	assert_int_equal(tok, 0);
	assert_int_equal(job_state(x, id), 3);
}

/* ------------------------------------------------------------------------
 * Key/value, retention.
 */
/* Text values, as most of these cases use. */
static int kv_set(struct jobq__pg *pg, const char *key, const char *val,
		  jobq__pg_cb cb, void *arg)
{
	return jobq__pg_kv_set(pg, 0, 0, key, JOBQ_T_TEXT, (const uint8_t *)val,
			       strlen(val), cb, arg);
}

static int kv_incr(struct jobq__pg *pg, const char *key, int64_t by,
		   jobq__pg_cb cb, void *arg)
{
	return jobq__pg_kv_incr(pg, 0, 0, key, by, JOBQ_T_TEXT, cb, arg);
}

static int kv_cas(struct jobq__pg *pg, const char *key, const char *expect,
		  const char *val, jobq__pg_cb cb, void *arg)
{
	return jobq__pg_kv_cas(pg, 0, 0, key, (const uint8_t *)expect,
			       expect ? strlen(expect) : 0, JOBQ_T_TEXT,
			       (const uint8_t *)val, strlen(val), cb, arg);
}

struct incrs {
	struct ans a[2];
	int left[2];
	struct jobq__pg *pgs[2];
};

static bool incr_step(void *arg)
{
	struct incrs *n = arg;

	for (int i = 0; i < 2; i++) {
		if (!n->a[i].done)
			continue;
		assert_int_equal(n->a[i].err, 0);
		ans_clear(&n->a[i]);
		if (n->left[i]-- > 0)
			assert_int_equal(
			    kv_incr(n->pgs[i], "n", 1, ans_cb, &n->a[i]), 0);
	}
	return n->left[0] < 0 && n->left[1] < 0;
}

static void kv_atomic(void **state)
{
	struct ctx *x = *state;
	struct incrs n = {0};

	x->pg2 = open_pg(x);
	n.pgs[0] = x->pg;
	n.pgs[1] = x->pg2;
	n.left[0] = n.left[1] = 100;
	n.a[0].done = n.a[1].done = true;
	assert_int_equal(drive(n.pgs, 2, incr_step, &n, 60000), 0);
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT convert_from(value, 'UTF8') FROM jobq_kv"),
	    "200");

	SYNC(x->pg, kv_cas(x->pg, "c", NULL, "1", ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	SYNC(x->pg, kv_cas(x->pg, "c", NULL, "2", ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	SYNC(x->pg, kv_cas(x->pg, "c", "9", "2", ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	SYNC(x->pg, kv_cas(x->pg, "c", "1", "2", ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	SYNC(x->pg, kv_set(x->pg, "s", "text", ans_cb, &A));
	ans_clear(&A);
	assert_int_equal(kv_incr(x->pg, "s", 1, ans_cb, &A), 0);
	assert_int_equal(jobq__pg_run(x->pg, ans_done, &A, 20000), 0);
	assert_int_equal(A.err, -EPROTO);
	assert_string_equal(A.state, "22P02");
	/* What bigint would read but the local store's incr refuses. */
	SYNC(x->pg, kv_set(x->pg, "s", " +7", ans_cb, &A));
	ans_clear(&A);
	assert_int_equal(kv_incr(x->pg, "s", 1, ans_cb, &A), 0);
	assert_int_equal(jobq__pg_run(x->pg, ans_done, &A, 20000), 0);
	assert_string_equal(A.state, "22P02");
	SYNC(x->pg, kv_set(x->pg, "s", "9223372036854775807", ans_cb, &A));
	ans_clear(&A);
	assert_int_equal(kv_incr(x->pg, "s", 1, ans_cb, &A), 0);
	assert_int_equal(jobq__pg_run(x->pg, ans_done, &A, 20000), 0);
	assert_string_equal(A.state, "22003");
	SYNC(x->pg, kv_incr(x->pg, "s", -7, ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), INT64_MAX - 7);

	/* Bytes, not text: a NUL and a byte that is not UTF-8 go through,
	 * and cas compares them exactly. */
	SYNC(x->pg, jobq__pg_kv_set(x->pg, 0, 0, "b", JOBQ_T_BYTES,
				    (const uint8_t *)"a\0\xff", 3, ans_cb, &A));
	SYNC(x->pg, jobq__pg_kv_cas(x->pg, 0, 0, "b", (const uint8_t *)"a\0", 2,
				    JOBQ_T_BYTES, (const uint8_t *)"x", 1,
				    ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	SYNC(x->pg, jobq__pg_kv_cas(x->pg, 0, 0, "b",
				    (const uint8_t *)"a\0\xff", 3, JOBQ_T_BYTES,
				    (const uint8_t *)"x", 1, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	{
		const char *keys[] = {"b", "c", "none", "q\"uo\\te"};

		SYNC(x->pg, jobq__pg_kv_fetch(x->pg, keys, 4, ans_cb, &A));
		assert_int_equal(PQntuples(A.res), 2);
	}
	SYNC(x->pg, jobq__pg_kv_del(x->pg, 0, 0, "b", ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	SYNC(x->pg, jobq__pg_kv_del(x->pg, 0, 0, "b", ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 0);
	/* Versions grow across a delete and a new set of the key. */
	SYNC(x->pg, kv_set(x->pg, "b", "1", ans_cb, &A));
	assert_true(
	    jobq__pg_int(A.res, 0, 0) >
	    atoll(jqt_pg_ask(x->conninfo, "SELECT max(version) FROM jobq_kv "
					  "WHERE key <> 'b'")));
	SYNC(x->pg, jobq__pg_kv_load(x->pg, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 4);

	/* A request sent again finds its first answer and changes nothing:
	 * incr's value, a set that a later set replaced, a delete. */
	SYNC(x->pg,
	     jobq__pg_kv_incr(x->pg, 7, 1, "r", 5, JOBQ_T_TEXT, ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 5);
	assert_string_equal(PQgetvalue(A.res, 0, 2), "f");
	SYNC(x->pg,
	     jobq__pg_kv_incr(x->pg, 7, 2, "r", 1, JOBQ_T_TEXT, ans_cb, &A));
	SYNC(x->pg,
	     jobq__pg_kv_incr(x->pg, 7, 1, "r", 5, JOBQ_T_TEXT, ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 5);
	assert_string_equal(PQgetvalue(A.res, 0, 2), "t");
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT convert_from(value, 'UTF8') FROM jobq_kv "
		       "WHERE key = 'r'"),
	    "6");
	/* Another session's request 1 is another request. */
	SYNC(x->pg,
	     jobq__pg_kv_incr(x->pg, 8, 1, "r", 1, JOBQ_T_TEXT, ans_cb, &A));
	assert_int_equal(jobq__pg_int(A.res, 0, 0), 7);
	SYNC(x->pg, jobq__pg_kv_set(x->pg, 7, 3, "r", JOBQ_T_TEXT,
				    (const uint8_t *)"x", 1, ans_cb, &A));
	SYNC(x->pg, kv_set(x->pg, "r", "y", ans_cb, &A));
	SYNC(x->pg, jobq__pg_kv_set(x->pg, 7, 3, "r", JOBQ_T_TEXT,
				    (const uint8_t *)"x", 1, ans_cb, &A));
	assert_string_equal(PQgetvalue(A.res, 0, 1), "t");
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT convert_from(value, 'UTF8') FROM jobq_kv "
		       "WHERE key = 'r'"),
	    "y");
	SYNC(x->pg, jobq__pg_kv_del(x->pg, 7, 4, "r", ans_cb, &A));
	assert_string_equal(PQgetvalue(A.res, 0, 1), "f");
	SYNC(x->pg, jobq__pg_kv_del(x->pg, 7, 4, "r", ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	assert_string_equal(PQgetvalue(A.res, 0, 1), "t");
	/* A cas that succeeded, sent again, succeeded: though the key it
	 * required absent exists now. */
	SYNC(x->pg, jobq__pg_kv_cas(x->pg, 7, 5, "r", NULL, 0, JOBQ_T_TEXT,
				    (const uint8_t *)"z", 1, ans_cb, &A));
	assert_int_equal(PQntuples(A.res), 1);
	SYNC(x->pg, jobq__pg_kv_cas(x->pg, 7, 5, "r", NULL, 0, JOBQ_T_TEXT,
				    (const uint8_t *)"w", 1, ans_cb, &A));
	assert_string_equal(PQgetvalue(A.res, 0, 1), "t");
	SYNC(x->pg, jobq__pg_kv_forget(x->pg, 0, ans_cb, &A));
	assert_string_equal(
	    jqt_pg_ask(x->conninfo, "SELECT count(*) FROM jobq_kv_requests"),
	    "0");
}

static bool all4(void *arg)
{
	struct ans *a = arg;

	return a[0].done && a[1].done && a[2].done && a[3].done;
}

/* Batching: queries sent together commit together; one that fails gets
 * its error alone, and the others of its batch, undone with it, are sent
 * again and take effect once. */
static void batching_commits_together(void **state)
{
	struct ctx *x = *state;
	struct ans a[4] = {0};

	jobq__pg_batching(x->pg, true);
	assert_int_equal(kv_set(x->pg, "a", "1", ans_cb, &a[0]), 0);
	assert_int_equal(kv_incr(x->pg, "n", 1, ans_cb, &a[1]), 0);
	assert_int_equal(
	    jobq__pg_query(x->pg, "SELECT 1 / 0", 0, NULL, ans_cb, &a[2]), 0);
	assert_int_equal(kv_incr(x->pg, "n", 1, ans_cb, &a[3]), 0);
	assert_int_equal(jobq__pg_run(x->pg, all4, a, 20000), 0);
	assert_int_equal(a[0].err, 0);
	assert_int_equal(a[1].err, 0);
	assert_int_equal(a[2].err, -EPROTO);
	assert_string_equal(a[2].state, "22012");
	assert_int_equal(a[3].err, 0);
	/* Each increment once, though the first ran twice. */
	assert_string_equal(
	    jqt_pg_ask(x->conninfo, "SELECT convert_from(value, 'UTF8') FROM "
				    "jobq_kv WHERE key = 'n'"),
	    "2");
	assert_string_equal(
	    jqt_pg_ask(x->conninfo, "SELECT convert_from(value, 'UTF8') FROM "
				    "jobq_kv WHERE key = 'a'"),
	    "1");
	for (int i = 0; i < 4; i++)
		ans_clear(&a[i]);
	/* Without an error: one transaction, every answer committed. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(kv_incr(x->pg, "m", 1, ans_cb, &a[i]), 0);
	assert_int_equal(jobq__pg_run(x->pg, all4, a, 20000), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(a[i].err, 0);
		assert_int_equal(jobq__pg_int(a[i].res, 0, 0), i + 1);
		ans_clear(&a[i]);
	}
}

static void retention(void **state)
{
	struct ctx *x = *state;
	uint64_t a = submit_simple(x, "k"), got, tok;

	submit_simple(x, "k");
	assert_int_equal(reserve(x->pg, "k", 1, &got, &tok), 1);
	SYNC(x->pg, jobq__pg_complete(x->pg, got, tok, NULL, 0, ans_cb, &A));
	SYNC(x->pg, jobq__pg_retain(x->pg, 3600000, 100, ans_cb, &A));
	assert_string_equal(PQcmdTuples(A.res), "0");
	free(jqt_pg_exec(x->conninfo, "UPDATE jobq_jobs SET finished_at = "
				      "now() - interval '2 hours' WHERE "
				      "finished_at IS NOT NULL"));
	SYNC(x->pg, jobq__pg_retain(x->pg, 3600000, 100, ans_cb, &A));
	assert_string_equal(PQcmdTuples(A.res), "1");
	assert_string_equal(
	    jqt_pg_ask(x->conninfo,
		       "SELECT count(*) FROM jobq_jobs WHERE id = %" PRIu64, a),
	    "0");
	assert_string_equal(
	    jqt_pg_ask(x->conninfo, "SELECT count(*) FROM jobq_jobs"), "1");
}

/* ------------------------------------------------------------------------
 * Wake-ups and faults.
 */
struct note_wait {
	struct ctx *x;
	int want;
};

static bool got_notes(void *arg)
{
	struct note_wait *w = arg;

	return w->x->notes >= w->want;
}

static bool never(void *arg)
{
	return false;
}

static bool got_dones(void *arg)
{
	return ((struct ctx *)arg)->dones >= 1;
}

static bool got_dones4(void *arg)
{
	return ((struct ctx *)arg)->dones >= 4;
}

/* A submit through one connection wakes the other with one NOTIFY that
 * names the type; a delayed job wakes nobody. */
static void listen_notify_wakes(void **state)
{
	struct ctx *x = *state;
	struct note_wait w = {x, 1};
	struct jobq__pg *both[2];

	x->pg2 = open_pg(x);
	both[0] = x->pg;
	both[1] = x->pg2;
	assert_int_equal(drive(both, 2, pg_is_up, x->pg2, 20000), 0);
	x->notes = 0;
	{
		struct jobq__pg_submit s = {.type = "wakeme"};

		assert_int_equal(jobq__pg_submit(x->pg, &s, NULL, NULL), 0);
	}
	assert_int_equal(drive(both, 2, got_notes, &w, 20000), 0);
	assert_string_equal(x->last_note, "wakeme");
	/* Both connections LISTEN (the submitter hears its own): two. */
	w.want = 2;
	assert_int_equal(drive(both, 2, got_notes, &w, 20000), 0);
	/* And no more: one notification per submit and listener. */
	assert_int_equal(drive(both, 2, never, NULL, 300), -ETIMEDOUT);
	assert_int_equal(x->notes, 2);

	/* A job made final is announced by its id, for waiters anywhere;
	 * a dependent that dies with it too. */
	{
		uint64_t id, tok, dep;
		struct jobq__pg_submit s = {.type = "wakeme",
					    .max_attempts = 1};
		char want[32];

		assert_int_equal(reserve(x->pg, "wakeme", 1, &id, &tok), 1);
		SYNC(x->pg,
		     jobq__pg_complete(x->pg, id, tok, NULL, 0, ans_cb, &A));
		assert_int_equal(drive(both, 2, got_dones, x, 20000), 0);
		snprintf(want, sizeof(want), "%" PRIu64, id);
		assert_string_equal(x->last_done, want);
		/* Once to each listener. */
		assert_int_equal(drive(both, 2, never, NULL, 300), -ETIMEDOUT);
		assert_int_equal(x->dones, 2);
		x->dones = 0;
		id = submit(x, &s);
		s.after = &id;
		s.nafter = 1;
		dep = submit(x, &s);
		assert_int_equal(reserve(x->pg, "wakeme", 1, &id, &tok), 1);
		SYNC(x->pg, jobq__pg_fail(x->pg, id, tok, "no", ans_cb, &A));
		assert_int_equal(job_state(x, dep), 7);
		/* Two jobs, two listeners. */
		while (x->dones < 4 && !drive(both, 2, got_dones4, x, 20000))
			;
		assert_int_equal(x->dones, 4);
	}
}

struct two {
	struct ans a, b;
};

static bool first_done(void *arg)
{
	return ((struct two *)arg)->a.done;
}

/* The server ends our session mid-query: the query in flight fails with
 * -ECONNRESET (outcome unknown), the connection comes back by itself, and
 * a query queued meanwhile is answered. Then PostgreSQL restarts under a
 * queued query, which waits and is answered, not failed. */
static void connection_cut_and_restart(void **state)
{
	struct ctx *x = *state;
	struct two t = {0};
	char sql[128];
	int pid, ups;

	assert_int_equal(jobq__pg_run(x->pg, pg_is_up, x->pg, 20000), 0);
	pid = jobq__pg_backend_pid(x->pg);
	assert_true(pid > 0);
	assert_int_equal(
	    jobq__pg_query(x->pg, "SELECT pg_sleep(10)", 0, NULL, ans_cb, &t.a),
	    0);
	jobq__pg_ready(x->pg, 0);
	jqt_sleep(0.2);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
	assert_string_equal(jqt_pg_ask(x->conninfo, "%s", sql), "t");
	assert_int_equal(jobq__pg_run(x->pg, first_done, &t, 20000), 0);
	assert_int_equal(t.a.err, -ECONNRESET);
	assert_true(x->downs >= 1);
	ups = x->ups;
	/* Queued while down: sent once it is back. */
	SYNC(x->pg, kv_set(x->pg, "after-cut", "1", ans_cb, &A));
	assert_true(x->ups > ups || jobq__pg_up(x->pg));
	assert_true(jobq__pg_backend_pid(x->pg) != pid);

	/* PostgreSQL restarts with a query waiting. */
	jqt_pg_stop_server(&server);
	ans_clear(&t.b);
	assert_int_equal(kv_set(x->pg, "restart", "1", ans_cb, &t.b), 0);
	/* While it is gone the query waits (or, had it been sent before the
	 * cut was seen, fails with -ECONNRESET: then send it again). */
	jobq__pg_run(x->pg, NULL, NULL, 500);
	if (t.b.done) {
		assert_int_equal(t.b.err, -ECONNRESET);
		ans_clear(&t.b);
		assert_int_equal(kv_set(x->pg, "restart", "1", ans_cb, &t.b),
				 0);
	}
	assert_int_equal(jqt_pg_restart(&server), 0);
	wait_ok(x->pg, &t.b);
	assert_string_equal(
	    jqt_pg_ask(x->conninfo, "SELECT convert_from(value, 'UTF8') FROM "
				    "jobq_kv WHERE key = 'restart'"),
	    "1");
	ans_clear(&t.a);
	ans_clear(&t.b);
}

/* ------------------------------------------------------------------------
 * jobqd itself: --migrate, the refusals, --backend from the config file,
 * and its connection in the loop coming back after a cut.
 */
/* Undoes migrations 6, 5, 4, 3 and 2: a database as a version-1 jobqd left
 * it. */
#define DOWN_TO_1                                                              \
	"DROP FUNCTION jobq_queue_put; DROP TABLE jobq_object_queues; "        \
	"DROP TABLE jobq_queue_taken; DROP TABLE jobq_queue_items; "           \
	"CREATE TABLE jobq_queue_items (queue_id integer NOT NULL "            \
	"REFERENCES jobq_queues (id) ON DELETE CASCADE, seq bigserial, "       \
	"type integer NOT NULL DEFAULT 0, data bytea NOT NULL, "               \
	"PRIMARY KEY (queue_id, seq)); "                                       \
	"DROP TABLE jobq_kv_requests; "                                        \
	"ALTER TABLE jobq_kv DROP COLUMN type, ALTER COLUMN version SET "      \
	"DEFAULT 1, ALTER COLUMN value TYPE text USING "                       \
	"convert_from(value, 'UTF8'); DROP SEQUENCE jobq_kv_version; "         \
	"DROP INDEX jobq_jobs_request; ALTER TABLE jobq_jobs DROP COLUMN "     \
	"req_session, DROP COLUMN req_id; DROP TABLE jobq_lock_holders; "      \
	"DELETE FROM jobq_schema WHERE version >= 2"

static int run_jobqd(struct jqt_out *o, const char *conninfo, bool migrate)
{
	const char *argv[] = {"jobqd", "--backend", conninfo,
			      migrate ? "--migrate" : NULL, NULL};

	return jqt_run(jqt_jobqd_path(), argv, NULL, 0, 60, o);
}

static void jobqd_migrate(void **state)
{
	char conninfo[PATH_MAX], want[64];
	struct jqt_out o;

	assert_int_equal(
	    jqt_pg_createdb(&server, "mig", conninfo, sizeof(conninfo)), 0);
	assert_int_equal(run_jobqd(&o, conninfo, true), 0);
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "created the jobq schema"));
	jqt_out_free(&o);
	assert_int_equal(run_jobqd(&o, conninfo, true), 0);
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "already"));
	jqt_out_free(&o);
	/* A database left at version 1 by an older jobqd: refused by a
	 * plain start, naming both versions, and moved on by --migrate. */
	{
		char *v = jqt_pg_exec(conninfo,
				      DOWN_TO_1 "; INSERT INTO "
						"jobq_kv (key, value) VALUES "
						"('old', '41')");
		char err[512];
		struct ctx y = {0};
		int found;

		assert_non_null(v);
		free(v);
		snprintf(y.conninfo, sizeof(y.conninfo), "%s", conninfo);
		y.pg = open_pg(&y);
		assert_int_equal(jobq__pg_schema(y.pg, JOBQ__PG_CREATE, 20000,
						 &found, err, sizeof(err)),
				 -ESTALE);
		assert_int_equal(found, 1);
		assert_non_null(strstr(err, "version 1"));
		assert_non_null(strstr(err, "--migrate"));
		jobq__pg_close(y.pg);
	}
	assert_int_equal(run_jobqd(&o, conninfo, true), 0);
	assert_int_equal(o.code, 0);
	snprintf(want, sizeof(want), "from version 1 to %d",
		 JOBQ__PG_SCHEMA_VERSION);
	assert_non_null(strstr(o.out, want));
	jqt_out_free(&o);
	{
		char *v = jqt_pg_exec(conninfo,
				      "SELECT count(*) FROM pg_indexes WHERE "
				      "indexname = 'jobq_jobs_request'");

		assert_non_null(v);
		assert_string_equal(v, "1");
		free(v);
		/* A text value of version 1 is its bytes now, of type text. */
		v = jqt_pg_exec(conninfo,
				"SELECT convert_from(value, 'UTF8') || ' ' || "
				"type FROM jobq_kv WHERE key = 'old'");
		assert_non_null(v);
		assert_string_equal(v, "41 3");
		free(v);
	}
	free(jqt_pg_exec(conninfo,
			 "INSERT INTO jobq_schema (version) VALUES (42)"));
	assert_int_equal(run_jobqd(&o, conninfo, true), 0);
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "version 42"));
	snprintf(want, sizeof(want), "jobqd's %d", JOBQ__PG_SCHEMA_VERSION);
	assert_non_null(strstr(o.err, want));
	jqt_out_free(&o);
	/* A bad connection string is named as one. */
	assert_int_equal(run_jobqd(&o, "nonsense=1", true), 0);
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "connection string"));
	jqt_out_free(&o);
}

static void jobqd_backend_reconnects(void **state)
{
	char conninfo[PATH_MAX], dir[PATH_MAX], cfg[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	const char *args[] = {"--config", cfg, "--log", log, NULL};
	struct jqt_mgr m;
	double end;
	FILE *f;

	assert_int_equal(
	    jqt_pg_createdb(&server, "mgr", conninfo, sizeof(conninfo)), 0);
	assert_int_equal(jqt_tmpdir(dir, sizeof(dir)), 0);
	snprintf(log, sizeof(log), "%s/log", dir);
	snprintf(cfg, sizeof(cfg), "%s/jobqd.json", dir);
	f = fopen(cfg, "w");
	assert_non_null(f);
	fprintf(f, "{\"backend\": \"%s\"}\n", conninfo);
	fclose(f);
	/* Started on an empty database: it creates the schema. */
	assert_int_equal(jqt_mgr_start(&m, args), 0);
	{
		struct ctx y = {0};
		char v[16];

		snprintf(y.conninfo, sizeof(y.conninfo), "%s", conninfo);
		snprintf(v, sizeof(v), "%d", JOBQ__PG_SCHEMA_VERSION);
		assert_string_equal(
		    jqt_pg_ask(y.conninfo,
			       "SELECT max(version) FROM jobq_schema"),
		    v);
		assert_int_equal(jqt_file_count(log, "connected to PostgreSQL"),
				 1);
		/* Cut its session, the one it holds (a check's may still
		 * be listed as it closes): the loop sees it and reconnects. */
		assert_int_equal(jqt_pg_cut_sessions(conninfo, 1, 20), 1);
		end = jqt_now() + 20;
		while (jqt_file_count(log, "connected to PostgreSQL") < 2 &&
		       jqt_now() < end)
			jqt_sleep(0.05);
		assert_int_equal(jqt_file_count(log, "connected to PostgreSQL"),
				 2);
		assert_true(jqt_file_count(log, "connection lost") >= 1);
		/* Its timer runs the maintenance through the loop: a job
		 * whose lease ended (its host died) goes back to ready. */
		free(jqt_pg_exec(
		    conninfo,
		    "INSERT INTO jobq_jobs (type, state, attempts, "
		    "lease_token, lease_until) VALUES ('orphan', 4, 1, 1, "
		    "now() - interval '1 second')"));
		end = jqt_now() + 20;
		while (strcmp(jqt_pg_ask(y.conninfo,
					 "SELECT state FROM jobq_jobs"),
			      "3") &&
		       jqt_now() < end)
			jqt_sleep(0.05);
		assert_string_equal(
		    jqt_pg_ask(y.conninfo, "SELECT state FROM jobq_jobs"), "3");
	}
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
	jqt_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(schema_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(request_id_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(unique_exact_across_connections,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(skip_locked_batches, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(priority_and_delay, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(lease_expiry_and_stale_result,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(retries_backoff_dead, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(cancel_queued_and_running, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(after_dependencies, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(parallel_limit_and_pause, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(submit_many_in_order, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(submit_reserves_for_owner, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(kv_atomic, setup, teardown),
	    cmocka_unit_test_setup_teardown(batching_commits_together, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(listen_notify_wakes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(connection_cut_and_restart, setup,
					    teardown),
	    cmocka_unit_test(jobqd_migrate),
	    cmocka_unit_test(jobqd_backend_reconnects),
	};

	jqt_init();
	return jqt_pg_run_tests(&server, tests);
}
