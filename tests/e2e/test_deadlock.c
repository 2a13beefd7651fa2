/* SPDX-License-Identifier: MIT */
/*
 * test_deadlock.c - two processes take two locks in opposite order with a
 * barrier in between: the manager sees the cycle, exactly one of them gets
 * -EDEADLK, and the other succeeds once the first lets go; neither hangs.
 * Then jobq_lock_many() in opposite orders from several processes, many
 * rounds: the global order means no deadlock and no -EDEADLK ever.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

struct cycle_shared {
	struct jqt_barrier b;
	int stagger; /* round number: who goes second varies */
	int rc[3];   /* each side's second acquire */
};

static int cycle_side(int idx, void *arg)
{
	struct cycle_shared *s = arg;
	const char *first = idx ? "dl-B" : "dl-A";
	const char *second = idx ? "dl-A" : "dl-B";
	jobq_t *q = jqt_open_or_die(jqt_cur);
	int rc;

	CK_RC(jobq_lock_acquire(q, first, 5), 0);
	CK_RC(jqt_barrier_wait(&s->b, 10), 0);
	/* Some rounds let one side block first, some race both. */
	if (s->stagger % 3 == 1 && idx == 1)
		jqt_sleep(0.1);
	if (s->stagger % 3 == 2 && idx == 0)
		jqt_sleep(0.1);
	rc = jobq_lock_acquire(q, second, 15);
	s->rc[idx] = rc;
	if (rc == 0)
		CK_RC(jobq_lock_release(q, second), 0);
	else
		CK_RC(rc, -EDEADLK);
	CK_RC(jobq_lock_release(q, first), 0);
	jobq_close(q);
	return 0;
}

static void test_opposite_order(void **state)
{
	struct jqt_mgr *m = *state;
	struct cycle_shared *s = jqt_shared(sizeof(*s));
	struct jobq_stats st;
	jobq_t *q;

	for (int round = 0; round < 12; round++) {
		pid_t pids[2];
		double t0 = jqt_now();
		int n_dead;

		jqt_barrier_init(&s->b, 2);
		s->stagger = round;
		s->rc[0] = s->rc[1] = 1;
		assert_int_equal(jqt_fork_n(2, cycle_side, s, pids), 0);
		assert_int_equal(jqt_wait_all(pids, 2, 30, NULL), 0);
		n_dead = (s->rc[0] == -EDEADLK) + (s->rc[1] == -EDEADLK);
		if (n_dead != 1 || s->rc[0] + s->rc[1] != -EDEADLK)
			print_error("round %d: results %d (%s) and %d (%s)\n",
				    round, s->rc[0], jobq_strerror(s->rc[0]),
				    s->rc[1], jobq_strerror(s->rc[1]));
		assert_int_equal(n_dead, 1);
		assert_int_equal(s->rc[0] + s->rc[1], -EDEADLK);
		/* Detected, not timed out. */
		assert_true(jqt_now() - t0 < 10);
	}
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_stats(q, &st), 0);
	assert_true(st.deadlocks >= 12);
	jobq_close(q);
}

/* A three-process cycle: A->B, B->C, C->A. */
static int ring_side(int idx, void *arg)
{
	static const char *const names[] = {"r-A", "r-B", "r-C"};
	struct cycle_shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	int rc;

	CK_RC(jobq_lock_acquire(q, names[idx], 5), 0);
	CK_RC(jqt_barrier_wait(&s->b, 10), 0);
	jqt_sleep(0.1 * idx); /* the last one closes the cycle */
	rc = jobq_lock_acquire(q, names[(idx + 1) % 3], 15);
	s->rc[idx] = rc;
	if (rc == 0)
		CK_RC(jobq_lock_release(q, names[(idx + 1) % 3]), 0);
	else
		CK_RC(rc, -EDEADLK);
	CK_RC(jobq_lock_release(q, names[idx]), 0);
	jobq_close(q);
	return 0;
}

static void test_three_cycle(void **state)
{
	struct cycle_shared *s = jqt_shared(sizeof(*s));
	pid_t pids[3];

	jqt_barrier_init(&s->b, 3);
	s->rc[0] = s->rc[1] = s->rc[2] = 1;
	assert_int_equal(jqt_fork_n(3, ring_side, s, pids), 0);
	assert_int_equal(jqt_wait_all(pids, 3, 30, NULL), 0);
	/* Each side checked 0 or -EDEADLK; exactly one, the one that closed
	 * the cycle (normally the last, unless the machine reordered us), is
	 * refused. */
	assert_int_equal((s->rc[0] == -EDEADLK) + (s->rc[1] == -EDEADLK) +
			     (s->rc[2] == -EDEADLK),
			 1);
	assert_int_equal(s->rc[0] + s->rc[1] + s->rc[2], -EDEADLK);
}

struct many_shared {
	_Atomic int inside;
	_Atomic int overlap;
	_Atomic int rounds;
	int bad_rc;
};

static int many_side(int idx, void *arg)
{
	static const char *const fwd[] = {"ml-A", "ml-B", "ml-C"};
	static const char *const rev[] = {"ml-C", "ml-B", "ml-A"};
	static const char *const mid[] = {"ml-B", "ml-A"};
	struct many_shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	const char *const *names = idx == 0 ? fwd : idx == 1 ? rev : mid;
	size_t n = idx == 2 ? 2 : 3;

	for (int i = 0; i < 150; i++) {
		int rc = jobq_lock_many(q, names, n, 20);

		if (rc) {
			s->bad_rc = rc;
			CK_RC(rc, 0);
		}
		if (atomic_fetch_add(&s->inside, 1) != 0)
			atomic_fetch_add(&s->overlap, 1);
		if (i % 16 == 0)
			usleep(200);
		atomic_fetch_sub(&s->inside, 1);
		CK_RC(jobq_unlock_many(q, names, n), 0);
		atomic_fetch_add(&s->rounds, 1);
	}
	jobq_close(q);
	return 0;
}

static void test_lock_many_orders(void **state)
{
	struct many_shared *s = jqt_shared(sizeof(*s));
	pid_t pids[3];

	assert_int_equal(jqt_fork_n(3, many_side, s, pids), 0);
	assert_int_equal(jqt_wait_all(pids, 3, 60, NULL), 0);
	assert_rc(s->bad_rc, 0);
	assert_int_equal(atomic_load(&s->overlap), 0);
	assert_int_equal(atomic_load(&s->rounds), 450);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_opposite_order),
	    T(test_three_cycle),
	    T(test_lock_many_orders),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
