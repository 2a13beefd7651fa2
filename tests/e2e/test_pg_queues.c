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
 * killed.
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
	char sql[128], *v;
	long n;

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM jobq_queue_items WHERE queue = '%s'",
		 name);
	v = jqt_pg_exec(conninfo, sql);
	assert_non_null(v);
	n = strtol(v, NULL, 10);
	free(v);
	return n;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(put_here_get_there, setup),
	    cmocka_unit_test_setup(blocked_get_woken, setup),
	    cmocka_unit_test_setup(exactly_once, setup),
	    cmocka_unit_test_setup(killed_consumer, setup),
	    cmocka_unit_test_setup(restart_under_consumers, setup),
	    cmocka_unit_test_setup(cli_put_get, setup),
	};

	jqt_init();
	jqt_init_cli();
	return jqt_pg_run_tests(&server, tests);
}
