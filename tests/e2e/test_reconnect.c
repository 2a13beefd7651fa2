/* SPDX-License-Identifier: MIT */
/*
 * test_reconnect.c - a handle survives the manager's restart:
 *
 *  - a get blocked on an empty queue across kill -9 and a restart
 *    receives the object put after the restart;
 *  - the same across a stop and a start (systemctl restart); a manager
 *    stopped for good fails the calls after 5 s, whatever the window;
 *  - a jobq_job_wait() across a restart returns the job's end;
 *  - an incr whose manager died after journaling it and before answering
 *    (the JOBQD_TEST_CRASH_AFTER seam) is resent and applied once, and
 *    returns the value of its first application;
 *  - a manager that does not come back: JOBQ_ECLOSED after the window,
 *    with a message that says so;
 *  - a lock held across a restart is lost: the holder's release fails
 *    with JOBQ_ELOST, an acquire that waited is made again in the new
 *    manager and gets the lock;
 *  - a worker with a job running across a restart takes it back: its
 *    result is accepted (one attempt), and it serves the jobs submitted
 *    after;
 *  - the same with a second worker already waiting for jobs: the job is
 *    not handed to it while its own worker may come back (--rejoin-grace),
 *    even when the manager dies again within the grace;
 *  - a worker killed with the manager does not come back: its job waits
 *    out the grace, shown running with no worker, then the second worker
 *    runs it (two attempts);
 *  - a job awaiting its worker is cancelled at once;
 *  - a built-in (daemon) worker's job runs again at once after a restart,
 *    whatever the grace.
 *
 * A manager of another user on reconnect runs the same checks as
 * jobq_open() (the same handshake function); test_identity covers them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
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
#include "internal.h"

static jobq_t *open_window(const struct jqt_mgr *m, double window)
{
	struct jobq_open_opts o = {.reconnect = window};
	jobq_t *q = NULL;

	assert_rc(jobq_open_ex(&q, m->dir, &o), 0);
	return q;
}

/* Kills @m's manager and starts it again with @args (NULL: none). */
static void crash_restart(struct jqt_mgr *m, const char *const *args)
{
	kill(m->pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(m, 10), 0);
	assert_int_equal(jqt_mgr_restart(m, args), 0);
}

/* ------------------------------------------------------------------------
 * A blocked get.
 */
struct getter {
	jobq_t *q;
	int rc;
	jobq_obj_t o;
};

static void *get_thread(void *arg)
{
	struct getter *g = arg;

	g->rc = jobq_get(g->q, "rq", &g->o, 30);
	return NULL;
}

static void test_blocked_get(void **state)
{
	struct jqt_mgr m;
	struct getter g = {0};
	pthread_t t;
	jobq_t *p;

	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	g.q = open_window(&m, 20);
	assert_rc(jobq_queue_open(g.q, "rq", NULL), 0);
	assert_int_equal(pthread_create(&t, NULL, get_thread, &g), 0);
	jqt_sleep(0.3);
	crash_restart(&m, NULL);
	jqt_sleep(0.3);
	p = open_window(&m, 20);
	assert_rc(jobq_put(p, "rq", JOBQ_T_TEXT, "after", 5, 5), 0);
	pthread_join(t, NULL);
	assert_rc(g.rc, 0);
	assert_int_equal(g.o.len, 5);
	assert_memory_equal(g.o.data, "after", 5);
	jobq_obj_free(&g.o);
	/* The handle works on after the reconnect. */
	assert_rc(jobq_put(g.q, "rq", JOBQ_T_TEXT, "x", 1, 5), 0);
	assert_rc(jobq_get(p, "rq", &g.o, 5), 0);
	jobq_obj_free(&g.o);
	jobq_close(p);
	jobq_close(g.q);
	jqt_mgr_stop(&m);
}

/* A manager stopped on purpose and started again (what systemctl restart
 * does): the get it failed with JOBQ_ECLOSED while stopping is sent
 * again to the new one. */
static void test_stop_start(void **state)
{
	struct jqt_mgr m;
	struct getter g = {0};
	pthread_t t;
	jobq_t *p;

	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	g.q = open_window(&m, 20);
	assert_rc(jobq_queue_open(g.q, "rq", NULL), 0);
	assert_int_equal(pthread_create(&t, NULL, get_thread, &g), 0);
	jqt_sleep(0.3);
	kill(m.pid, SIGTERM);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_int_equal(jqt_mgr_restart(&m, NULL), 0);
	p = open_window(&m, 20);
	assert_rc(jobq_put(p, "rq", JOBQ_T_TEXT, "again", 5, 5), 0);
	pthread_join(t, NULL);
	assert_rc(g.rc, 0);
	assert_int_equal(g.o.len, 5);
	jobq_obj_free(&g.o);
	jobq_close(p);
	jobq_close(g.q);
	jqt_mgr_stop(&m);
}

/* Stopped for good: the window is cut to 5 s, not the 20 asked. */
static void test_stopped_for_good(void **state)
{
	struct jqt_mgr m;
	double t0;
	jobq_t *q;

	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	q = open_window(&m, 20);
	assert_rc(jobq_ping(q), 0);
	kill(m.pid, SIGTERM);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	t0 = jqt_now();
	assert_rc(jobq_ping(q), JOBQ_ECLOSED);
	assert_true(jqt_now() - t0 >= 4);
	assert_true(jqt_now() - t0 < 10);
	assert_non_null(strstr(jobq__last_error_msg(), "was stopped"));
	jobq_close(q);
	jqt_mgr_stop(&m);
}

/* ------------------------------------------------------------------------
 * A job wait.
 */
struct waiter {
	jobq_t *q;
	uint64_t id;
	int rc;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->rc = jobq_job_wait(w->q, w->id, 30);
	return NULL;
}

static void test_job_wait(void **state)
{
	struct jqt_mgr m;
	struct waiter w = {0};
	pthread_t t;
	jobq_t *p;

	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	w.q = open_window(&m, 20);
	/* A type nobody serves: the job stays ready across the restart. */
	assert_rc(jobq_submit(w.q, "nobody", JOBQ_T_TEXT, "a", 1, NULL, &w.id),
		  0);
	assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
	jqt_sleep(0.3);
	crash_restart(&m, NULL);
	jqt_sleep(0.3);
	p = open_window(&m, 20);
	assert_rc(jobq_cancel(p, w.id), 0);
	pthread_join(t, NULL);
	assert_rc(w.rc, -ECANCELED);
	jobq_close(p);
	jobq_close(w.q);
	jqt_mgr_stop(&m);
}

/* ------------------------------------------------------------------------
 * Applied once. The request runs in a thread; the main thread restarts
 * the manager (a child must be started by a thread that outlives it: the
 * harness ties a manager's life to the thread that forked it).
 */
struct once {
	jobq_t *q;
	int rc;
	int64_t out;
	uint64_t id;
};

static void *incr_thread(void *arg)
{
	struct once *o = arg;

	o->rc = jobq_kv_incr(o->q, "n", 1, &o->out);
	return NULL;
}

static void *submit_thread(void *arg)
{
	struct once *o = arg;

	o->rc = jobq_submit(o->q, "nobody", JOBQ_T_TEXT, "a", 1, NULL, &o->id);
	return NULL;
}

/* The manager dies by the seam; another one starts. */
static void seam_restart(struct jqt_mgr *m)
{
	assert_int_equal(jqt_mgr_wait_exit(m, 20), 0);
	/* It died by the seam, not otherwise. */
	assert_true(WIFEXITED(m->exit_status) &&
		    WEXITSTATUS(m->exit_status) == 86);
	jqt_sleep(0.2);
	assert_int_equal(jqt_mgr_restart(m, NULL), 0);
}

static void test_incr_once(void **state)
{
	struct jqt_mgr m;
	struct once o = {0};
	jobq_obj_t v = {0};
	pthread_t t;

	/* Changing requests: the set (1), then the incr (2), whose answer
	 * the manager journals and then dies without publishing. */
	setenv("JOBQD_TEST_CRASH_AFTER", "2", 1);
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	unsetenv("JOBQD_TEST_CRASH_AFTER");
	o.q = open_window(&m, 20);
	assert_rc(jobq_kv_set(o.q, "n", JOBQ_T_TEXT, "41", 2), 0);
	assert_int_equal(pthread_create(&t, NULL, incr_thread, &o), 0);
	seam_restart(&m);
	pthread_join(t, NULL);
	assert_rc(o.rc, 0);
	assert_int_equal(o.out, 42);
	assert_rc(jobq_kv_get(o.q, "n", &v), 0);
	assert_int_equal(v.len, 2);
	assert_memory_equal(v.data, "42", 2);
	jobq_obj_free(&v);
	/* And the next one is a new request. */
	assert_rc(jobq_kv_incr(o.q, "n", 1, &o.out), 0);
	assert_int_equal(o.out, 43);
	jobq_close(o.q);
	jqt_mgr_stop(&m);
}

/* A submit resent after the same kind of crash returns the same job id,
 * and there is one job, not two. */
static void test_submit_once(void **state)
{
	struct jqt_mgr m;
	struct once o = {0};
	struct jobq_job_info info;
	uint64_t id2 = 0;
	pthread_t t;

	setenv("JOBQD_TEST_CRASH_AFTER", "1", 1);
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	unsetenv("JOBQD_TEST_CRASH_AFTER");
	o.q = open_window(&m, 20);
	assert_int_equal(pthread_create(&t, NULL, submit_thread, &o), 0);
	seam_restart(&m);
	pthread_join(t, NULL);
	assert_rc(o.rc, 0);
	assert_rc(jobq_job_info(o.q, o.id, &info), 0);
	assert_rc(jobq_submit(o.q, "nobody", JOBQ_T_TEXT, "b", 1, NULL, &id2),
		  0);
	assert_int_equal(id2, o.id + 1);
	jobq_close(o.q);
	jqt_mgr_stop(&m);
}

/* ------------------------------------------------------------------------
 * Gone for good.
 */
static void test_no_comeback(void **state)
{
	struct jqt_mgr m;
	double t0;
	jobq_t *q;
	int rc;

	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	q = open_window(&m, 0.5);
	assert_rc(jobq_ping(q), 0);
	kill(m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	t0 = jqt_now();
	rc = jobq_ping(q);
	assert_rc(rc, JOBQ_ECLOSED);
	assert_true(jqt_now() - t0 >= 0.4);
	assert_true(jqt_now() - t0 < 5);
	assert_non_null(strstr(jobq__last_error_msg(), "did not come back"));
	/* Every later call fails at once. */
	t0 = jqt_now();
	assert_rc(jobq_ping(q), JOBQ_ECLOSED);
	assert_true(jqt_now() - t0 < 0.2);
	jobq_close(q);
	jqt_mgr_stop(&m);
}

/* With the window 0 (the test suite's default), no reconnect at all. */
static void test_disabled(void **state)
{
	struct jqt_mgr m;
	jobq_t *q;

	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	q = open_window(&m, -1);
	kill(m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_rc(jobq_ping(q), JOBQ_ECLOSED);
	jobq_close(q);
	jqt_mgr_stop(&m);
}

/* ------------------------------------------------------------------------
 * Locks are lost.
 */
struct locker {
	jobq_t *q;
	int rc, rc2;
};

/* A lock's owner is the thread: it releases what it took. */
static void *lock_thread(void *arg)
{
	struct locker *l = arg;

	l->rc = jobq_lock_acquire(l->q, "l", 30);
	if (!l->rc)
		l->rc2 = jobq_lock_release(l->q, "l");
	return NULL;
}

static void test_lock_lost(void **state)
{
	struct jqt_mgr m;
	struct locker b = {0};
	pthread_t t;
	jobq_t *q;

	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	q = open_window(&m, 20);
	b.q = open_window(&m, 20);
	assert_rc(jobq_lock_acquire(q, "l", 5), 0);
	/* A second handle waits for it across the restart: its acquire is
	 * made again in the new manager, where the lock is free. */
	assert_int_equal(pthread_create(&t, NULL, lock_thread, &b), 0);
	jqt_sleep(0.3);
	crash_restart(&m, NULL);
	pthread_join(t, NULL);
	assert_rc(b.rc, 0);
	assert_rc(b.rc2, 0);
	jobq_close(b.q);
	/* The new manager never gave it: the release says it was lost. */
	assert_rc(jobq_lock_release(q, "l"), JOBQ_ELOST);
	assert_rc(jobq_lock_acquire(q, "l", 5), 0);
	assert_rc(jobq_lock_release(q, "l"), 0);
	jobq_close(q);
	jqt_mgr_stop(&m);
}

/* ------------------------------------------------------------------------
 * A worker keeps serving.
 */
struct wk {
	jobq_t *q;
	jobq_worker_t *w;
	int rc;
};

static void *worker_thread(void *arg)
{
	struct wk *k = arg;

	k->rc = jobq_worker_run(k->w);
	return NULL;
}

static void test_worker(void **state)
{
	static const char *const no_workers[] = {"--workers", "0", NULL};
	const char *sleep_args = "{\"ms\": 600}";
	struct jqt_mgr m;
	struct wk k = {0};
	struct jobq_job_info info;
	uint64_t a, b;
	pthread_t t;
	jobq_t *p;

	assert_int_equal(jqt_mgr_start(&m, no_workers), 0);
	k.q = open_window(&m, 20);
	assert_rc(jobq_worker_new(&k.w, k.q, NULL), 0);
	assert_rc(jobq_worker_builtin_types(k.w, "sleep"), 0);
	assert_int_equal(pthread_create(&t, NULL, worker_thread, &k), 0);
	p = open_window(&m, 20);
	/* Running when the manager dies: it runs again, and ends well. */
	assert_rc(jobq_submit(p, "sleep", JOBQ_T_JSON, sleep_args,
			      strlen(sleep_args), NULL, &a),
		  0);
	jqt_sleep(0.3);
	assert_rc(jobq_job_info(p, a, &info), 0);
	assert_int_equal(info.state, JOBQ_JOB_RUNNING);
	crash_restart(&m, no_workers);
	assert_rc(jobq_job_wait(p, a, 20), 0);
	/* Taken back by the worker that ran it: its first attempt's
	 * result was accepted, it did not run again. */
	assert_rc(jobq_job_info(p, a, &info), 0);
	assert_int_equal(info.attempts, 1);
	/* And a job submitted after the restart is served too. */
	assert_rc(
	    jobq_submit(p, "sleep", JOBQ_T_JSON, "{\"ms\": 1}", 9, NULL, &b),
	    0);
	assert_rc(jobq_job_wait(p, b, 20), 0);
	jobq_worker_stop(k.w);
	pthread_join(t, NULL);
	assert_rc(k.rc, 0);
	jobq_worker_free(k.w);
	jobq_close(p);
	jobq_close(k.q);
	jqt_mgr_stop(&m);
}

/* A worker of the sleep type over a handle of its own, in a thread. */
static void worker_start(struct wk *k, const struct jqt_mgr *m, pthread_t *t)
{
	k->q = open_window(m, 20);
	assert_rc(jobq_worker_new(&k->w, k->q, NULL), 0);
	assert_rc(jobq_worker_builtin_types(k->w, "sleep"), 0);
	assert_int_equal(pthread_create(t, NULL, worker_thread, k), 0);
}

static void worker_end(struct wk *k, pthread_t t)
{
	jobq_worker_stop(k->w);
	pthread_join(t, NULL);
	assert_rc(k->rc, 0);
	jobq_worker_free(k->w);
	jobq_close(k->q);
}

/* Waits (at most 10 s) until job @id runs. */
/* Submits a "sleep" job of @sleep_args and waits until it runs. */
static uint64_t submit_running(jobq_t *p, const char *sleep_args)
{
	struct jobq_job_info info;
	double end = jqt_now() + 10;
	uint64_t id;

	assert_rc(jobq_submit(p, "sleep", JOBQ_T_JSON, sleep_args,
			      strlen(sleep_args), NULL, &id),
		  0);
	do {
		assert_rc(jobq_job_info(p, id, &info), 0);
		if (info.state == JOBQ_JOB_RUNNING)
			return id;
		jqt_sleep(0.02);
	} while (jqt_now() < end);
	fail_msg("job %llu never ran", (unsigned long long)id);
	return 0;
}

static void test_worker_held(void **state)
{
	static const char *const args[] = {"--workers", "0", "--rejoin-grace",
					   "5", NULL};
	const char *sleep_args = "{\"ms\": 1500}";
	struct jqt_mgr m;
	struct wk a = {0}, b = {0};
	struct jobq_job_info info;
	pthread_t ta, tb;
	uint64_t id;
	jobq_t *p;

	assert_int_equal(jqt_mgr_start(&m, args), 0);
	worker_start(&a, &m, &ta);
	p = open_window(&m, 20);
	id = submit_running(p, sleep_args);
	/* The second worker waits for jobs from now on, across the
	 * restart: its reservation is resent as soon as it reconnects. */
	worker_start(&b, &m, &tb);
	jqt_sleep(0.1);
	/* Twice: the second crash comes within the grace the first restart
	 * gave, and the job must still wait for its worker. */
	for (int i = 0; i < 2; i++) {
		crash_restart(&m, args);
		jqt_sleep(0.2);
	}
	assert_rc(jobq_job_wait(p, id, 20), 0);
	/* Not handed to the second worker (that would be a second
	 * attempt): the first finished it and its result was accepted. */
	assert_rc(jobq_job_info(p, id, &info), 0);
	assert_int_equal(info.state, JOBQ_JOB_SUCCEEDED);
	assert_int_equal(info.attempts, 1);
	worker_end(&b, tb);
	worker_end(&a, ta);
	jobq_close(p);
	jqt_mgr_stop(&m);
}

/* A worker of the sleep type in a child process, to be killed. */
static pid_t worker_process(const struct jqt_mgr *m)
{
	pid_t child = fork();

	assert_true(child >= 0);
	if (child == 0) {
		struct wk a = {0};

		if (jobq_open(&a.q, m->dir) ||
		    jobq_worker_new(&a.w, a.q, NULL) ||
		    jobq_worker_builtin_types(a.w, "sleep"))
			_exit(1);
		_exit(jobq_worker_run(a.w) ? 1 : 0);
	}
	return child;
}

static void test_worker_gone(void **state)
{
	static const char *const args[] = {"--workers", "0", "--rejoin-grace",
					   "3", NULL};
	struct jqt_out o;
	char ids[24];
	const char *sleep_args = "{\"ms\": 1500}";
	struct jqt_mgr m;
	struct wk b = {0};
	struct jobq_job_info info;
	double restarted;
	pthread_t tb;
	uint64_t id;
	pid_t child;
	jobq_t *p;
	int st;

	assert_int_equal(jqt_mgr_start(&m, args), 0);
	/* The first worker is a process of its own, killed with jobqd. */
	child = worker_process(&m);
	p = open_window(&m, 20);
	id = submit_running(p, sleep_args);
	worker_start(&b, &m, &tb);
	jqt_sleep(0.1);
	kill(child, SIGKILL);
	crash_restart(&m, args);
	assert_int_equal(waitpid(child, &st, 0), child);
	restarted = jqt_now();
	/* Within the grace it waits for its worker, handed to nobody (a
	 * round trip first: the handle reads the records of the manager
	 * it is connected to, the new one once it reconnected). */
	assert_rc(jobq_ping(p), 0);
	assert_rc(jobq_job_info(p, id, &info), 0);
	if (jqt_now() - restarted < 1.5) {
		assert_int_equal(info.state, JOBQ_JOB_RUNNING);
		assert_int_equal(info.worker, 0);
		assert_int_equal(info.attempts, 1);
	}
	/* And `jobq show` says so. */
	snprintf(ids, sizeof(ids), "%llu", (unsigned long long)id);
	assert_int_equal(jqt_cli(&m, &o, NULL, 0, "show", ids, NULL), 0);
	if (jqt_now() - restarted < 2.5) {
		assert_int_equal(o.code, 0);
		assert_non_null(strstr(o.out, "running"));
		assert_non_null(strstr(o.out, "awaiting its worker"));
	}
	jqt_out_free(&o);
	/* Then the second worker runs it: its second attempt. */
	assert_rc(jobq_job_wait(p, id, 30), 0);
	assert_rc(jobq_job_info(p, id, &info), 0);
	assert_int_equal(info.state, JOBQ_JOB_SUCCEEDED);
	assert_int_equal(info.attempts, 2);
	worker_end(&b, tb);
	jobq_close(p);
	jqt_mgr_stop(&m);
}

/* A job awaiting its worker is cancelled at once: nobody is there to be
 * told, and the worker, should it come back, finds it gone. */
static void test_cancel_away(void **state)
{
	static const char *const args[] = {"--workers", "0", "--rejoin-grace",
					   "60", NULL};
	const char *sleep_args = "{\"ms\": 5000}";
	struct jqt_mgr m;
	struct jobq_job_info info;
	double restarted;
	uint64_t id;
	pid_t child;
	jobq_t *p;
	int st;

	assert_int_equal(jqt_mgr_start(&m, args), 0);
	child = worker_process(&m);
	p = open_window(&m, 20);
	id = submit_running(p, sleep_args);
	kill(child, SIGKILL);
	crash_restart(&m, args);
	assert_int_equal(waitpid(child, &st, 0), child);
	restarted = jqt_now();
	assert_rc(jobq_cancel(p, id), 0);
	assert_rc(jobq_job_wait(p, id, 30), -ECANCELED);
	/* Well before the grace would have ended. */
	assert_true(jqt_now() - restarted < 30);
	assert_rc(jobq_job_info(p, id, &info), 0);
	assert_int_equal(info.state, JOBQ_JOB_CANCELLED);
	jobq_close(p);
	jqt_mgr_stop(&m);
}

static void test_builtin_worker(void **state)
{
	/* A grace far longer than the test may take: a daemon worker's job
	 * must not wait for it. */
	static const char *const args[] = {"--workers", "1", "--rejoin-grace",
					   "60", NULL};
	const char *sleep_args = "{\"ms\": 1000}";
	struct jqt_mgr m;
	struct jobq_job_info info;
	double restarted;
	uint64_t id;
	jobq_t *p;

	assert_int_equal(jqt_mgr_start(&m, args), 0);
	p = open_window(&m, 30);
	id = submit_running(p, sleep_args);
	crash_restart(&m, args);
	restarted = jqt_now();
	assert_rc(jobq_job_wait(p, id, 50), 0);
	/* Far sooner than the grace: it ran again at once. */
	assert_true(jqt_now() - restarted < 30);
	assert_rc(jobq_job_info(p, id, &info), 0);
	assert_int_equal(info.state, JOBQ_JOB_SUCCEEDED);
	assert_int_equal(info.attempts, 2);
	jobq_close(p);
	jqt_mgr_stop(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blocked_get),
	    cmocka_unit_test(test_stop_start),
	    cmocka_unit_test(test_stopped_for_good),
	    cmocka_unit_test(test_job_wait),
	    cmocka_unit_test(test_incr_once),
	    cmocka_unit_test(test_submit_once),
	    cmocka_unit_test(test_no_comeback),
	    cmocka_unit_test(test_disabled),
	    cmocka_unit_test(test_lock_lost),
	    cmocka_unit_test(test_worker),
	    cmocka_unit_test(test_worker_held),
	    cmocka_unit_test(test_worker_gone),
	    cmocka_unit_test(test_cancel_away),
	    cmocka_unit_test(test_builtin_worker),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
