/* SPDX-License-Identifier: MIT */
/*
 * test_engine_jobs.c - jobs running at once on the io_uring engine, with a
 * real jobqd whose built-in worker runs four jobs at a time
 * (jobqd --workers 1 --worker-concurrency 4):
 *
 *  - four 1.5 s sleeps with a 2 s lease all succeed, overlapped: each
 *    started before any of them finished (the jobs' own times), and in
 *    about 1.5 s in all;
 *  - a short job's result comes back while its long neighbour runs;
 *  - thousands of short jobs, some failing, whose results leave the
 *    worker several to a submission: each job gets its own result or its
 *    own error text, none lost or swapped;
 *  - cancelling a running sleep ends it at once, and the worker serves
 *    the next job;
 *  - a job that outlives its --timeout is cancelled by the engine and
 *    fails as timed out, the worker unharmed;
 *  - a library worker whose handler crashes (SIGSEGV) dies, and the job
 *    goes back to the queue and is run by another worker;
 *  - a library worker at concurrency 1000 runs a thousand half-second
 *    jobs at once;
 *  - where seccomp forbids io_uring, the built-in worker says so, names
 *    the remedy and exits 1.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

static int setup_c4(void **state)
{
	static struct jqt_mgr mgr;
	static const char *const args[] = {"--workers", "1",
					   "--worker-concurrency", "4", NULL};

	if (jqt_mgr_start(&mgr, args) < 0)
		return -1;
	jqt_cur = &mgr;
	*state = jqt_cur;
	return 0;
}

static uint64_t submit_sleep(jobq_t *q, int ms, double timeout, int retries)
{
	struct jobq_submit_opts o = {.timeout = timeout, .retries = retries};
	char json[32];
	uint64_t id = 0;

	snprintf(json, sizeof(json), "{\"ms\": %d}", ms);
	assert_rc(
	    jobq_submit(q, "sleep", JOBQ_T_JSON, json, strlen(json), &o, &id),
	    0);
	return id;
}

static void test_four_at_once(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	uint64_t ids[4], last_start = 0, first_end = UINT64_MAX;
	double t0, took;

	assert_rc(jobq_open(&q, m->dir), 0);
	t0 = jqt_now();
	for (int i = 0; i < 4; i++)
		ids[i] = submit_sleep(q, 1500, 2, 0);
	assert_rc(jobq_wait_all(q, ids, 4, 30), 0);
	took = jqt_now() - t0;
	for (int i = 0; i < 4; i++) {
		struct jobq_job_info ji;

		assert_rc(jobq_job_info(q, ids[i], &ji), 0);
		assert_int_equal(ji.state, JOBQ_JOB_SUCCEEDED);
		assert_int_equal(ji.attempts, 1);
		if (ji.started_ns > last_start)
			last_start = ji.started_ns;
		if (ji.finished_ns < first_end)
			first_end = ji.finished_ns;
	}
	print_message("four 1.5 s sleeps at concurrency 4: %.3f s in all\n",
		      took);
	/* They overlapped: every one had started before the first ended. */
	assert_true(last_start < first_end);
	/* One after another would take 6 s; this only catches that. */
	assert_true(took < 5);
	jobq_close(q);
}

static void test_result_while_neighbours_run(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	uint64_t slow, quick;
	jobq_obj_t res = {0};

	assert_rc(jobq_open(&q, m->dir), 0);
	slow = submit_sleep(q, 3000, 10, 0);
	assert_rc(jqt_job_wait_state(q, slow, JOBQ_JOB_RUNNING, 10), 0);
	quick = submit_sleep(q, 50, 10, 0);
	assert_rc(jobq_job_wait(q, quick, 10), 0);
	/* The quick one's result is back; its neighbour still runs. */
	assert_int_equal(jqt_job_state(q, slow), JOBQ_JOB_RUNNING);
	assert_rc(jobq_job_result(q, quick, &res), 0);
	assert_non_null(strstr(res.data, "\"slept_ms\":50"));
	jobq_obj_free(&res);
	assert_rc(jobq_job_wait(q, slow, 20), 0);
	jobq_close(q);
}

/*
 * The W_DONEs of the jobs that end in one turn of the worker's loop go out
 * together: every result must still be the one of its own job, failures
 * carry their own text, and nothing is lost on the way.
 */
static void test_many_results_each_their_own(void **state)
{
	enum { N = 3000, FAIL_EVERY = 7 };
	struct jqt_mgr *m = *state;
	struct jobq_submit_opts once = {.retries = -1};
	jobq_obj_t *echo = calloc(N, sizeof(*echo));
	jobq_obj_t *fail = calloc(N, sizeof(*fail));
	uint64_t *ids = calloc(N, sizeof(*ids));
	char(*text)[48] = calloc(N, sizeof(*text));
	size_t ne = 0, nf = 0;
	jobq_t *q = NULL;

	assert_non_null(echo);
	assert_non_null(fail);
	assert_non_null(ids);
	assert_non_null(text);
	assert_rc(jobq_open(&q, m->dir), 0);
	for (int i = 0; i < N; i++) {
		if (i % FAIL_EVERY == 0) {
			snprintf(text[i], sizeof(text[i]),
				 "{\"error\": \"failure %d\"}", i);
			fail[nf].type = JOBQ_T_JSON;
			fail[nf].data = text[i];
			fail[nf++].len = strlen(text[i]);
		} else {
			snprintf(text[i], sizeof(text[i]), "echo %d", i);
			echo[ne].type = JOBQ_T_TEXT;
			echo[ne].data = text[i];
			echo[ne++].len = strlen(text[i]);
		}
	}
	/* Failures first, so that they end among the echoes. */
	assert_rc(jobq_submit_many(q, "fail", fail, nf, &once, ids), (int)nf);
	assert_rc(jobq_submit_many(q, "echo", echo, ne, NULL, ids + nf),
		  (int)ne);
	jobq_wait_all(q, ids, N, 60);
	for (size_t k = 0; k < nf + ne; k++) {
		jobq_obj_t res = {0};
		const jobq_obj_t *a = k < nf ? &fail[k] : &echo[k - nf];
		char want[64];
		int st = jqt_job_state(q, ids[k]);

		assert_rc(jobq_job_result(q, ids[k], &res), 0);
		if (k < nf) {
			int i;

			assert_true(st == JOBQ_JOB_FAILED ||
				    st == JOBQ_JOB_DEAD);
			assert_int_equal(
			    sscanf(a->data, "{\"error\": \"failure %d", &i), 1);
			snprintf(want, sizeof(want), "failure %d", i);
			assert_non_null(res.data);
			assert_string_equal(res.data, want);
		} else {
			assert_int_equal(st, JOBQ_JOB_SUCCEEDED);
			assert_int_equal(res.len, a->len);
			assert_memory_equal(res.data, a->data, a->len);
		}
		jobq_obj_free(&res);
	}
	free(echo);
	free(fail);
	free(ids);
	free(text);
	jobq_close(q);
}

static void test_cancel_running(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	uint64_t id, echo;
	jobq_obj_t res = {0};
	double t0, took;

	assert_rc(jobq_open(&q, m->dir), 0);
	id = submit_sleep(q, 30000, 60, 0);
	assert_rc(jqt_job_wait_state(q, id, JOBQ_JOB_RUNNING, 10), 0);
	t0 = jqt_now();
	assert_rc(jobq_cancel(q, id), 0);
	assert_rc(jobq_job_wait(q, id, 20), -ECANCELED);
	took = jqt_now() - t0;
	print_message("a running 30 s sleep cancelled: over in %.3f s\n", took);
	assert_true(took < 5);
	/* The worker still serves. */
	assert_rc(
	    jobq_submit(q, "echo", JOBQ_T_TEXT, "still here", 10, NULL, &echo),
	    0);
	assert_rc(jobq_job_wait(q, echo, 10), 0);
	assert_rc(jobq_job_result(q, echo, &res), 0);
	assert_int_equal(res.len, 10);
	assert_memory_equal(res.data, "still here", 10);
	jobq_obj_free(&res);
	jobq_close(q);
}

static void test_timeout_cancels(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	uint64_t id, ok;
	jobq_obj_t res = {0};
	double t0, took;

	assert_rc(jobq_open(&q, m->dir), 0);
	t0 = jqt_now();
	id = submit_sleep(q, 20000, 1, -1);
	assert_rc(jobq_job_wait(q, id, 20), JOBQ_EJOBFAILED);
	took = jqt_now() - t0;
	assert_rc(jobq_job_result(q, id, &res), 0);
	print_message("a 20 s sleep with --timeout 1: ended after %.3f s: "
		      "%s\n",
		      took, (char *)res.data);
	assert_non_null(strstr(res.data, "timed out"));
	jobq_obj_free(&res);
	assert_true(took < 10);
	ok = submit_sleep(q, 10, 5, 0);
	assert_rc(jobq_job_wait(q, ok, 10), 0);
	jobq_close(q);
}

/* ------------------------------------------------------------------------
 * A crash in a handler: the worker dies, the job goes back.
 */
static int h_crash(jobq_job_t *job, void *arg)
{
	(void)arg;
	if (jobq_job_attempt(job) == 1) {
		/* Let the fiber's stack be in use, then crash. */
		jobq_io_sleep(0.01);
		raise(SIGSEGV);
	}
	return jobq_job_succeed(job, JOBQ_T_TEXT, "second time", 11);
}

static jobq_worker_t *the_worker;

static void on_term(int sig)
{
	(void)sig;
	if (the_worker)
		jobq_worker_stop(the_worker);
}

static int crash_worker(int idx, void *arg)
{
	struct jobq_worker_opts o = {.concurrency = 4};
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_worker_t *w;
	int rc;

	(void)idx;
	(void)arg;
	signal(SIGSEGV, SIG_DFL);
	CK_RC(jobq_worker_new(&w, q, &o), 0);
	CK_RC(jobq_worker_handle(w, "crashy", h_crash, NULL), 0);
	the_worker = w;
	signal(SIGTERM, on_term);
	rc = jobq_worker_run(w);
	jobq_worker_free(w);
	jobq_close(q);
	return rc == 0 || rc == JOBQ_ECLOSED ? 0 : 1;
}

static void test_crash_requeues(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	jobq_obj_t res = {0};
	struct jobq_job_info ji;
	pid_t a, b;
	uint64_t id;
	int st;

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_submit(q, "crashy", JOBQ_T_JSON, "{}", 2, NULL, &id), 0);
	a = jqt_fork(crash_worker, 0, NULL);
	assert_true(a > 0);
	assert_rc(jqt_wait_pid(a, 20, &st), 0);
	assert_true(WIFSIGNALED(st));
	b = jqt_fork(crash_worker, 1, NULL);
	assert_true(b > 0);
	assert_rc(jobq_job_wait(q, id, 20), 0);
	assert_rc(jobq_job_info(q, id, &ji), 0);
	assert_int_equal(ji.attempts, 2);
	assert_rc(jobq_job_result(q, id, &res), 0);
	assert_memory_equal(res.data, "second time", 11);
	jobq_obj_free(&res);
	kill(b, SIGTERM);
	assert_rc(jqt_wait_pid(b, 10, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	jobq_close(q);
}

/* ------------------------------------------------------------------------
 * A thousand jobs at once in one library worker.
 */
static int h_nap(jobq_job_t *job, void *arg)
{
	(void)arg;
	if (jobq_io_sleep(0.5))
		return jobq_job_fail(job, 0, "nap interrupted");
	return jobq_job_succeed(job, JOBQ_T_NONE, NULL, 0);
}

static int big_worker(int idx, void *arg)
{
	struct jobq_worker_opts o = {.concurrency = 1000};
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_worker_t *w;
	int rc;

	(void)idx;
	(void)arg;
	CK_RC(jobq_worker_new(&w, q, &o), 0);
	CK_RC(jobq_worker_handle(w, "nap", h_nap, NULL), 0);
	the_worker = w;
	signal(SIGTERM, on_term);
	rc = jobq_worker_run(w);
	jobq_worker_free(w);
	jobq_close(q);
	return rc == 0 || rc == JOBQ_ECLOSED ? 0 : 1;
}

static void test_thousand_at_once(void **state)
{
	enum { N = 1000 };
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	jobq_obj_t *args = calloc(N, sizeof(*args));
	uint64_t *ids = calloc(N, sizeof(*ids));
	uint64_t last_start = 0, first_end = UINT64_MAX;
	double t0, took;
	pid_t pid;
	int st;

	assert_non_null(args);
	assert_non_null(ids);
	assert_rc(jobq_open(&q, m->dir), 0);
	pid = jqt_fork(big_worker, 0, NULL);
	assert_true(pid > 0);
	for (int i = 0; i < N; i++)
		args[i].type = JOBQ_T_NONE;
	t0 = jqt_now();
	assert_rc(jobq_submit_many(q, "nap", args, N, NULL, ids), N);
	assert_rc(jobq_wait_all(q, ids, N, 60), 0);
	took = jqt_now() - t0;
	for (int i = 0; i < N; i++) {
		struct jobq_job_info ji;

		assert_rc(jobq_job_info(q, ids[i], &ji), 0);
		if (ji.started_ns > last_start)
			last_start = ji.started_ns;
		if (ji.finished_ns < first_end)
			first_end = ji.finished_ns;
	}
	print_message("1000 half-second naps in one worker: %.3f s in all\n",
		      took);
	assert_true(last_start < first_end);
	kill(pid, SIGTERM);
	assert_rc(jqt_wait_pid(pid, 20, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(args);
	free(ids);
	jobq_close(q);
}

/* ------------------------------------------------------------------------
 * io_uring forbidden, as a container's default seccomp profile does: the
 * built-in worker says why and how to allow it, and exits 1 at once.
 */
static void test_worker_without_io_uring(void **state)
{
	int out[2], st = 0;
	char msg[2048] = "";
	size_t len = 0;
	double t0 = jqt_now();
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(out), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sock_filter filter[] = {
		    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			     offsetof(struct seccomp_data, nr)),
		    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0,
			     1),
		    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {
		    .len = sizeof(filter) / sizeof(filter[0]),
		    .filter = filter,
		};

		dup2(out[1], 2);
		close(out[0]);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(JQT_SKIP);
		execl(jqt_jobqd_path(), "jobqd", "--as-worker", "--dir",
		      "/nonexistent/jobq", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	for (;;) {
		ssize_t n = read(out[0], msg + len, sizeof(msg) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out[0]);
	assert_rc(jqt_wait_pid(pid, 10, &st), 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == JQT_SKIP) {
		skip();
		return;
	}
	msg[len] = '\0';
	print_message("worker without io_uring (%.3f s): %s", jqt_now() - t0,
		      msg);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	assert_non_null(strstr(msg, "seccomp"));
	assert_non_null(strstr(msg, "io_uring_setup"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_c4, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_four_at_once),
	    T(test_result_while_neighbours_run),
	    T(test_many_results_each_their_own),
	    T(test_cancel_running),
	    T(test_timeout_cancels),
	    T(test_crash_requeues),
	    T(test_thousand_at_once),
	    cmocka_unit_test(test_worker_without_io_uring),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
