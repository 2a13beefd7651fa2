/* SPDX-License-Identifier: MIT */
/*
 * test_cli.c - the command-line contract (the team's CLI.md), checked
 * by running the real jobq and jobqd programs: output, exit codes, --json,
 * option placement, shutdown, a second manager refused, --daemon, --help.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
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

/* stdout must be one JSON object; returns it (json_decref() it). */
static json_t *parse_json(const struct jqt_out *o)
{
	json_t *j = jqt_json_object(o);

	assert_non_null(j);
	return j;
}

/* A bare value, with or without one trailing newline. */
static void assert_bare(const struct jqt_out *o, const char *want)
{
	size_t n = strlen(want);

	if (!(o->out_len == n || (o->out_len == n + 1 && o->out[n] == '\n')) ||
	    memcmp(o->out, want, n))
		print_error("stdout \"%s\", expected \"%s\"\n", o->out, want);
	assert_true(o->out_len == n ||
		    (o->out_len == n + 1 && o->out[n] == '\n'));
	assert_memory_equal(o->out, want, n);
}

static void test_ping(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	json_t *j;

	CLI(&o, "ping");
	assert_int_equal(o.code, 0);
	assert_true(o.out_len > 0);
	jqt_out_free(&o);
	CLI(&o, "ping", "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	json_decref(j);
	jqt_out_free(&o);
	/* Options before the command work as well as after it. */
	CLI(&o, "--json", "ping");
	assert_int_equal(o.code, 0);
	json_decref(parse_json(&o));
	jqt_out_free(&o);
}

static void test_put_get(void **state)
{
	struct jqt_mgr *m = *state;
	size_t n = 100000 + 256;
	uint8_t *data = malloc(n);
	struct jqt_out o;

	assert_non_null(data);
	for (int i = 0; i < 256; i++)
		data[i] = (uint8_t)i; /* NUL, newlines, high bytes */
	jqt_fill(data + 256, n - 256, 3);

	CLI_IN(&o, data, n, "put", "bin");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "put", "bin", "hello");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "put", "bin", "");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);

	CLI(&o, "get", "bin");
	assert_int_equal(o.code, 0);
	assert_int_equal(o.out_len, n);
	assert_memory_equal(o.out, data, n);
	jqt_out_free(&o);
	CLI(&o, "get", "bin");
	assert_int_equal(o.code, 0);
	assert_int_equal(o.out_len, 5);
	assert_memory_equal(o.out, "hello", 5);
	jqt_out_free(&o);
	CLI(&o, "get", "bin", "--nowait");
	assert_int_equal(o.code, 0);
	assert_int_equal(o.out_len, 0); /* the empty object */
	jqt_out_free(&o);

	CLI(&o, "get", "bin", "--nowait");
	assert_int_equal(o.code, 3);
	assert_int_equal(o.out_len, 0);
	jqt_out_free(&o);
	CLI(&o, "get", "bin", "--timeout", "0.2");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);

	/* Interoperates with the library both ways. */
	{
		jobq_t *q;
		jobq_obj_t obj = {0};

		assert_rc(jobq_open(&q, m->dir), 0);
		assert_rc(jobq_put(q, "bin", JOBQ_T_BYTES, data, 256, 0), 0);
		CLI(&o, "get", "bin");
		assert_int_equal(o.code, 0);
		assert_int_equal(o.out_len, 256);
		assert_memory_equal(o.out, data, 256);
		jqt_out_free(&o);
		CLI_IN(&o, data, 1000, "put", "bin");
		assert_int_equal(o.code, 0);
		jqt_out_free(&o);
		assert_rc(jobq_get(q, "bin", &obj, 5), 0);
		assert_int_equal(obj.len, 1000);
		assert_memory_equal(obj.data, data, 1000);
		jobq_obj_free(&obj);
		jobq_close(q);
	}
	free(data);
}

static void test_queues_json(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	json_t *j, *list, *it;
	size_t i;
	int found = 0;

	CLI(&o, "put", "cq", "one");
	jqt_out_free(&o);
	CLI(&o, "put", "cq", "three");
	jqt_out_free(&o);
	CLI(&o, "queues");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "cq"));
	jqt_out_free(&o);

	/* Options after the arguments, --dir among them. */
	{
		const char *argv[] = {jqt_jobq_path(), "queues", "--json",
				      "--dir",	       m->dir,	 NULL};

		assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 15, &o), 0);
	}
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	list = json_object_get(j, "queues");
	assert_true(json_is_array(list));
	json_array_foreach(list, i, it)
	{
		json_t *name = json_object_get(it, "name");

		if (json_is_string(name) &&
		    !strcmp(json_string_value(name), "cq")) {
			assert_int_equal(
			    json_integer_value(json_object_get(it, "depth")),
			    2);
			assert_int_equal(
			    json_integer_value(json_object_get(it, "bytes")),
			    8);
			found = 1;
		}
	}
	assert_true(found);
	json_decref(j);
	jqt_out_free(&o);
}

static void test_kv(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	json_t *j, *keys;

	CLI(&o, "kv", "set", "color", "blue");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "kv", "get", "color");
	assert_int_equal(o.code, 0);
	assert_bare(&o, "blue");
	jqt_out_free(&o);
	CLI(&o, "kv", "get", "nope");
	assert_int_equal(o.code, 3);
	assert_int_equal(o.out_len, 0);
	jqt_out_free(&o);

	CLI(&o, "kv", "incr", "hits");
	assert_int_equal(o.code, 0);
	assert_bare(&o, "1");
	jqt_out_free(&o);
	CLI(&o, "kv", "incr", "hits", "41");
	assert_int_equal(o.code, 0);
	assert_bare(&o, "42");
	jqt_out_free(&o);
	CLI(&o, "kv", "incr", "hits", "-2");
	assert_int_equal(o.code, 0);
	assert_bare(&o, "40");
	jqt_out_free(&o);
	CLI(&o, "kv", "incr", "color");
	assert_int_equal(o.code, 1); /* not a number: an error, not usage */
	assert_int_equal(jqt_count_lines(o.err), 1);
	jqt_out_free(&o);

	CLI(&o, "kv", "set", "app/a", "1");
	jqt_out_free(&o);
	CLI(&o, "kv", "set", "app/b", "2");
	jqt_out_free(&o);
	CLI(&o, "kv", "ls", "app/");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "app/a"));
	assert_non_null(strstr(o.out, "app/b"));
	assert_null(strstr(o.out, "color"));
	jqt_out_free(&o);
	CLI(&o, "kv", "ls", "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	keys = json_object_get(j, "keys");
	assert_true(json_is_array(keys));
	assert_int_equal(json_array_size(keys), 4);
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "kv", "get", "color", "--json");
	assert_int_equal(o.code, 0);
	json_decref(parse_json(&o));
	jqt_out_free(&o);
	CLI(&o, "kv", "incr", "hits", "0", "--json");
	assert_int_equal(o.code, 0);
	json_decref(parse_json(&o));
	jqt_out_free(&o);

	CLI(&o, "kv", "del", "color");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "kv", "get", "color");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);

	/* Options after the arguments: the global --dir last. */
	{
		const char *argv[] = {jqt_jobq_path(), "kv",   "get", "hits",
				      "--dir",	       m->dir, NULL};

		assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 15, &o), 0);
		assert_int_equal(o.code, 0);
		assert_bare(&o, "40");
		jqt_out_free(&o);
	}
	/* The library sees what the CLI wrote. */
	{
		jobq_t *q;
		char buf[8] = {0};

		assert_rc(jobq_open(&q, m->dir), 0);
		assert_rc(jobq_kv_get_buf(q, "app/b", buf, sizeof(buf), NULL),
			  1);
		assert_string_equal(buf, "2");
		jobq_close(q);
	}
}

static void test_lock(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	json_t *j;
	jobq_t *q;

	CLI(&o, "lock", "L", "--", "sh", "-c", "exit 7");
	assert_int_equal(o.code, 7);
	jqt_out_free(&o);
	CLI(&o, "lock", "L", "--", "sh", "-c", "echo inside");
	assert_int_equal(o.code, 0);
	assert_string_equal(o.out, "inside\n");
	jqt_out_free(&o);
	/* Arguments after -- belong to the command, options included. */
	CLI(&o, "lock", "L", "--", "echo", "--json", "--dir");
	assert_int_equal(o.code, 0);
	assert_string_equal(o.out, "--json --dir\n");
	jqt_out_free(&o);

	/* Held elsewhere: timed out, exit 3, the command never ran. */
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_lock_acquire(q, "L", 0), 0);
	CLI(&o, "lock", "L", "--timeout", "0.2", "--", "sh", "-c", "echo ran");
	assert_int_equal(o.code, 3);
	assert_null(strstr(o.out, "ran"));
	jqt_out_free(&o);

	CLI(&o, "locks", "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	assert_true(json_is_array(json_object_get(j, "locks")));
	assert_int_equal(json_array_size(json_object_get(j, "locks")), 1);
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "locks");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "L"));
	jqt_out_free(&o);
	assert_rc(jobq_lock_release(q, "L"), 0);
	jobq_close(q);
	/* And the CLI released it after its command: free now. */
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_lock_acquire(q, "L", 0), 0);
	jobq_close(q);
}

static void test_stats(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	json_t *j;

	CLI(&o, "put", "sq", "x");
	jqt_out_free(&o);
	CLI(&o, "stats");
	assert_int_equal(o.code, 0);
	assert_true(o.out_len > 0);
	jqt_out_free(&o);
	CLI(&o, "stats", "--json");
	assert_int_equal(o.code, 0);
	j = parse_json(&o);
	json_decref(j);
	jqt_out_free(&o);
	CLI(&o, "--json", "queues");
	assert_int_equal(o.code, 0);
	json_decref(parse_json(&o));
	jqt_out_free(&o);
}

static void test_shutdown(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;

	CLI(&o, "shutdown");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	assert_int_equal(jqt_mgr_wait_exit(m, 10), 0);
	assert_true(jqt_status_ok(m->exit_status));
	CLI(&o, "ping");
	assert_int_equal(o.code, 1);
	jqt_out_free(&o);
}

static void test_second_manager(void **state)
{
	struct jqt_mgr *m = *state;
	const char *argv[] = {jqt_jobqd_path(), "--dir", m->dir, NULL};
	char pid[24];
	struct jqt_out o;

	assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 15, &o), 0);
	assert_true(o.code != 0 && o.code != -1);
	snprintf(pid, sizeof(pid), "%d", (int)m->pid);
	if (!strstr(o.err, pid))
		print_error("refusal does not name pid %s: %s\n", pid, o.err);
	assert_non_null(strstr(o.err, pid));
	jqt_out_free(&o);
	/* The first one is unharmed. */
	assert_true(jqt_mgr_alive(m));
	CLI(&o, "ping");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
}

static void test_daemon(void **state)
{
	char top[PATH_MAX], dir[PATH_MAX + 8], pidfile[PATH_MAX + 32];
	const char *argv[] = {jqt_jobqd_path(), "--dir", dir, "--daemon", NULL};
	struct jqt_out o;
	FILE *f;
	int pid = 0;
	double end;
	jobq_t *q;

	assert_int_equal(jqt_tmpdir(top, sizeof(top)), 0);
	snprintf(dir, sizeof(dir), "%s/d", top);
	snprintf(pidfile, sizeof(pidfile), "%s/%s", dir, JOBQ_PID_NAME);

	assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 20, &o), 0);
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	/* Returned only once the manager accepts, with the pid written. */
	f = fopen(pidfile, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &pid), 1);
	fclose(f);
	assert_true(pid > 1);
	jqt_track_pid(pid);
	assert_int_equal(kill(pid, 0), 0);
	assert_rc(jobq_open(&q, dir), 0);
	{
		struct jobq_stats st;

		assert_rc(jobq_stats(q, &st), 0);
		assert_int_equal(st.manager_pid, pid);
	}
	jobq_close(q);

	{
		const char *sd[] = {jqt_jobq_path(), "shutdown", "--dir", dir,
				    NULL};

		assert_int_equal(jqt_run(sd[0], sd, NULL, 0, 15, &o), 0);
		assert_int_equal(o.code, 0);
		jqt_out_free(&o);
	}
	end = jqt_now() + 10;
	while (kill(pid, 0) == 0 && jqt_now() < end)
		jqt_sleep(0.02);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	jqt_untrack_pid(pid);
	jqt_rmtree(top);
}

static void test_help(void **state)
{
	static const char *const cmds[][3] = {
	    {"--help"},
	    {"ping", "--help"},
	    {"put", "--help"},
	    {"get", "--help"},
	    {"queues", "--help"},
	    {"kv", "--help"},
	    {"kv", "set", "--help"},
	    {"kv", "get", "--help"},
	    {"kv", "incr", "--help"},
	    {"kv", "del", "--help"},
	    {"kv", "ls", "--help"},
	    {"help"},
	    {"lock", "--help"},
	    {"locks", "--help"},
	    {"stats", "--help"},
	    {"shutdown", "--help"},
	    {"queue", "set", "--help"},
	};
	struct jqt_out o;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *argv[5] = {jqt_jobq_path()};
		int n = 1;

		for (int k = 0; k < 3 && cmds[i][k]; k++)
			argv[n++] = cmds[i][k];
		argv[n] = NULL;
		/* No manager needed for help. */
		assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 15, &o), 0);
		if (o.code != 0)
			print_error("jobq %s %s: exit %d\n", argv[1],
				    argv[2] ? argv[2] : "", o.code);
		assert_int_equal(o.code, 0);
		assert_true(o.out_len + o.err_len > 0);
		jqt_out_free(&o);
	}
	{
		const char *argv[] = {jqt_jobqd_path(), "--help", NULL};

		assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 15, &o), 0);
		assert_int_equal(o.code, 0);
		assert_non_null(strstr(o.out, "--dir"));
		jqt_out_free(&o);
	}
}

static void test_queue_set(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;

	CLI(&o, "queue", "set", "qs", "--max-depth", "1");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "put", "qs", "a");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	/* Full: with --nowait that is "nothing done", exit 3. */
	CLI(&o, "put", "qs", "b", "--nowait");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);
	CLI(&o, "put", "qs", "b", "--timeout", "0.2");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);
	CLI(&o, "get", "qs");
	assert_int_equal(o.code, 0);
	assert_string_equal(o.out, "a");
	jqt_out_free(&o);
	CLI(&o, "get", "qs", "--nowait");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);
}

/* The instance directory is 0700 and everything in it 0600. */
static void test_dir_modes(void **state)
{
	struct jqt_mgr *m = *state;
	char path[PATH_MAX + 300];
	struct dirent *d;
	struct stat st;
	DIR *dp;
	int files = 0;

	assert_int_equal(stat(m->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	dp = opendir(m->dir);
	assert_non_null(dp);
	while ((d = readdir(dp))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", m->dir, d->d_name);
		assert_int_equal(lstat(path, &st), 0);
		if ((st.st_mode & 07777) & ~0600)
			print_error("%s has mode %o\n", path,
				    st.st_mode & 07777);
		assert_int_equal((st.st_mode & 07777) & ~0600, 0);
		files++;
	}
	closedir(dp);
	assert_true(files >= 2); /* the socket and the pid file at least */
}

/* A directory that others may write to is refused. */
static void test_open_dir_refused(void **state)
{
	char top[PATH_MAX], dir[PATH_MAX + 8];
	const char *argv[] = {jqt_jobqd_path(), "--dir", dir, NULL};
	struct jqt_out o;

	assert_int_equal(jqt_tmpdir(top, sizeof(top)), 0);
	snprintf(dir, sizeof(dir), "%s/open", top);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 10, &o), 0);
	if (o.code == 0 || o.code == -1)
		print_error("jobqd on a mode 0777 directory: exit %d\n",
			    o.code);
	assert_true(o.code != 0 && o.code != -1);
	assert_non_null(strstr(o.err, dir));
	jqt_out_free(&o);
	jqt_rmtree(top);
}

/* A manager killed with SIGKILL leaves its socket and pid file; the next
 * one on the same directory cleans them up and starts. */
static void test_restart_after_kill(void **state)
{
	struct jqt_mgr *m = *state;
	char pidfile[PATH_MAX + 32];
	struct jqt_out o;
	FILE *f;
	int pid = 0;

	kill(-m->pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(m, 10), 0);
	assert_int_equal(jqt_mgr_restart(m, NULL), 0);
	CLI(&o, "ping");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	snprintf(pidfile, sizeof(pidfile), "%s/%s", m->dir, JOBQ_PID_NAME);
	f = fopen(pidfile, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &pid), 1);
	fclose(f);
	assert_int_equal(pid, m->pid);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

/* After `jobq shutdown` the manager is gone by design; the test itself
 * checked how it exited. */
static int teardown_stopped(void **state)
{
	jqt_mgr_stop(*state);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_ping),
	    T(test_put_get),
	    T(test_queues_json),
	    T(test_kv),
	    T(test_lock),
	    T(test_stats),
	    cmocka_unit_test_setup_teardown(test_shutdown, jqt_setup,
					    teardown_stopped),
	    T(test_second_manager),
	    cmocka_unit_test(test_daemon),
	    cmocka_unit_test(test_help),
	    T(test_queue_set),
	    T(test_dir_modes),
	    cmocka_unit_test(test_open_dir_refused),
	    T(test_restart_after_kill),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
