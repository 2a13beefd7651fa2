/* SPDX-License-Identifier: MIT */
/*
 * test_jobs_kill.c - 10,000 echo jobs through the two built-in workers of
 * `jobqd --workers 2` while another process SIGKILLs a random worker every
 * 200 ms. Every job must end succeeded with its args as result, none may
 * be lost, and the jobs run more than once (attempts beyond the first)
 * must be no more than the kills times a worker's capacity: a kill can
 * cost at most the jobs the worker was running (the built-in workers run
 * 16 at once by default). Afterwards the
 * manager must have reaped every killed worker (no zombie children).
 *
 * The same again with two workers of the test's own that count each run
 * of a job in the key/value store, so that runs are counted where they
 * happen, not inferred from the attempts.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

enum { NJOBS = 10000, BATCH = 100 };

struct shared {
	_Atomic int stop;
	_Atomic int kills;
};

/* The killer: every 200 ms one worker of the manager, picked at random. */
static int killer(int idx, void *arg)
{
	struct shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	uint64_t seed = (uint64_t)getpid();

	while (!atomic_load(&s->stop)) {
		struct jobq_worker_info *ws = NULL;
		size_t n = 0;

		jqt_sleep(0.2);
		if (jobq_workers(q, &ws, &n) == 0 && n > 0) {
			pid_t pid = ws[jqt_rand(&seed) % n].pid;

			if (pid > 0 && pid != jqt_cur->pid &&
			    kill(pid, SIGKILL) == 0)
				atomic_fetch_add(&s->kills, 1);
		}
		free(ws);
	}
	jobq_close(q);
	return 0;
}

static void test_kill_workers(void **state)
{
	struct jqt_mgr *m = *state;
	struct shared *s = jqt_shared(sizeof(*s));
	uint64_t *ids = calloc(NJOBS, sizeof(*ids));
	jobq_obj_t *args = calloc(NJOBS, sizeof(*args));
	char(*text)[32] = calloc(NJOBS, 32);
	jobq_t *q = NULL;
	struct jobq_stats st;
	uint64_t reruns = 0, lost = 0, wrong = 0;
	double t0, end;
	int zombies, rc;
	pid_t kp;

	assert_non_null(ids);
	assert_non_null(args);
	assert_non_null(text);
	assert_rc(jobq_open(&q, m->dir), 0);
	for (int i = 0; i < NJOBS; i++) {
		snprintf(text[i], 32, "{\"i\":%d}", i);
		args[i].type = JOBQ_T_JSON;
		args[i].data = text[i];
		args[i].len = strlen(text[i]);
	}

	kp = jqt_fork(killer, 0, s);
	assert_true(kp > 0);
	t0 = jqt_now();
	/*
	 * Paced, so that the jobs flow for about 2 s and the killer strikes
	 * about ten times while they do: all at once, 10,000 echo jobs are
	 * through in a fraction of a second.
	 */
	for (int i = 0; i < NJOBS; i += BATCH) {
		rc =
		    jobq_submit_many(q, "echo", &args[i], BATCH, NULL, &ids[i]);
		assert_rc(rc, BATCH);
		jqt_sleep(2.0 * BATCH / NJOBS);
	}
	rc = jobq_wait_all(q, ids, NJOBS, 240);
	atomic_store(&s->stop, 1);
	assert_int_equal(jqt_wait_all(&kp, 1, 10, NULL), 0);
	print_message("%d jobs in %.2f s with %d workers killed\n", NJOBS,
		      jqt_now() - t0, atomic_load(&s->kills));

	for (int i = 0; i < NJOBS; i++) {
		struct jobq_job_info ji;
		jobq_obj_t o = {0};

		if (jobq_job_info(q, ids[i], &ji) ||
		    ji.state != JOBQ_JOB_SUCCEEDED) {
			if (lost++ < 5)
				print_error("job %llu: state %s\n",
					    (unsigned long long)ids[i],
					    jobq_job_state_name(ji.state));
			continue;
		}
		reruns += ji.attempts - 1;
		if (jobq_job_result(q, ids[i], &o) || o.len != args[i].len ||
		    memcmp(o.data, args[i].data, o.len))
			wrong++;
		jobq_obj_free(&o);
	}
	assert_rc(jobq_stats(q, &st), 0);
	print_message(
	    "not succeeded %llu, wrong results %llu, run again "
	    "%llu, kills %d; submitted %llu done %llu retried %llu "
	    "dead %llu\n",
	    (unsigned long long)lost, (unsigned long long)wrong,
	    (unsigned long long)reruns, atomic_load(&s->kills),
	    (unsigned long long)st.submitted, (unsigned long long)st.done,
	    (unsigned long long)st.retried, (unsigned long long)st.dead);
	assert_rc(rc, 0);
	assert_int_equal(lost, 0);
	assert_int_equal(wrong, 0);
	assert_true(atomic_load(&s->kills) >= 3);
	{
		struct jobq_worker_info *ws = NULL;
		size_t nw = 0;
		/* The built-in workers' default (a replacement may not have
		 * registered yet when they are listed). */
		unsigned cap = 16;

		assert_rc(jobq_workers(q, &ws, &nw), 0);
		for (size_t i = 0; i < nw; i++)
			if (ws[i].capacity > cap)
				cap = ws[i].capacity;
		free(ws);
		assert_true(reruns <= (uint64_t)atomic_load(&s->kills) * cap);
	}
	assert_int_equal(st.submitted, NJOBS);
	assert_int_equal(st.dead, 0);

	/* Every killed worker reaped by the manager. */
	end = jqt_now() + 2;
	do {
		char states[64];
		int n = jqt_proc_children(m->pid, NULL, states, 64);

		zombies = 0;
		for (int i = 0; i < n && i < 64; i++)
			zombies += states[i] == 'Z';
		if (!zombies)
			break;
		jqt_sleep(0.05);
	} while (jqt_now() < end);
	assert_int_equal(zombies, 0);

	jobq_close(q);
	free(ids);
	free(args);
	free(text);
}

/* ---- the same with runs counted by the workers themselves -------------- */

/* Counts its runs of a job in the key "run.<id>", then echoes. */
static int h_counted(jobq_job_t *job, void *arg)
{
	jobq_t *q = arg;
	const jobq_obj_t *a = jobq_job_args(job);
	char key[40];

	snprintf(key, sizeof(key), "run.%llu",
		 (unsigned long long)jobq_job_id(job));
	if (jobq_kv_incr(q, key, 1, NULL))
		return -EIO;
	/* Busy for a while after counting, so that kills land between the
	 * count and the answer: those runs must come back and count twice. */
	jqt_sleep(0.0003);
	return jobq_job_succeed(job, a->type, a->data, a->len);
}

static int counted_worker(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_worker_t *w;

	CK_RC(jobq_worker_new(&w, q, NULL), 0);
	CK_RC(jobq_worker_handle(w, "counted", h_counted, q), 0);
	jobq_worker_run(w);
	jobq_worker_free(w);
	jobq_close(q);
	return 0;
}

/*
 * Two workers of the test's own, one of them SIGKILLed every 200 ms and
 * replaced at once, while 10,000 jobs flow. Each run of a job is counted
 * in the store by the handler: every job ran at least once, and the runs
 * beyond the first are no more than the kills.
 */
static void test_kill_counted(void **state)
{
	struct jqt_mgr *m = *state;
	uint64_t *ids = calloc(NJOBS, sizeof(*ids));
	jobq_obj_t *args = calloc(NJOBS, sizeof(*args));
	uint64_t seed = 42, twice = 0, never = 0, sum = 0;
	jobq_t *q = NULL;
	struct jobq_stats st;
	pid_t w[2];
	int kills = 0, submitted = 0, rc;
	double t0, next, end;

	assert_non_null(ids);
	assert_non_null(args);
	assert_rc(jobq_open(&q, m->dir), 0);
	for (int i = 0; i < NJOBS; i++) {
		args[i].type = JOBQ_T_BYTES;
		args[i].data = &ids[i]; /* any 8 bytes */
		args[i].len = 8;
	}
	for (int i = 0; i < 2; i++) {
		w[i] = jqt_fork(counted_worker, i, NULL);
		assert_true(w[i] > 0);
	}

	t0 = jqt_now();
	next = t0 + 0.2;
	end = t0 + 240;
	for (;;) {
		if (submitted < NJOBS) {
			rc = jobq_submit_many(q, "counted", &args[submitted],
					      BATCH, NULL, &ids[submitted]);
			assert_rc(rc, BATCH);
			submitted += BATCH;
		}
		assert_rc(jobq_stats(q, &st), 0);
		if (submitted == NJOBS && st.done + st.dead >= NJOBS)
			break;
		assert_true(jqt_now() < end);
		jqt_sleep(2.0 * BATCH / NJOBS);
		if (jqt_now() >= next) {
			int k = (int)(jqt_rand(&seed) % 2);

			jqt_kill_child(w[k]);
			kills++;
			w[k] = jqt_fork(counted_worker, k, NULL);
			assert_true(w[k] > 0);
			next += 0.2;
		}
	}
	print_message("%d jobs in %.2f s with %d workers killed\n", NJOBS,
		      jqt_now() - t0, kills);

	for (int i = 0; i < NJOBS; i++) {
		char key[40];
		int64_t runs = 0;

		assert_int_equal(jqt_job_state(q, ids[i]), JOBQ_JOB_SUCCEEDED);
		snprintf(key, sizeof(key), "run.%llu",
			 (unsigned long long)ids[i]);
		/* incr by 0 reads the count. */
		assert_rc(jobq_kv_incr(q, key, 0, &runs), 0);
		if (runs < 1)
			never++;
		if (runs > 1)
			twice += (uint64_t)(runs - 1);
		sum += (uint64_t)runs;
	}
	print_message("runs %llu, never run %llu, run again %llu, kills %d\n",
		      (unsigned long long)sum, (unsigned long long)never,
		      (unsigned long long)twice, kills);
	assert_int_equal(never, 0);
	assert_true(kills >= 5);
	assert_true(twice <= (uint64_t)kills);

	for (int i = 0; i < 2; i++)
		jqt_kill_child(w[i]);
	jobq_close(q);
	free(ids);
	free(args);
}

/* A handler that ignores cancels: it blocks for 30 s whatever happens. */
static int h_stubborn(jobq_job_t *job, void *arg)
{
	struct timespec ts = {30, 0};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 0;
}

/* A worker embedded in a program of the test's own (not started by
 * jobqd): it reports its exit through the pipe when its run ends. */
static int stubborn_worker(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_worker_t *w;

	CK_RC(jobq_worker_new(&w, q, NULL), 0);
	CK_RC(jobq_worker_handle(w, "stubborn", h_stubborn, NULL), 0);
	jobq_worker_run(w);
	jobq_worker_free(w);
	jobq_close(q);
	return 0;
}

/*
 * A worker that ignores a cancel is killed only when jobqd started it: an
 * application that embeds a worker is never signalled (a pid taken at
 * connect time may be the whole application, or by now someone else).
 * Its connection is dropped instead; the job ends cancelled.
 */
static void test_ignored_cancel_embedded(void **state)
{
	struct jqt_mgr *m = *state;
	struct jobq_worker_info *ws = NULL;
	size_t nw = 0;
	uint64_t id;
	jobq_t *q;
	pid_t w;
	int st;
	double end;

	assert_rc(jobq_open(&q, m->dir), 0);
	w = jqt_fork(stubborn_worker, 0, NULL);
	assert_true(w > 0);
	assert_rc(jobq_submit(q, "stubborn", JOBQ_T_BYTES, "", 0, NULL, &id),
		  0);
	for (end = jqt_now() + 10; jqt_job_state(q, id) != JOBQ_JOB_RUNNING;
	     jqt_sleep(0.02))
		assert_true(jqt_now() < end);
	assert_rc(jobq_cancel(q, id), 0);
	/* The grace period is 5 s; then the manager acts. */
	assert_rc(jobq_job_wait(q, id, 15), -ECANCELED);
	/* Not signalled: still running, not a zombie. */
	assert_int_equal(waitpid(w, &st, WNOHANG), 0);
	assert_int_equal(kill(w, 0), 0);
	/* But no longer a worker of this manager. */
	for (end = jqt_now() + 5;; jqt_sleep(0.05)) {
		bool listed = false;

		assert_rc(jobq_workers(q, &ws, &nw), 0);
		for (size_t i = 0; i < nw; i++)
			listed |= ws[i].pid == w;
		free(ws);
		if (!listed)
			break;
		assert_true(jqt_now() < end);
	}
	jqt_kill_child(w);
	jobq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_kill_workers,
					    jqt_setup_workers, jqt_teardown),
	    cmocka_unit_test_setup_teardown(test_kill_counted, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(test_ignored_cancel_embedded,
					    jqt_setup, jqt_teardown),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
