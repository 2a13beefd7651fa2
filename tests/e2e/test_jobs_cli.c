/* SPDX-License-Identifier: MIT */
/*
 * test_jobs_cli.c - the job commands of the command line (CLI.md) against
 * a manager with two built-in workers (jobqd --workers 2): submit, wait,
 * show, ls, cancel, retry, kick, pause, resume, queue set --parallel,
 * workers and worker, with and without --json; and bad input: an unknown
 * job type, args that are not JSON, unknown ids, waiting on a cancelled
 * job. (--durable: test_jobs_durable.c.)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

/* stdout must be one JSON object; returns it (json_decref() it). */
static json_t *parse_json(const struct jqt_out *o)
{
	json_t *j = jqt_json_object(o);

	assert_non_null(j);
	return j;
}

/* `jobq submit ...` that must succeed; returns the id printed. */
#define SUBMIT(...) submit_(m, __VA_ARGS__, NULL)
static uint64_t submit_(const struct jqt_mgr *m, ...)
{
	const char *argv[32];
	struct jqt_out o;
	uint64_t id;
	va_list ap;
	int n = 0;

	argv[n++] = jqt_jobq_path();
	argv[n++] = "--dir";
	argv[n++] = m->dir;
	argv[n++] = "submit";
	va_start(ap, m);
	while ((argv[n] = va_arg(ap, const char *)) && n < 31)
		n++;
	va_end(ap);
	argv[n] = NULL;
	assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 15, &o), 0);
	if (o.code)
		print_error("submit: exit %d: %s\n", o.code, o.err);
	assert_int_equal(o.code, 0);
	id = strtoull(o.out, NULL, 10);
	assert_true(id > 0);
	jqt_out_free(&o);
	return id;
}

static void idstr(char *buf, uint64_t id)
{
	sprintf(buf, "%llu", (unsigned long long)id);
}

/* An RFC 3339 UTC time with microseconds, or null. */
static void assert_time(json_t *j, const char *key, int may_be_null)
{
	json_t *v = json_object_get(j, key);
	const char *s;

	assert_non_null(v);
	if (json_is_null(v)) {
		assert_true(may_be_null);
		return;
	}
	assert_true(json_is_string(v));
	s = json_string_value(v);
	/* 2026-11-25T13:54:05.123456Z */
	assert_int_equal(strlen(s), 27);
	assert_true(s[4] == '-' && s[10] == 'T' && s[19] == '.' &&
		    s[26] == 'Z');
}

static void wait_workers(struct jqt_mgr *m, int n)
{
	double end = jqt_now() + 10;

	while (jqt_now() < end) {
		struct jqt_out o;
		json_t *j;
		size_t have;

		CLI(&o, "workers", "--json");
		assert_int_equal(o.code, 0);
		j = parse_json(&o);
		have = json_array_size(json_object_get(j, "workers"));
		json_decref(j);
		jqt_out_free(&o);
		if ((int)have >= n)
			return;
		jqt_sleep(0.05);
	}
	print_error("fewer than %d workers after 10 s\n", n);
	fail();
}

static void test_submit_wait_show(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	char a[24], b[24];
	uint64_t id, id2;
	json_t *j, *jobs;

	wait_workers(m, 2);
	id = SUBMIT("echo", "{\"a\": [1, 2], \"s\": \"x\"}");
	idstr(a, id);
	CLI(&o, "wait", a);
	assert_int_equal(o.code, 0);
	/* JSON as one line. */
	assert_string_equal(o.out, "{\"a\":[1,2],\"s\":\"x\"}\n");
	jqt_out_free(&o);
	/* A final job needs no waiting: --nowait still reports it. */
	CLI(&o, "wait", a, "--nowait");
	assert_int_equal(o.code, 0);
	assert_string_equal(o.out, "{\"a\":[1,2],\"s\":\"x\"}\n");
	jqt_out_free(&o);

	/* Several ids: results in the order given; not a terminal, so no
	 * progress bar escapes on stderr. */
	id2 = SUBMIT("sleep", "{\"ms\": 100}", "--priority", "3");
	idstr(b, id2);
	CLI(&o, "wait", b, a, "--timeout", "10");
	assert_int_equal(o.code, 0);
	assert_string_equal(o.out,
			    "{\"slept_ms\":100}\n{\"a\":[1,2],\"s\":\"x\"}\n");
	assert_null(strchr(o.err, '\r'));
	jqt_out_free(&o);

	CLI(&o, "show", a);
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "succeeded"));
	assert_non_null(strstr(o.out, "echo"));
	jqt_out_free(&o);

	CLI(&o, "show", b, "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), id2);
	assert_string_equal(json_string_value(json_object_get(j, "type")),
			    "sleep");
	assert_string_equal(json_string_value(json_object_get(j, "queue")),
			    "default");
	assert_string_equal(json_string_value(json_object_get(j, "state")),
			    "succeeded");
	assert_int_equal(json_integer_value(json_object_get(j, "priority")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
	assert_int_equal(json_integer_value(
			     json_object_get(json_object_get(j, "args"), "ms")),
			 100);
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(j, "result"), "slept_ms")),
			 100);
	assert_time(j, "created", 0);
	assert_time(j, "started", 0);
	assert_time(j, "finished", 0);
	json_decref(j);
	jqt_out_free(&o);

	/* wait --json */
	CLI(&o, "wait", a, "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	jobs = json_object_get(j, "jobs");
	assert_int_equal(json_array_size(jobs), 1);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(jobs, 0), "state")),
			    "succeeded");
	json_decref(j);
	jqt_out_free(&o);

	/* submit --json, and --unique returns the live job. */
	CLI(&o, "submit", "sleep", "{\"ms\": 2000}", "--unique", "k1",
	    "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	id = (uint64_t)json_integer_value(json_object_get(j, "id"));
	assert_true(id > 0);
	json_decref(j);
	jqt_out_free(&o);
	id2 = SUBMIT("sleep", "{\"ms\": 1}", "--unique", "k1");
	assert_int_equal(id2, id);
}

static void test_fail_timeout_cancel(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	char f[24], s[24], ok[24], none[24];

	wait_workers(m, 2);
	idstr(f, SUBMIT("fail", "{\"error\": \"boom\"}", "--retries", "0"));
	CLI(&o, "wait", f);
	assert_int_equal(o.code, 4);
	assert_non_null(strstr(o.err, "boom"));
	jqt_out_free(&o);

	/* Not final in time: 3. */
	idstr(s, SUBMIT("sleep", "{\"ms\": 5000}"));
	CLI(&o, "wait", s, "--timeout", "0.3");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);

	/* Cancel it while it runs; waiting on it is exit 4. */
	CLI(&o, "cancel", s);
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "wait", s, "--timeout", "10");
	assert_int_equal(o.code, 4);
	assert_non_null(strstr(o.err, "cancel"));
	jqt_out_free(&o);
	CLI(&o, "cancel", s);
	assert_int_equal(o.code, 1); /* already final */
	jqt_out_free(&o);

	/* One failure among successes: 4, the good results still print. */
	idstr(ok, SUBMIT("echo", "[1]"));
	CLI(&o, "wait", ok, f);
	assert_int_equal(o.code, 4);
	assert_string_equal(o.out, "[1]\n");
	jqt_out_free(&o);

	/* retry and kick of the dead fail job: it runs (and dies) again. */
	CLI(&o, "retry", f);
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "wait", f);
	assert_int_equal(o.code, 4);
	jqt_out_free(&o);
	CLI(&o, "kick", f);
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "wait", f);
	assert_int_equal(o.code, 4);
	jqt_out_free(&o);
	CLI(&o, "kick", "--all", "--json");
	assert_int_equal(o.code, 0);
	{
		json_t *j = parse_json(&o);

		assert_int_equal(
		    json_integer_value(json_object_get(j, "kicked")), 1);
		json_decref(j);
	}
	jqt_out_free(&o);
	CLI(&o, "kick");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "retry", ok);
	assert_int_equal(o.code, 1); /* succeeded: nothing to retry */
	jqt_out_free(&o);

	/* A job no worker serves stays ready, and show says so. */
	idstr(none, SUBMIT("no.such.type", "{}"));
	jqt_sleep(0.2);
	CLI(&o, "show", none);
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "ready"));
	assert_non_null(strstr(o.out, "no worker serves type no.such.type"));
	jqt_out_free(&o);
	CLI(&o, "show", none, "--json");
	assert_int_equal(o.code, 0);
	{
		json_t *j = parse_json(&o);

		assert_string_equal(
		    json_string_value(json_object_get(j, "state")), "ready");
		assert_true(
		    json_is_false(json_object_get(j, "type_has_worker")));
		assert_true(json_is_null(json_object_get(j, "started")));
		json_decref(j);
	}
	jqt_out_free(&o);
	CLI(&o, "cancel", none);
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "wait", none);
	assert_int_equal(o.code, 4);
	jqt_out_free(&o);
}

static void test_bad_input(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;

	CLI(&o, "submit", "echo", "{\"a\": ");
	assert_int_equal(o.code, 2);
	assert_non_null(strstr(o.err, "not JSON"));
	jqt_out_free(&o);
	CLI(&o, "submit", "echo", "hello");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "submit", "echo", "{}", "--priority", "high");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "submit", "echo", "{}", "--after", "x,y");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "submit", "echo", "{}", "--after", "987654");
	assert_int_equal(o.code, 1);
	jqt_out_free(&o);

	CLI(&o, "show", "987654");
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "jobq: no job 987654"));
	jqt_out_free(&o);
	CLI(&o, "wait", "987654");
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "no job 987654"));
	jqt_out_free(&o);
	CLI(&o, "cancel", "987654");
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "no job 987654"));
	jqt_out_free(&o);
	CLI(&o, "retry", "987654");
	assert_int_equal(o.code, 1);
	jqt_out_free(&o);
	CLI(&o, "show", "abc");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "ls", "--state", "sleeping");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "run");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
}

static void test_ls_workers(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	uint64_t ids[4];
	char a[24];
	json_t *j, *arr;

	wait_workers(m, 2);
	for (int i = 0; i < 3; i++)
		ids[i] = SUBMIT("echo", "{}");
	ids[3] = SUBMIT("nobody", "{}", "--queue", "other");
	idstr(a, ids[2]);
	CLI(&o, "wait", a);
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);

	CLI(&o, "ls", "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	arr = json_object_get(j, "jobs");
	assert_int_equal(json_array_size(arr), 4);
	/* Newest first. */
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(json_integer_value(json_object_get(
				     json_array_get(arr, i), "id")),
				 ids[3 - i]);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(arr, 0), "queue")),
	    "other");
	json_decref(j);
	jqt_out_free(&o);

	CLI(&o, "ls", "--json", "--type", "nobody");
	j = parse_json(&o);
	assert_int_equal(json_array_size(json_object_get(j, "jobs")), 1);
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "ls", "--json", "--state", "ready");
	j = parse_json(&o);
	assert_int_equal(json_array_size(json_object_get(j, "jobs")), 1);
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "ls", "--json", "--limit", "2");
	j = parse_json(&o);
	assert_int_equal(json_array_size(json_object_get(j, "jobs")), 2);
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "ls");
	assert_int_equal(o.code, 0);
	assert_int_equal(jqt_count_lines(o.out), 5); /* header + 4 */
	jqt_out_free(&o);

	CLI(&o, "workers", "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	arr = json_object_get(j, "workers");
	assert_int_equal(json_array_size(arr), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *w = json_array_get(arr, i);

		assert_true(json_integer_value(json_object_get(w, "pid")) > 0);
		assert_true(json_is_array(json_object_get(w, "types")));
		assert_non_null(json_object_get(w, "running"));
		assert_non_null(json_object_get(w, "done"));
		assert_non_null(json_object_get(w, "failed"));
	}
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "workers");
	assert_int_equal(o.code, 0);
	assert_int_equal(jqt_count_lines(o.out), 3);
	jqt_out_free(&o);
}

static void test_pause_parallel(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	char a[24], b[24], c[24];
	json_t *ja, *jb;

	wait_workers(m, 2);
	CLI(&o, "pause", "pq");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	idstr(a, SUBMIT("echo", "{}", "--queue", "pq"));
	CLI(&o, "wait", a, "--timeout", "0.5");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);
	CLI(&o, "resume", "pq");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "wait", a, "--timeout", "10");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);

	/* One at a time although two workers are idle. */
	CLI(&o, "queue", "set", "one", "--parallel", "1");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	idstr(b, SUBMIT("sleep", "{\"ms\": 300}", "--queue", "one"));
	idstr(c, SUBMIT("sleep", "{\"ms\": 300}", "--queue", "one"));
	CLI(&o, "wait", b, c, "--timeout", "10");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "show", b, "--json");
	ja = parse_json(&o);
	jqt_out_free(&o);
	CLI(&o, "show", c, "--json");
	jb = parse_json(&o);
	jqt_out_free(&o);
	/* Same-length strings compare as times. */
	assert_true(
	    strcmp(json_string_value(json_object_get(jb, "started")),
		   json_string_value(json_object_get(ja, "finished"))) >= 0);
	json_decref(ja);
	json_decref(jb);
	CLI(&o, "queue", "set", "one", "--parallel", "x");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
}

/* A string member of a `jobq show ID --json`, copied. */
static char *show_field(struct jqt_mgr *m, const char *id, const char *key)
{
	struct jqt_out o;
	json_t *j, *v;
	char *r;

	CLI(&o, "show", id, "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	v = json_object_get(j, key);
	r = malloc(64);
	assert_non_null(r);
	if (json_is_string(v))
		snprintf(r, 64, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(r, 64, "%lld", (long long)json_integer_value(v));
	else
		snprintf(r, 64, "%s", json_is_null(v) ? "null" : "other");
	json_decref(j);
	jqt_out_free(&o);
	return r;
}

#define ASSERT_FIELD(id, key, want)                                            \
	do {                                                                   \
		char *v_ = show_field(m, (id), (key));                         \
		if (strcmp(v_, (want)))                                        \
			print_error("job %s: %s is %s, expected %s\n", (id),   \
				    (key), v_, (want));                        \
		assert_string_equal(v_, (want));                               \
		free(v_);                                                      \
	} while (0)

static void test_submit_options(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	char d[24], a[24], b[24], r[24], after[48];

	wait_workers(m, 2);
	idstr(d, SUBMIT("echo", "{}", "--delay", "0.5"));
	ASSERT_FIELD(d, "state", "delayed");
	{
		char *run_at = show_field(m, d, "run_at");

		assert_int_equal(strlen(run_at), 27);
		free(run_at);
	}
	idstr(a, SUBMIT("sleep", "{\"ms\": 300}"));
	snprintf(after, sizeof(after), "%s,%s", a, d);
	idstr(b, SUBMIT("echo", "\"after\"", "--after", after));
	ASSERT_FIELD(b, "state", "waiting");
	CLI(&o, "wait", b, "--timeout", "10");
	assert_int_equal(o.code, 0);
	assert_string_equal(o.out, "\"after\"\n");
	jqt_out_free(&o);
	ASSERT_FIELD(d, "state", "succeeded");
	ASSERT_FIELD(a, "state", "succeeded");

	idstr(r, SUBMIT("nobody", "{}", "--retries", "2", "--timeout", "7.5",
			"--queue", "elsewhere", "--priority", "-4"));
	ASSERT_FIELD(r, "max_attempts", "3");
	ASSERT_FIELD(r, "priority", "-4");
	ASSERT_FIELD(r, "queue", "elsewhere");
	ASSERT_FIELD(r, "state", "ready");
	CLI(&o, "submit", "echo", "{}", "--timeout", "0");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "submit", "echo", "{}", "--retries", "-1");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "submit", "echo", "{}", "--nowait");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
}

/*
 * `jobq wait` for many jobs with stderr on a terminal draws a progress bar
 * ("[#####.....] 1/3", redrawn after a carriage return) there.
 */
static void test_wait_progress_bar(void **state)
{
	struct jqt_mgr *m = *state;
	char ids[3][24], buf[8192];
	size_t len = 0;
	int pty, st;
	double end;
	pid_t pid;

	wait_workers(m, 2);
	for (int i = 0; i < 3; i++)
		idstr(ids[i], SUBMIT("sleep", i == 0   ? "{\"ms\": 300}"
					      : i == 1 ? "{\"ms\": 600}"
						       : "{\"ms\": 900}"));
	pty = posix_openpt(O_RDWR | O_NOCTTY);
	assert_true(pty >= 0);
	assert_int_equal(grantpt(pty), 0);
	assert_int_equal(unlockpt(pty), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int tty = open(ptsname(pty), O_RDWR | O_NOCTTY);
		int null = open("/dev/null", O_WRONLY);

		if (tty < 0 || null < 0)
			_exit(126);
		dup2(null, STDOUT_FILENO);
		dup2(tty, STDERR_FILENO);
		execl(jqt_jobq_path(), "jobq", "--dir", m->dir, "wait", ids[0],
		      ids[1], ids[2], "--timeout", "20", (char *)NULL);
		_exit(127);
	}
	jqt_track_pid(pid);
	/* Read until the child is gone and the terminal has nothing more. */
	end = jqt_now() + 25;
	for (;;) {
		struct pollfd p = {.fd = pty, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) > 0 && len < sizeof(buf) - 1) {
			n = read(pty, buf + len, sizeof(buf) - 1 - len);
			if (n > 0) {
				len += (size_t)n;
				continue;
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				break; /* EIO: the other side is closed */
		}
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		assert_true(jqt_now() < end);
	}
	jqt_untrack_pid(pid);
	close(pty);
	buf[len] = '\0';
	assert_non_null(strchr(buf, '\r'));
	assert_non_null(strstr(buf, "/3"));
	assert_non_null(strstr(buf, "[#"));
}

/* The job filters: ls pages through them, cancel and retry take them in
 * bulk, and show tells the last error of a job with a retry pending. */
static void test_filters_and_bulk(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	uint64_t failing;
	char fid[24];
	json_t *j;

	/* Nobody serves "nobody": these stay ready. */
	for (int i = 0; i < 5; i++) {
		CLI(&o, "submit", "nobody", "{}", "--queue", "qa");
		jqt_out_free(&o);
	}
	CLI(&o, "submit", "nobody", "{}", "--queue", "qb");
	jqt_out_free(&o);

	CLI(&o, "ls", "--queue", "qa", "--limit", "2", "--json");
	j = parse_json(&o);
	assert_int_equal(json_array_size(json_object_get(j, "jobs")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 5);
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "ls", "--queue", "qa", "--limit", "2", "--offset", "4");
	assert_int_equal(o.code, 0);
	assert_int_equal(jqt_count_lines(o.out), 2); /* heading + 1 */
	jqt_out_free(&o);
	CLI(&o, "ls", "--queue", "qa", "--limit", "3");
	assert_non_null(strstr(o.err, "2 more match; --offset 3"));
	jqt_out_free(&o);
	CLI(&o, "ls", "--older", "3600", "--quiet");
	assert_int_equal(jqt_count_lines(o.out), 0);
	jqt_out_free(&o);
	CLI(&o, "ls", "--newer", "3600", "--type", "nobody", "--quiet");
	assert_int_equal(jqt_count_lines(o.out), 6);
	jqt_out_free(&o);

	/* Bulk: filters needed, not mixed with ids, a state they refuse. */
	CLI(&o, "cancel");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "cancel", "1", "--queue", "qa");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "cancel", "--state", "succeeded");
	assert_int_equal(o.code, 2);
	jqt_out_free(&o);
	CLI(&o, "cancel", "--queue", "qa");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "cancel: 5 jobs"));
	jqt_out_free(&o);
	CLI(&o, "ls", "--state", "cancelled", "--quiet");
	assert_int_equal(jqt_count_lines(o.out), 5);
	jqt_out_free(&o);
	CLI(&o, "ls", "--queue", "qb", "--state", "ready", "--quiet");
	assert_int_equal(jqt_count_lines(o.out), 1); /* untouched */
	jqt_out_free(&o);
	CLI(&o, "retry", "--state", "cancelled", "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	assert_int_equal(json_array_size(json_object_get(j, "jobs")), 5);
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "ls", "--queue", "qa", "--state", "ready", "--quiet");
	assert_int_equal(jqt_count_lines(o.out), 5);
	jqt_out_free(&o);

	/* A failed attempt with a retry pending shows its error. */
	wait_workers(m, 1);
	failing = SUBMIT("fail", "{\"error\": \"disk on fire\"}");
	idstr(fid, failing);
	for (double end = jqt_now() + 10;; jqt_sleep(0.05)) {
		CLI(&o, "show", fid, "--json");
		j = parse_json(&o);
		jqt_out_free(&o);
		if (json_object_get(j, "last_error"))
			break;
		json_decref(j);
		assert_true(jqt_now() < end);
	}
	assert_string_equal(json_string_value(json_object_get(j, "last_error")),
			    "disk on fire");
	json_decref(j);
	CLI(&o, "show", fid);
	assert_non_null(strstr(o.out, "last error disk on fire"));
	jqt_out_free(&o);
}

/* `jobq worker` serves jobs from a shell and stops on SIGTERM. */
static int run_cli_worker(int idx, void *arg)
{
	const char *argv[] = {jqt_jobq_path(),
			      "--dir",
			      jqt_cur->dir,
			      "worker",
			      "--types",
			      "echo,sleep,file.checksum",
			      NULL};

	execv(argv[0], (char *const *)argv);
	return 127;
}

static void test_cli_worker(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	char a[24];
	pid_t w;
	int st;

	w = jqt_fork(run_cli_worker, 0, NULL);
	assert_true(w > 0);
	idstr(a, SUBMIT("echo", "\"hi\""));
	CLI(&o, "wait", a, "--timeout", "10");
	assert_int_equal(o.code, 0);
	assert_string_equal(o.out, "\"hi\"\n");
	jqt_out_free(&o);
	CLI(&o, "workers", "--json");
	assert_non_null(strstr(o.out, "sleep"));
	assert_non_null(strstr(o.out, "file.checksum"));
	assert_null(strstr(o.out, "\"exec\"")); /* not named */
	jqt_out_free(&o);
	/* An IO type, served through the engine by the CLI's worker. */
	idstr(a, SUBMIT("file.checksum",
			"{\"path\": \"/dev/null\", \"algo\": \"sha256\"}"));
	CLI(&o, "wait", a, "--timeout", "10");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "e3b0c44298fc1c149afbf4c8996fb924"));
	jqt_out_free(&o);
	/* A name that is no built-in type is a usage error. */
	CLI(&o, "worker", "--types", "echo,nosuch");
	assert_int_equal(o.code, 2);
	assert_non_null(strstr(o.err, "nosuch"));
	jqt_out_free(&o);
	kill(w, SIGTERM);
	assert_rc(jqt_wait_pid(w, 10, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)
#define W(f) cmocka_unit_test_setup_teardown(f, jqt_setup_workers, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    W(test_submit_wait_show),  W(test_fail_timeout_cancel),
	    T(test_bad_input),	       W(test_ls_workers),
	    W(test_pause_parallel),    W(test_submit_options),
	    W(test_wait_progress_bar), T(test_cli_worker),
	    W(test_filters_and_bulk),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
