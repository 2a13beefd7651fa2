/* SPDX-License-Identifier: MIT */
/*
 * test_metrics.c - `jobq stats --prometheus`: the text parses as the
 * Prometheus text format (tests/service/check_prometheus.py, over the
 * prometheus_client parser) and its values are the manager's: a queue's
 * depth, jobs by state, a worker. Names with a backslash are escaped.
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

#define PYTHON "/usr/bin/python3"

/* Runs the checker on @text; its stdout (one sample a line) in *o. */
static void check(const char *text, size_t len, struct jqt_out *o)
{
	char script[4096];
	const char *argv[] = {PYTHON, script, NULL};

	snprintf(script, sizeof(script), "%s/tests/service/check_prometheus.py",
		 getenv("JOBQ_TEST_SRCDIR"));
	assert_int_equal(jqt_run(PYTHON, argv, text, len, 30, o), 0);
	if (o->code != 0)
		print_error("checker: %s\n", o->err);
	assert_int_equal(o->code, 0);
}

static void assert_has(const struct jqt_out *o, const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(o->out, line) ||
	    (strncmp(o->out, line, strlen(line)) && !strstr(o->out, want))) {
		print_error("no line \"%s\" in:\n%s\n", line, o->out);
		fail();
	}
}

static void test_prometheus(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o, parsed;
	jobq_t *q;
	uint64_t id;

	if (access(PYTHON, X_OK) ||
	    system(PYTHON " -c 'import prometheus_client' 2>/dev/null")) {
		if (getenv("CI"))
			fail_msg("python3-prometheus-client is missing");
		skip();
	}
	assert_int_equal(jobq_open(&q, m->dir), 0);
	assert_int_equal(jobq_put(q, "orders", JOBQ_T_BYTES, "a", 1, -1), 0);
	assert_int_equal(jobq_put(q, "orders", JOBQ_T_BYTES, "bc", 2, -1), 0);
	assert_int_equal(jobq_put(q, "back\\slash", JOBQ_T_BYTES, "", 0, -1),
			 0);
	assert_int_equal(
	    jobq_submit(q, "echo", JOBQ_T_JSON, "{}", 2, NULL, &id), 0);
	assert_int_equal(jobq_job_wait(q, id, 30), 0);
	assert_int_equal(
	    jobq_submit(q, "nobody.serves", JOBQ_T_JSON, "{}", 2, NULL, &id),
	    0);

	CLI(&o, "stats", "--prometheus");
	assert_int_equal(o.code, 0);
	check(o.out, o.out_len, &parsed);
	assert_has(&parsed, "jobq_queue_depth{queue=\"orders\"} 2");
	assert_has(&parsed, "jobq_queue_bytes{queue=\"orders\"} 3");
	assert_has(&parsed, "jobq_queue_depth{queue=\"back\\slash\"} 1");
	assert_has(&parsed, "jobq_jobs{state=\"succeeded\"} 1");
	assert_has(&parsed, "jobq_jobs{state=\"ready\"} 1");
	assert_has(&parsed, "jobq_jobs_submitted_total{} 2");
	assert_has(&parsed, "jobq_puts_total{} 3");
	assert_true(strstr(parsed.out, "jobq_worker_capacity{pid=\"") != NULL);
	jqt_out_free(&parsed);
	jqt_out_free(&o);
	jobq_close(q);
}

/* The checker is not a rubber stamp: broken text fails it. */
static void test_checker_refuses_garbage(void **state)
{
	static const char *const bad[] = {
	    "jobq_x 1\n", /* no TYPE */
	    "# TYPE jobq_x gauge\njobq_x{a=\"b} 1\n",
	    "# TYPE jobq_x gauge\n# TYPE jobq_x gauge\njobq_x 1\n",
	};
	char script[4096];
	const char *argv[] = {PYTHON, script, NULL};

	if (access(PYTHON, X_OK) ||
	    system(PYTHON " -c 'import prometheus_client' 2>/dev/null"))
		skip();
	snprintf(script, sizeof(script), "%s/tests/service/check_prometheus.py",
		 getenv("JOBQ_TEST_SRCDIR"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct jqt_out o;

		assert_int_equal(
		    jqt_run(PYTHON, argv, bad[i], strlen(bad[i]), 30, &o), 0);
		assert_int_not_equal(o.code, 0);
		jqt_out_free(&o);
	}
}

static int setup(void **state)
{
	static struct jqt_mgr mgr;
	static const char *const args[] = {"--workers", "1", NULL};

	*state = &mgr;
	return jqt_mgr_start(&mgr, args);
}

static int teardown(void **state)
{
	jqt_mgr_stop(*state);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_prometheus, setup, teardown),
	    cmocka_unit_test(test_checker_refuses_garbage),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
