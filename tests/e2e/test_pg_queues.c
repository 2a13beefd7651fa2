/* SPDX-License-Identifier: MIT */
/*
 * test_pg_queues.c - queues of objects of jobqd --backend shared by
 * hosts: managers in instance directories of their own on one database of
 * a PostgreSQL 15 of the test's own (pg_server.h). An object put on one
 * host is got on another, once; a blocked get is woken by a put on
 * another host through a notification, well before the poll; objects
 * from two producers on two hosts reach two consumers on two hosts
 * exactly once and in each producer's order; nothing is lost when
 * PostgreSQL restarts under blocked consumers or a blocked consumer is
 * killed. What the hosts share about a queue: the depth every host lists,
 * a bound that puts on two hosts never pass (a put blocked on one is let
 * in by a get on the other), task_done and join counted over hosts, and
 * a removal that takes the queue's rows and fails its waiters on both.
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

static void host_start(struct jqt_pg_host *h)
{
	assert_int_equal(jqt_pg_host_start(h, conninfo, NULL), 0);
}

#define HCLI(h, o, ...)                                                        \
	assert_int_equal(jqt_cli(&(h)->m, (o), NULL, 0, __VA_ARGS__, NULL), 0)

static int setup(void **state)
{
	static int n;
	char name[32];

	snprintf(name, sizeof(name), "q%d", ++n);
	return jqt_pg_createdb(&server, name, conninfo, sizeof(conninfo));
}

/* Rows of queue @name waiting in PostgreSQL. */
static long rows(const char *name)
{
	return strtol(
	    jqt_pg_ask(
		conninfo,
		"SELECT count(*) FROM jobq_queue_items WHERE queue = '%s'",
		name),
	    NULL, 10);
}

/* The first column of @sql's first row, as a number. */
static long peek_num(const char *sql)
{
	char *v = jqt_pg_exec(conninfo, sql);
	long n;

	assert_non_null(v);
	n = strtol(v, NULL, 10);
	free(v);
	return n;
}

/* Waits (at most 10 s) until queue @name on @q shows @depth objects of
 * @bytes (the counts are refreshed each second; a queue of another host
 * is listed from its first count). */
static void until_depth(jobq_t *q, const char *name, uint64_t depth,
			uint64_t bytes)
{
	double end = jqt_now() + 10;
	struct jobq_queue_info qi = {0};
	int ret;

	for (;;) {
		ret = jobq_queue_info(q, name, &qi);
		if ((!ret && qi.depth == depth && qi.bytes == bytes) ||
		    jqt_now() > end)
			break;
		jqt_sleep(0.05);
	}
	assert_int_equal(ret, 0);
	assert_int_equal(qi.depth, depth);
	assert_int_equal(qi.bytes, bytes);
}

/* Waits (at most 10 s) until @fn(@arg) is true. */
static bool until(bool (*fn)(void *arg), void *arg)
{
	double end = jqt_now() + 10;

	while (!fn(arg)) {
		if (jqt_now() > end)
			return false;
		jqt_sleep(0.05);
	}
	return true;
}

/* Waits (at most 10 s) until no object is taken and unacknowledged:
 * every object a client read was acknowledged to PostgreSQL. */
static void until_none_taken(void)
{
	double end = jqt_now() + 10;
	char *v;

	for (;;) {
		v = jqt_pg_exec(conninfo,
				"SELECT count(*) FROM jobq_queue_taken");
		assert_non_null(v);
		if (!strcmp(v, "0") || jqt_now() > end)
			break;
		free(v);
		jqt_sleep(0.05);
	}
	assert_string_equal(v, "0");
	free(v);
}

/* Put on A, get on B, with type and bytes; the queue is then empty on
 * both; put_many on B comes out of get_many on A in order. */
static void put_here_get_there(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	static const char bin[] = {'x', 0, (char)0xff, 'y'};
	jobq_obj_t o = {0}, objs[10], out[10];
	char data[10][16];
	jobq_t *qa, *qb;
	int n, got;

	host_start(&a);
	host_start(&b);
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	assert_int_equal(
	    jobq_put(qa, "q", JOBQ_T_USER + 1, bin, sizeof(bin), 5), 0);
	assert_int_equal(rows("q"), 1);
	assert_int_equal(jobq_get(qb, "q", &o, 5), 0);
	assert_int_equal(o.type, JOBQ_T_USER + 1);
	assert_int_equal(o.len, sizeof(bin));
	assert_memory_equal(o.data, bin, sizeof(bin));
	jobq_obj_free(&o);
	assert_int_equal(jobq_get(qa, "q", &o, 0), -EAGAIN);
	assert_int_equal(jobq_get(qb, "q", &o, 0), -EAGAIN);
	assert_int_equal(jobq_get(qb, "q", &o, 0.2), -ETIMEDOUT);
	/* Empty objects too. */
	assert_int_equal(jobq_put(qb, "q", JOBQ_T_TEXT, "", 0, 5), 0);
	assert_int_equal(jobq_get(qa, "q", &o, 5), 0);
	assert_int_equal(o.len, 0);
	jobq_obj_free(&o);

	for (int i = 0; i < 10; i++) {
		snprintf(data[i], sizeof(data[i]), "m%d", i);
		objs[i] = (jobq_obj_t){.type = JOBQ_T_TEXT,
				       .len = strlen(data[i]),
				       .data = data[i]};
	}
	assert_int_equal(jobq_put_many(qb, "many", objs, 10, 5), 10);
	assert_int_equal(rows("many"), 10);
	for (got = 0; got < 10;) {
		n = jobq_get_many(qa, "many", out, 10, 5);
		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			assert_int_equal(out[i].len, strlen(data[got]));
			assert_memory_equal(out[i].data, data[got], out[i].len);
			jobq_obj_free(&out[i]);
			got++;
		}
	}
	assert_int_equal(rows("many"), 0);
	until_none_taken();
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

static struct jqt_pg_host *put_host;

static int put_later(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&put_host->m);

	jqt_sleep(0.3);
	return jobq_put(q, "wake", JOBQ_T_TEXT, "now", 3, 5) ? 1 : 0;
}

/* A get blocked on B is woken by a put on A through the notification:
 * far sooner than the one-second poll. */
static void blocked_get_woken(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	jobq_obj_t o = {0};
	double t0, took, best = 10;
	jobq_t *qb;
	pid_t pid;

	host_start(&a);
	host_start(&b);
	qb = jqt_open_or_die(&b.m);
	put_host = &a;
	for (int round = 0; round < 3; round++) {
		pid = jqt_fork(put_later, 0, NULL);
		assert_true(pid > 0);
		t0 = jqt_now();
		assert_int_equal(jobq_get(qb, "wake", &o, 10), 0);
		took = jqt_now() - t0 - 0.3;
		assert_int_equal(o.len, 3);
		jobq_obj_free(&o);
		assert_int_equal(jqt_wait_all(&pid, 1, 10, NULL), 0);
		if (took < best)
			best = took;
	}
	fprintf(stderr, "put on A woke a get on B after %.1f ms\n",
		best * 1000);
	/* The poll is one second; a notification is milliseconds. */
	assert_true(best < 0.5);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

#define PER_PRODUCER 1000

/* What consumers saw, in shared memory: counts per object and, per
 * consumer and producer, the last sequence number seen. */
struct seen {
	_Atomic uint32_t count[2][PER_PRODUCER];
	_Atomic uint32_t disorder;
	_Atomic uint32_t producers_done;
};

static struct seen *seen;
static struct jqt_pg_host *hosts[2];

static int producer(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&hosts[idx]->m);
	char buf[32];

	for (int i = 0; i < PER_PRODUCER; i++) {
		int len = snprintf(buf, sizeof(buf), "%d %d", idx, i);

		if (jobq_put(q, "work", JOBQ_T_TEXT, buf, (size_t)len, 10))
			return 1;
	}
	seen->producers_done++;
	jobq_close(q);
	return 0;
}

static int consumer(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&hosts[idx]->m);
	int last[2] = {-1, -1};
	jobq_obj_t o;

	for (;;) {
		int ret = jobq_get(q, "work", &o, 1.5), p, i;

		if (ret == -ETIMEDOUT && seen->producers_done == 2)
			break;
		if (ret == -ETIMEDOUT)
			continue;
		if (ret)
			return 2;
		if (sscanf(o.data, "%d %d", &p, &i) != 2 || p < 0 || p > 1 ||
		    i < 0 || i >= PER_PRODUCER)
			return 3;
		seen->count[p][i]++;
		if (i <= last[p])
			seen->disorder++;
		last[p] = i;
		jobq_obj_free(&o);
	}
	jobq_close(q);
	return 0;
}

/* 2 producers on 2 hosts, 2 consumers on 2 hosts: every object once, in
 * its producer's order as each consumer sees it. */
static void exactly_once(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	pid_t pids[4];
	uint32_t once = 0, more = 0, none = 0;

	host_start(&a);
	host_start(&b);
	hosts[0] = &a;
	hosts[1] = &b;
	seen = jqt_shared(sizeof(*seen));
	assert_int_equal(jqt_fork_n(2, consumer, NULL, pids), 0);
	assert_int_equal(jqt_fork_n(2, producer, NULL, pids + 2), 0);
	assert_int_equal(jqt_wait_all(pids, 4, 120, NULL), 0);
	for (int p = 0; p < 2; p++)
		for (int i = 0; i < PER_PRODUCER; i++) {
			uint32_t c = seen->count[p][i];

			once += c == 1;
			more += c > 1;
			none += c == 0;
		}
	fprintf(stderr, "%u objects once, %u more than once, %u never\n", once,
		more, none);
	assert_int_equal(once, 2 * PER_PRODUCER);
	assert_int_equal(seen->disorder, 0);
	assert_int_equal(rows("work"), 0);
	until_none_taken();
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

static _Atomic uint32_t *killed_got;

static int blocked_getter(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&hosts[1]->m);
	jobq_obj_t o;

	/* Killed while it waits, or after it took the object, which it
	 * counts: then the object was delivered. */
	if (!jobq_get(q, "k", &o, 60))
		(*killed_got)++;
	pause();
	return 0;
}

/* A consumer killed while blocked loses nothing: an object put then
 * reaches the next getter. */
static void killed_consumer(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	jobq_obj_t o = {0};
	jobq_t *qa, *qb;
	pid_t pid;

	host_start(&a);
	host_start(&b);
	hosts[1] = &b;
	killed_got = jqt_shared(sizeof(*killed_got));
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	for (int round = 0; round < 5; round++) {
		pid = jqt_fork(blocked_getter, 0, NULL);
		assert_true(pid > 0);
		jqt_sleep(0.3);
		/* The put races the kill: its object may be fetched for the
		 * dying getter, and must come back. */
		assert_int_equal(jobq_put(qa, "k", JOBQ_T_TEXT, "x", 1, 5), 0);
		jqt_kill_child(pid);
		if (*killed_got) {
			*killed_got = 0;
			continue;
		}
		assert_int_equal(jobq_get(round % 2 ? qa : qb, "k", &o, 10), 0);
		jobq_obj_free(&o);
	}
	assert_int_equal(rows("k"), 0);
	until_none_taken();
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

#define RESTART_OBJS 50

static _Atomic uint32_t *got_restart;

static int restart_consumer(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&hosts[idx]->m);
	jobq_obj_t o;
	int i;

	while (*got_restart < RESTART_OBJS) {
		int ret = jobq_get(q, "r", &o, 1);

		if (ret == -ETIMEDOUT)
			continue;
		if (ret)
			return 2;
		if (sscanf(o.data, "%d", &i) != 1 || i < 0 || i >= RESTART_OBJS)
			return 3;
		got_restart[1 + i]++;
		(*got_restart)++;
		jobq_obj_free(&o);
	}
	return 0;
}

/* PostgreSQL restarted while consumers block: they carry on, and every
 * object reaches one. */
static void restart_under_consumers(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	char buf[16];
	jobq_t *qa;
	pid_t pids[2];

	host_start(&a);
	host_start(&b);
	hosts[0] = &a;
	hosts[1] = &b;
	got_restart = jqt_shared((RESTART_OBJS + 1) * sizeof(*got_restart));
	qa = jqt_open_or_die(&a.m);
	assert_int_equal(jqt_fork_n(2, restart_consumer, NULL, pids), 0);
	for (int i = 0; i < RESTART_OBJS / 2; i++) {
		int len = snprintf(buf, sizeof(buf), "%d", i);

		assert_int_equal(
		    jobq_put(qa, "r", JOBQ_T_TEXT, buf, (size_t)len, 10), 0);
	}
	jqt_sleep(0.5);
	jqt_pg_stop_server(&server);
	jqt_sleep(0.5);
	assert_int_equal(jqt_pg_restart(&server), 0);
	for (int i = RESTART_OBJS / 2; i < RESTART_OBJS; i++) {
		int len = snprintf(buf, sizeof(buf), "%d", i);

		assert_int_equal(
		    jobq_put(qa, "r", JOBQ_T_TEXT, buf, (size_t)len, 30), 0);
	}
	assert_int_equal(jqt_wait_all(pids, 2, 60, NULL), 0);
	for (int i = 0; i < RESTART_OBJS; i++)
		assert_int_equal(got_restart[1 + i], 1);
	jobq_close(qa);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* `jobq put` on one host, `jobq get` on another. */
static void cli_put_get(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct jqt_out o;

	host_start(&a);
	host_start(&b);
	HCLI(&a, &o, "put", "mail", "hello there");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	HCLI(&b, &o, "get", "mail", "--timeout", "5");
	assert_int_equal(o.code, 0);
	assert_string_equal(o.out, "hello there");
	jqt_out_free(&o);
	HCLI(&a, &o, "get", "mail", "--nowait");
	assert_int_not_equal(o.code, 0);
	jqt_out_free(&o);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

/* The depth of a queue, as `jobq queues` on another host shows it: the
 * rows waiting in PostgreSQL, and what a get there leaves. B lists the
 * queue though none of its clients named it. */
static void depth_seen_elsewhere(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct jobq_queue_info *qs = NULL;
	struct jqt_out o;
	jobq_obj_t obj = {0};
	jobq_t *qa, *qb;
	size_t n = 0;
	bool listed = false;

	host_start(&a);
	host_start(&b);
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	assert_int_equal(jobq_put(qa, "d", JOBQ_T_TEXT, "a", 1, 5), 0);
	assert_int_equal(jobq_put(qa, "d", JOBQ_T_TEXT, "bb", 2, 5), 0);
	assert_int_equal(jobq_put(qa, "d", JOBQ_T_TEXT, "ccc", 3, 5), 0);
	until_depth(qb, "d", 3, 6);
	until_depth(qa, "d", 3, 6);
	assert_int_equal(jobq_queues(qb, &qs, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(qs[i].name, "d")) {
			assert_int_equal(qs[i].depth, 3);
			listed = true;
		}
	free(qs);
	assert_true(listed);
	HCLI(&b, &o, "queues", "--json");
	assert_int_equal(o.code, 0);
	assert_true(strstr(o.out, "\"depth\":3") ||
		    strstr(o.out, "\"depth\": 3"));
	jqt_out_free(&o);
	/* A get on B: both see two left. */
	assert_int_equal(jobq_get(qb, "d", &obj, 5), 0);
	assert_int_equal(obj.len, 1);
	jobq_obj_free(&obj);
	until_depth(qa, "d", 2, 5);
	until_depth(qb, "d", 2, 5);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

#define BOUND	    3
#define RACERS_EACH 15

static struct jqt_pg_host *bhosts[2];

/* Put one object on queue "b" through host @idx, waiting for room. */
static int put_waiting(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&bhosts[idx]->m);
	int ret = jobq_put(q, "b", JOBQ_T_TEXT, "late", 4, 20);

	jobq_close(q);
	return ret ? 1 : 0;
}

/* Put RACERS_EACH objects on queue "b" through host @idx. */
static int put_racer(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&bhosts[idx]->m);

	for (int i = 0; i < RACERS_EACH; i++)
		if (jobq_put(q, "b", JOBQ_T_TEXT, "r", 1, 20))
			return 1;
	jobq_close(q);
	return 0;
}

/* A bounded queue holds no more than its bound with puts from two hosts;
 * a put blocked on A is let in by a get on B. */
static void bounded_across_hosts(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct jobq_queue_opts opts = {.max_depth = BOUND};
	struct jobq_queue_info qi = {0};
	struct jqt_out out;
	jobq_obj_t o = {0};
	long most = 0;
	int got = 0, st;
	jobq_t *qa, *qb;
	pid_t pids[2];
	double t0;

	host_start(&a);
	host_start(&b);
	bhosts[0] = &a;
	bhosts[1] = &b;
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	assert_int_equal(jobq_queue_open(qa, "b", &opts), 0);
	assert_int_equal(
	    peek_num("SELECT max_depth FROM jobq_object_queues WHERE queue = "
		     "'b'"),
	    BOUND);
	assert_int_equal(jobq_put(qa, "b", JOBQ_T_TEXT, "1", 1, 5), 0);
	assert_int_equal(jobq_put(qb, "b", JOBQ_T_TEXT, "2", 1, 5), 0);
	assert_int_equal(jobq_put(qa, "b", JOBQ_T_TEXT, "3", 1, 5), 0);
	/* Full, as seen from either host. */
	assert_int_equal(jobq_put(qb, "b", JOBQ_T_TEXT, "4", 1, 0), -EAGAIN);
	assert_int_equal(jobq_put(qa, "b", JOBQ_T_TEXT, "4", 1, 0), -EAGAIN);
	assert_int_equal(jobq_put(qb, "b", JOBQ_T_TEXT, "4", 1, 0.3),
			 -ETIMEDOUT);
	assert_int_equal(rows("b"), BOUND);
	until_depth(qb, "b", BOUND, BOUND);
	assert_int_equal(jobq_queue_info(qb, "b", &qi), 0);
	assert_int_equal(qi.max_depth, BOUND);

	/* Bytes, and a batch that half fits: its leading objects go in. */
	{
		struct jobq_queue_opts bytes = {.max_bytes = 4};
		jobq_obj_t two[3] = {
		    {.type = JOBQ_T_TEXT, .len = 1, .data = "x"},
		    {.type = JOBQ_T_TEXT, .len = 1, .data = "y"},
		    {.type = JOBQ_T_TEXT, .len = 1, .data = "z"}};

		assert_int_equal(jobq_queue_open(qa, "mb", &bytes), 0);
		assert_int_equal(jobq_put(qb, "mb", JOBQ_T_TEXT, "abc", 3, 5),
				 0);
		assert_int_equal(jobq_put(qa, "mb", JOBQ_T_TEXT, "de", 2, 0),
				 -EAGAIN);
		assert_int_equal(jobq_put_many(qa, "mb", two, 3, 5), 1);
		assert_int_equal(jobq_put_many(qb, "mb", two, 3, 0), -EAGAIN);
		assert_int_equal(rows("mb"), 2);
	}

	/* A put blocked on A waits; a get on B lets it in. */
	pids[0] = jqt_fork(put_waiting, 0, NULL);
	assert_true(pids[0] > 0);
	jqt_sleep(0.5);
	assert_int_equal(jqt_wait_pid(pids[0], 0, &st), -ETIMEDOUT);
	assert_int_equal(rows("b"), BOUND);
	t0 = jqt_now();
	assert_int_equal(jobq_get(qb, "b", &o, 5), 0);
	jobq_obj_free(&o);
	assert_int_equal(jqt_wait_all(pids, 1, 10, NULL), 0);
	fprintf(stderr, "a get on B let a put blocked on A in after %.1f ms\n",
		(jqt_now() - t0) * 1000);
	assert_int_equal(rows("b"), BOUND);

	/* Two hosts racing to fill it while a consumer on both takes. */
	assert_int_equal(jqt_fork_n(2, put_racer, NULL, pids), 0);
	while (got < 2 * RACERS_EACH + BOUND) {
		long r = rows("b");

		if (r > most)
			most = r;
		assert_int_equal(jobq_get(got % 2 ? qa : qb, "b", &o, 10), 0);
		jobq_obj_free(&o);
		got++;
	}
	assert_int_equal(jqt_wait_all(pids, 2, 30, NULL), 0);
	fprintf(stderr, "at most %ld rows of a queue bounded at %d\n", most,
		BOUND);
	assert_true(most <= BOUND);
	assert_int_equal(rows("b"), 0);

	/* Full again; `jobq queue set --max-depth` on B lets A's put in. */
	for (int i = 0; i < BOUND; i++)
		assert_int_equal(jobq_put(qb, "b", JOBQ_T_TEXT, "f", 1, 5), 0);
	pids[0] = jqt_fork(put_waiting, 0, NULL);
	assert_true(pids[0] > 0);
	jqt_sleep(0.3);
	assert_int_equal(jqt_wait_pid(pids[0], 0, &st), -ETIMEDOUT);
	HCLI(&b, &out, "queue", "set", "b", "--max-depth", "4");
	assert_int_equal(out.code, 0);
	jqt_out_free(&out);
	assert_int_equal(jqt_wait_all(pids, 1, 10, NULL), 0);
	assert_int_equal(rows("b"), BOUND + 1);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

static struct jqt_pg_host *join_host;

static int joiner(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&join_host->m);
	int ret = jobq_join(q, "j", 20);

	jobq_close(q);
	return ret ? 1 : 0;
}

static bool unfinished_is(jobq_t *q, uint64_t n)
{
	struct jobq_queue_info qi = {0};

	return !jobq_queue_info(q, "j", &qi) && qi.unfinished == n;
}

static bool unfinished_2(void *arg)
{
	return unfinished_is(arg, 2);
}

/* A join on A returns when task_done on B finished every object put on
 * either host. */
static void join_across_hosts(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	jobq_obj_t o = {0};
	jobq_t *qa, *qb;
	pid_t pid;
	int st;

	host_start(&a);
	host_start(&b);
	join_host = &a;
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	/* Nothing put: done already. */
	assert_int_equal(jobq_join(qa, "j", 0), 0);
	assert_int_equal(jobq_put(qa, "j", JOBQ_T_TEXT, "1", 1, 5), 0);
	assert_int_equal(jobq_put(qb, "j", JOBQ_T_TEXT, "2", 1, 5), 0);
	assert_int_equal(jobq_join(qa, "j", 0), -EAGAIN);
	assert_int_equal(jobq_join(qb, "j", 0.2), -ETIMEDOUT);
	assert_true(until(unfinished_2, qa));
	assert_true(until(unfinished_2, qb));

	pid = jqt_fork(joiner, 0, NULL);
	assert_true(pid > 0);
	assert_int_equal(jobq_get(qb, "j", &o, 5), 0);
	jobq_obj_free(&o);
	assert_int_equal(jobq_get(qb, "j", &o, 5), 0);
	jobq_obj_free(&o);
	assert_int_equal(jobq_task_done(qb, "j"), 0);
	jqt_sleep(0.5);
	assert_int_equal(jqt_wait_pid(pid, 0, &st), -ETIMEDOUT);
	assert_int_equal(jobq_task_done(qb, "j"), 0);
	assert_int_equal(jqt_wait_all(&pid, 1, 10, NULL), 0);
	/* More task_done than puts, from any host. */
	assert_int_equal(jobq_task_done(qa, "j"), -EINVAL);
	assert_int_equal(jobq_task_done(qb, "j"), -EINVAL);
	assert_int_equal(jobq_join(qb, "j", 0), 0);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

static struct jqt_pg_host *rm_hosts[2];

/* Blocked on queue "gone" through host @idx: A's a put (the queue is
 * full), B's a join; both must end -EIDRM. */
static int rm_waiter(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(&rm_hosts[idx]->m);
	int ret = idx ? jobq_join(q, "gone", 20)
		      : jobq_put(q, "gone", JOBQ_T_TEXT, "x", 1, 20);

	jobq_close(q);
	return ret == -EIDRM ? 0 : 1;
}

static bool no_record(void *arg)
{
	struct jobq_queue_info qi;

	return jobq_queue_info(arg, "gone", &qi) == -ENOENT;
}

/* `jobq queue rm` on A deletes the queue's rows in PostgreSQL; its
 * putter on A and its joiner on B fail with -EIDRM, and B forgets it. */
static void rm_across_hosts(void **state)
{
	struct jqt_pg_host a = {0}, b = {0};
	struct jobq_queue_opts opts = {.max_depth = 2};
	struct jqt_out o;
	jobq_obj_t obj = {0};
	jobq_t *qa, *qb;
	pid_t pids[2];

	host_start(&a);
	host_start(&b);
	rm_hosts[0] = &a;
	rm_hosts[1] = &b;
	qa = jqt_open_or_die(&a.m);
	qb = jqt_open_or_die(&b.m);
	assert_int_equal(jobq_queue_open(qa, "gone", &opts), 0);
	assert_int_equal(jobq_put(qa, "gone", JOBQ_T_TEXT, "1", 1, 5), 0);
	assert_int_equal(jobq_put(qb, "gone", JOBQ_T_TEXT, "2", 1, 5), 0);
	/* Another queue, which the removal leaves alone. */
	assert_int_equal(jobq_put(qa, "other", JOBQ_T_TEXT, "o", 1, 5), 0);
	assert_int_equal(jqt_fork_n(2, rm_waiter, NULL, pids), 0);
	jqt_sleep(0.5);
	HCLI(&a, &o, "queue", "rm", "gone");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.err, "2 objects"));
	jqt_out_free(&o);
	assert_int_equal(jqt_wait_all(pids, 2, 10, NULL), 0);
	assert_int_equal(rows("gone"), 0);
	assert_int_equal(
	    peek_num("SELECT count(*) FROM jobq_queue_taken WHERE queue = "
		     "'gone'"),
	    0);
	assert_int_equal(
	    peek_num(
		"SELECT count(*) FROM jobq_object_queues WHERE queue = 'gone'"),
	    0);
	assert_true(until(no_record, qb));
	assert_true(until(no_record, qa));
	/* Other queues are untouched; naming it again makes a new one. */
	assert_int_equal(rows("other"), 1);
	assert_int_equal(jobq_put(qb, "gone", JOBQ_T_TEXT, "n", 1, 5), 0);
	assert_int_equal(jobq_get(qa, "gone", &obj, 5), 0);
	assert_int_equal(obj.len, 1);
	assert_memory_equal(obj.data, "n", 1);
	jobq_obj_free(&obj);
	HCLI(&b, &o, "queue", "rm", "gone");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	jobq_close(qa);
	jobq_close(qb);
	jqt_pg_host_stop(&a);
	jqt_pg_host_stop(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(put_here_get_there, setup),
	    cmocka_unit_test_setup(blocked_get_woken, setup),
	    cmocka_unit_test_setup(exactly_once, setup),
	    cmocka_unit_test_setup(killed_consumer, setup),
	    cmocka_unit_test_setup(restart_under_consumers, setup),
	    cmocka_unit_test_setup(cli_put_get, setup),
	    cmocka_unit_test_setup(depth_seen_elsewhere, setup),
	    cmocka_unit_test_setup(bounded_across_hosts, setup),
	    cmocka_unit_test_setup(join_across_hosts, setup),
	    cmocka_unit_test_setup(rm_across_hosts, setup),
	};

	jqt_init();
	jqt_init_cli();
	return jqt_pg_run_tests(&server, tests);
}
