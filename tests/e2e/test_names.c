/* SPDX-License-Identifier: MIT */
/*
 * test_names.c - names of queues, locks, keys and job types are UTF-8
 * without control characters: the library refuses others, the manager
 * refuses them from a raw client that bypasses the library, the command
 * line exits 2 and quotes a long name shortened, and every --json output
 * stays valid.
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
#include <jansson.h>

#include "harness.h"

static const char *const bad_names[] = {
    "bad\xffname",    /* not UTF-8 at all */
    "caf\xc3",	      /* cut in the middle of a character */
    "\xc0\xafslash",  /* overlong */
    "\xed\xa0\x80x",  /* a UTF-16 surrogate */
    "next\xc2\x85ln", /* a C1 control */
    "esc\x1b[31m",    /* a C0 control */
};
#define NBAD (sizeof(bad_names) / sizeof(bad_names[0]))

static void library_refuses(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	uint64_t id;

	assert_rc(jobq_open(&q, m->dir), 0);
	for (size_t i = 0; i < NBAD; i++) {
		const char *n = bad_names[i];

		assert_rc(jobq_put(q, n, JOBQ_T_BYTES, "x", 1, 0), -EINVAL);
		assert_rc(jobq_kv_set(q, n, JOBQ_T_BYTES, "x", 1), -EINVAL);
		assert_rc(jobq_submit(q, n, JOBQ_T_BYTES, "x", 1, NULL, &id),
			  -EINVAL);
	}
	/* Good UTF-8 is fine. */
	assert_rc(jobq_put(q, "caf\xc3\xa9", JOBQ_T_BYTES, "x", 1, 0), 0);
	assert_rc(
	    jobq_kv_set(q, "cl\xc3\xa9 \xe2\x82\xac", JOBQ_T_BYTES, "x", 1), 0);
	jobq_close(q);
}

/* A raw kv set of @key; returns the completion's result. */
static int raw_kv_set(struct jqt_raw *r, const char *key)
{
	struct jobq_sqe sqe;
	struct jobq_cqe cqe;
	size_t n = strlen(key);

	memset(&sqe, 0, sizeof(sqe));
	sqe.op = JOBQ_OP_KV_SET;
	sqe.user_data = 0x4b56;
	sqe.type = JOBQ_T_BYTES;
	sqe.arg0 = n;
	sqe.arena_off = jqt_raw_arena_put(r, 0, key, n);
	jqt_raw_arena_put(r, n, "v", 1);
	sqe.arena_len = (uint32_t)n + 1;
	if (jqt_raw_submit(r, &sqe) < 0)
		return -EBUSY;
	if (jqt_raw_wait(r, &cqe, 10) < 0)
		return -ETIMEDOUT;
	return cqe.res;
}

/* A raw lock open of @name; returns the completion's result. */
static int raw_l_open(struct jqt_raw *r, const char *name)
{
	struct jobq_sqe sqe;
	struct jobq_cqe cqe;
	size_t n = strlen(name);

	memset(&sqe, 0, sizeof(sqe));
	sqe.op = JOBQ_OP_L_OPEN;
	sqe.flags = JOBQ_SQE_CREATE;
	sqe.user_data = 0x4c4f;
	sqe.arg0 = JOBQ_WIRE_LOCK;
	sqe.arena_off = jqt_raw_arena_put(r, 0, name, n);
	sqe.arena_len = (uint32_t)n;
	if (jqt_raw_submit(r, &sqe) < 0)
		return -EBUSY;
	if (jqt_raw_wait(r, &cqe, 10) < 0)
		return -ETIMEDOUT;
	return cqe.res;
}

/* Finding 3: the manager checks too; a raw client cannot get a bad name
 * into the store, and the listings stay valid JSON. */
static void manager_refuses(void **state)
{
	struct jqt_mgr *m = *state;
	const char *cmds[] = {"queues", "locks", "ls", "workers"};
	struct jqt_raw r;
	struct jqt_out o;

	assert_int_equal(jqt_raw_open(m->dir, &r), 0);
	for (size_t i = 0; i < NBAD; i++) {
		assert_int_equal(jqt_raw_q_open(&r, bad_names[i]), -EINVAL);
		assert_int_equal(raw_l_open(&r, bad_names[i]), -EINVAL);
		assert_int_equal(raw_kv_set(&r, bad_names[i]), -EINVAL);
	}
	assert_true(jqt_raw_q_open(&r, "gr\xc3\xbc\xc3\x9f") >= 0);
	assert_true(raw_l_open(&r, "\xe9\x8e\x96") >= 0);
	assert_int_equal(raw_kv_set(&r, "ok"), 0);
	jqt_raw_close(&r);

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		json_t *doc;

		CLI(&o, cmds[i], "--json");
		assert_int_equal(o.code, 0);
		doc = jqt_json_object(&o);
		assert_non_null(doc);
		json_decref(doc);
		jqt_out_free(&o);
	}
	CLI(&o, "queues");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "gr\xc3\xbc\xc3\x9f"));
	jqt_out_free(&o);
}

/* The command line: exit 2, and a long name quoted shortened. */
static void cli_refuses(void **state)
{
	struct jqt_mgr *m = *state;
	size_t big = 100000;
	char *name = malloc(big + 1);
	struct jqt_out o;

	CLI(&o, "put", "bad\xffname", "x");
	assert_int_equal(o.code, 2);
	assert_non_null(strstr(o.err, "bad\\xffname"));
	jqt_out_free(&o);

	CLI(&o, "kv", "set",
	    "a\x01"
	    "b",
	    "v");
	assert_int_equal(o.code, 2);
	assert_non_null(strstr(o.err, "a\\x01b"));
	jqt_out_free(&o);

	CLI(&o, "lock", "l\nx", "--", "true");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);

	assert_non_null(name);
	memset(name, 'n', big);
	name[big] = '\0';
	CLI(&o, "put", name, "x");
	assert_int_equal(o.code, 2);
	assert_non_null(strstr(o.err, "nnn..."));
	assert_true(o.err_len < 400);
	jqt_out_free(&o);
	CLI(&o, "kv", "set", name, "x");
	assert_int_equal(o.code, 2);
	assert_true(o.err_len < 400);
	jqt_out_free(&o);
	/* A job type: the message, not the usage lines after it. */
	CLI(&o, "submit", name, "{}");
	assert_int_equal(o.code, 2);
	assert_true(strchr(o.err, '\n') - o.err < 400);
	jqt_out_free(&o);
	CLI(&o, "submit",
	    "a\x01"
	    "b",
	    "{}");
	assert_int_equal(o.code, 2);
	assert_non_null(strstr(o.err, "a\\x01b"));
	jqt_out_free(&o);
	free(name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(library_refuses, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(manager_refuses, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(cli_refuses, jqt_setup,
					    jqt_teardown),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
