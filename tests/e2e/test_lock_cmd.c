/* SPDX-License-Identifier: MIT */
/*
 * test_lock_cmd.c - `jobq lock NAME -- CMD` keeps mutual exclusion when
 * jobq dies: after kill -9 of jobq, CMD runs no more of its code by the
 * time the lock can be taken by anyone else; after SIGTERM of jobq, CMD
 * and what it started in the background are gone before the lock is.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

/* Starts `jobq --dir DIR lock L -- ARGV...` without waiting for it. */
static pid_t start_lock_cmd(const struct jqt_mgr *m, const char *const *cmd)
{
	const char *argv[32];
	int n = 0;
	pid_t pid;

	argv[n++] = jqt_jobq_path();
	argv[n++] = "--dir";
	argv[n++] = m->dir;
	argv[n++] = "lock";
	argv[n++] = "L";
	argv[n++] = "--";
	while (*cmd && n < 31)
		argv[n++] = *cmd++;
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		jqt_track_pid(pid);
	return pid;
}

/* The name (comm) of process @pid, or "" when it is gone. */
static void comm_of(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/*
 * Whether @pid can run no more of its code: gone, a zombie, or with a
 * fatal signal pending (SIGKILL, or SIGTERM for a process that, like the
 * sleep these tests run, does not handle it), which it dies of before it
 * returns to user space.
 */
static int doomed(pid_t pid)
{
	char path[64], line[256];
	int dead = 1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long pend;

		if (!strncmp(line, "State:", 6) && !strchr(line, 'Z') &&
		    !strchr(line, 'X'))
			dead = 0;
		/* A fatal signal already sent and not yet acted on (the
		 * process has not run since): as good as dead. */
		if ((sscanf(line, "ShdPnd: %llx", &pend) == 1 ||
		     sscanf(line, "SigPnd: %llx", &pend) == 1) &&
		    (pend &
		     ((1ull << (SIGKILL - 1)) | (1ull << (SIGTERM - 1)))))
			dead = 2;
	}
	fclose(f);
	return dead;
}

/* Waits (10 s at most) for jobq @pid to hold L and run a child named
 * @name; returns the child's pid, or -1. */
static pid_t wait_cmd(jobq_t *q, pid_t pid, const char *name)
{
	double end = jqt_now() + 10;

	while (jqt_now() < end) {
		pid_t kids[8];
		int n = jqt_proc_children(pid, kids, NULL, 8);

		for (int i = 0; i < n && i < 8; i++) {
			char comm[32];

			comm_of(kids[i], comm, sizeof(comm));
			if (!strcmp(comm, name))
				return kids[i];
		}
		jqt_sleep(0.01);
	}
	return -1;
}

/* Finding 5: kill -9 of jobq; by the time the next holder has the lock,
 * the command is dead or dying. */
static void kill9_takes_the_command(void **state)
{
	struct jqt_mgr *m = *state;
	const char *cmd[] = {"sleep", "1000", NULL};
	jobq_t *q = NULL;
	pid_t jobq, child;
	int st;

	assert_rc(jobq_open(&q, m->dir), 0);
	jobq = start_lock_cmd(m, cmd);
	assert_true(jobq > 0);
	child = wait_cmd(q, jobq, "sleep");
	assert_true(child > 0);
	assert_rc(jobq_lock_acquire(q, "L", 0), -EAGAIN);

	kill(jobq, SIGKILL);
	assert_rc(jobq_lock_acquire(q, "L", 10), 0);
	assert_true(doomed(child));
	assert_int_equal(jqt_wait_pid(jobq, 10, &st), 0);
	/* We are its subreaper: it comes to us once jobq is gone. */
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_rc(jobq_lock_release(q, "L"), 0);
	jobq_close(q);
}

/* SIGTERM of jobq: the command's whole group (a background child too) is
 * gone before the lock is given to anyone else. */
static void sigterm_takes_the_group(void **state)
{
	struct jqt_mgr *m = *state;
	char path[PATH_MAX + 16], script[3 * PATH_MAX + 128];
	const char *cmd[] = {"sh", "-c", script, NULL};
	jobq_t *q = NULL;
	pid_t jobq, bg = 0;
	double end;
	FILE *f;
	int st;

	snprintf(path, sizeof(path), "%s/bg.pid", m->top);
	snprintf(script, sizeof(script),
		 "sleep 1000 & echo $! > %s.tmp && mv %s.tmp %s; wait", path,
		 path, path);
	assert_rc(jobq_open(&q, m->dir), 0);
	jobq = start_lock_cmd(m, cmd);
	assert_true(jobq > 0);
	end = jqt_now() + 10;
	while (!(f = fopen(path, "r")) && jqt_now() < end)
		jqt_sleep(0.01);
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &bg), 1);
	fclose(f);
	assert_true(bg > 0);

	kill(jobq, SIGTERM);
	assert_rc(jobq_lock_acquire(q, "L", 10), 0);
	assert_true(doomed(bg));
	assert_int_equal(jqt_wait_pid(jobq, 10, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGTERM);
	assert_rc(jobq_lock_release(q, "L"), 0);
	jobq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(kill9_takes_the_command, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(sigterm_takes_the_group, jqt_setup,
					    jqt_teardown),
	};

	jqt_init_cli();
	/* Orphans of the jobq we kill come to us, to be reaped and
	 * checked, not to init. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
