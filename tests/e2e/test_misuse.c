/* SPDX-License-Identifier: MIT */
/*
 * test_misuse.c - the small ways a caller can get things wrong, each
 * answered with an error instead of a hang or silent damage: a NaN
 * timeout, JSON args that are not JSON, a handle used in a forked child,
 * and a --memory the machine cannot have or the tables cannot fit in.
 */
#include <errno.h>
#include <math.h>
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

static void nan_timeout(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_obj_t o = {0};
	jobq_t *q = NULL;
	uint64_t id;

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_put(q, "q", JOBQ_T_BYTES, "x", 1, NAN), -EINVAL);
	assert_rc(jobq_get(q, "q", &o, NAN), -EINVAL);
	assert_rc(jobq_lock_acquire(q, "l", NAN), -EINVAL);
	assert_rc(jobq_wait_idle(q, NAN), -EINVAL);
	assert_rc(jobq_submit(q, "echo", JOBQ_T_JSON, "1", 1, NULL, &id), 0);
	assert_rc(jobq_job_wait(q, id, NAN), -EINVAL);
	/* The handle is fine afterwards. */
	assert_rc(jobq_put(q, "q", JOBQ_T_BYTES, "x", 1, 0), 0);
	assert_rc(jobq_get(q, "q", &o, 5), 0);
	jobq_obj_free(&o);
	jobq_close(q);
}

static void json_args_checked(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_obj_t many[2] = {
	    {.type = JOBQ_T_JSON, .len = 7, .data = "{\"a\":1}"},
	    {.type = JOBQ_T_JSON, .len = 5, .data = "{\"a\":"},
	};
	uint64_t id, ids[2];
	jobq_t *q = NULL;

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_submit(q, "echo", JOBQ_T_JSON, "not json", 8, NULL, &id),
		  -EINVAL);
	assert_rc(jobq_submit(q, "echo", JOBQ_T_JSON, "", 0, NULL, &id),
		  -EINVAL);
	assert_rc(jobq_submit(q, "echo", JOBQ_T_JSON, "[1, 2]", 6, NULL, &id),
		  0);
	/* Bytes are bytes. */
	assert_rc(
	    jobq_submit(q, "echo", JOBQ_T_BYTES, "not json", 8, NULL, &id), 0);
	/* A batch stops before the first that is not JSON. */
	assert_rc(jobq_submit_many(q, "echo", many, 2, NULL, ids), 1);
	assert_rc(jobq_submit_many(q, "echo", many + 1, 1, NULL, ids), -EINVAL);
	jobq_close(q);
}

static int use_in_child(int idx, void *arg)
{
	jobq_t *q = arg;
	jobq_obj_t o = {0};
	uint64_t id;

	CK_RC(jobq_put(q, "q", JOBQ_T_BYTES, "child", 5, 0), JOBQ_EFORKED);
	CK_RC(jobq_get(q, "q", &o, 0), JOBQ_EFORKED);
	CK_RC(jobq_submit(q, "echo", JOBQ_T_JSON, "1", 1, NULL, &id),
	      JOBQ_EFORKED);
	CK_RC(jobq_lock_acquire(q, "l", 0), JOBQ_EFORKED);
	/* Closing the child's copy leaves the parent's connection be. */
	jobq_close(q);
	return 0;
}

/* Finding 9: a handle used in a forked child is refused there, and the
 * parent's connection goes on as if nothing happened. */
static void forked_handle(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_obj_t o = {0};
	jobq_t *q = NULL;
	pid_t pid;
	int st;

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_put(q, "q", JOBQ_T_BYTES, "one", 3, 0), 0);
	pid = jqt_fork(use_in_child, 0, q);
	assert_true(pid > 0);
	assert_int_equal(jqt_wait_pid(pid, 15, &st), 0);
	assert_true(jqt_status_ok(st));

	assert_rc(jobq_put(q, "q", JOBQ_T_BYTES, "two", 3, 0), 0);
	assert_rc(jobq_get(q, "q", &o, 5), 0);
	assert_int_equal(o.len, 3);
	assert_memory_equal(o.data, "one", 3);
	jobq_obj_free(&o);
	assert_rc(jobq_get(q, "q", &o, 5), 0);
	assert_memory_equal(o.data, "two", 3);
	jobq_obj_free(&o);
	assert_rc(jobq_get(q, "q", &o, 0), -EAGAIN);
	jobq_close(q);
}

/* jobqd --memory SIZE in DIR: its output and exit code. */
static void run_jobqd_memory(const char *size, struct jqt_out *o)
{
	char dir[PATH_MAX];
	const char *argv[] = {jqt_jobqd_path(), "--dir", dir,
			      "--memory",	size,	 NULL};

	assert_int_equal(jqt_tmpdir(dir, sizeof(dir) - 8), 0);
	strcat(dir, "/jobq");
	assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 15, o), 0);
}

static void memory_checked(void **state)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	struct jqt_out o;

	run_jobqd_memory("1", &o);
	assert_int_equal(o.code, 2);
	assert_non_null(strstr(o.err, "--memory must be at least 8M"));
	assert_null(strstr(o.err, "max-object"));
	jqt_out_free(&o);

	if (pages > 0 && psz > 0 &&
	    (double)pages * (double)psz < 1000.0 * (1 << 30)) {
		run_jobqd_memory("1000G", &o);
		assert_int_equal(o.code, 2);
		assert_non_null(strstr(o.err, "more than this machine has"));
		jqt_out_free(&o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(nan_timeout, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(json_args_checked, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(forked_handle, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test(memory_checked),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
