/* SPDX-License-Identifier: MIT */
/*
 * test_run_cli.c - `jobq run` and `jobq logs` against jobqd --workers 2:
 * a command run with the caller's cwd and environment, its output in the
 * result and in `jobq logs` (also followed while it runs), and the task
 * spooler of the issue: 500 commands from a file, at most 4 at a time
 * through `jobq queue set --parallel 4`, and `jobq wait` naming exactly
 * the ones that failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

#define SPOOL	    500
#define SPOOL_EVERY 50 /* line i fails when i % 50 == 7 */

static char tmp[PATH_MAX];

static int setup(void **state)
{
	static struct jqt_mgr mgr;
	static const char *const args[] = {"--workers", "2",
					   "--worker-concurrency", "4", NULL};

	if (jqt_mgr_start(&mgr, args) < 0)
		return -1;
	jqt_cur = &mgr;
	*state = jqt_cur;
	return 0;
}

/* `jobq --dir DIR ARGS...` with @timeout seconds to finish. */
static void cli_long(const struct jqt_mgr *m, struct jqt_out *o, double timeout,
		     const char *const *args, int nargs)
{
	const char **argv = calloc((size_t)nargs + 4, sizeof(*argv));

	assert_non_null(argv);
	argv[0] = jqt_jobq_path();
	argv[1] = "--dir";
	argv[2] = m->dir;
	for (int i = 0; i < nargs; i++)
		argv[3 + i] = args[i];
	assert_int_equal(jqt_run(argv[0], argv, NULL, 0, timeout, o), 0);
	free(argv);
}

static uint64_t one_id(const struct jqt_out *o)
{
	uint64_t id;

	if (o->code)
		print_error("exit %d: %s\n", o->code, o->err);
	assert_int_equal(o->code, 0);
	id = strtoull(o->out, NULL, 10);
	assert_true(id > 0);
	return id;
}

static void test_run_one(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	char id[32], want[PATH_MAX + 64], log[PATH_MAX + 64];
	struct stat st;
	json_t *r;

	/* The job sees this process's cwd and environment. */
	assert_int_equal(chdir(tmp), 0);
	setenv("JQT_RUN_VAR", "from the caller", 1);
	CLI(&o, "run", "--", "sh", "-c",
	    "echo \"$JQT_RUN_VAR\"; pwd; "
	    "echo to-stderr >&2");
	snprintf(id, sizeof(id), "%llu", (unsigned long long)one_id(&o));
	jqt_out_free(&o);
	CLI(&o, "wait", id, "--timeout", "30");
	assert_int_equal(o.code, 0);
	r = jqt_json_object(&o);
	assert_non_null(r);
	snprintf(want, sizeof(want), "from the caller\n%s\n", tmp);
	assert_string_equal(json_string_value(json_object_get(r, "stdout")),
			    want);
	assert_string_equal(json_string_value(json_object_get(r, "stderr")),
			    "to-stderr\n");
	assert_int_equal(json_integer_value(json_object_get(r, "exit")), 0);
	json_decref(r);
	jqt_out_free(&o);

	/* logs: the whole output, from a file only its owner reads. */
	CLI(&o, "logs", id);
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "from the caller\n"));
	assert_non_null(strstr(o.out, "to-stderr\n"));
	jqt_out_free(&o);
	CLI(&o, "logs", id, "--json");
	assert_int_equal(o.code, 0);
	r = jqt_json_object(&o);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "state")),
			    "succeeded");
	assert_non_null(strstr(json_string_value(json_object_get(r, "output")),
			       "to-stderr\n"));
	json_decref(r);
	jqt_out_free(&o);
	snprintf(log, sizeof(log), "%s/logs/%s.log", m->dir, id);
	assert_int_equal(stat(log, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* Usage errors. */
	CLI(&o, "run");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "run", "--from", "x", "--", "true");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "logs", "nope");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);

	/* logs of a job that is not exec. */
	CLI(&o, "submit", "echo", "{}");
	snprintf(id, sizeof(id), "%llu", (unsigned long long)one_id(&o));
	jqt_out_free(&o);
	CLI(&o, "logs", id);
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "only exec jobs have logs"));
	jqt_out_free(&o);
}

static void test_logs_follow(void **state)
{
	struct jqt_mgr *m = *state;
	const char *args[] = {"logs", NULL, "--follow"};
	struct jqt_out o;
	char id[32];
	double t0;

	CLI(&o, "run", "--", "sh", "-c",
	    "echo first; sleep 1; echo second; exit 5");
	snprintf(id, sizeof(id), "%llu", (unsigned long long)one_id(&o));
	jqt_out_free(&o);
	t0 = jqt_now();
	args[1] = id;
	cli_long(m, &o, 30, args, 3);
	/* It followed until the job ended, printed everything, and says
	 * the job failed as jobq wait would. */
	assert_true(jqt_now() - t0 > 0.5);
	assert_string_equal(o.out, "first\nsecond\n");
	assert_int_equal(o.code, 4);
	jqt_out_free(&o);
}

static void test_spooler(void **state)
{
	struct jqt_mgr *m = *state;
	char path[PATH_MAX + 16], logpath[PATH_MAX + 16];
	const char *from[] = {"run", "--queue", "spool", "--from", path};
	const char **wait_args = calloc(SPOOL + 4, sizeof(*wait_args));
	uint64_t ids[SPOOL];
	struct jqt_out o, w;
	char *p, *save = NULL, *log;
	int n = 0, running = 0, peak = 0, failed = 0;
	double t0;
	FILE *f;

	assert_non_null(wait_args);
	snprintf(path, sizeof(path), "%s/commands", tmp);
	snprintf(logpath, sizeof(logpath), "%s/spool.log", tmp);
	f = fopen(path, "w");
	assert_non_null(f);
	/* Each command says when it starts and ends (appends of a few bytes
	 * are atomic), so the log shows how many ran at once. */
	for (int i = 0; i < SPOOL; i++) {
		fprintf(f,
			"echo s >> %s; sleep 0.01; echo e >> %s; "
			"test %d -ne 7\n",
			logpath, logpath, i % SPOOL_EVERY);
		if (i % 100 == 0)
			fputs("\n   \n", f); /* blank lines are skipped */
	}
	fclose(f);

	CLI(&o, "queue", "set", "spool", "--parallel", "4");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	t0 = jqt_now();
	cli_long(m, &o, 60, from, 5);
	if (o.code)
		print_error("run --from: exit %d: %s\n", o.code, o.err);
	assert_int_equal(o.code, 0);
	assert_int_equal(jqt_count_lines(o.out), SPOOL);
	wait_args[0] = "wait";
	wait_args[1] = "--timeout";
	wait_args[2] = "120";
	wait_args[3] = "--quiet"; /* no progress lines among the errors */
	for (p = strtok_r(o.out, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save)) {
		ids[n] = strtoull(p, NULL, 10);
		wait_args[4 + n] = p;
		n++;
	}
	assert_int_equal(n, SPOOL);
	cli_long(m, &w, 150, wait_args, 4 + SPOOL);
	print_message("%d commands, 4 at a time: %.2f s from submit to the "
		      "last result\n",
		      SPOOL, jqt_now() - t0);
	/* Exit 4: some failed; stderr names each of those, and no other. */
	assert_int_equal(w.code, 4);
	assert_int_equal(jqt_count_lines(w.out), SPOOL - SPOOL / SPOOL_EVERY);
	for (int i = 0; i < SPOOL; i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "job %llu is dead",
			 (unsigned long long)ids[i]);
		if ((i % SPOOL_EVERY == 7) != (strstr(w.err, needle) != NULL)) {
			print_error("line %d (job %llu) %s in: %s\n", i,
				    (unsigned long long)ids[i],
				    i % SPOOL_EVERY == 7 ? "missing"
							 : "unexpected",
				    w.err);
			fail();
		}
		failed += i % SPOOL_EVERY == 7;
	}
	assert_int_equal(jqt_count_lines(w.err), failed);
	assert_non_null(strstr(w.err, "exited with status 1"));
	jqt_out_free(&w);
	jqt_out_free(&o);

	/* Never more than 4 at once, and more than one at a time. */
	{
		size_t len = 0;
		int fd = open(logpath, O_RDONLY);
		struct stat st;

		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &st), 0);
		log = malloc((size_t)st.st_size + 1);
		assert_non_null(log);
		len = (size_t)read(fd, log, (size_t)st.st_size);
		close(fd);
		for (size_t i = 0; i < len; i++) {
			if (log[i] == 's' && ++running > peak)
				peak = running;
			if (log[i] == 'e')
				running--;
		}
		free(log);
	}
	print_message("at most %d commands ran at once\n", peak);
	assert_true(peak <= 4);
	assert_true(peak >= 2);
	free(wait_args);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_run_one),
	    cmocka_unit_test(test_logs_follow),
	    cmocka_unit_test(test_spooler),
	};
	int rc;

	jqt_init_cli();
	if (jqt_tmpdir(tmp, sizeof(tmp)))
		return 1;
	rc = cmocka_run_group_tests(tests, setup, jqt_teardown);
	jqt_rmtree(tmp);
	return rc;
}
