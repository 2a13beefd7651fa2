/* SPDX-License-Identifier: MIT */
/*
 * test_client_killed.c - clients that die at the worst moment (SIGKILL, so
 * nothing of theirs runs) must not wedge or lose anything:
 *
 *  - killed while holding a lock: a waiter in another process gets it
 *    within a bounded time;
 *  - killed while blocked in get: a later put reaches another getter;
 *  - killed after objects were handed to it (their completions sit in its
 *    ring) but before it read them: they go back to the head of the queue,
 *    in order. This one speaks the ring protocol directly (harness raw
 *    connection), so the client really dies between the manager's hand-over
 *    and its own cq head update.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static unsigned lock_waiters(jobq_t *q, const char *name)
{
	struct jobq_lock_info *list = NULL;
	size_t n = 0;
	unsigned w = 0;

	if (jobq_locks(q, &list, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i].name, name))
			w = list[i].waiters;
	free(list);
	return w;
}

struct kill_shared {
	struct jqt_barrier b;
	_Atomic int ready;
	double acquired_at;
	int rc;
};

static int lock_holder(int idx, void *arg)
{
	struct kill_shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);

	CK_RC(jobq_lock_acquire(q, "kl", 5), 0);
	CK_RC(jqt_barrier_wait(&s->b, 10), 0);
	for (;;)
		pause(); /* until SIGKILL */
	return 0;
}

static int lock_waiter(int idx, void *arg)
{
	struct kill_shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);

	s->rc = jobq_lock_acquire(q, "kl", 20);
	s->acquired_at = jqt_now();
	CK_RC(s->rc, 0);
	CK_RC(jobq_lock_release(q, "kl"), 0);
	jobq_close(q);
	return 0;
}

static void test_lock_holder_killed(void **state)
{
	jobq_t *q = open_q(state);
	struct kill_shared *s = jqt_shared(sizeof(*s));
	struct jobq_stats st;
	pid_t holder, waiter;
	double end, t_kill;

	jqt_barrier_init(&s->b, 2);
	s->rc = 1;
	holder = jqt_fork(lock_holder, 0, s);
	assert_true(holder > 0);
	assert_rc(jqt_barrier_wait(&s->b, 10), 0);
	waiter = jqt_fork(lock_waiter, 0, s);
	assert_true(waiter > 0);
	end = jqt_now() + 10;
	while (lock_waiters(q, "kl") < 1 && jqt_now() < end)
		jqt_sleep(0.01);
	assert_int_equal(lock_waiters(q, "kl"), 1);

	t_kill = jqt_now();
	jqt_kill_child(holder);
	assert_int_equal(jqt_wait_all(&waiter, 1, 15, NULL), 0);
	assert_rc(s->rc, 0);
	print_message("lock passed on %.3f s after the holder was killed\n",
		      s->acquired_at - t_kill);
	assert_true(s->acquired_at - t_kill < 5);

	/* And it is free again now. */
	assert_rc(jobq_lock_acquire(q, "kl", 5), 0);
	assert_rc(jobq_lock_release(q, "kl"), 0);
	assert_rc(jobq_stats(q, &st), 0);
	assert_true(st.clients_died >= 1);
	jobq_close(q);
}

static int getter_forever(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_obj_t o = {0};

	jobq_get(q, "kq", &o, -1);
	/* Never here: it is killed while blocked. */
	return 3;
}

static int getter_bounded(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_obj_t o = {0};

	CK_RC(jobq_get(q, "kq", &o, 20), 0);
	CK(o.len == 7 && !memcmp(o.data, "payload", 7));
	jobq_obj_free(&o);
	jobq_close(q);
	return 0;
}

static uint32_t getters(jobq_t *q, const char *name)
{
	struct jobq_queue_info info;

	if (jobq_queue_info(q, name, &info) < 0)
		return 0;
	return info.getters;
}

static void test_getter_killed(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_queue_info info;
	jobq_obj_t o = {0};
	pid_t dead, alive;
	double end;

	assert_rc(jobq_queue_open(q, "kq", NULL), 0);
	dead = jqt_fork(getter_forever, 0, NULL);
	assert_true(dead > 0);
	end = jqt_now() + 10;
	while (getters(q, "kq") < 1 && jqt_now() < end)
		jqt_sleep(0.01);
	assert_int_equal(getters(q, "kq"), 1);
	alive = jqt_fork(getter_bounded, 0, NULL);
	assert_true(alive > 0);
	while (getters(q, "kq") < 2 && jqt_now() < end)
		jqt_sleep(0.01);
	assert_int_equal(getters(q, "kq"), 2);

	/* Put at once after the kill: the manager may not have noticed the
	 * death yet and hand the object to the dead getter, and must then
	 * take it back. */
	jqt_kill_child(dead);
	assert_rc(jobq_put(q, "kq", JOBQ_T_BYTES, "payload", 7, 5), 0);
	assert_int_equal(jqt_wait_all(&alive, 1, 20, NULL), 0);

	end = jqt_now() + 5;
	while (getters(q, "kq") > 0 && jqt_now() < end)
		jqt_sleep(0.01);
	assert_rc(jobq_queue_info(q, "kq", &info), 0);
	assert_int_equal(info.getters, 0);
	assert_int_equal(info.depth, 0);

	/* The queue still works for everyone. */
	assert_rc(jobq_put(q, "kq", JOBQ_T_BYTES, "after", 5, 5), 0);
	assert_rc(jobq_get(q, "kq", &o, 5), 0);
	assert_int_equal(o.len, 5);
	jobq_obj_free(&o);
	jobq_close(q);
}

struct raw_shared {
	_Atomic int stage; /* 1: objects handed over and checked */
	char why[160];
};

/*
 * Take three objects through the raw ring, check them in the store, and
 * then wait to be killed without consuming the completions.
 */
static int raw_taker(int idx, void *arg)
{
	struct raw_shared *s = arg;
	struct jqt_raw r;
	int64_t id;

	CK_RC(jqt_raw_open(jqt_cur->dir, &r), 0);
	id = jqt_raw_q_open(&r, "rq");
	CK(id >= 0);
	for (int i = 0; i < 3; i++) {
		struct jobq_sqe sqe = {
		    .op = JOBQ_OP_Q_GET,
		    .id = (uint32_t)id,
		    .user_data = 100 + (uint64_t)i,
		    .timeout_ns = 0,
		    .arg0 = 1,
		};

		CK_RC(jqt_raw_submit(&r, &sqe), 0);
	}
	for (uint32_t i = 0; i < 3; i++) {
		struct jobq_cqe cqe;
		char want[8];

		CK_RC(jqt_raw_peek(&r, i, &cqe, 10), 0);
		snprintf(want, sizeof(want), "o%u", i);
		CK(cqe.user_data == 100 + i);
		CK_RC(cqe.res, 0);
		CK(cqe.flags & JOBQ_CQE_OBJECT);
		CK(cqe.len == 2);
		CK(cqe.val >= 64 && cqe.val + cqe.len <= r.store_size);
		CK(!memcmp(r.store + cqe.val, want, 2));
	}
	atomic_store(&s->stage, 1);
	for (;;)
		pause();
	return 0;
}

static void test_undelivered_objects(void **state)
{
	jobq_t *q = open_q(state);
	struct raw_shared *s = jqt_shared(sizeof(*s));
	struct jobq_queue_info info;
	struct jobq_stats st;
	char buf[8];
	pid_t pid;
	double end;
	int st_child = 0;

	for (int i = 0; i < 5; i++) {
		int n = snprintf(buf, sizeof(buf), "o%d", i);

		assert_rc(jobq_put(q, "rq", JOBQ_T_BYTES, buf, (size_t)n, 0),
			  0);
	}
	pid = jqt_fork(raw_taker, 0, s);
	assert_true(pid > 0);
	end = jqt_now() + 15;
	while (atomic_load(&s->stage) != 1 && jqt_now() < end) {
		if (jqt_wait_pid(pid, 0, &st_child) == 0)
			break; /* it failed a check and said why */
		jqt_sleep(0.01);
	}
	assert_int_equal(atomic_load(&s->stage), 1);
	assert_rc(jobq_queue_info(q, "rq", &info), 0);
	assert_int_equal(info.depth, 2);

	jqt_kill_child(pid);
	end = jqt_now() + 10;
	do {
		jqt_sleep(0.01);
		assert_rc(jobq_queue_info(q, "rq", &info), 0);
	} while (info.depth != 5 && jqt_now() < end);
	assert_int_equal(info.depth, 5);

	/* The three come back first, in their order, then the rest. */
	for (int i = 0; i < 5; i++) {
		jobq_obj_t o = {0};
		int n = snprintf(buf, sizeof(buf), "o%d", i);

		assert_rc(jobq_get(q, "rq", &o, 0), 0);
		assert_int_equal(o.len, (size_t)n);
		assert_memory_equal(o.data, buf, (size_t)n);
		jobq_obj_free(&o);
	}
	assert_rc(jobq_stats(q, &st), 0);
	assert_true(st.requeued >= 3);
	assert_true(st.clients_died >= 1);
	jobq_close(q);
}

/*
 * A client that dies with many library gets in flight (through the public
 * API) loses nothing either: whatever its callbacks did not receive is
 * back on the queue.
 */
struct many_shared {
	_Atomic int got;
};

static void count_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct many_shared *s = arg;

	if (res == 0)
		atomic_fetch_add(&s->got, 1);
}

static int async_getter(int idx, void *arg)
{
	struct many_shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);

	for (int i = 0; i < 50; i++)
		CK_RC(jobq_get_async(q, "mq", -1, count_cb, s), 0);
	/* Never run the callbacks: the completions (and the objects they
	 * hand over) sit unread in the ring when the kill comes. */
	for (;;)
		pause();
	return 0;
}

static void test_async_getter_killed(void **state)
{
	jobq_t *q = open_q(state);
	struct many_shared *s = jqt_shared(sizeof(*s));
	struct jobq_queue_info info;
	pid_t pid;
	double end;

	for (int i = 0; i < 20; i++)
		assert_rc(jobq_put(q, "mq", JOBQ_T_BYTES, &i, sizeof(i), 0), 0);
	pid = jqt_fork(async_getter, 0, s);
	assert_true(pid > 0);
	end = jqt_now() + 10;
	do {
		jqt_sleep(0.02);
		assert_rc(jobq_queue_info(q, "mq", &info), 0);
	} while (info.depth > 0 && jqt_now() < end);
	assert_int_equal(info.depth, 0); /* all 20 handed over */
	jqt_kill_child(pid);
	/* Objects whose callback ran were received; all others must come
	 * back. */
	end = jqt_now() + 10;
	do {
		jqt_sleep(0.02);
		assert_rc(jobq_queue_info(q, "mq", &info), 0);
	} while (info.depth + (uint64_t)atomic_load(&s->got) != 20 &&
		 jqt_now() < end);
	print_message("%d received before the kill, %llu back on the queue\n",
		      atomic_load(&s->got), (unsigned long long)info.depth);
	assert_int_equal(info.depth + (uint64_t)atomic_load(&s->got), 20);
	assert_int_equal(info.getters, 0);
	jobq_close(q);
}

/* A client that closes its handle and exits, and one that dies. */
static int closes_cleanly(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	if (jobq_put(q, "bye", JOBQ_T_BYTES, "x", 1, -1))
		return 1;
	jobq_close(q);
	return 0;
}

static int just_exits(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	if (jobq_put(q, "bye", JOBQ_T_BYTES, "x", 1, -1))
		return 1;
	_exit(0); /* no jobq_close() */
}

/* jobq_close() is a client that left; only one that went without it is
 * counted as died. */
static void test_clean_close_is_not_death(void **state)
{
	struct jqt_mgr *m = *state;
	struct jobq_stats st;
	uint64_t died0, total0;
	jobq_t *q;
	pid_t pids[4];
	int status[4];

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_stats(q, &st), 0);
	died0 = st.clients_died;
	total0 = st.clients_total;
	for (int i = 0; i < 4; i++) {
		pids[i] = jqt_fork(closes_cleanly, i, NULL);
		assert_true(pids[i] > 0);
	}
	assert_rc(jqt_wait_all(pids, 4, 30, status), 0);
	for (double end = jqt_now() + 10;; jqt_sleep(0.02)) {
		assert_rc(jobq_stats(q, &st), 0);
		if (st.clients == 1 && st.clients_total >= total0 + 4)
			break;
		if (jqt_now() >= end)
			print_error("clients %u, total %llu (from %llu), died "
				    "%llu\n",
				    st.clients,
				    (unsigned long long)st.clients_total,
				    (unsigned long long)total0,
				    (unsigned long long)st.clients_died);
		assert_true(jqt_now() < end);
	}
	assert_int_equal(st.clients_died, died0);

	pids[0] = jqt_fork(just_exits, 0, NULL);
	assert_true(pids[0] > 0);
	assert_rc(jqt_wait_all(pids, 1, 30, status), 0);
	for (double end = jqt_now() + 10;; jqt_sleep(0.02)) {
		assert_rc(jobq_stats(q, &st), 0);
		if (st.clients_died == died0 + 1)
			break;
		assert_true(jqt_now() < end);
	}
	jobq_close(q);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_lock_holder_killed),	      T(test_getter_killed),
	    T(test_undelivered_objects),      T(test_async_getter_killed),
	    T(test_clean_close_is_not_death),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
