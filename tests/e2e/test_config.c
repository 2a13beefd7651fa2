/* SPDX-License-Identifier: MIT */
/*
 * test_config.c - jobqd's configuration file and logging: a file gives
 * options (the long options as keys), the command line wins over it, the
 * default file in the instance directory is read when there is one; an
 * unknown key, a bad value, malformed JSON and a missing --config file are
 * each refused with a message naming the file and the key; --log-level
 * and the level on every line.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Runs jobqd with @args (NULL-terminated, after --dir DIR) for at most
 * @secs, its output in *o. */
static void run_jobqd(const char *dir, const char *const *args, double secs,
		      struct jqt_out *o)
{
	const char *argv[16] = {"jobqd", "--dir", dir};
	int n = 3;

	for (; args && *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	assert_int_equal(jqt_run(jqt_jobqd_path(), argv, NULL, 0, secs, o), 0);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *json, *want;
	} bad[] = {
	    {"{\"memroy\": \"64M\"}", "key \"memroy\": no such option"},
	    {"{\"memory\": \"lots\"}", "key \"memory\": --memory lots"},
	    {"{\"workers\": -3}", "key \"workers\""},
	    {"{\"daemon\": \"yes\"}", "key \"daemon\": a flag"},
	    {"{\"worker\": [1, 2]}", "key \"worker\": a list of commands"},
	    {"{\"compact-min\": \"1K\"}",
	     "key \"compact-min\": --compact-min 1K: not a size of 64K"},
	    {"{\"memory\": 64", "not valid JSON"},
	    {"[\"memory\", \"64M\"]", "not a JSON object"},
	};
	char top[PATH_MAX], dir[PATH_MAX + 8], cfg[PATH_MAX + 32];
	struct jqt_out o;

	assert_int_equal(jqt_tmpdir(top, sizeof(top)), 0);
	snprintf(dir, sizeof(dir), "%s/jobq", top);
	snprintf(cfg, sizeof(cfg), "%s/my.json", top);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *args[] = {"--config", cfg, NULL};

		write_file(cfg, bad[i].json);
		run_jobqd(dir, args, 10, &o);
		assert_int_equal(o.code, 2);
		if (!strstr(o.err, cfg) || !strstr(o.err, bad[i].want))
			fail_msg("for %s: stderr \"%s\", expected the file and "
				 "\"%s\"",
				 bad[i].json, o.err, bad[i].want);
		jqt_out_free(&o);
	}
	{
		const char *args[] = {"--config", "/nonexistent/jobqd.json",
				      NULL};

		run_jobqd(dir, args, 10, &o);
		assert_int_equal(o.code, 2);
		assert_non_null(strstr(o.err, "/nonexistent/jobqd.json"));
		assert_non_null(strstr(o.err, "No such file"));
		jqt_out_free(&o);
	}
	jqt_rmtree(top);
}

static void test_file_and_command_line(void **state)
{
	struct jqt_mgr m;
	char cfg[PATH_MAX + 32];
	const char *args[] = {"--config", cfg, "--max-object", "2M", NULL};
	struct jobq_stats st;
	jobq_t *q;

	assert_int_equal(jqt_tmpdir(cfg, sizeof(cfg) - 32), 0);
	strcat(cfg, "/jobqd.json");
	write_file(cfg, "{\"memory\": \"64M\", \"max-object\": \"1M\", "
			"\"keep\": 60, \"verbose\": false}");
	assert_int_equal(jqt_mgr_start(&m, args), 0);
	assert_int_equal(jobq_open(&q, m.dir), 0);
	/* max-object: the command line's, not the file's. */
	assert_int_equal(jobq_max_object(q), 2u << 20);
	/* memory: the file's (the heap is most of the store). */
	assert_int_equal(jobq_stats(q, &st), 0);
	assert_true(st.memory_total > (32u << 20) &&
		    st.memory_total <= (64u << 20));
	jobq_close(q);
	jqt_mgr_stop(&m);
	unlink(cfg);
}

/* DIR/jobqd.json is read without --config. */
static void test_default_file(void **state)
{
	char top[PATH_MAX], dir[PATH_MAX + 8], cfg[PATH_MAX + 32];
	const char *args[] = {"--memory", "64M", NULL};
	struct jqt_out o;

	assert_int_equal(jqt_tmpdir(top, sizeof(top)), 0);
	snprintf(dir, sizeof(dir), "%s/jobq", top);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(cfg, sizeof(cfg), "%s/jobqd.json", dir);
	write_file(cfg, "{\"max-object\": \"70M\"}");
	/* The file's max-object is too big for 64M: refused, naming it. */
	run_jobqd(dir, args, 10, &o);
	assert_int_equal(o.code, 2);
	assert_non_null(strstr(o.err, "max-object"));
	jqt_out_free(&o);
	jqt_rmtree(top);
}

/* Every line carries its level; --log-level warn hides the info lines. */
static void test_log_levels(void **state)
{
	char top[PATH_MAX], dir[PATH_MAX + 8];
	const char *info[] = {"--memory", "64M", NULL};
	const char *warn[] = {"--memory", "64M", "--log-level", "warn", NULL};
	struct jqt_out o;

	assert_int_equal(jqt_tmpdir(top, sizeof(top)), 0);
	snprintf(dir, sizeof(dir), "%s/a", top);
	run_jobqd(dir, info, 1.5, &o); /* killed after 1.5 s */
	assert_non_null(strstr(o.err, "] info: ready in "));
	jqt_out_free(&o);
	snprintf(dir, sizeof(dir), "%s/b", top);
	run_jobqd(dir, warn, 1.5, &o);
	assert_null(strstr(o.err, "ready in"));
	jqt_out_free(&o);
	jqt_rmtree(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_file_and_command_line),
	    cmocka_unit_test(test_default_file),
	    cmocka_unit_test(test_log_levels),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
