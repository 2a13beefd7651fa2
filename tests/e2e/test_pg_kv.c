/* SPDX-License-Identifier: MIT */
/*
 * test_pg_kv.c - the key/value store of jobqd --backend shared by hosts:
 * managers in instance directories of their own on one database of a
 * PostgreSQL 15 of the test's own (pg_server.h). A write on one host is
 * read on another once its notification arrived (polled, bounded); incr
 * and cas are atomic across hosts; a host started later, or cut off from
 * PostgreSQL for a while, reads the table as it is; writes wait for
 * PostgreSQL to come back.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"
#include "pg_server.h"

static struct jqt_pg server;
static char conninfo[256];

/* A host: a manager on the case's database, as @user when not NULL,
 * with @memory (NULL: the default) as --memory. */
static void host_start_with(struct jqt_pg_host *h, const char *user,
			    const char *memory)
{
	const char *extra[] = {"--memory", memory, NULL};
	char ci[sizeof(conninfo) + 64];

	/* A later user= of a connection string wins. */
	snprintf(ci, sizeof(ci), "%s%s%s", conninfo, user ? " user=" : "",
		 user ? user : "");
	assert_int_equal(jqt_pg_host_start(h, ci, memory ? extra : NULL), 0);
}

static void host_start_as(struct jqt_pg_host *h, const char *user)
{
	host_start_with(h, user, NULL);
}

static void host_start(struct jqt_pg_host *h)
{
	host_start_as(h, NULL);
}

/* `jobq --dir HOST ARGS...`. */
#define HCLI(h, o, ...)                                                        \
	assert_int_equal(jqt_cli(&(h)->m, (o), NULL, 0, __VA_ARGS__, NULL), 0)

static int setup(void **state)
{
	static int n;
	char name[32];

	snprintf(name, sizeof(name), "k%d", ++n);
	return jqt_pg_createdb(&server, name, conninfo, sizeof(conninfo));
}

/* The value of @key on @q as a string ("" with -ENOENT: absent). */
static int get(jobq_t *q, const char *key, char *buf, size_t cap)
{
	ssize_t n = jobq_kv_get_buf(q, key, buf, cap - 1, NULL);

	if (n < 0) {
		buf[0] = '\0';
		return (int)n;
	}
	buf[(size_t)n < cap - 1 ? (size_t)n : cap - 1] = '\0';
	return 0;
}

/* Waits (at most @secs) until @key reads @want on @q (NULL: until it is
 * absent); asserts it did. */
static void until_value(jobq_t *q, const char *key, const char *want,
			double secs)
{
	double end = jqt_now() + secs;
	char buf[256];
	int ret;

	for (;;) {
		ret = get(q, key, buf, sizeof(buf));
		if (want ? !ret && !strcmp(buf, want) : ret == -ENOENT)
			return;
		if (jqt_now() > end)
			break;
		jqt_sleep(0.005);
	}
	fprintf(stderr, "key %s: want %s, have %s (%d)\n", key,
		want ? want : "(absent)", buf, ret);
	fail();
}

static int set(jobq_t *q, const char *key, const char *val)
{
	return jobq_kv_set(q, key, JOBQ_T_TEXT, val, strlen(val));
}

/* Set on A is read on B, with its type and bytes; a change and a delete
 * follow; each host reads its own write at once. */
static void set_here_read_there(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	static const char bin[] = {'x', 0, (char)0xff, 'y'};
	jobq_t *qa, *qb;
	char buf[16];
	uint32_t type = 0;
	int64_t v;
	double t0;

	host_start(&a);
	host_start(&b);
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);

	t0 = jqt_now();
	assert_int_equal(set(qa, "greeting", "hello"), 0);
	/* Its own write, before the answer. */
	assert_int_equal(get(qa, "greeting", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "hello");
	until_value(qb, "greeting", "hello", 10);
	fprintf(stderr, "set on A read on B after %.1f ms\n",
		(jqt_now() - t0) * 1000);
	assert_int_equal(set(qb, "greeting", "bye"), 0);
	until_value(qa, "greeting", "bye", 10);

	assert_int_equal(jobq_kv_set(qa, "bin", JOBQ_T_BYTES, bin, sizeof(bin)),
			 0);
	until_value(qb, "bin", "x", 10);
	assert_int_equal(jobq_kv_get_buf(qb, "bin", buf, sizeof(buf), &type),
			 (ssize_t)sizeof(bin));
	assert_int_equal(type, JOBQ_T_BYTES);
	assert_memory_equal(buf, bin, sizeof(bin));
	/* An empty value is a value. */
	assert_int_equal(set(qa, "empty", ""), 0);
	until_value(qb, "empty", "", 10);

	/* Not a number, as locally: refused, and nothing changes. */
	assert_int_equal(jobq_kv_incr(qb, "greeting", 1, &v), JOBQ_ENOTNUM);
	assert_int_equal(set(qa, "sp", " 1"), 0);
	assert_int_equal(jobq_kv_incr(qa, "sp", 1, &v), JOBQ_ENOTNUM);
	assert_int_equal(set(qa, "big", "9223372036854775807"), 0);
	assert_int_equal(jobq_kv_incr(qa, "big", 1, &v), -ERANGE);
	assert_int_equal(jobq_kv_incr(qa, "big", -7, &v), 0);
	assert_int_equal(v, INT64_MAX - 7);

	/* Delete on B: gone on B at once, on A soon. */
	assert_int_equal(jobq_kv_del(qb, "greeting"), 0);
	assert_int_equal(get(qb, "greeting", buf, sizeof(buf)), -ENOENT);
	until_value(qa, "greeting", NULL, 10);
	assert_int_equal(jobq_kv_del(qa, "greeting"), -ENOENT);
	/* Re-created after its delete: newer than the deleted row. */
	assert_int_equal(set(qa, "greeting", "again"), 0);
	until_value(qb, "greeting", "again", 10);
	/* Too big is refused before PostgreSQL, as locally. */
	{
		size_t n = jobq_max_object(qa) + 1;
		char *big = calloc(1, n);

		assert_non_null(big);
		assert_int_equal(jobq_kv_set(qa, "huge", JOBQ_T_BYTES, big, n),
				 -E2BIG);
		free(big);
	}
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

static void show_warnings(const struct jqt_pg_host *h);

/* Two processes on each of two hosts, 500 incrs each on one key: every
 * answer is a different number of 1..2000, and both hosts end at 2000. */
#define INCR_PROCS 4
#define INCRS	   500

struct incr_run {
	struct jqt_pg_host *h[2];
	struct jqt_barrier bar;
	int per; /* incrs per process */
	_Atomic uint32_t seen[INCR_PROCS * INCRS + 1];
	_Atomic int finished;
};

static int incr_child(int idx, void *arg)
{
	struct incr_run *r = arg;
	jobq_t *q = jqt_open_or_die(&r->h[idx % 2]->m);
	int64_t v;

	if (jqt_barrier_wait(&r->bar, 30))
		return 2;
	for (int i = 0; i < r->per; i++) {
		int ret = jobq_kv_incr(q, "count", 1, &v);

		if (ret) {
			fprintf(stderr, "incr: %s\n", jobq_strerror(ret));
			return 1;
		}
		if (v < 1 || v > INCR_PROCS * r->per)
			return 3;
		atomic_fetch_add(&r->seen[v], 1);
	}
	atomic_fetch_add(&r->finished, 1);
	jobq_close(q);
	return 0;
}

static void incr_across_hosts(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct incr_run *r = jqt_shared(sizeof(*r));
	pid_t pids[INCR_PROCS];
	int st[INCR_PROCS];
	jobq_t *qa, *qb;
	char want[16];
	double t0;

	host_start(&a);
	host_start(&b);
	r->h[0] = &a;
	r->h[1] = &b;
	r->per = INCRS;
	jqt_barrier_init(&r->bar, INCR_PROCS);
	t0 = jqt_now();
	assert_int_equal(jqt_fork_n(INCR_PROCS, incr_child, r, pids), 0);
	assert_int_equal(jqt_wait_all(pids, INCR_PROCS, 120, st), 0);
	fprintf(stderr, "%d incrs from 2 hosts in %.2f s\n", INCR_PROCS * INCRS,
		jqt_now() - t0);
	for (int i = 0; i < INCR_PROCS; i++)
		assert_true(jqt_status_ok(st[i]));
	for (int v = 1; v <= INCR_PROCS * INCRS; v++)
		assert_int_equal(r->seen[v], 1);
	snprintf(want, sizeof(want), "%d", INCR_PROCS * INCRS);
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	until_value(qa, "count", want, 10);
	until_value(qb, "count", want, 10);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/*
 * The same with every host's connection to PostgreSQL cut again and again
 * while the incrs run: an incr cut with its statement sent is sent again
 * with the client's request id, which makes it exact. No client sees an
 * error, and every number is answered once.
 */
static void incr_under_cuts(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct incr_run *r = jqt_shared(sizeof(*r));
	pid_t pids[INCR_PROCS];
	int st[INCR_PROCS], cuts = 0, cut = 0;
	jobq_t *qa, *qb;
	char want[16];
	double end;

	host_start(&a);
	host_start(&b);
	r->h[0] = &a;
	r->h[1] = &b;
	r->per = INCRS;
	jqt_barrier_init(&r->bar, INCR_PROCS);
	assert_int_equal(jqt_fork_n(INCR_PROCS, incr_child, r, pids), 0);
	end = jqt_now() + 60;
	while (r->finished < INCR_PROCS && cuts < 12 && jqt_now() < end) {
		char *v;

		jqt_sleep(0.1);
		v = jqt_pg_exec(
		    conninfo, "SELECT count(pg_terminate_backend(pid)) FROM "
			      "pg_stat_activity WHERE datname = "
			      "current_database() AND pid <> pg_backend_pid()");
		assert_non_null(v);
		cut += atoi(v);
		free(v);
		cuts++;
	}
	jqt_wait_all(pids, INCR_PROCS, 120, st);
	fprintf(stderr, "%d connections cut under %d incrs\n", cut,
		INCR_PROCS * r->per);
	assert_true(cut > 0);
	for (int i = 0; i < INCR_PROCS; i++) {
		if (!jqt_status_ok(st[i])) {
			show_warnings(&a);
			show_warnings(&b);
		}
		assert_true(jqt_status_ok(st[i]));
	}
	for (int v = 1; v <= INCR_PROCS * r->per; v++)
		assert_int_equal(r->seen[v], 1);
	snprintf(want, sizeof(want), "%d", INCR_PROCS * r->per);
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	until_value(qa, "count", want, 20);
	until_value(qb, "count", want, 20);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* Rounds of cas from two processes on each of two hosts, all swapping
 * from the value they read to the next: exactly one wins each round. The
 * first round creates the key: cas "only if absent". */
#define CAS_ROUNDS 40

struct cas_run {
	struct jqt_pg_host *h[2];
	struct jqt_barrier bar;
	_Atomic uint32_t wins[CAS_ROUNDS + 1];
};

static int cas_child(int idx, void *arg)
{
	struct cas_run *r = arg;
	jobq_t *q = jqt_open_or_die(&r->h[idx % 2]->m);
	char cur[24], next[24];

	if (jqt_barrier_wait(&r->bar, 30))
		return 2;
	for (int round = 0; round <= CAS_ROUNDS; round++) {
		double end = jqt_now() + 20;
		int ret;

		snprintf(next, sizeof(next), "%d", round + 1);
		if (round == 0) {
			ret = jobq_kv_cas(q, "turn", NULL, 0, JOBQ_T_TEXT, next,
					  strlen(next));
		} else {
			/* Until this host sees round's value (or later). */
			snprintf(cur, sizeof(cur), "%d", round);
			for (;;) {
				char buf[24];

				if (!get(q, "turn", buf, sizeof(buf)) &&
				    atoi(buf) >= round)
					break;
				if (jqt_now() > end)
					return 4;
				jqt_sleep(0.001);
			}
			ret = jobq_kv_cas(q, "turn", cur, strlen(cur),
					  JOBQ_T_TEXT, next, strlen(next));
		}
		if (ret == 0)
			atomic_fetch_add(&r->wins[round], 1);
		else if (ret != JOBQ_EMISMATCH)
			return 1;
	}
	jobq_close(q);
	return 0;
}

static void cas_across_hosts(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct cas_run *r = jqt_shared(sizeof(*r));
	pid_t pids[4];
	int st[4];
	jobq_t *q;
	char want[16];

	host_start(&a);
	host_start(&b);
	r->h[0] = &a;
	r->h[1] = &b;
	jqt_barrier_init(&r->bar, 4);
	assert_int_equal(jqt_fork_n(4, cas_child, r, pids), 0);
	assert_int_equal(jqt_wait_all(pids, 4, 120, st), 0);
	for (int i = 0; i < 4; i++)
		assert_true(jqt_status_ok(st[i]));
	for (int round = 0; round <= CAS_ROUNDS; round++)
		assert_int_equal(r->wins[round], 1);
	snprintf(want, sizeof(want), "%d", CAS_ROUNDS + 1);
	q = jqt_open_or_die(&a.m);
	until_value(q, "turn", want, 10);
	jobq_close(q);
	q = jqt_open_or_die(&b.m);
	until_value(q, "turn", want, 10);
	jobq_close(q);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* A host started after the writes reads the table before its first
 * client: no waiting. One stopped and started again in its directory
 * forgets what was deleted meanwhile and reads what changed. */
static void late_host_loads(void **state)
{
	struct jqt_pg_host a = {0}, c = {0};
	const char *args[] = {"--config", c.cfg, "--log", c.log, NULL};
	jobq_t *qa, *qc;
	char key[32], val[32], buf[32];

	host_start(&a);
	qa = jqt_open_or_die(&a.m);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		snprintf(val, sizeof(val), "value-%d", i);
		assert_int_equal(set(qa, key, val), 0);
	}
	for (int i = 0; i < 200; i += 2) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_int_equal(jobq_kv_del(qa, key), 0);
	}
	host_start(&c);
	qc = jqt_open_or_die(&c.m);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		snprintf(val, sizeof(val), "value-%d", i);
		assert_int_equal(get(qc, key, buf, sizeof(buf)),
				 i % 2 ? 0 : -ENOENT);
		if (i % 2)
			assert_string_equal(buf, val);
	}
	jobq_close(qc);

	/* C goes away; keys change and go while it is gone. */
	kill(c.m.pid, SIGTERM);
	assert_int_equal(jqt_mgr_wait_exit(&c.m, 20), 0);
	assert_int_equal(jobq_kv_del(qa, "key-1"), 0);
	assert_int_equal(set(qa, "key-3", "changed"), 0);
	assert_int_equal(set(qa, "new", "1"), 0);
	assert_int_equal(jqt_mgr_restart(&c.m, args), 0);
	qc = jqt_open_or_die(&c.m);
	assert_int_equal(get(qc, "key-1", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(get(qc, "key-3", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "changed");
	assert_int_equal(get(qc, "new", buf, sizeof(buf)), 0);
	assert_int_equal(get(qc, "key-5", buf, sizeof(buf)), 0);
	jobq_close(qc);
	jobq_close(qa);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&c);
}

/* A write that waits for PostgreSQL, in a child: exits 0 when it got 0. */
struct late_write {
	struct jqt_mgr *m;
	const char *key, *val;
};

static int write_child(int idx, void *arg)
{
	struct late_write *w = arg;
	jobq_t *q = jqt_open_or_die(w->m);
	int ret = set(q, w->key, w->val);

	if (ret)
		fprintf(stderr, "set %s: %s\n", w->key, jobq_strerror(ret));
	jobq_close(q);
	return ret ? 1 : 0;
}

static char *sql(const char *fmt, const char *arg)
{
	char q[512];

	snprintf(q, sizeof(q), fmt, arg);
	return jqt_pg_exec(conninfo, q);
}

/* The warnings in @h's log, on stderr: why a case failed. */
static void show_warnings(const struct jqt_pg_host *h)
{
	char line[1024];
	FILE *f = fopen(h->log, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "backend"))
			fputs(line, stderr);
	fclose(f);
}

/*
 * A's connection is cut and kept from coming back (its role may not log
 * in) while B writes and deletes: A reads B's changes once it is back,
 * though their notifications went out while it was gone. A write on A
 * meanwhile waits and succeeds. Then PostgreSQL itself restarts: writes
 * on both hosts succeed after, and each reads the other's.
 */
static void cut_off_and_restarted(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct late_write w;
	jobq_t *qa, *qb;
	char buf[32];
	pid_t pid;
	int st;
	int64_t v;

	free(sql("DROP ROLE IF EXISTS %s", "jobq_a"));
	free(sql("CREATE ROLE %s LOGIN SUPERUSER", "jobq_a"));
	host_start_as(&a, "jobq_a");
	host_start(&b);
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	assert_int_equal(set(qa, "old", "1"), 0);
	assert_int_equal(set(qa, "gone", "1"), 0);
	until_value(qb, "gone", "1", 10);

	free(sql("ALTER ROLE %s NOLOGIN", "jobq_a"));
	free(sql("SELECT count(pg_terminate_backend(pid)) FROM "
		 "pg_stat_activity WHERE usename = '%s'",
		 "jobq_a"));
	{
		double end = jqt_now() + 10;

		while (!jqt_file_count(a.log, "connection lost") &&
		       jqt_now() < end)
			jqt_sleep(0.02);
		assert_true(jqt_file_count(a.log, "connection lost") >= 1);
	}
	/* A write on A waits for the connection. */
	w.m = &a.m;
	w.key = "from-a";
	w.val = "waited";
	pid = jqt_fork(write_child, 0, &w);
	assert_true(pid > 0);
	assert_int_equal(set(qb, "old", "2"), 0);
	assert_int_equal(jobq_kv_del(qb, "gone"), 0);
	assert_int_equal(set(qb, "from-b", "while-a-was-away"), 0);
	jqt_sleep(0.5);
	/* A has not heard: it has its own copy, as it was. */
	assert_int_equal(get(qa, "old", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1");
	assert_int_equal(get(qa, "from-a", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(jqt_wait_pid(pid, 0.01, &st), -ETIMEDOUT);

	free(sql("ALTER ROLE %s LOGIN", "jobq_a"));
	assert_int_equal(jqt_wait_pid(pid, 30, &st), 0);
	assert_true(jqt_status_ok(st));
	until_value(qa, "from-b", "while-a-was-away", 20);
	until_value(qa, "old", "2", 10);
	until_value(qa, "gone", NULL, 10);
	until_value(qb, "from-a", "waited", 10);

	/* PostgreSQL restarts. */
	jqt_pg_stop_server(&server);
	assert_int_equal(jqt_pg_restart(&server), 0);
	/* Each write waits for its host to be back, and succeeds. */
	assert_int_equal(jobq_kv_incr(qa, "after", 1, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(set(qb, "b-after", "yes"), 0);
	until_value(qa, "b-after", "yes", 20);
	until_value(qb, "after", "1", 20);
	assert_int_equal(jobq_kv_incr(qb, "after", 1, &v), 0);
	assert_int_equal(v, 2);
	until_value(qa, "after", "2", 10);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* A host whose store is full refuses a write before it is sent, as
 * without a backend: the table gets no row for it. */
static void full_store_refuses_first(void **state)
{
	struct jqt_pg_host a = {0};
	char key[32], *v, q[128];
	size_t big;
	char *val;
	jobq_t *qa;
	int ret = 0, i, stored = 0;

	host_start_with(&a, NULL, "8M");
	qa = jqt_open_or_die(&a.m);
	big = jobq_max_object(qa);
	val = calloc(1, big);
	assert_non_null(val);
	for (i = 0; i < 64 && !ret; i++) {
		snprintf(key, sizeof(key), "big-%d", i);
		ret = jobq_kv_set(qa, key, JOBQ_T_BYTES, val, big);
		stored += !ret;
	}
	free(val);
	assert_int_equal(ret, JOBQ_EFULL);
	snprintf(q, sizeof(q), "SELECT count(*) FROM jobq_kv WHERE key = '%s'",
		 key);
	v = jqt_pg_exec(conninfo, q);
	assert_non_null(v);
	assert_string_equal(v, "0");
	free(v);
	/* Room again once keys go; then the key table's limit. */
	for (i = 0; i < stored; i++) {
		snprintf(key, sizeof(key), "big-%d", i);
		assert_int_equal(jobq_kv_del(qa, key), 0);
	}
	ret = 0;
	for (i = 0; i < 20000 && !ret; i++) {
		snprintf(key, sizeof(key), "n-%d", i);
		ret = set(qa, key, "1");
	}
	assert_int_equal(ret, JOBQ_ELIMIT);
	snprintf(q, sizeof(q), "%d", i - 1);
	v = jqt_pg_exec(conninfo, "SELECT count(*) FROM jobq_kv");
	assert_non_null(v);
	assert_string_equal(v, q);
	free(v);
	/* A key it holds still changes. */
	assert_int_equal(set(qa, "n-0", "2"), 0);
	jobq_close(qa);
	jqt_pg_host_stop(&a);
}

/* `jobq kv` against the backend, as a user types it. */
static void cli_kv(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct jqt_out o;
	double end;

	host_start(&a);
	host_start(&b);
	HCLI(&a, &o, "kv", "set", "colour", "blue");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	end = jqt_now() + 10;
	for (;;) {
		HCLI(&b, &o, "kv", "get", "colour");
		if (o.code == 0 || jqt_now() > end)
			break;
		assert_int_equal(o.code, 3);
		jqt_out_free(&o);
		jqt_sleep(0.02);
	}
	assert_int_equal(o.code, 0);
	/* The bare value. */
	assert_string_equal(o.out, "blue");
	jqt_out_free(&o);
	HCLI(&b, &o, "kv", "incr", "visits", "5");
	assert_int_equal(o.code, 0);
	assert_int_equal(strtoll(o.out, NULL, 10), 5);
	jqt_out_free(&o);
	HCLI(&a, &o, "kv", "incr", "visits");
	assert_int_equal(o.code, 0);
	assert_int_equal(strtoll(o.out, NULL, 10), 6);
	jqt_out_free(&o);
	HCLI(&a, &o, "kv", "get", "visits");
	assert_int_equal(strtoll(o.out, NULL, 10), 6);
	jqt_out_free(&o);
	HCLI(&b, &o, "kv", "get", "nothing");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(set_here_read_there, setup),
	    cmocka_unit_test_setup(incr_across_hosts, setup),
	    cmocka_unit_test_setup(incr_under_cuts, setup),
	    cmocka_unit_test_setup(cas_across_hosts, setup),
	    cmocka_unit_test_setup(late_host_loads, setup),
	    cmocka_unit_test_setup(cut_off_and_restarted, setup),
	    cmocka_unit_test_setup(full_store_refuses_first, setup),
	    cmocka_unit_test_setup(cli_kv, setup),
	};

	jqt_init();
	jqt_init_cli();
	return jqt_pg_run_tests(&server, tests);
}
