/* SPDX-License-Identifier: MIT */
/*
 * test_jobs_shutdown.c - stopping a manager that has workers.
 *
 * On SIGTERM every worker takes no more jobs and its running ones finish:
 * a daemon worker's within the grace period (then it is ended, its job
 * unfinished), a non-daemon worker's however long they take; a client
 * waiting on a job that finishes meanwhile gets its result. A second
 * SIGTERM stops at once. The manager's own workers (--workers 2) are
 * stopped and
 * reaped: this test process makes itself a child subreaper, so whatever
 * the manager leaves behind (a running or a zombie child) is re-parented
 * here and seen in /proc. When the manager is SIGKILLed, its workers die
 * with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

struct shared {
	_Atomic int started[2];
	_Atomic int finished[2];
};

static struct shared *sh;

/*
 * Runs, then succeeds; idx 0 non-daemon (1.5 s), 1 daemon (5 s, so that
 * the manager is long gone by the time it could finish).
 */
static int h_slow(jobq_job_t *job, void *arg)
{
	int idx = (int)(intptr_t)arg;

	atomic_fetch_add(&sh->started[idx], 1);
	jqt_sleep(idx ? 5 : 1.5);
	atomic_fetch_add(&sh->finished[idx], 1);
	return jobq_job_succeed(job, JOBQ_T_TEXT, "done", 4);
}

static int worker_main(int idx, void *arg)
{
	struct jobq_worker_opts o = {.concurrency = 1, .daemon = idx == 1};
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_worker_t *w;
	int rc;

	CK_RC(jobq_worker_new(&w, q, &o), 0);
	CK_RC(jobq_worker_handle(w, idx ? "slow-d" : "slow", h_slow,
				 (void *)(intptr_t)idx),
	      0);
	rc = jobq_worker_run(w);
	jobq_worker_free(w);
	jobq_close(q);
	/* A graceful stop or the manager gone: both end the worker. */
	return rc == 0 || rc == JOBQ_ECLOSED ? 0 : 1;
}

/* Pids of the manager's own workers. */
static int supervised(jobq_t *q, pid_t *pids, int max)
{
	struct jobq_worker_info *ws = NULL;
	size_t n = 0;
	int k = 0;

	assert_rc(jobq_workers(q, &ws, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (ws[i].supervised && k < max)
			pids[k++] = ws[i].pid;
	free(ws);
	return k;
}

static int wait_supervised(jobq_t *q, pid_t *pids, int n)
{
	double end = jqt_now() + 10;
	int k;

	while ((k = supervised(q, pids, n)) < n && jqt_now() < end)
		jqt_sleep(0.02);
	return k;
}

/*
 * Whether @pid has died within @timeout s. A zombie counts as dead: it is
 * whoever reaps it that matters, and that is checked apart.
 */
static int gone(pid_t pid, double timeout)
{
	double end = jqt_now() + timeout;

	do {
		char path[64], buf[256], *p;
		FILE *f;

		if (kill(pid, 0) < 0 && errno == ESRCH)
			return 1;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "r");
		if (f) {
			p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')')
						       : NULL;
			fclose(f);
			if (p && p[1] == ' ' && p[2] == 'Z')
				return 1;
		}
		jqt_sleep(0.02);
	} while (jqt_now() < end);
	return 0;
}

static void test_graceful(void **state)
{
	static const char *const args[] = {"--workers", "2", "--grace", "2",
					   NULL};
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	pid_t w[2], builtin[2];
	uint64_t a, b;
	int st[2], left;
	char states[16];
	pid_t pids[16];

	sh = jqt_shared(sizeof(*sh));
	/* A grace period shorter than the daemon worker's 5 s job. */
	jqt_mgr_stop(m);
	assert_int_equal(jqt_mgr_start(m, args), 0);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_int_equal(wait_supervised(q, builtin, 2), 2);
	assert_rc(jqt_fork_n(2, worker_main, NULL, w), 0);

	assert_rc(jobq_submit(q, "slow", JOBQ_T_JSON, "{}", 2, NULL, &a), 0);
	assert_rc(jobq_submit(q, "slow-d", JOBQ_T_JSON, "{}", 2, NULL, &b), 0);
	assert_rc(jqt_job_wait_state(q, a, JOBQ_JOB_RUNNING, 10), 0);
	assert_rc(jqt_job_wait_state(q, b, JOBQ_JOB_RUNNING, 10), 0);
	jobq_close(q);
	/* While it runs, the manager's children are its two workers, alive. */
	left = jqt_proc_children(m->pid, pids, states, 16);
	assert_int_equal(left, 2);
	assert_true(states[0] != 'Z' && states[1] != 'Z');

	/* The manager alone gets the signal, as from `kill PID`. */
	assert_int_equal(kill(m->pid, SIGTERM), 0);
	assert_rc(jqt_mgr_wait_exit(m, 20), 0);
	print_message("manager exit status 0x%x\n", m->exit_status);
	assert_true(jqt_status_ok(m->exit_status));

	assert_rc(jqt_wait_pid(w[0], 10, &st[0]), 0);
	assert_rc(jqt_wait_pid(w[1], 10, &st[1]), 0);
	print_message("non-daemon: started %d finished %d (status 0x%x); "
		      "daemon: started %d finished %d (status 0x%x)\n",
		      sh->started[0], sh->finished[0], st[0], sh->started[1],
		      sh->finished[1], st[1]);
	/* The non-daemon worker drained its job and left cleanly. */
	assert_int_equal(sh->started[0], 1);
	assert_int_equal(sh->finished[0], 1);
	assert_true(WIFEXITED(st[0]) && WEXITSTATUS(st[0]) == 0);
	assert_int_equal(sh->started[1], 1);

	/* The manager's own workers are gone, and nothing it started was
	 * left to us (running or zombie). */
	assert_true(gone(builtin[0], 2));
	assert_true(gone(builtin[1], 2));
	left = jqt_proc_children(getpid(), pids, states, 16);
	for (int i = 0; i < left && i < 16; i++)
		print_error("left behind: pid %d state %c\n", (int)pids[i],
			    states[i]);
	assert_int_equal(left, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	/* teardown expects a manager to stop. */
	assert_int_equal(jqt_mgr_restart(m, NULL), 0);
	/* Checked last, so that the checks above tell their own story: the
	 * daemon worker was ended when the 2 s grace period was over, its
	 * 5 s job unfinished. */
	assert_int_equal(sh->finished[1], 0);
}

static void test_manager_killed(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	pid_t builtin[2];

	/* Orphans go to init here (test_graceful may have failed before
	 * it turned the subreaper off). */
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_int_equal(wait_supervised(q, builtin, 2), 2);
	jobq_close(q);
	/* Only the manager: its workers must notice by themselves. */
	assert_int_equal(kill(m->pid, SIGKILL), 0);
	assert_rc(jqt_mgr_wait_exit(m, 10), 0);
	assert_true(gone(builtin[0], 5));
	assert_true(gone(builtin[1], 5));
	/* teardown would report the kill as a crash: restart to stop it. */
	assert_int_equal(jqt_mgr_restart(m, NULL), 0);
}

/*
 * The manager's own workers, SIGTERM while a sleep of @ms runs: returns
 * how long the manager took to exit, and in *waited what a `jobq wait`
 * on that sleep, started before the signal, exited with (0: it got the
 * result). @twice sends a second SIGTERM half a second after the first.
 */
static double builtin_shutdown(const char *const *args, int ms, bool twice,
			       int *waited)
{
	struct jqt_mgr m;
	jobq_t *q = NULL;
	char json[32], idbuf[24];
	pid_t pid, waiter;
	uint64_t id;
	double t0, took;
	int st;

	assert_int_equal(jqt_mgr_start(&m, args), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	assert_int_equal(wait_supervised(q, &pid, 1), 1);
	snprintf(json, sizeof(json), "{\"ms\": %d}", ms);
	assert_rc(
	    jobq_submit(q, "sleep", JOBQ_T_JSON, json, strlen(json), NULL, &id),
	    0);
	assert_rc(jqt_job_wait_state(q, id, JOBQ_JOB_RUNNING, 10), 0);
	jobq_close(q);
	snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)id);
	waiter = fork();
	assert_true(waiter >= 0);
	if (waiter == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		execl(jqt_jobq_path(), "jobq", "--dir", m.dir, "wait", idbuf,
		      "--timeout", "30", (char *)NULL);
		_exit(127);
	}
	jqt_track_pid(waiter);
	jqt_sleep(0.3); /* the wait is parked in the manager */
	t0 = jqt_now();
	assert_int_equal(kill(m.pid, SIGTERM), 0);
	if (twice) {
		jqt_sleep(0.5);
		kill(m.pid, SIGTERM);
	}
	assert_rc(jqt_mgr_wait_exit(&m, 30), 0);
	took = jqt_now() - t0;
	assert_true(jqt_status_ok(m.exit_status));
	assert_true(gone(pid, 2));
	assert_rc(jqt_wait_pid(waiter, 30, &st), 0);
	jqt_untrack_pid(waiter);
	*waited = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	jqt_mgr_stop(&m);
	return took;
}

/* Default built-in (daemon) workers: a running job finishes within the
 * grace period, and the client waiting on it gets its result. */
static void test_builtin_daemon_drains(void **state)
{
	static const char *const args[] = {"--workers", "1", NULL};
	int waited;
	double took = builtin_shutdown(args, 1500, false, &waited);

	print_message("daemon built-in worker, a 1.5 s sleep: manager gone "
		      "%.3f s after SIGTERM; jobq wait exited %d\n",
		      took, waited);
	assert_true(took >= 1.0);
	assert_int_equal(waited, 0);
}

/* ... but not beyond it: a job longer than --grace is ended. */
static void test_builtin_daemon_grace(void **state)
{
	static const char *const args[] = {"--workers", "1", "--grace", "1",
					   NULL};
	int waited;
	double took = builtin_shutdown(args, 8000, false, &waited);

	print_message("daemon built-in worker, an 8 s sleep, --grace 1: "
		      "manager gone %.3f s after SIGTERM; jobq wait exited "
		      "%d\n",
		      took, waited);
	assert_true(took >= 0.8 && took < 5);
	assert_int_not_equal(waited, 0); /* the job did not succeed */
}

/* Non-daemon workers are waited for past the grace period. */
static void test_builtin_nondaemon(void **state)
{
	static const char *const args[] = {
	    "--workers", "1", "--workers-nondaemon", "--grace", "0.5", NULL};
	int waited;
	double took = builtin_shutdown(args, 2500, false, &waited);

	print_message("non-daemon built-in worker, a 2.5 s sleep, --grace "
		      "0.5: manager gone %.3f s after SIGTERM; jobq wait "
		      "exited %d\n",
		      took, waited);
	assert_true(took >= 2.0);
	assert_int_equal(waited, 0);
}

/* A second SIGTERM does not wait for the drain. */
static void test_second_signal(void **state)
{
	static const char *const args[] = {"--workers", "1",
					   "--workers-nondaemon", NULL};
	int waited;
	double took = builtin_shutdown(args, 20000, true, &waited);

	print_message("a 20 s sleep, SIGTERM twice: manager gone %.3f s after "
		      "the first\n",
		      took);
	assert_true(took < 5);
}

/*
 * A supervised worker that fails at start is restarted with backoff (1 s,
 * 2 s, ...), not in a tight loop: it starts about three times in 3.5 s.
 */
static void test_crash_at_start(void **state)
{
	char dir[256], log[320], cmd[400];
	const char *args[] = {"--worker", cmd, NULL};
	struct jqt_mgr m;
	struct jqt_out o = {0};
	const char *cat[] = {"cat", log, NULL};
	int starts;

	(void)state;
	assert_int_equal(jqt_tmpdir(dir, sizeof(dir)), 0);
	snprintf(log, sizeof(log), "%s/starts", dir);
	snprintf(cmd, sizeof(cmd), "echo start >> '%s'; exit 3", log);
	assert_int_equal(jqt_mgr_start(&m, args), 0);
	jqt_sleep(3.5);
	assert_int_equal(jqt_run("/bin/cat", cat, NULL, 0, 10, &o), 0);
	starts = jqt_count_lines(o.out);
	print_message("a worker failing at start was started %d times in "
		      "3.5 s\n",
		      starts);
	assert_true(starts >= 2 && starts <= 4);
	assert_true(jqt_mgr_alive(&m));
	jqt_out_free(&o);
	jqt_mgr_stop(&m);
	jqt_rmtree(dir);
}

#define W(f) cmocka_unit_test_setup_teardown(f, jqt_setup_workers, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    W(test_graceful),
	    W(test_manager_killed),
	    cmocka_unit_test(test_builtin_daemon_drains),
	    cmocka_unit_test(test_builtin_daemon_grace),
	    cmocka_unit_test(test_builtin_nondaemon),
	    cmocka_unit_test(test_second_signal),
	    cmocka_unit_test(test_crash_at_start),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
