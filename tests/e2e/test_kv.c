/* SPDX-License-Identifier: MIT */
/*
 * test_kv.c - the key/value store against a real manager: set, get, del,
 * incr (and its refusal of non-numbers), compare-and-swap, listing by
 * prefix, and atomic increments from many processes.
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

static jobq_t *open_q(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;

	assert_rc(jobq_open(&q, m->dir), 0);
	return q;
}

static void expect_kv(jobq_t *q, const char *key, uint32_t type,
		      const char *want, size_t len)
{
	jobq_obj_t o = {0};

	assert_rc(jobq_kv_get(q, key, &o), 0);
	assert_int_equal(o.type, type);
	assert_int_equal(o.len, len);
	assert_non_null(o.data);
	if (len)
		assert_memory_equal(o.data, want, len);
	assert_int_equal(((char *)o.data)[len], 0);
	jobq_obj_free(&o);
}

static void test_set_get_del(void **state)
{
	jobq_t *q = open_q(state);
	jobq_obj_t o = {0};
	char buf[8], key[300];
	uint32_t type = 0;
	uint8_t bin[256];

	assert_rc(jobq_kv_get(q, "missing", &o), -ENOENT);
	assert_rc(jobq_kv_del(q, "missing"), -ENOENT);

	assert_rc(jobq_kv_set(q, "greeting", JOBQ_T_TEXT, "hello", 5), 0);
	expect_kv(q, "greeting", JOBQ_T_TEXT, "hello", 5);
	/* Overwrite with a longer, then an empty value. */
	assert_rc(jobq_kv_set(q, "greeting", JOBQ_T_TEXT, "hello, world", 12),
		  0);
	expect_kv(q, "greeting", JOBQ_T_TEXT, "hello, world", 12);
	assert_rc(jobq_kv_get_buf(q, "greeting", buf, sizeof(buf), &type), 12);
	assert_memory_equal(buf, "hello, w", 8);
	assert_int_equal(type, JOBQ_T_TEXT);
	assert_rc(jobq_kv_set(q, "greeting", JOBQ_T_BYTES, "", 0), 0);
	expect_kv(q, "greeting", JOBQ_T_BYTES, "", 0);

	for (int i = 0; i < 256; i++)
		bin[i] = (uint8_t)i;
	assert_rc(jobq_kv_set(q, "bin", JOBQ_T_BYTES, bin, sizeof(bin)), 0);
	expect_kv(q, "bin", JOBQ_T_BYTES, (const char *)bin, sizeof(bin));

	assert_rc(jobq_kv_del(q, "greeting"), 0);
	assert_rc(jobq_kv_get(q, "greeting", &o), -ENOENT);
	assert_rc(jobq_kv_get_buf(q, "greeting", buf, sizeof(buf), NULL),
		  -ENOENT);
	assert_rc(jobq_kv_del(q, "greeting"), -ENOENT);
	/* A deleted key can come back (the tombstone is reused). */
	assert_rc(jobq_kv_set(q, "greeting", JOBQ_T_TEXT, "again", 5), 0);
	expect_kv(q, "greeting", JOBQ_T_TEXT, "again", 5);

	/* Keys are 1 to 255 bytes. */
	memset(key, 'k', sizeof(key));
	key[255] = 0;
	assert_rc(jobq_kv_set(q, key, JOBQ_T_TEXT, "long", 4), 0);
	expect_kv(q, key, JOBQ_T_TEXT, "long", 4);
	key[255] = 'k';
	key[299] = 0;
	assert_true(jobq_kv_set(q, key, JOBQ_T_TEXT, "x", 1) < 0);
	assert_true(jobq_kv_set(q, "", JOBQ_T_TEXT, "x", 1) < 0);

	/* Many keys: the table probes past collisions and tombstones. */
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "many/%d", i);
		assert_rc(jobq_kv_set(q, key, JOBQ_T_BYTES, key, strlen(key)),
			  0);
	}
	for (int i = 0; i < 500; i += 2) {
		snprintf(key, sizeof(key), "many/%d", i);
		assert_rc(jobq_kv_del(q, key), 0);
	}
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "many/%d", i);
		if (i % 2)
			expect_kv(q, key, JOBQ_T_BYTES, key, strlen(key));
		else
			assert_rc(jobq_kv_get(q, key, &o), -ENOENT);
	}
	jobq_close(q);
}

static void test_incr(void **state)
{
	jobq_t *q = open_q(state);
	int64_t v = -1;

	assert_rc(jobq_kv_incr(q, "n", 1, &v), 0);
	assert_int_equal(v, 1);
	assert_rc(jobq_kv_incr(q, "n", 41, &v), 0);
	assert_int_equal(v, 42);
	assert_rc(jobq_kv_incr(q, "n", -50, &v), 0);
	assert_int_equal(v, -8);
	assert_rc(jobq_kv_incr(q, "n", 8, NULL), 0);
	/* The stored value is the decimal text (its type tag is the
	 * manager's choice). */
	{
		char buf[8] = {0};

		assert_rc(jobq_kv_get_buf(q, "n", buf, sizeof(buf), NULL), 1);
		assert_memory_equal(buf, "0", 1);
	}

	/* A value set by hand as decimal text counts. */
	assert_rc(jobq_kv_set(q, "m", JOBQ_T_TEXT, "100", 3), 0);
	assert_rc(jobq_kv_incr(q, "m", 5, &v), 0);
	assert_int_equal(v, 105);

	assert_rc(jobq_kv_set(q, "word", JOBQ_T_TEXT, "abc", 3), 0);
	assert_rc(jobq_kv_incr(q, "word", 1, &v), JOBQ_ENOTNUM);
	expect_kv(q, "word", JOBQ_T_TEXT, "abc", 3);
	assert_rc(jobq_kv_set(q, "half", JOBQ_T_TEXT, "12x", 3), 0);
	assert_rc(jobq_kv_incr(q, "half", 1, &v), JOBQ_ENOTNUM);
	assert_rc(jobq_kv_set(q, "empty", JOBQ_T_TEXT, "", 0), 0);
	assert_rc(jobq_kv_incr(q, "empty", 1, &v), JOBQ_ENOTNUM);

	assert_rc(jobq_kv_set(q, "big", JOBQ_T_TEXT, "9223372036854775807", 19),
		  0);
	assert_rc(jobq_kv_incr(q, "big", 1, &v), -ERANGE);
	expect_kv(q, "big", JOBQ_T_TEXT, "9223372036854775807", 19);
	jobq_close(q);
}

static void test_cas(void **state)
{
	jobq_t *q = open_q(state);

	/* expect == NULL: only when absent. */
	assert_rc(jobq_kv_cas(q, "c", NULL, 0, JOBQ_T_TEXT, "one", 3), 0);
	expect_kv(q, "c", JOBQ_T_TEXT, "one", 3);
	assert_rc(jobq_kv_cas(q, "c", NULL, 0, JOBQ_T_TEXT, "two", 3),
		  JOBQ_EMISMATCH);
	assert_rc(jobq_kv_cas(q, "c", "uno", 3, JOBQ_T_TEXT, "two", 3),
		  JOBQ_EMISMATCH);
	assert_rc(jobq_kv_cas(q, "c", "on", 2, JOBQ_T_TEXT, "two", 3),
		  JOBQ_EMISMATCH);
	expect_kv(q, "c", JOBQ_T_TEXT, "one", 3);
	assert_rc(jobq_kv_cas(q, "c", "one", 3, JOBQ_T_TEXT, "two", 3), 0);
	expect_kv(q, "c", JOBQ_T_TEXT, "two", 3);
	/* Expecting a value of a key that does not exist fails. */
	assert_rc(jobq_kv_cas(q, "absent", "x", 1, JOBQ_T_TEXT, "y", 1),
		  JOBQ_EMISMATCH);
	jobq_close(q);
}

struct list_seen {
	int a, b, other;
	int stop_after;
	int calls;
};

static int list_cb(const char *key, const jobq_obj_t *value, void *arg)
{
	struct list_seen *s = arg;

	s->calls++;
	if (!strncmp(key, "app/", 4)) {
		/* The value of app/N is "vN". */
		if (value->len < 2 || ((char *)value->data)[0] != 'v' ||
		    strcmp((char *)value->data + 1, key + 4))
			s->other += 1000;
		s->a++;
	} else if (!strncmp(key, "apple", 5)) {
		s->b++;
	} else {
		s->other++;
	}
	if (s->stop_after && s->calls == s->stop_after)
		return 55;
	return 0;
}

static void test_list(void **state)
{
	jobq_t *q = open_q(state);
	struct list_seen s;
	char key[32], val[32];

	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "app/%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		assert_rc(jobq_kv_set(q, key, JOBQ_T_TEXT, val, strlen(val)),
			  0);
	}
	assert_rc(jobq_kv_set(q, "apple", JOBQ_T_TEXT, "red", 3), 0);
	assert_rc(jobq_kv_set(q, "zebra", JOBQ_T_TEXT, "z", 1), 0);
	assert_rc(jobq_kv_del(q, "app/7"), 0);

	memset(&s, 0, sizeof(s));
	assert_rc(jobq_kv_list(q, "app/", list_cb, &s), 0);
	assert_int_equal(s.a, 19);
	assert_int_equal(s.b, 0);
	assert_int_equal(s.other, 0);

	memset(&s, 0, sizeof(s));
	assert_rc(jobq_kv_list(q, "app", list_cb, &s), 0);
	assert_int_equal(s.a, 19);
	assert_int_equal(s.b, 1);
	assert_int_equal(s.other, 0);

	memset(&s, 0, sizeof(s));
	assert_rc(jobq_kv_list(q, NULL, list_cb, &s), 0);
	assert_int_equal(s.a + s.b + s.other, 21);

	memset(&s, 0, sizeof(s));
	assert_rc(jobq_kv_list(q, "", list_cb, &s), 0);
	assert_int_equal(s.calls, 21);

	memset(&s, 0, sizeof(s));
	assert_rc(jobq_kv_list(q, "nothing-here/", list_cb, &s), 0);
	assert_int_equal(s.calls, 0);

	/* A non-zero return from the callback stops the walk. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 3;
	assert_rc(jobq_kv_list(q, NULL, list_cb, &s), 55);
	assert_int_equal(s.calls, 3);
	jobq_close(q);
}

static int incr_many(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	for (int i = 0; i < 200; i++)
		CK_RC(jobq_kv_incr(q, "shared", 1, NULL), 0);
	jobq_close(q);
	return 0;
}

static void test_incr_processes(void **state)
{
	jobq_t *q = open_q(state);
	pid_t pids[6];
	int64_t v = 0;

	assert_int_equal(jqt_fork_n(6, incr_many, NULL, pids), 0);
	assert_int_equal(jqt_wait_all(pids, 6, 60, NULL), 0);
	assert_rc(jobq_kv_incr(q, "shared", 0, &v), 0);
	assert_int_equal(v, 1200);
	jobq_close(q);
}

static void count_set(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	int *n = arg;

	(void)q;
	(void)obj;
	if (res == 0)
		(*n)++;
	else
		*n = -1000000;
}

/* Many sets in flight on one key: applied in order, every callback runs. */
static void test_set_async(void **state)
{
	jobq_t *q = open_q(state);
	char val[32], key[300];
	int done = 0, n = 2000;

	for (int i = 0; i < n; i++) {
		int len = snprintf(val, sizeof(val), "v%d", i);

		assert_rc(jobq_kv_set_async(q, "pipelined", JOBQ_T_TEXT, val,
					    (size_t)len, count_set, &done),
			  0);
	}
	/* A NULL callback is fine, and a bad key fails at once. */
	assert_rc(
	    jobq_kv_set_async(q, "quiet", JOBQ_T_TEXT, "x", 1, NULL, NULL), 0);
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = 0;
	assert_rc(
	    jobq_kv_set_async(q, key, JOBQ_T_TEXT, "x", 1, count_set, &done),
	    -EINVAL);
	assert_rc(jobq_wait_idle(q, 30), 0);
	assert_int_equal(done, n);
	snprintf(val, sizeof(val), "v%d", n - 1);
	expect_kv(q, "pipelined", JOBQ_T_TEXT, val, strlen(val));
	expect_kv(q, "quiet", JOBQ_T_TEXT, "x", 1);
	jobq_close(q);
}

/*
 * The table does not wear out: a rolling window of 3,000 live keys (set
 * the newest, delete the oldest) on a 16M store, for 100,000 cycles. Its
 * tombstones used to fill the table after about 76,000 cycles, and then
 * most new keys were refused until a restart. Meanwhile another process
 * reads a key that never changes: the rehashes that sweep the tombstones
 * move keys, and a reader must never miss one.
 */
struct reader_state {
	_Atomic int stop;
	_Atomic long reads, misses;
};

static int steady_reader(int idx, void *arg)
{
	struct reader_state *rs = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	char buf[16];

	while (!atomic_load(&rs->stop)) {
		ssize_t n =
		    jobq_kv_get_buf(q, "steady", buf, sizeof(buf), NULL);

		atomic_fetch_add(&rs->reads, 1);
		if (n != 6 || memcmp(buf, "always", 6))
			atomic_fetch_add(&rs->misses, 1);
	}
	jobq_close(q);
	return 0;
}

static void test_rolling_window(void **state)
{
	struct jqt_mgr m;
	static const char *const args[] = {"--memory", "16M", NULL};
	struct reader_state *rs = jqt_shared(sizeof(*rs));
	enum { WINDOW = 3000, CYCLES = 100000 };
	pid_t reader;
	int st;
	jobq_t *q;

	assert_int_equal(jqt_mgr_start(&m, args), 0);
	jqt_cur = &m;
	assert_rc(jobq_open(&q, m.dir), 0);
	assert_rc(jobq_kv_set(q, "steady", JOBQ_T_TEXT, "always", 6), 0);
	reader = jqt_fork(steady_reader, 0, rs);
	assert_true(reader > 0);
	for (int i = 0; i < CYCLES + WINDOW; i++) {
		char key[32];

		snprintf(key, sizeof(key), "k%d", i);
		if (i < CYCLES)
			assert_rc(jobq_kv_set_async(q, key, JOBQ_T_TEXT, "v", 1,
						    NULL, NULL),
				  0);
		if (i >= WINDOW) {
			snprintf(key, sizeof(key), "k%d", i - WINDOW);
			assert_rc(jobq_kv_del(q, key), 0);
		}
	}
	{
		struct jobq_stats s;

		assert_rc(jobq_stats(q, &s), 0);
		assert_int_equal(s.keys, 1); /* only "steady" is left */
	}
	atomic_store(&rs->stop, 1);
	assert_rc(jqt_wait_pid(reader, 10, &st), 0);
	print_message("%d cycles; the steady key read %ld times, missed %ld\n",
		      CYCLES, atomic_load(&rs->reads),
		      atomic_load(&rs->misses));
	assert_int_equal(atomic_load(&rs->misses), 0);
	jobq_close(q);
	jqt_mgr_stop(&m);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rolling_window),
	    T(test_set_get_del),
	    T(test_incr),
	    T(test_cas),
	    T(test_list),
	    T(test_incr_processes),
	    T(test_set_async),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
