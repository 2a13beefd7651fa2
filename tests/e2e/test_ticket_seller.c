/* SPDX-License-Identifier: MIT */
/*
 * test_ticket_seller.c - the classic: 100 processes try to buy from 50
 * tickets kept in the store (key "tickets") under one named lock: acquire,
 * read the count, if it is above zero write count - 1, release. Exactly 50
 * are sold, the count is never seen below zero, it ends at 0, and no two
 * processes are ever inside the critical section together.
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

enum { BUYERS = 100, TICKETS = 50 };

struct shop {
	struct jqt_barrier start;
	_Atomic int sold;
	_Atomic int refused;
	_Atomic int negative; /* reads of a count below zero */
	_Atomic int garbled;  /* reads that were not a number */
	_Atomic int inside;   /* processes in the critical section */
	_Atomic int overlap;  /* times two were inside at once */
	int rounds;	      /* tries per buyer: 1, or until sold out */
};

/* One try under the lock: 1 sold, 0 sold out, < 0 error. */
static int buy_once(jobq_t *q, struct shop *s)
{
	char buf[32] = {0};
	ssize_t n;
	long count;
	char *end;
	int rc, sold = 0;

	rc = jobq_lock_acquire(q, "ticket-lock", 60);
	if (rc) {
		fprintf(stderr, "buyer %d: acquire: %s\n", (int)getpid(),
			jobq_strerror(rc));
		return -1;
	}
	if (atomic_fetch_add(&s->inside, 1) != 0)
		atomic_fetch_add(&s->overlap, 1);

	n = jobq_kv_get_buf(q, "tickets", buf, sizeof(buf) - 1, NULL);
	if (n < 0 || n >= (ssize_t)sizeof(buf)) {
		atomic_fetch_add(&s->garbled, 1);
		goto out;
	}
	buf[n] = 0;
	count = strtol(buf, &end, 10);
	if (end == buf || *end) {
		atomic_fetch_add(&s->garbled, 1);
		goto out;
	}
	if (count < 0)
		atomic_fetch_add(&s->negative, 1);
	if (count > 0) {
		int len = snprintf(buf, sizeof(buf), "%ld", count - 1);

		/* Widen the window a lost update would need. */
		usleep(200);
		rc = jobq_kv_set(q, "tickets", JOBQ_T_TEXT, buf, (size_t)len);
		if (rc) {
			fprintf(stderr, "buyer %d: kv_set: %s\n", (int)getpid(),
				jobq_strerror(rc));
			atomic_fetch_add(&s->garbled, 1);
		} else {
			sold = 1;
		}
	}
out:
	atomic_fetch_sub(&s->inside, 1);
	rc = jobq_lock_release(q, "ticket-lock");
	if (rc) {
		fprintf(stderr, "buyer %d: release: %s\n", (int)getpid(),
			jobq_strerror(rc));
		return -1;
	}
	return sold;
}

static int buyer(int idx, void *arg)
{
	struct shop *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	int r;

	CK_RC(jqt_barrier_wait(&s->start, 60), 0);
	for (int i = 0; i < s->rounds; i++) {
		r = buy_once(q, s);
		CK(r >= 0);
		if (r == 1)
			atomic_fetch_add(&s->sold, 1);
		else if (s->rounds == 1)
			atomic_fetch_add(&s->refused, 1);
		else
			break; /* sold out */
	}
	jobq_close(q);
	return 0;
}

static void run_shop(void **state, int buyers, int rounds)
{
	struct jqt_mgr *m = *state;
	struct shop *s = jqt_shared(sizeof(*s));
	pid_t *pids = calloc((size_t)buyers, sizeof(*pids));
	char buf[32] = {0};
	jobq_t *q;
	struct jobq_stats st;

	assert_non_null(pids);
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_kv_set(q, "tickets", JOBQ_T_TEXT, "50", 2), 0);
	jqt_barrier_init(&s->start, (uint32_t)buyers);
	s->rounds = rounds;

	assert_int_equal(jqt_fork_n(buyers, buyer, s, pids), 0);
	assert_int_equal(jqt_wait_all(pids, buyers, 75, NULL), 0);

	assert_int_equal(atomic_load(&s->overlap), 0);
	assert_int_equal(atomic_load(&s->negative), 0);
	assert_int_equal(atomic_load(&s->garbled), 0);
	assert_int_equal(atomic_load(&s->sold), TICKETS);
	if (rounds == 1)
		assert_int_equal(atomic_load(&s->refused), buyers - TICKETS);
	assert_rc(jobq_kv_get_buf(q, "tickets", buf, sizeof(buf) - 1, NULL), 1);
	assert_string_equal(buf, "0");
	assert_rc(jobq_stats(q, &st), 0);
	assert_true(st.lock_acquires >= (uint64_t)buyers);
	jobq_close(q);
	free(pids);
}

/* 100 buyers, one try each. */
static void test_hundred_buyers(void **state)
{
	run_shop(state, BUYERS, 1);
}

/* 10 buyers who keep buying until sold out: each sees many counts. */
static void test_greedy_buyers(void **state)
{
	run_shop(state, 10, 1000);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_hundred_buyers),
	    T(test_greedy_buyers),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
