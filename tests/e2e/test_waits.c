/* SPDX-License-Identifier: MIT */
/*
 * test_waits.c - the request path's waits: no wake-up is lost whether a
 * side polls or sleeps (the CPUs free, or all taken by burners), and a
 * batch copied into the caller's buffer arrives intact.
 * Nothing here measures speed; the time bounds only catch a hang.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

#define ROUNDS 3000
#define BIG    4096

static const struct jqt_mgr *pp_mgr; /* the manager the ping-pong uses */

/* Takes every ping and answers it with the same number on "pong". */
static int ponger(int idx, void *arg)
{
	jobq_t *q;

	(void)idx;
	(void)arg;
	q = jqt_open_or_die(pp_mgr);
	for (int i = 0; i < ROUNDS; i++) {
		jobq_obj_t o;

		CK_RC(jobq_get(q, "ping", &o, 20), 0);
		CK(o.len == sizeof(int) && !memcmp(o.data, &i, sizeof(int)));
		CK_RC(jobq_put(q, "pong", JOBQ_T_BYTES, o.data, o.len, 20), 0);
		jobq_obj_free(&o);
	}
	jobq_close(q);
	return 0;
}

/* Sends ROUNDS pings one at a time, each waiting for its pong. */
static int pinger(int idx, void *arg)
{
	jobq_t *q;

	(void)idx;
	(void)arg;
	q = jqt_open_or_die(pp_mgr);
	for (int i = 0; i < ROUNDS; i++) {
		jobq_obj_t o;

		CK_RC(jobq_put(q, "ping", JOBQ_T_BYTES, &i, sizeof(i), 20), 0);
		CK_RC(jobq_get(q, "pong", &o, 20), 0);
		CK(o.len == sizeof(int) && !memcmp(o.data, &i, sizeof(int)));
		jobq_obj_free(&o);
	}
	jobq_close(q);
	return 0;
}

/* Keeps a CPU busy until killed: more runnable tasks than CPUs. */
static int burner(int idx, void *arg)
{
	volatile unsigned long x = 0;

	(void)idx;
	(void)arg;
	for (;;)
		x++;
	return 0;
}

static void pingpong(const struct jqt_mgr *m, int burners)
{
	pid_t pids[2], burn[4];

	pp_mgr = m;
	for (int i = 0; i < burners; i++) {
		burn[i] = jqt_fork(burner, i, NULL);
		assert_true(burn[i] > 0);
	}
	pids[0] = jqt_fork(ponger, 0, NULL);
	pids[1] = jqt_fork(pinger, 1, NULL);
	assert_true(pids[0] > 0 && pids[1] > 0);
	/* A lost wake-up shows as a get that waits out its 20 s. */
	assert_int_equal(jqt_wait_all(pids, 2, 60, NULL), 0);
	for (int i = 0; i < burners; i++)
		jqt_kill_child(burn[i]);
}

/* One request at a time with CPUs to spare: the sides may poll. */
static void test_pingpong(void **state)
{
	pingpong(*state, 0);
}

/* With every CPU taken: each wait must still be woken. */
static void test_pingpong_loaded(void **state)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	pingpong(*state, n > 3 ? 4 : (int)n + 1);
}

/*
 * jobq_get_many_into: 64 objects of 4 KiB land in the caller's buffer,
 * borrowed and intact; with a buffer too small for all, the rest are
 * malloc'd and every object is still taken, in order.
 */
static void test_get_many_into(void **state)
{
	struct jqt_mgr *m = *state;
	static char payload[64][BIG];
	static jobq_obj_t in[64], out[64];
	size_t cap = 64 * (BIG + 8);
	char *buf = malloc(cap);
	jobq_t *q = NULL;

	assert_non_null(buf);
	assert_rc(jobq_open(&q, m->dir), 0);
	for (int i = 0; i < 64; i++) {
		memset(payload[i], 'a' + i % 26, BIG);
		memcpy(payload[i], &i, sizeof(i));
		in[i] = (jobq_obj_t){
		    .type = JOBQ_T_BYTES, .len = BIG, .data = payload[i]};
	}
	for (int round = 0; round < 2; round++) {
		/* Round 1: room for two objects and a bit. */
		size_t len = round ? 2 * (BIG + 8) + 100 : cap;
		int got = 0;

		assert_rc(jobq_put_many(q, "big", in, 64, 5), 64);
		while (got < 64) {
			int n = jobq_get_many_into(
			    q, "big", out + got, 64 - (size_t)got, buf, len, 5);

			assert_true(n > 0);
			for (int i = got; i < got + n; i++) {
				bool inside = (char *)out[i].data >= buf &&
					      (char *)out[i].data < buf + len;

				assert_int_equal(out[i].len, BIG);
				assert_memory_equal(out[i].data, payload[i],
						    BIG);
				assert_int_equal(((char *)out[i].data)[BIG],
						 '\0');
				assert_int_equal(
				    !!(out[i].flags & JOBQ_OBJ_BORROWED),
				    inside);
				if (!round)
					assert_true(inside);
				if (round && i - got >= 2)
					assert_false(inside);
				jobq_obj_free(&out[i]);
				assert_null(out[i].data);
			}
			got += n;
		}
	}
	assert_rc(jobq_get_many_into(q, "big", out, 4, NULL, 10, 0), -EINVAL);
	assert_rc(jobq_get_many_into(q, "big", out, 4, buf, cap, 0), -EAGAIN);
	jobq_close(q);
	free(buf);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_get_many_into),
	    T(test_pingpong),
	    T(test_pingpong_loaded),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
