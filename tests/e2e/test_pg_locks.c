/* SPDX-License-Identifier: MIT */
/*
 * test_pg_locks.c - named locks shared by hosts through jobqd --backend:
 * two managers ("hosts", each in an instance directory of its own) on one
 * database of a PostgreSQL 15 of the test's own (pg_server.h). A lock
 * held on one host is not granted on the other until it is released
 * (handed over through the NOTIFY of the release), its holder dies, its
 * lease ends, or its host's manager dies (the poll); mutual exclusion
 * holds over hundreds of hand-overs; a semaphore's units are counted
 * across hosts, and an RLock's depth and a lock_many() set are honoured;
 * a cut connection to PostgreSQL loses the locks held on that host
 * (JOBQ_ELOST) and its waiters go on after the reconnect. `jobq locks`
 * on either host lists the holders and waiters of both, with their host,
 * and forgets them when they let go or their manager dies; a cycle of
 * waits through both hosts is refused with -EDEADLK. First, the
 * statements themselves (manager/pg_locks.c) run twice by pg.c's batching.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "pg.h"
#include "pg_server.h"

static struct jqt_pg server;
static char conninfo[256], dbname[32];

/* A host: a manager on the case's database. */
static void host_start(struct jqt_pg_host *h)
{
	assert_int_equal(jqt_pg_host_start(h, conninfo, NULL), 0);
}

/* A handle on host @h that gives up at once when its manager goes. */
static jobq_t *host_open(const struct jqt_pg_host *h)
{
	struct jobq_open_opts o = {.reconnect = -1};
	jobq_t *q = NULL;

	assert_rc(jobq_open_ex(&q, h->m.dir, &o), 0);
	return q;
}

/* The same, in a forked child (no cmocka there). */
static jobq_t *child_open(const struct jqt_pg_host *h)
{
	struct jobq_open_opts o = {.reconnect = -1};
	jobq_t *q = NULL;

	if (jobq_open_ex(&q, h->m.dir, &o)) {
		fprintf(stderr, "child: jobq_open %s failed\n", h->m.dir);
		_exit(99);
	}
	return q;
}

/* Waits (at most 10 s) until lock @name on @q's host has @n waiters. */
static void wait_waiters(jobq_t *q, const char *name, unsigned n)
{
	double end = jqt_now() + 10;

	for (;;) {
		struct jobq_lock_info *list = NULL;
		size_t k = 0;
		unsigned w = 0;

		assert_rc(jobq_locks(q, &list, &k), 0);
		for (size_t i = 0; i < k; i++)
			if (!strcmp(list[i].name, name))
				w = list[i].waiters;
		free(list);
		if (w >= n)
			return;
		assert_true(jqt_now() < end);
		jqt_sleep(0.01);
	}
}

static int setup(void **state)
{
	static int n;

	snprintf(dbname, sizeof(dbname), "l%d", ++n);
	return jqt_pg_createdb(&server, dbname, conninfo, sizeof(conninfo));
}

/* What a child waiting on host B tells the test. */
struct handover {
	const struct jqt_pg_host *b; /* the waiter's host */
	double timeout;		     /* of its acquire */
	double got;		     /* jqt_now() when its acquire returned */
	int rc;
};

/* Waits for "L" on host x->b, then lets it go. */
static int waiter(int idx, void *arg)
{
	struct handover *x = arg;
	jobq_t *q = child_open(x->b);

	x->rc = jobq_lock_acquire(q, "L", x->timeout);
	x->got = jqt_now();
	if (!x->rc)
		x->rc = jobq_lock_release(q, "L");
	jobq_close(q);
	return 0;
}

/*
 * Held on A: B times out (and a try-once says -EAGAIN); released on A,
 * B's waiter has it at once, through the NOTIFY of the release rather
 * than the 300 ms poll: most of five hand-overs take well under 100 ms,
 * which polling alone would make in about one of three.
 */
static void release_hands_over(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct handover *x = jqt_shared(sizeof(*x));
	struct jqt_out o;
	jobq_t *qa, *qb;
	int fast = 0;

	host_start(&a);
	host_start(&b);
	qa = host_open(&a);
	qb = host_open(&b);
	assert_rc(jobq_lock_acquire(qa, "L", 5), 0);
	assert_rc(jobq_lock_acquire(qb, "L", 0.3), -ETIMEDOUT);
	assert_rc(jobq_lock_acquire(qb, "L", 0), -EAGAIN);
	/* The command line on B: held, exit 3. */
	assert_int_equal(jqt_cli(&b.m, &o, NULL, 0, "lock", "L", "--timeout",
				 "0", "--", "true", NULL),
			 0);
	assert_int_equal(o.code, 3);
	assert_non_null(strstr(o.err, "held"));
	jqt_out_free(&o);
	/* Held on this host: a second taker here waits too. */
	assert_rc(jobq_lock_release(qa, "L"), 0);
	assert_rc(jobq_lock_acquire(qb, "L", 5), 0);
	assert_rc(jobq_lock_acquire(qa, "L", 0.3), -ETIMEDOUT);
	assert_rc(jobq_lock_release(qb, "L"), 0);
	for (int round = 0; round < 5; round++) {
		double t0;
		pid_t pid;
		int st;

		assert_rc(jobq_lock_acquire(qa, "L", 5), 0);
		x->b = &b;
		x->timeout = 20;
		x->got = 0;
		x->rc = -1;
		pid = jqt_fork(waiter, 0, x);
		assert_true(pid > 0);
		wait_waiters(qb, "L", 1);
		/* Past the first try: the waiter is blocked on A. */
		jqt_sleep(0.05);
		t0 = jqt_now();
		assert_rc(jobq_lock_release(qa, "L"), 0);
		assert_int_equal(jqt_wait_pid(pid, 20, &st), 0);
		assert_true(jqt_status_ok(st));
		assert_rc(x->rc, 0);
		fprintf(stderr, "hand-over %d: %.1f ms\n", round,
			(x->got - t0) * 1000);
		fast += x->got - t0 < 0.1;
	}
	assert_true(fast >= 4);
	/* Free everywhere: a try-once on either host has it. On B at
	 * once (its manager tries once its own unlock is answered); on A
	 * once B's unlock, sent after qb's release returned, has run. */
	assert_rc(jobq_lock_acquire(qb, "L", 0), 0);
	assert_rc(jobq_lock_release(qb, "L"), 0);
	{
		double end = jqt_now() + 5;
		int rc;

		while ((rc = jobq_lock_acquire(qa, "L", 0)) == -EAGAIN &&
		       jqt_now() < end)
			jqt_sleep(0.01);
		assert_rc(rc, 0);
	}
	assert_rc(jobq_lock_release(qa, "L"), 0);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

struct holder {
	const struct jqt_pg_host *h;
	_Atomic int ready;
	double lease;
};

static int hold_forever(int idx, void *arg)
{
	struct holder *x = arg;
	jobq_t *q = child_open(x->h);
	int rc = x->lease > 0 ? jobq_lock_acquire_lease(q, "L", 5, x->lease)
			      : jobq_lock_acquire(q, "L", 5);

	if (rc) {
		fprintf(stderr, "child: acquire: %s\n", jobq_strerror(rc));
		return 1;
	}
	x->ready = 1;
	for (;;)
		pause();
}

/* A's holder killed with SIGKILL: B gets the lock. A holder whose lease
 * ends: B gets it then. */
static void holder_killed_or_lease_ends(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct holder *x = jqt_shared(sizeof(*x));
	double end, t0;
	jobq_t *qb;
	pid_t pid;

	host_start(&a);
	host_start(&b);
	qb = host_open(&b);
	x->h = &a;
	pid = jqt_fork(hold_forever, 0, x);
	assert_true(pid > 0);
	end = jqt_now() + 10;
	while (!x->ready && jqt_now() < end)
		jqt_sleep(0.01);
	assert_true(x->ready);
	assert_rc(jobq_lock_acquire(qb, "L", 0.3), -ETIMEDOUT);
	jqt_kill_child(pid);
	t0 = jqt_now();
	assert_rc(jobq_lock_acquire(qb, "L", 10), 0);
	assert_true(jqt_now() - t0 < 5);
	assert_rc(jobq_lock_release(qb, "L"), 0);

	/* A lease of 1 s on A: B waits for its end, not for ever. */
	x->ready = 0;
	x->lease = 1;
	pid = jqt_fork(hold_forever, 0, x);
	assert_true(pid > 0);
	end = jqt_now() + 10;
	while (!x->ready && jqt_now() < end)
		jqt_sleep(0.01);
	assert_true(x->ready);
	assert_rc(jobq_lock_acquire(qb, "L", 0), -EAGAIN);
	assert_rc(jobq_lock_acquire(qb, "L", 10), 0);
	assert_rc(jobq_lock_release(qb, "L"), 0);
	jqt_kill_child(pid);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* A's manager killed with SIGKILL: its session ends without a NOTIFY,
 * and B's poll finds the lock free. */
static void manager_killed(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	jobq_t *qa, *qb;
	double t0;

	host_start(&a);
	host_start(&b);
	qa = host_open(&a);
	qb = host_open(&b);
	assert_rc(jobq_lock_acquire(qa, "L", 5), 0);
	assert_rc(jobq_lock_acquire(qb, "L", 0.3), -ETIMEDOUT);
	assert_int_equal(kill(a.m.pid, SIGKILL), 0);
	t0 = jqt_now();
	assert_rc(jobq_lock_acquire(qb, "L", 20), 0);
	fprintf(stderr, "after the manager's death: %.1f ms\n",
		(jqt_now() - t0) * 1000);
	assert_true(jqt_now() - t0 < 10);
	assert_rc(jobq_lock_release(qb, "L"), 0);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

struct excl {
	const struct jqt_pg_host *h[2];
	char path[PATH_MAX + 16];
};

#define ROUNDS 200

static int mark(int fd, const char *what)
{
	char line[64];
	int len = snprintf(line, sizeof(line), "%s %d\n", what, (int)getpid());

	return write(fd, line, (size_t)len) == len ? 0 : -1;
}

static int take_turns(int idx, void *arg)
{
	struct excl *x = arg;
	jobq_t *q = child_open(x->h[idx]);
	int fd = open(x->path, O_WRONLY | O_APPEND);

	if (fd < 0)
		return 1;
	for (int i = 0; i < ROUNDS; i++) {
		int rc = jobq_lock_acquire(q, "L", 60);

		if (rc) {
			fprintf(stderr, "child %d: acquire: %s\n", idx,
				jobq_strerror(rc));
			return 1;
		}
		if (mark(fd, "enter") || mark(fd, "leave"))
			return 1;
		rc = jobq_lock_release(q, "L");
		if (rc) {
			fprintf(stderr, "child %d: release: %s\n", idx,
				jobq_strerror(rc));
			return 1;
		}
	}
	close(fd);
	jobq_close(q);
	return 0;
}

/* Two processes on two hosts, 200 turns each: "enter pid" and "leave
 * pid" strictly alternate in a file both append to. */
static void mutual_exclusion(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct excl *x = jqt_shared(sizeof(*x));
	char line[64], in[64] = "";
	int n = 0, fd, switches = 0;
	pid_t pids[2], last = 0;
	FILE *f;

	host_start(&a);
	host_start(&b);
	x->h[0] = &a;
	x->h[1] = &b;
	snprintf(x->path, sizeof(x->path), "%s/marks", a.dir);
	fd = open(x->path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(jqt_fork_n(2, take_turns, x, pids), 0);
	assert_int_equal(jqt_wait_all(pids, 2, 120, NULL), 0);
	f = fopen(x->path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		pid_t pid = (pid_t)atoi(strchr(line, ' ') + 1);

		if (n % 2 == 0) {
			assert_int_equal(strncmp(line, "enter ", 6), 0);
			snprintf(in, sizeof(in), "leave %d\n", (int)pid);
			switches += last && pid != last;
			last = pid;
		} else {
			assert_string_equal(line, in);
		}
		n++;
	}
	fclose(f);
	assert_int_equal(n, 4 * ROUNDS);
	fprintf(stderr, "%d turns, %d hand-overs between hosts\n", n / 2,
		switches);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* A semaphore of value 2 on two hosts: two units in all. */
static void semaphore_across_hosts(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	jobq_t *qa, *qa2, *qb, *qb2;

	host_start(&a);
	host_start(&b);
	qa = host_open(&a);
	qa2 = host_open(&a);
	qb = host_open(&b);
	qb2 = host_open(&b);
	assert_rc(jobq_lock_create(qa, "S", JOBQ_SEMAPHORE, 2), 0);
	assert_rc(jobq_lock_create(qb, "S", JOBQ_SEMAPHORE, 2), 0);
	assert_rc(jobq_lock_acquire(qa, "S", 5), 0);
	assert_rc(jobq_lock_acquire(qb, "S", 5), 0);
	assert_rc(jobq_lock_acquire(qb2, "S", 0.3), -ETIMEDOUT);
	assert_rc(jobq_lock_acquire(qa2, "S", 0.3), -ETIMEDOUT);
	assert_rc(jobq_lock_release(qa, "S"), 0);
	assert_rc(jobq_lock_acquire(qb2, "S", 5), 0);
	/* Both units on B now. */
	assert_rc(jobq_lock_acquire(qa2, "S", 0), -EAGAIN);
	assert_rc(jobq_lock_release(qb, "S"), 0);
	assert_rc(jobq_lock_acquire(qa2, "S", 5), 0);
	assert_rc(jobq_lock_release(qa2, "S"), 0);
	assert_rc(jobq_lock_release(qb2, "S"), 0);
	jobq_close(qa);
	jobq_close(qa2);
	jobq_close(qb);
	jobq_close(qb2);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

static int many_on_b(int idx, void *arg)
{
	static const char *const names[] = {"x", "y"};
	struct handover *x = arg;
	jobq_t *q = child_open(x->b);

	x->rc = jobq_lock_many(q, names, 2, 20);
	x->got = jqt_now();
	if (!x->rc)
		x->rc = jobq_unlock_many(q, names, 2);
	jobq_close(q);
	return 0;
}

/*
 * An RLock taken twice on A is free for B only after both releases.
 * lock_many on B for {x, y} while A holds x: B holds no part of the set
 * meanwhile (A can take y and give it back), and has both once A lets x
 * go.
 */
static void rlock_and_many(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct handover *x = jqt_shared(sizeof(*x));
	jobq_t *qa, *qb;
	pid_t pid;
	int st;

	host_start(&a);
	host_start(&b);
	qa = host_open(&a);
	qb = host_open(&b);
	assert_rc(jobq_lock_create(qa, "R", JOBQ_RLOCK, 1), 0);
	assert_rc(jobq_lock_create(qb, "R", JOBQ_RLOCK, 1), 0);
	assert_rc(jobq_lock_acquire(qa, "R", 5), 0);
	assert_rc(jobq_lock_acquire(qa, "R", 5), 0);
	assert_rc(jobq_lock_acquire(qb, "R", 0), -EAGAIN);
	assert_rc(jobq_lock_release(qa, "R"), 0);
	assert_rc(jobq_lock_acquire(qb, "R", 0.2), -ETIMEDOUT);
	assert_rc(jobq_lock_release(qa, "R"), 0);
	assert_rc(jobq_lock_acquire(qb, "R", 5), 0);
	assert_rc(jobq_lock_release(qb, "R"), 0);

	assert_rc(jobq_lock_acquire(qa, "x", 5), 0);
	x->b = &b;
	x->rc = -1;
	pid = jqt_fork(many_on_b, 0, x);
	assert_true(pid > 0);
	wait_waiters(qb, "y", 1);
	/* B's try for y may have come first: it gives y up once it learns
	 * that x is held, so A gets y within a try or two. */
	assert_rc(jobq_lock_acquire(qa, "y", 5), 0);
	assert_rc(jobq_lock_release(qa, "y"), 0);
	assert_rc(jobq_lock_release(qa, "x"), 0);
	assert_int_equal(jqt_wait_pid(pid, 20, &st), 0);
	assert_true(jqt_status_ok(st));
	assert_rc(x->rc, 0);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* The connection of A's manager cut (pg_terminate_backend): its holder
 * gets JOBQ_ELOST on release, and a waiter on A goes on after the
 * reconnect. */
static void connection_cut(void **state)
{
	struct jqt_pg_host a = {0};
	struct handover *x = jqt_shared(sizeof(*x));
	jobq_t *qa;
	double end;
	pid_t pid;
	int st;

	host_start(&a);
	qa = host_open(&a);
	assert_rc(jobq_lock_acquire(qa, "L", 5), 0);
	x->b = &a;
	x->timeout = 30;
	x->rc = -1;
	pid = jqt_fork(waiter, 0, x);
	assert_true(pid > 0);
	wait_waiters(qa, "L", 1);
	/* A's manager holds the one session (a check's may still be
	 * listed as it closes). */
	assert_int_equal(jqt_pg_cut_sessions(conninfo, 1, 20), 1);
	end = jqt_now() + 20;
	while (jqt_file_count(a.log, "connected to PostgreSQL") < 2 &&
	       jqt_now() < end)
		jqt_sleep(0.05);
	assert_int_equal(jqt_file_count(a.log, "connected to PostgreSQL"), 2);
	assert_int_equal(jqt_wait_pid(pid, 20, &st), 0);
	assert_true(jqt_status_ok(st));
	assert_rc(x->rc, 0);
	assert_true(jqt_file_count(a.log, "lost their locks") >= 1);
	assert_rc(jobq_lock_release(qa, "L"), JOBQ_ELOST);
	assert_rc(jobq_lock_release(qa, "L"), -EPERM);
	/* The lock works again. */
	assert_rc(jobq_lock_acquire(qa, "L", 5), 0);
	assert_rc(jobq_lock_release(qa, "L"), 0);
	jobq_close(qa);
	jqt_pg_host_stop(&a);
}

/* ------------------------------------------------------------------------
 * The statements, without a manager: one connection with batching on,
 * driven by jobq__pg_run().
 */
struct ans {
	bool done;
	int err;
	int rows;
	char first[32];
};

static void ans_cb(void *arg, int err, const PGresult *res)
{
	struct ans *a = arg;

	a->done = true;
	a->err = err;
	if (!err) {
		a->rows = PQntuples(res);
		if (a->rows)
			snprintf(a->first, sizeof(a->first), "%s",
				 PQgetvalue(res, 0, 0));
	}
}

static bool both_done(void *arg)
{
	struct ans *a = arg;

	return a[0].done && a[1].done;
}

static bool is_up(void *arg)
{
	return jobq__pg_up(arg);
}

/* Whether another session can take unit 0 of lock @name now. It lets
 * go at once, not as it closes: the server ends a session after the
 * client has gone, and a try right after could still find it there. */
static bool free_elsewhere(const char *name)
{
	char sql[256], *r;
	bool ok;

	snprintf(sql, sizeof(sql),
		 "SELECT CASE WHEN pg_try_advisory_lock(%1$lld) THEN "
		 "pg_advisory_unlock(%1$lld) ELSE false END",
		 (long long)jobq__pg_lock_key(name));
	r = jqt_pg_exec(conninfo, sql);
	assert_non_null(r);
	ok = !strcmp(r, "t");
	free(r);
	return ok;
}

static const char sql_fails[] = "SELECT 1 / 0";

/*
 * A try and an unlock, each in one batch with a statement that fails:
 * the batch rolls back, which does not undo an advisory lock, and pg.c
 * sends the try (or unlock) again alone. The session must still hold
 * the unit once (one unlock frees it), and an unlock run twice must do
 * no harm.
 */
static void statements_run_twice(void **state)
{
	struct jobq__pg *pg = NULL;
	struct ans a[2];
	char err[256];
	uint32_t held = 0;

	assert_int_equal(
	    jobq__pg_open(&pg, conninfo, NULL, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(jobq__pg_run(pg, is_up, pg, 20000), 0);
	jobq__pg_batching(pg, true);

	memset(a, 0, sizeof(a));
	assert_int_equal(jobq__pg_lock_try(pg, "L", 1, NULL, 0, ans_cb, &a[0]),
			 0);
	assert_int_equal(jobq__pg_query(pg, sql_fails, 0, NULL, ans_cb, &a[1]),
			 0);
	assert_int_equal(jobq__pg_run(pg, both_done, a, 20000), 0);
	assert_int_equal(a[0].err, 0);
	assert_int_equal(a[0].rows, 1);
	assert_string_equal(a[0].first, "0");
	assert_int_equal(a[1].err, -EPROTO);
	assert_false(free_elsewhere("L"));
	/* Held: a try knowing it takes nothing more (one unit only). */
	memset(a, 0, sizeof(a));
	assert_int_equal(jobq__pg_lock_try(pg, "L", 1, &held, 1, ans_cb, &a[0]),
			 0);
	a[1].done = true;
	assert_int_equal(jobq__pg_run(pg, both_done, a, 20000), 0);
	assert_int_equal(a[0].err, 0);
	assert_int_equal(a[0].rows, 0);
	/* One unlock frees it: the try ran twice but took it once. */
	memset(a, 0, sizeof(a));
	a[1].done = true;
	assert_int_equal(jobq__pg_lock_unlock(pg, "L", 0, ans_cb, &a[0]), 0);
	assert_int_equal(jobq__pg_run(pg, both_done, a, 20000), 0);
	assert_int_equal(a[0].err, 0);
	assert_true(free_elsewhere("L"));

	/* Taken alone, then let go in a batch that fails. */
	memset(a, 0, sizeof(a));
	a[1].done = true;
	assert_int_equal(jobq__pg_lock_try(pg, "L", 1, NULL, 0, ans_cb, &a[0]),
			 0);
	assert_int_equal(jobq__pg_run(pg, both_done, a, 20000), 0);
	assert_int_equal(a[0].rows, 1);
	assert_false(free_elsewhere("L"));
	memset(a, 0, sizeof(a));
	assert_int_equal(jobq__pg_lock_unlock(pg, "L", 0, ans_cb, &a[0]), 0);
	assert_int_equal(jobq__pg_query(pg, sql_fails, 0, NULL, ans_cb, &a[1]),
			 0);
	assert_int_equal(jobq__pg_run(pg, both_done, a, 20000), 0);
	assert_int_equal(a[0].err, 0);
	assert_int_equal(a[1].err, -EPROTO);
	assert_true(free_elsewhere("L"));

	/* A semaphore of 3 whose unit 0 another session holds: units 1
	 * and 2, then none. */
	{
		char sql[128];
		PGconn *other = PQconnectdb(conninfo);
		PGresult *r;
		uint32_t units[2];

		assert_int_equal(PQstatus(other), CONNECTION_OK);
		snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%lld)",
			 (long long)jobq__pg_lock_key("S"));
		r = PQexec(other, sql);
		assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
		PQclear(r);
		for (int i = 0; i < 3; i++) {
			memset(a, 0, sizeof(a));
			a[1].done = true;
			assert_int_equal(jobq__pg_lock_try(pg, "S", 3, units,
							   (uint32_t)i, ans_cb,
							   &a[0]),
					 0);
			assert_int_equal(jobq__pg_run(pg, both_done, a, 20000),
					 0);
			assert_int_equal(a[0].err, 0);
			if (i == 2) {
				assert_int_equal(a[0].rows, 0);
				break;
			}
			assert_int_equal(a[0].rows, 1);
			units[i] = (uint32_t)atoi(a[0].first);
			assert_int_equal(units[i], i + 1);
		}
		PQfinish(other);
	}
	jobq__pg_close(pg);
}

/* What `jobq locks --json` on @h says of lock @name: the holder's pid (0
 * when free or not listed), its host in @host, the waiters. */
struct listed {
	long pid;
	char host[64];
	long waiters;
};

static struct listed listed(const struct jqt_pg_host *h, const char *name)
{
	struct listed r = {0};
	struct jqt_out o;
	json_t *doc, *arr, *l;
	size_t i;

	assert_int_equal(jqt_cli(&h->m, &o, NULL, 0, "locks", "--json", NULL),
			 0);
	assert_int_equal(o.code, 0);
	doc = jqt_json_object(&o);
	assert_non_null(doc);
	arr = json_object_get(doc, "locks");
	assert_true(json_is_array(arr));
	json_array_foreach(arr, i, l)
	{
		json_t *host = json_object_get(l, "host");

		if (strcmp(json_string_value(json_object_get(l, "name")), name))
			continue;
		/* The fields of a local listing are all there. */
		assert_non_null(json_object_get(l, "kind"));
		assert_non_null(json_object_get(l, "held_for"));
		assert_non_null(host);
		r.pid = (long)json_integer_value(json_object_get(l, "holder"));
		r.waiters =
		    (long)json_integer_value(json_object_get(l, "waiters"));
		if (json_is_string(host))
			snprintf(r.host, sizeof(r.host), "%s",
				 json_string_value(host));
		else
			assert_int_equal(r.pid, 0);
	}
	json_decref(doc);
	jqt_out_free(&o);
	return r;
}

/* The text listing on @h shows @host beside @pid (a state that holds
 * while the caller looks). */
static void text_lists(const struct jqt_pg_host *h, long pid, const char *host)
{
	struct jqt_out o;
	char want[96];

	assert_int_equal(jqt_cli(&h->m, &o, NULL, 0, "locks", NULL), 0);
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "HOST"));
	snprintf(want, sizeof(want), " %ld %s ", pid, host);
	if (!strstr(o.out, want))
		fprintf(stderr, "no \"%s\" in:\n%s", want, o.out);
	assert_non_null(strstr(o.out, want));
	jqt_out_free(&o);
}

/* Waits (at most 10 s) until `jobq locks` on @h says @pid holds @name
 * on @host (@pid 0: nobody holds it) with @waiters waiters (-1: any). */
static void wait_listed(const struct jqt_pg_host *h, const char *name, long pid,
			const char *host, long waiters)
{
	double end = jqt_now() + 10;
	struct listed r;

	for (;;) {
		r = listed(h, name);
		if (r.pid == pid && (!pid || !strcmp(r.host, host)) &&
		    (waiters < 0 || r.waiters == waiters)) {
			if (pid)
				text_lists(h, pid, host);
			return;
		}
		if (jqt_now() > end)
			break;
		jqt_sleep(0.05);
	}
	fprintf(stderr,
		"lock %s: listed pid %ld host %s waiters %ld, want "
		"pid %ld host %s waiters %ld\n",
		name, r.pid, r.host, r.waiters, pid, host ? host : "-",
		waiters);
	fail();
}

/* The rows host @host has in jobq_lock_holders. */
static int rows_of(const char *host)
{
	return atoi(jqt_pg_ask(
	    conninfo,
	    "SELECT count(*) FROM jobq_lock_holders WHERE host = '%s'", host));
}

/* The name a host's manager goes by in the listing. */
static void host_name(const struct jqt_pg_host *h, char *out, size_t len)
{
	char n[64] = "";

	assert_int_equal(gethostname(n, sizeof(n) - 1), 0);
	n[40] = '\0';
	snprintf(out, len, "%s:%d", n, (int)h->m.pid);
}

/* The network namespace of process @pid (0: this one), as an inode. */
static unsigned long netns_of(pid_t pid)
{
	char path[64];
	struct stat st;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/ns/net");
	assert_int_equal(stat(path, &st), 0);
	return (unsigned long)st.st_ino;
}

/* A child on host x->h that waits for "L" up to x->lease seconds. */
static int wait_a_while(int idx, void *arg)
{
	struct holder *x = arg;
	jobq_t *q = child_open(x->h);
	int rc = jobq_lock_acquire(q, "L", x->lease);

	if (!rc)
		jobq_lock_release(q, "L");
	jobq_close(q);
	return 0;
}

/*
 * The two hosts' managers run in network namespaces of their own (where
 * the test may make them), neither the test's. `jobq locks` on B lists a
 * lock held on A, with A's host and the holder's pid; both list the
 * waiter on B; so does a host started after it was taken. Released,
 * both list it free and no rows are left; held
 * again and A's manager killed, B forgets it within seconds and A's rows
 * are deleted.
 */
static void listed_on_every_host(void **state)
{
	struct jqt_pg_host a = {0}, b = {0}, c = {0};
	struct holder *x = jqt_shared(sizeof(*x));
	char ha[96], hb[96];
	jobq_t *qa, *qb;
	pid_t pid;
	int st;

	host_start(&a);
	host_start(&b);
	host_name(&a, ha, sizeof(ha));
	host_name(&b, hb, sizeof(hb));
	if (jqt_pg_netns()) {
		assert_true(netns_of(a.m.pid) != netns_of(b.m.pid));
		assert_true(netns_of(a.m.pid) != netns_of(0));
		assert_true(netns_of(b.m.pid) != netns_of(0));
	} else {
		fprintf(stderr, "note: no network namespaces to compare\n");
	}
	qa = host_open(&a);
	qb = host_open(&b);
	/* Free: B lists nothing held (its record may not exist). */
	assert_int_equal(listed(&b, "L").pid, 0);
	assert_rc(jobq_lock_acquire(qa, "L", 5), 0);
	wait_listed(&b, "L", getpid(), ha, 0);
	wait_listed(&a, "L", getpid(), ha, 0);
	/* A host started since lists it too. */
	host_start(&c);
	wait_listed(&c, "L", getpid(), ha, 0);
	jqt_pg_host_stop(&c);
	/* A waiter on B: both list it beside A's holder. */
	x->h = &b;
	x->lease = 20;
	pid = jqt_fork(wait_a_while, 0, x);
	assert_true(pid > 0);
	wait_listed(&a, "L", getpid(), ha, 1);
	wait_listed(&b, "L", getpid(), ha, 1);
	/* Released: B's waiter has it, and A lists it on B. */
	assert_rc(jobq_lock_release(qa, "L"), 0);
	assert_int_equal(jqt_wait_pid(pid, 20, &st), 0);
	assert_true(jqt_status_ok(st));
	wait_listed(&a, "L", 0, NULL, 0);
	wait_listed(&b, "L", 0, NULL, 0);
	assert_int_equal(rows_of(ha), 0);
	assert_int_equal(rows_of(hb), 0);

	/* Held on A again; A's manager dies: B forgets it. */
	assert_rc(jobq_lock_acquire(qa, "L", 5), 0);
	wait_listed(&b, "L", getpid(), ha, 0);
	assert_int_equal(rows_of(ha), 1);
	assert_int_equal(kill(a.m.pid, SIGKILL), 0);
	wait_listed(&b, "L", 0, NULL, 0);
	{
		double end = jqt_now() + 10;

		while (rows_of(ha) && jqt_now() < end)
			jqt_sleep(0.05);
		assert_int_equal(rows_of(ha), 0);
	}
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* What the child on host A of deadlock_across_hosts does and says. */
struct cross {
	const struct jqt_pg_host *a;
	_Atomic int ready, go;
	int rc;
};

/* Holds D1 on A, then waits for D2 (held on B). */
static int hold_d1_want_d2(int idx, void *arg)
{
	struct cross *x = arg;
	jobq_t *q = child_open(x->a);
	double end = jqt_now() + 20;

	if (jobq_lock_acquire(q, "D1", 5))
		return 1;
	x->ready = 1;
	while (!x->go && jqt_now() < end)
		jqt_sleep(0.01);
	x->rc = jobq_lock_acquire(q, "D2", 20);
	if (!x->rc)
		jobq_lock_release(q, "D2");
	jobq_lock_release(q, "D1");
	jobq_close(q);
	return 0;
}

/*
 * A cycle through two hosts: D1 held on A, D2 on B, A's holder waits for
 * D2; B's holder asking for D1 would close the cycle and is refused with
 * -EDEADLK, as on one host, instead of waiting out its timeout. A's wait
 * then has D2 once B lets it go.
 */
static void deadlock_across_hosts(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct cross *x = jqt_shared(sizeof(*x));
	char hb[96];
	double end, t0;
	jobq_t *qb;
	pid_t pid;
	int st;

	host_start(&a);
	host_start(&b);
	host_name(&b, hb, sizeof(hb));
	qb = host_open(&b);
	assert_rc(jobq_lock_acquire(qb, "D2", 5), 0);
	x->a = &a;
	pid = jqt_fork(hold_d1_want_d2, 0, x);
	assert_true(pid > 0);
	end = jqt_now() + 10;
	while (!x->ready && jqt_now() < end)
		jqt_sleep(0.01);
	assert_true(x->ready);
	x->go = 1;
	/* A's wait for D2 is published: B lists it. */
	wait_listed(&b, "D2", getpid(), hb, 1);
	t0 = jqt_now();
	assert_rc(jobq_lock_acquire(qb, "D1", 10), -EDEADLK);
	assert_true(jqt_now() - t0 < 5);
	assert_rc(jobq_lock_release(qb, "D2"), 0);
	assert_int_equal(jqt_wait_pid(pid, 20, &st), 0);
	assert_true(jqt_status_ok(st));
	assert_rc(x->rc, 0);
	/* Not a cycle: B waits for D1 no more than A holds it. */
	assert_rc(jobq_lock_acquire(qb, "D1", 10), 0);
	assert_rc(jobq_lock_release(qb, "D1"), 0);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(statements_run_twice, setup),
	    cmocka_unit_test_setup(release_hands_over, setup),
	    cmocka_unit_test_setup(holder_killed_or_lease_ends, setup),
	    cmocka_unit_test_setup(manager_killed, setup),
	    cmocka_unit_test_setup(mutual_exclusion, setup),
	    cmocka_unit_test_setup(semaphore_across_hosts, setup),
	    cmocka_unit_test_setup(rlock_and_many, setup),
	    cmocka_unit_test_setup(connection_cut, setup),
	    cmocka_unit_test_setup(listed_on_every_host, setup),
	    cmocka_unit_test_setup(deadlock_across_hosts, setup),
	};

	jqt_init();
	jqt_init_cli();
	return jqt_pg_run_tests(&server, tests);
}
