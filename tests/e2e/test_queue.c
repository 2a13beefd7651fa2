/* SPDX-License-Identifier: MIT */
/*
 * test_queue.c - queue semantics against a real manager: FIFO order, the
 * empty object and JOBQ_T_NONE, blocking and timed gets, bounded queues,
 * JoinableQueue, batches, and the asynchronous calls driven by poll().
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

static jobq_t *open_q(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;

	assert_rc(jobq_open(&q, m->dir), 0);
	return q;
}

static void expect_obj(jobq_t *q, const char *queue, uint32_t type,
		       const void *data, size_t len, double timeout)
{
	jobq_obj_t o = {0};

	assert_rc(jobq_get(q, queue, &o, timeout), 0);
	assert_int_equal(o.type, type);
	assert_int_equal(o.len, len);
	assert_non_null(o.data);
	if (len)
		assert_memory_equal(o.data, data, len);
	/* The library promises a NUL one byte past the payload. */
	assert_int_equal(((char *)o.data)[len], 0);
	jobq_obj_free(&o);
	assert_null(o.data);
}

static void test_fifo(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_queue_info info;
	jobq_obj_t o;
	char buf[64];

	for (int i = 0; i < 1000; i++) {
		int n = snprintf(buf, sizeof(buf), "object %d", i);

		assert_rc(jobq_put(q, "fifo", JOBQ_T_TEXT, buf, (size_t)n, -1),
			  0);
	}
	assert_rc(jobq_queue_info(q, "fifo", &info), 0);
	assert_string_equal(info.name, "fifo");
	assert_int_equal(info.depth, 1000);
	assert_int_equal(info.total_put, 1000);
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(buf, sizeof(buf), "object %d", i);

		expect_obj(q, "fifo", JOBQ_T_TEXT, buf, (size_t)n, 0);
	}
	assert_rc(jobq_get(q, "fifo", &o, 0), -EAGAIN);
	assert_rc(jobq_queue_info(q, "fifo", &info), 0);
	assert_int_equal(info.depth, 0);
	assert_int_equal(info.bytes, 0);
	assert_int_equal(info.total_get, 1000);
	assert_rc(jobq_queue_info(q, "no-such-queue", &info), -ENOENT);
	jobq_close(q);
}

static void test_empty_and_none(void **state)
{
	jobq_t *q = open_q(state);
	json_t *j, *back = NULL;

	assert_rc(jobq_put(q, "e", JOBQ_T_BYTES, "", 0, 0), 0);
	assert_rc(jobq_put(q, "e", JOBQ_T_NONE, NULL, 0, 0), 0);
	assert_rc(jobq_put(q, "e", JOBQ_T_USER + 7, "x", 1, 0), 0);
	j = json_pack("{s:i, s:[s, n]}", "n", 42, "l", "two");
	assert_rc(jobq_put_json(q, "e", j, 0), 0);

	expect_obj(q, "e", JOBQ_T_BYTES, "", 0, 0);
	expect_obj(q, "e", JOBQ_T_NONE, NULL, 0, 0);
	expect_obj(q, "e", JOBQ_T_USER + 7, "x", 1, 0);
	assert_rc(jobq_get_json(q, "e", &back, 0), 0);
	assert_true(json_equal(j, back));
	json_decref(back);
	json_decref(j);

	/* A payload that is not JSON is consumed with -EINVAL. */
	assert_rc(jobq_put(q, "e", JOBQ_T_JSON, "{nope", 5, 0), 0);
	back = NULL;
	assert_rc(jobq_get_json(q, "e", &back, 0), -EINVAL);
	assert_rc(jobq_get_json(q, "e", &back, 0), -EAGAIN);
	jobq_close(q);
}

static int put_later(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	jqt_sleep(0.3);
	CK_RC(jobq_put(q, "wake", JOBQ_T_BYTES, "wake up", 7, 5), 0);
	jobq_close(q);
	return 0;
}

static void test_blocking_get(void **state)
{
	jobq_t *q = open_q(state);
	jobq_obj_t o = {0};
	double t0;
	pid_t pid;
	int st;

	pid = jqt_fork(put_later, 0, NULL);
	assert_true(pid > 0);
	t0 = jqt_now();
	assert_rc(jobq_get(q, "wake", &o, 10), 0);
	assert_true(jqt_now() - t0 >= 0.2);
	assert_true(jqt_now() - t0 < 5);
	assert_int_equal(o.len, 7);
	assert_memory_equal(o.data, "wake up", 7);
	jobq_obj_free(&o);
	assert_int_equal(jqt_wait_all(&pid, 1, 10, &st), 0);
	jobq_close(q);
}

static void test_timeouts(void **state)
{
	jobq_t *q = open_q(state);
	jobq_obj_t o = {0};
	double t0;

	t0 = jqt_now();
	assert_rc(jobq_get(q, "nothing", &o, 0), -EAGAIN);
	assert_true(jqt_now() - t0 < 2);
	t0 = jqt_now();
	assert_rc(jobq_get(q, "nothing", &o, 0.3), -ETIMEDOUT);
	assert_true(jqt_now() - t0 >= 0.25);
	assert_true(jqt_now() - t0 < 3);
	assert_null(o.data);
	/* A timed-out getter must not swallow the next object. */
	assert_rc(jobq_put(q, "nothing", JOBQ_T_BYTES, "late", 4, 0), 0);
	expect_obj(q, "nothing", JOBQ_T_BYTES, "late", 4, 0);
	jobq_close(q);
}

static int put_blocked(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	CK_RC(jobq_put(q, "bq", JOBQ_T_BYTES, "c", 1, 10), 0);
	jobq_close(q);
	return 0;
}

static void test_bounded(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_queue_opts opts = {.max_depth = 2};
	struct jobq_queue_info info;
	double t0, end;
	pid_t pid;

	assert_rc(jobq_queue_open(q, "bq", &opts), 0);
	assert_rc(jobq_queue_info(q, "bq", &info), 0);
	assert_int_equal(info.max_depth, 2);
	assert_rc(jobq_put(q, "bq", JOBQ_T_BYTES, "a", 1, 0), 0);
	assert_rc(jobq_put(q, "bq", JOBQ_T_BYTES, "b", 1, 0), 0);
	assert_rc(jobq_put(q, "bq", JOBQ_T_BYTES, "x", 1, 0), -EAGAIN);
	t0 = jqt_now();
	assert_rc(jobq_put(q, "bq", JOBQ_T_BYTES, "x", 1, 0.3), -ETIMEDOUT);
	assert_true(jqt_now() - t0 >= 0.25);

	/* A third put blocks in another process until a get makes room. */
	pid = jqt_fork(put_blocked, 0, NULL);
	assert_true(pid > 0);
	end = jqt_now() + 5;
	do {
		jqt_sleep(0.02);
		assert_rc(jobq_queue_info(q, "bq", &info), 0);
	} while (info.putters != 1 && jqt_now() < end);
	assert_int_equal(info.putters, 1);
	assert_int_equal(info.depth, 2);
	expect_obj(q, "bq", JOBQ_T_BYTES, "a", 1, 0);
	assert_int_equal(jqt_wait_all(&pid, 1, 10, NULL), 0);
	expect_obj(q, "bq", JOBQ_T_BYTES, "b", 1, 0);
	expect_obj(q, "bq", JOBQ_T_BYTES, "c", 1, 0);
	assert_rc(jobq_queue_info(q, "bq", &info), 0);
	assert_int_equal(info.depth, 0);
	assert_int_equal(info.putters, 0);

	/* Invalid names are refused. */
	assert_rc(jobq_queue_open(q, "", NULL), -EINVAL);
	{
		char longname[80];

		memset(longname, 'n', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = 0;
		assert_rc(jobq_queue_open(q, longname, NULL), -EINVAL);
	}
	jobq_close(q);
}

static int consume_and_finish(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	for (int i = 0; i < 3; i++) {
		jobq_obj_t o = {0};

		CK_RC(jobq_get(q, "jq", &o, 5), 0);
		jobq_obj_free(&o);
		jqt_sleep(0.05);
		CK_RC(jobq_task_done(q, "jq"), 0);
	}
	jobq_close(q);
	return 0;
}

static void test_joinable(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_queue_info info;
	jobq_obj_t o = {0};
	pid_t pid;

	assert_rc(jobq_join(q, "jq", 0.1), 0); /* nothing unfinished */
	for (int i = 0; i < 3; i++)
		assert_rc(jobq_put(q, "jq", JOBQ_T_BYTES, "w", 1, 0), 0);
	assert_rc(jobq_queue_info(q, "jq", &info), 0);
	assert_int_equal(info.unfinished, 3);
	assert_rc(jobq_join(q, "jq", 0.2), -ETIMEDOUT);

	/* A get alone does not finish the work. */
	assert_rc(jobq_put(q, "jq2", JOBQ_T_BYTES, "w", 1, 0), 0);
	assert_rc(jobq_get(q, "jq2", &o, 0), 0);
	jobq_obj_free(&o);
	assert_rc(jobq_join(q, "jq2", 0.2), -ETIMEDOUT);
	assert_rc(jobq_task_done(q, "jq2"), 0);
	assert_rc(jobq_join(q, "jq2", 1), 0);
	assert_rc(jobq_task_done(q, "jq2"), -EINVAL);

	pid = jqt_fork(consume_and_finish, 0, NULL);
	assert_true(pid > 0);
	assert_rc(jobq_join(q, "jq", 10), 0);
	assert_int_equal(jqt_wait_all(&pid, 1, 10, NULL), 0);
	assert_rc(jobq_queue_info(q, "jq", &info), 0);
	assert_int_equal(info.unfinished, 0);
	assert_rc(jobq_task_done(q, "jq"), -EINVAL);
	jobq_close(q);
}

static void test_many(void **state)
{
	jobq_t *q = open_q(state);
	jobq_obj_t in[10], out[100];
	char bufs[10][40];

	for (int i = 0; i < 10; i++) {
		int n = snprintf(bufs[i], sizeof(bufs[i]), "batch-%d", i);

		in[i] = (jobq_obj_t){.type = JOBQ_T_USER + (uint32_t)i,
				     .len = i == 3 ? 0 : (size_t)n,
				     .data = bufs[i]};
	}
	assert_rc(jobq_put_many(q, "many", in, 10, 0), 10);
	memset(out, 0, sizeof(out));
	assert_rc(jobq_get_many(q, "many", out, 4, 0), 4);
	assert_rc(jobq_get_many(q, "many", out + 4, 96, 0), 6);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(out[i].type, in[i].type);
		assert_int_equal(out[i].len, in[i].len);
		if (in[i].len)
			assert_memory_equal(out[i].data, in[i].data, in[i].len);
		jobq_obj_free(&out[i]);
	}
	assert_rc(jobq_get_many(q, "many", out, 100, 0), -EAGAIN);
	assert_rc(jobq_get_many(q, "many", out, 100, 0.2), -ETIMEDOUT);
	jobq_close(q);
}

/* Takes 300 objects off "narrow", checking they come numbered in order. */
static int consume_numbered(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	for (int want = 0; want < 300;) {
		jobq_obj_t o[16] = {{0}};
		int n = jobq_get_many(q, "narrow", o, 16, 10);

		CK_RC(n < 1 ? n : 0, 0);
		for (int i = 0; i < n; i++, want++) {
			CK(o[i].len == sizeof(int) &&
			   !memcmp(o[i].data, &want, sizeof(int)));
			jobq_obj_free(&o[i]);
		}
	}
	jobq_close(q);
	return 0;
}

/*
 * put_many against limits: with timeout 0 it puts what fits (the first
 * ones) and says how many; blocking, a batch far larger than the queue
 * goes through a depth of 5 in order as a consumer makes room; and a batch
 * larger than one request keeps its order.
 */
static void test_many_limits(void **state)
{
	struct jobq_queue_opts lim = {.max_depth = 5};
	jobq_t *q = open_q(state);
	static int nums[1000];
	static jobq_obj_t in[1000], out[1000];
	pid_t pid;

	for (int i = 0; i < 1000; i++) {
		nums[i] = i;
		in[i] = (jobq_obj_t){
		    .type = JOBQ_T_BYTES, .len = sizeof(int), .data = &nums[i]};
	}
	assert_rc(jobq_queue_open(q, "narrow", &lim), 0);
	assert_rc(jobq_put_many(q, "narrow", in, 8, 0), 5);
	assert_rc(jobq_put_many(q, "narrow", in + 5, 3, 0), -EAGAIN);
	assert_rc(jobq_get_many(q, "narrow", out, 16, 0), 5);
	for (int i = 0; i < 5; i++) {
		assert_memory_equal(out[i].data, &nums[i], sizeof(int));
		jobq_obj_free(&out[i]);
	}

	pid = jqt_fork(consume_numbered, 0, NULL);
	assert_true(pid > 0);
	assert_rc(jobq_put_many(q, "narrow", in, 300, 20), 300);
	assert_int_equal(jqt_wait_all(&pid, 1, 20, NULL), 0);

	assert_rc(jobq_put_many(q, "wide", in, 1000, 0), 1000);
	/* get_many may hand out fewer than asked: take until all are in. */
	for (int got = 0, n; got < 1000; got += n) {
		n = jobq_get_many(q, "wide", out + got, 1000 - (size_t)got, 0);
		assert_true(n > 0);
	}
	for (int i = 0; i < 1000; i++) {
		assert_memory_equal(out[i].data, &nums[i], sizeof(int));
		jobq_obj_free(&out[i]);
	}
	jobq_close(q);
}

static void count_done(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	(void)q;
	(void)obj;
	*(int *)arg += res == 0;
}

/* jobq_wait_idle(q, 0) runs the callbacks of requests already finished
 * instead of giving up without looking. */
static void test_wait_idle_now(void **state)
{
	jobq_t *q = open_q(state);
	int done = 0;

	assert_rc(jobq_put_async(q, "idle", JOBQ_T_BYTES, "x", 1, 0, count_done,
				 &done),
		  0);
	jqt_sleep(0.2);
	assert_rc(jobq_wait_idle(q, 0), 0);
	assert_int_equal(done, 1);
	jobq_close(q);
}

struct async_state {
	int done;
	int put_res[8];
	int get_res[8];
	char got[8][16];
	size_t got_len[8];
};

struct async_arg {
	struct async_state *s;
	int i;
};

static void on_put(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct async_arg *a = arg;

	a->s->put_res[a->i] = res;
	a->s->done++;
}

static void on_get(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct async_arg *a = arg;

	a->s->get_res[a->i] = res;
	if (res == 0 && obj) {
		size_t n = obj->len < 15 ? obj->len : 15;

		memcpy(a->s->got[a->i], obj->data, n);
		a->s->got_len[a->i] = obj->len;
	}
	a->s->done++;
}

static int drive(jobq_t *q, struct async_state *s, int want, double timeout)
{
	int fd = jobq_fd(q);
	double end = jqt_now() + timeout;

	while (s->done < want && jqt_now() < end) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int rc;

		poll(&pf, 1, 100);
		rc = jobq_process(q);
		if (rc < 0)
			return rc;
	}
	return s->done;
}

static int put_one_later(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	jqt_sleep(0.3);
	CK_RC(jobq_put(q, "aq2", JOBQ_T_BYTES, "late", 4, 5), 0);
	jobq_close(q);
	return 0;
}

static void test_async(void **state)
{
	jobq_t *q = open_q(state);
	struct async_state s;
	struct async_arg args[16];
	char buf[16];
	pid_t pid;

	memset(&s, 0, sizeof(s));
	assert_true(jobq_fd(q) >= 0);
	for (int i = 0; i < 5; i++) {
		int n = snprintf(buf, sizeof(buf), "async-%d", i);

		args[i] = (struct async_arg){&s, i};
		s.put_res[i] = 1;
		assert_rc(jobq_put_async(q, "aq", JOBQ_T_BYTES, buf, (size_t)n,
					 5, on_put, &args[i]),
			  0);
	}
	for (int i = 0; i < 5; i++) {
		args[5 + i] = (struct async_arg){&s, i};
		s.get_res[i] = 1;
		assert_rc(jobq_get_async(q, "aq", 5, on_get, &args[5 + i]), 0);
	}
	assert_int_equal(drive(q, &s, 10, 10), 10);
	for (int i = 0; i < 5; i++) {
		int n = snprintf(buf, sizeof(buf), "async-%d", i);

		assert_rc(s.put_res[i], 0);
		assert_rc(s.get_res[i], 0);
		/* Requests are served in the order they were submitted. */
		assert_int_equal(s.got_len[i], (size_t)n);
		assert_memory_equal(s.got[i], buf, (size_t)n);
	}

	/* A get in flight completes when another process puts; until then
	 * no callback runs. */
	memset(&s, 0, sizeof(s));
	args[0] = (struct async_arg){&s, 0};
	assert_rc(jobq_get_async(q, "aq2", 10, on_get, &args[0]), 0);
	pid = jqt_fork(put_one_later, 0, NULL);
	assert_true(pid > 0);
	assert_rc(jobq_process(q), 0);
	assert_int_equal(s.done, 0);
	assert_int_equal(drive(q, &s, 1, 10), 1);
	assert_rc(s.get_res[0], 0);
	assert_int_equal(s.got_len[0], 4);
	assert_memory_equal(s.got[0], "late", 4);
	assert_int_equal(jqt_wait_all(&pid, 1, 10, NULL), 0);

	/* A timed async get reports -ETIMEDOUT through its callback. */
	memset(&s, 0, sizeof(s));
	args[0] = (struct async_arg){&s, 0};
	assert_rc(jobq_get_async(q, "aq3", 0.2, on_get, &args[0]), 0);
	assert_int_equal(drive(q, &s, 1, 10), 1);
	assert_rc(s.get_res[0], -ETIMEDOUT);
	assert_rc(jobq_wait_idle(q, 1), 0);
	jobq_close(q);
}

static void test_listing(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_queue_info *list = NULL;
	size_t n = 0;
	int seen = 0;

	assert_rc(jobq_queue_open(q, "list-a", NULL), 0);
	assert_rc(jobq_put(q, "list-b", JOBQ_T_BYTES, "12345", 5, 0), 0);
	assert_rc(jobq_queues(q, &list, &n), 0);
	assert_true(n >= 2);
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i].name, "list-a")) {
			assert_int_equal(list[i].depth, 0);
			seen |= 1;
		} else if (!strcmp(list[i].name, "list-b")) {
			assert_int_equal(list[i].depth, 1);
			assert_int_equal(list[i].bytes, 5);
			seen |= 2;
		}
	}
	assert_int_equal(seen, 3);
	free(list);
	jobq_close(q);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_fifo),	 T(test_empty_and_none), T(test_blocking_get),
	    T(test_timeouts),	 T(test_bounded),	 T(test_joinable),
	    T(test_many),	 T(test_async),		 T(test_listing),
	    T(test_many_limits), T(test_wait_idle_now),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
