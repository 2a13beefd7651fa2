/* SPDX-License-Identifier: MIT */
/*
 * test_jobs.c - the job lifecycle against a real manager, with workers
 * forked by the test (the library's worker API) or speaking the ring
 * protocol directly: priorities, delays, --after, cancel of queued,
 * running and deaf jobs, retry and kick, a job that crashes its
 * worker every time (poison pill), and lease expiry with the first
 * worker's late answer refused (-ESTALE); jobq_map() and
 * jobq_map_chunked().
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

/* How late a delayed job may start: 10 ms, 50 ms under ASan. */
#if defined(__SANITIZE_ADDRESS__)
#define DELAY_SLACK 0.050
#else
#define DELAY_SLACK 0.010
#endif

static jobq_t *open_q(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;

	assert_rc(jobq_open(&q, m->dir), 0);
	return q;
}

/* ---- workers forked by the test ---------------------------------------- */

/* What the forked workers record, in memory shared with the test. */
struct rec {
	_Atomic uint32_t n;
	uint64_t ids[256];
	_Atomic uint32_t started; /* handlers entered */
	_Atomic uint32_t finished;
};

static struct rec *rec;

static int h_record(jobq_job_t *job, void *arg)
{
	uint32_t i = atomic_fetch_add(&rec->n, 1);
	const jobq_obj_t *a = jobq_job_args(job);

	if (i < 256)
		rec->ids[i] = jobq_job_id(job);
	return jobq_job_succeed(job, a->type, a->data, a->len);
}

/* Fails (retryably) until the key "flaky.ok" exists. */
static int h_flaky(jobq_job_t *job, void *arg)
{
	jobq_t *q = arg;
	jobq_obj_t o = {0};

	if (jobq_kv_get(q, "flaky.ok", &o) == 0) {
		jobq_obj_free(&o);
		return jobq_job_succeed(job, JOBQ_T_TEXT, "ok", 2);
	}
	jobq_job_fail(job, 0, "not yet");
	return -EIO;
}

/* Runs 60 s whatever happens: a cancel must end in a kill. */
static int h_deaf(jobq_job_t *job, void *arg)
{
	atomic_fetch_add(&rec->started, 1);
	jqt_sleep(60);
	return 0;
}

static int h_crash(jobq_job_t *job, void *arg)
{
	atomic_fetch_add(&rec->started, 1);
	abort();
}

struct wspec {
	const char *type; /* NULL: the built-in types */
	jobq_handler fn;
	unsigned concurrency;
};

static struct wspec wspecs[8];

/* A worker child: serves wspecs[idx] until stopped or killed. */
static int worker_main(int idx, void *arg)
{
	const struct wspec *s = &wspecs[idx];
	struct jobq_worker_opts o = {.concurrency = s->concurrency};
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_worker_t *w;
	struct rlimit nocore = {0, 0};

	setrlimit(RLIMIT_CORE, &nocore);
	CK_RC(jobq_worker_new(&w, q, &o), 0);
	if (s->type)
		CK_RC(jobq_worker_handle(w, s->type, s->fn, q), 0);
	else
		CK_RC(jobq_worker_builtin(w), 0);
	jobq_worker_run(w);
	jobq_worker_free(w);
	jobq_close(q);
	return 0;
}

static pid_t start_worker(int slot, const char *type, jobq_handler fn,
			  unsigned concurrency)
{
	pid_t pid;

	wspecs[slot] = (struct wspec){type, fn, concurrency};
	pid = jqt_fork(worker_main, slot, NULL);
	assert_true(pid > 0);
	return pid;
}

/* Wait until @n workers serve @type (the type record says so). */
static void wait_served(jobq_t *q, const char *type, size_t n)
{
	double end = jqt_now() + 10;
	size_t have = 0;

	while (jqt_now() < end) {
		struct jobq_worker_info *ws = NULL;
		size_t nw = 0;

		have = 0;
		if (jobq_workers(q, &ws, &nw) == 0) {
			for (size_t i = 0; i < nw; i++)
				if (strstr(ws[i].types, type))
					have++;
			free(ws);
		}
		if (have >= n)
			return;
		jqt_sleep(0.01);
	}
	print_error("%zu workers serve %s after 10 s, expected %zu\n", have,
		    type, n);
	fail();
}

static uint64_t submit(jobq_t *q, const char *type, const char *json,
		       const struct jobq_submit_opts *o)
{
	uint64_t id = 0;

	assert_rc(jobq_submit(q, type, JOBQ_T_JSON, json, strlen(json), o, &id),
		  0);
	assert_true(id > 0);
	return id;
}

static struct jobq_job_info info(jobq_t *q, uint64_t id)
{
	struct jobq_job_info ji;

	assert_rc(jobq_job_info(q, id, &ji), 0);
	return ji;
}

/* The error text (or result) of a final job, NUL-terminated. */
static char *result_text(jobq_t *q, uint64_t id)
{
	jobq_obj_t o = {0};
	char *s;

	assert_rc(jobq_job_result(q, id, &o), 0);
	s = strndup(o.len ? o.data : "", o.len);
	jobq_obj_free(&o);
	return s;
}

static void stop_worker(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	jqt_wait_pid(pid, 10, &st);
}

/* ---- tests --------------------------------------------------------------- */

/* Ready jobs go out highest priority first, FIFO among equals. */
static void test_priority(void **state)
{
	static const int prio[] = {0, 5, -1, 5, 10, 0, -3, 10, 1};
	enum { N = sizeof(prio) / sizeof(prio[0]) };
	jobq_t *q = open_q(state);
	uint64_t ids[N], want[N];
	int order[N];
	pid_t w;

	rec = jqt_shared(sizeof(*rec));
	for (int i = 0; i < N; i++) {
		struct jobq_submit_opts o = {.priority = prio[i]};

		ids[i] = submit(q, "prio", "{}", &o);
		assert_int_equal(jqt_job_state(q, ids[i]), JOBQ_JOB_READY);
	}
	/* Expected: by priority descending, then by id. */
	for (int i = 0; i < N; i++)
		order[i] = i;
	for (int i = 1; i < N; i++)
		for (int j = i; j > 0 && prio[order[j]] > prio[order[j - 1]];
		     j--) {
			int t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (int i = 0; i < N; i++)
		want[i] = ids[order[i]];

	w = start_worker(0, "prio", h_record, 1);
	assert_rc(jobq_wait_all(q, ids, N, 20), 0);
	assert_int_equal(atomic_load(&rec->n), N);
	for (int i = 0; i < N; i++) {
		if (rec->ids[i] != want[i])
			print_error("run %d: job %llu, expected %llu\n", i,
				    (unsigned long long)rec->ids[i],
				    (unsigned long long)want[i]);
		assert_int_equal(rec->ids[i], want[i]);
	}
	stop_worker(w);
	jobq_close(q);
}

/* A delayed job is handed out no earlier than asked, and not much later. */
static void test_delay(void **state)
{
	static const double delays[] = {0.2, 0.05, 0.5, 0.3};
	enum { N = 4 };
	jobq_t *q = open_q(state);
	uint64_t ids[N];
	pid_t w;

	rec = jqt_shared(sizeof(*rec));
	w = start_worker(0, "delayed", h_record, 2);
	wait_served(q, "delayed", 1);
	for (int i = 0; i < N; i++) {
		struct jobq_submit_opts o = {.delay = delays[i]};

		ids[i] = submit(q, "delayed", "{}", &o);
		assert_int_equal(jqt_job_state(q, ids[i]), JOBQ_JOB_DELAYED);
	}
	assert_rc(jobq_wait_all(q, ids, N, 20), 0);
	for (int i = 0; i < N; i++) {
		struct jobq_job_info ji = info(q, ids[i]);
		double late =
		    (double)(ji.started_ns - ji.created_ns) / 1e9 - delays[i];

		print_message("delay %.3f s: started %+.2f ms from run-at "
			      "(slack %.0f ms)\n",
			      delays[i], late * 1e3, DELAY_SLACK * 1e3);
		assert_true(ji.started_ns >= ji.created_ns);
		assert_true(late >= 0);
		assert_true(late <= DELAY_SLACK);
	}
	stop_worker(w);
	jobq_close(q);
}

/* --after: waits for its dependencies; dies when one fails. */
static void test_after(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_submit_opts once = {.no_retry = 1};
	struct jobq_submit_opts o = {0};
	uint64_t a, b, c, d, e, both[2], bad = 999999;
	struct jobq_job_info ja, jb;
	char *err;
	pid_t w;

	w = start_worker(0, NULL, NULL, 2);
	wait_served(q, "sleep", 1);

	a = submit(q, "sleep", "{\"ms\": 300}", NULL);
	o.after = &a;
	o.nafter = 1;
	b = submit(q, "echo", "{\"after\": true}", &o);
	assert_int_equal(jqt_job_state(q, b), JOBQ_JOB_WAITING);
	jqt_sleep(0.1);
	assert_int_equal(jqt_job_state(q, b), JOBQ_JOB_WAITING);
	assert_rc(jobq_job_wait(q, b, 10), 0);
	ja = info(q, a);
	jb = info(q, b);
	assert_int_equal(ja.state, JOBQ_JOB_SUCCEEDED);
	assert_true(jb.started_ns >= ja.finished_ns);

	/* A failed dependency: the waiting job is dead, and says why. */
	c = submit(q, "fail", "{\"error\": \"on purpose\"}", &once);
	both[0] = a;
	both[1] = c;
	o.after = both;
	o.nafter = 2;
	d = submit(q, "echo", "{}", &o);
	assert_int_equal(jobq_job_wait(q, c, 10), JOBQ_EJOBFAILED);
	assert_int_equal(jobq_job_wait(q, d, 10), JOBQ_EJOBFAILED);
	assert_int_equal(jqt_job_state(q, d), JOBQ_JOB_DEAD);
	assert_int_equal(info(q, d).attempts, 0);
	err = result_text(q, d);
	print_message("dead dependent says: %s\n", err);
	assert_non_null(strstr(err, "dependency"));
	free(err);

	/* A cancelled dependency too. */
	e = submit(q, "nobody-serves-this", "{}", NULL);
	o.after = &e;
	o.nafter = 1;
	d = submit(q, "echo", "{}", &o);
	assert_rc(jobq_cancel(q, e), 0);
	assert_int_equal(jobq_job_wait(q, d, 10), JOBQ_EJOBFAILED);

	/* An unknown dependency is refused at submit. */
	o.after = &bad;
	assert_rc(jobq_submit(q, "echo", JOBQ_T_JSON, "{}", 2, &o, &e),
		  -ENOENT);
	stop_worker(w);
	jobq_close(q);
}

static void test_cancel_queued(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_submit_opts later = {.delay = 60};
	uint64_t r, d;

	r = submit(q, "nobody", "{}", NULL);
	d = submit(q, "nobody", "{}", &later);
	assert_int_equal(jqt_job_state(q, r), JOBQ_JOB_READY);
	assert_int_equal(jqt_job_state(q, d), JOBQ_JOB_DELAYED);
	assert_rc(jobq_cancel(q, r), 0);
	assert_rc(jobq_cancel(q, d), 0);
	assert_int_equal(jqt_job_state(q, r), JOBQ_JOB_CANCELLED);
	assert_int_equal(jqt_job_state(q, d), JOBQ_JOB_CANCELLED);
	assert_int_equal(jobq_job_wait(q, r, 1), -ECANCELED);
	assert_rc(jobq_cancel(q, r), -EALREADY);
	assert_rc(jobq_cancel(q, 1000000), -ENOENT);
	jobq_close(q);
}

/* A job of a type nobody serves stays ready until a worker for it comes. */
static void test_unknown_type(void **state)
{
	jobq_t *q = open_q(state);
	uint64_t id;
	pid_t w;

	rec = jqt_shared(sizeof(*rec));
	id = submit(q, "late-type", "{\"x\": 1}", NULL);
	jqt_sleep(0.3);
	assert_int_equal(jqt_job_state(q, id), JOBQ_JOB_READY);
	assert_int_equal(info(q, id).type_has_worker, 0);
	assert_int_equal(info(q, id).attempts, 0);
	assert_int_equal(jobq_job_wait(q, id, 0.1), -ETIMEDOUT);

	w = start_worker(0, "late-type", h_record, 1);
	assert_rc(jobq_job_wait(q, id, 10), 0);
	assert_int_equal(info(q, id).type_has_worker, 1);
	assert_int_equal(atomic_load(&rec->n), 1);
	stop_worker(w);
	jobq_close(q);
}

/* A running job whose worker listens: cancelled soon. */
static void test_cancel_running(void **state)
{
	jobq_t *q = open_q(state);
	uint64_t id;
	double t0;
	pid_t w;

	w = start_worker(0, NULL, NULL, 1);
	wait_served(q, "sleep", 1);
	id = submit(q, "sleep", "{\"ms\": 20000}", NULL);
	assert_rc(jqt_job_wait_state(q, id, JOBQ_JOB_RUNNING, 10), 0);
	t0 = jqt_now();
	assert_rc(jobq_cancel(q, id), 0);
	assert_int_equal(jobq_job_wait(q, id, 10), -ECANCELED);
	print_message("running sleep cancelled in %.3f s\n", jqt_now() - t0);
	assert_true(jqt_now() - t0 < 5);
	assert_int_equal(jqt_job_state(q, id), JOBQ_JOB_CANCELLED);
	stop_worker(w);
	jobq_close(q);
}

/* A running job whose worker does not listen: after the 5 s grace
 * period the job is cancelled. The worker is the test's own, not one
 * jobqd started, so it is not signalled (a worker embedded in an
 * application must not be killed whole): its connection is dropped. */
static void test_cancel_deaf(void **state)
{
	jobq_t *q = open_q(state);
	uint64_t id;
	double t0, took;
	int st = 0;
	pid_t w;

	rec = jqt_shared(sizeof(*rec));
	w = start_worker(0, "deaf", h_deaf, 1);
	wait_served(q, "deaf", 1);
	id = submit(q, "deaf", "{}", NULL);
	assert_rc(jqt_job_wait_state(q, id, JOBQ_JOB_RUNNING, 10), 0);
	/* In the handler: a cancel before it starts would end it at once. */
	t0 = jqt_now() + 10;
	while (!atomic_load(&rec->started) && jqt_now() < t0)
		jqt_sleep(0.005);
	assert_int_equal(atomic_load(&rec->started), 1);
	t0 = jqt_now();
	assert_rc(jobq_cancel(q, id), 0);
	assert_int_equal(jobq_job_wait(q, id, 15), -ECANCELED);
	took = jqt_now() - t0;
	print_message("deaf job cancelled after %.2f s\n", took);
	assert_true(took >= 4.5 && took < 10);
	assert_int_equal(waitpid(w, &st, WNOHANG), 0); /* not killed */
	jqt_kill_child(w);
	jobq_close(q);
}

static void test_retry_kick(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_submit_opts once = {.no_retry = 1};
	uint64_t a, b, c, x;
	pid_t w;

	w = start_worker(0, "flaky", h_flaky, 1);
	wait_served(q, "flaky", 1);
	a = submit(q, "flaky", "{}", &once);
	b = submit(q, "flaky", "{}", &once);
	c = submit(q, "flaky", "{}", &once);
	assert_int_equal(jobq_job_wait(q, a, 10), JOBQ_EJOBFAILED);
	assert_int_equal(jobq_job_wait(q, b, 10), JOBQ_EJOBFAILED);
	assert_int_equal(jobq_job_wait(q, c, 10), JOBQ_EJOBFAILED);
	assert_int_equal(info(q, a).attempts, 1);

	/* Kicked while still flaky: runs once more and is dead again. */
	assert_rc(jobq_kick(q, a), 0);
	assert_int_equal(jobq_job_wait(q, a, 10), JOBQ_EJOBFAILED);
	assert_int_equal(info(q, a).attempts, 1);

	assert_rc(jobq_kv_set(q, "flaky.ok", JOBQ_T_TEXT, "1", 1), 0);
	assert_rc(jobq_kick(q, a), 0);
	assert_rc(jobq_job_wait(q, a, 10), 0);
	assert_rc(jobq_retry(q, b), 0);
	assert_rc(jobq_job_wait(q, b, 10), 0);
	/* kick 0: every dead job, and says how many. */
	assert_rc(jobq_kick(q, 0), 1);
	assert_rc(jobq_job_wait(q, c, 10), 0);
	assert_rc(jobq_kick(q, 0), 0);

	/* Nothing to do for a succeeded job; unknown ids. */
	assert_rc(jobq_retry(q, a), -EALREADY);
	assert_rc(jobq_kick(q, a), -EALREADY);
	assert_rc(jobq_retry(q, 777777), -ENOENT);

	/* A cancelled job can be retried. */
	x = submit(q, "flaky", "{}", &(struct jobq_submit_opts){.delay = 60});
	assert_rc(jobq_cancel(q, x), 0);
	assert_rc(jobq_retry(q, x), 0);
	/* Ready again: the idle worker may have taken it already. */
	assert_int_not_equal(jqt_job_state(q, x), JOBQ_JOB_CANCELLED);
	assert_rc(jobq_job_wait(q, x, 10), 0);
	assert_int_equal(info(q, x).attempts, 1);
	stop_worker(w);
	jobq_close(q);
}

/* A job that kills its worker every time ends dead after its attempts. */
static void test_poison_pill(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_submit_opts o = {.retries = 2};
	struct jobq_job_info ji;
	int workers = 0, st;
	double end;
	uint64_t id;
	char *err;

	rec = jqt_shared(sizeof(*rec));
	id = submit(q, "crash", "{}", &o);
	end = jqt_now() + 40;
	while (jqt_job_state(q, id) != JOBQ_JOB_DEAD && jqt_now() < end) {
		pid_t w = start_worker(workers % 8, "crash", h_crash, 1);

		workers++;
		/* The worker lives until it takes the job and aborts. */
		while (jqt_wait_pid(w, 0.05, &st) == -ETIMEDOUT) {
			if (jqt_job_state(q, id) == JOBQ_JOB_DEAD ||
			    jqt_now() > end) {
				stop_worker(w);
				break;
			}
		}
	}
	ji = info(q, id);
	print_message("%d worker processes, %u handler entries, state %s, "
		      "attempts %u/%u\n",
		      workers, atomic_load(&rec->started),
		      jobq_job_state_name(ji.state), ji.attempts,
		      ji.max_attempts);
	assert_int_equal(ji.state, JOBQ_JOB_DEAD);
	assert_int_equal(ji.attempts, 3);
	assert_int_equal(ji.max_attempts, 3);
	assert_int_equal(atomic_load(&rec->started), 3);
	err = result_text(q, id);
	print_message("error: %s\n", err);
	assert_non_null(strstr(err, "died"));
	free(err);
	assert_int_equal(jobq_job_wait(q, id, 1), JOBQ_EJOBFAILED);
	jobq_close(q);
}

/* ---- lease expiry, with a worker that speaks the ring protocol ---------- */

static int raw_call(struct jqt_raw *r, struct jobq_sqe *s, struct jobq_cqe *c,
		    double timeout)
{
	int rc = jqt_raw_submit(r, s);

	if (rc)
		return rc;
	/* Skip notices; the answer carries our user_data. */
	for (;;) {
		rc = jqt_raw_wait(r, c, timeout);
		if (rc)
			return rc;
		if (c->user_data == s->user_data)
			return 0;
	}
}

static int h_second(jobq_job_t *job, void *arg)
{
	atomic_fetch_add(&rec->started, 1);
	return jobq_job_succeed(job, JOBQ_T_TEXT, "second", 6);
}

static void test_lease_expiry(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = open_q(state);
	struct jobq_submit_opts o = {.timeout = 0.3};
	struct jqt_raw r;
	struct jobq_sqe s;
	struct jobq_cqe cq;
	struct jobq_job_info ji;
	uint64_t id;
	uint32_t attempt;
	char *res;
	pid_t w;

	rec = jqt_shared(sizeof(*rec));
	assert_rc(jqt_raw_open(m->dir, &r), 0);
	memset(&s, 0, sizeof(s));
	s.op = JOBQ_OP_W_REGISTER;
	s.user_data = 1;
	s.arena_off = jqt_raw_arena_put(&r, 0, "lease\0", 6);
	s.arena_len = 6;
	s.arg0 = 1;
	assert_rc(raw_call(&r, &s, &cq, 10), 0);
	assert_rc(cq.res, 0);

	id = submit(q, "lease", "{}", &o);
	memset(&s, 0, sizeof(s));
	s.op = JOBQ_OP_W_RESERVE;
	s.user_data = 2;
	s.timeout_ns = 10000000000LL;
	s.arg0 = 1;
	assert_rc(raw_call(&r, &s, &cq, 12), 0);
	assert_true(cq.flags & JOBQ_CQE_JOB);
	assert_int_equal(cq.val, id);
	attempt = cq.len;
	assert_int_equal(attempt, 1);
	assert_int_equal(jqt_job_state(q, id), JOBQ_JOB_RUNNING);

	/* The raw worker sits on it; a second worker comes. The lease runs
	 * out, the attempt counts as failed, and after the backoff the job
	 * goes to the second worker. */
	w = start_worker(0, "lease", h_second, 1);
	assert_rc(jobq_job_wait(q, id, 15), 0);
	ji = info(q, id);
	assert_int_equal(ji.attempts, 2);
	assert_int_equal(ji.worker, w);
	res = result_text(q, id);
	assert_string_equal(res, "second");
	free(res);

	/* Now the first worker answers: refused. */
	memset(&s, 0, sizeof(s));
	s.op = JOBQ_OP_W_DONE;
	s.user_data = 3;
	s.arg0 = id;
	s.arg1 = attempt;
	s.type = JOBQ_T_TEXT;
	s.arena_off = jqt_raw_arena_put(&r, 0, "first", 5);
	s.arena_len = 5;
	assert_rc(raw_call(&r, &s, &cq, 10), 0);
	assert_rc(cq.res, -ESTALE);
	res = result_text(q, id);
	assert_string_equal(res, "second");
	free(res);
	assert_int_equal(jqt_job_state(q, id), JOBQ_JOB_SUCCEEDED);

	jqt_raw_close(&r);
	stop_worker(w);
	jobq_close(q);
}

/* ---- jobq_map() and jobq_map_chunked() --------------------------------- */

/* Args "N": fails input N when N % 7 == 3, else the result "N*2"; records
 * the job id each input ran in. With N < 0 the result is -N bytes. */
static long args_n(jobq_job_t *job)
{
	return strtol(jobq_job_args(job)->data, NULL, 10);
}

/* The result "N*2". */
static int succeed_doubled(jobq_job_t *job, long n)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%ld", n * 2);

	return jobq_job_succeed(job, JOBQ_T_TEXT, buf, (size_t)len);
}

static int h_double(jobq_job_t *job, void *arg)
{
	long n = args_n(job);

	atomic_fetch_add(&rec->n, 1);
	if (n >= 0 && n < 256)
		rec->ids[n] = jobq_job_id(job);
	if (n < 0) {
		char *big = calloc(1, (size_t)-n);
		int rc = jobq_job_succeed(job, JOBQ_T_BYTES, big, (size_t)-n);

		free(big);
		return rc;
	}
	if (n % 7 == 3)
		return jobq_job_fail(job, 0, "input %ld refused", n);
	return succeed_doubled(job, n);
}

struct map_in {
	jobq_obj_t *in;
	char (*text)[24];
};

static struct map_in map_inputs(size_t n)
{
	struct map_in m = {calloc(n, sizeof(*m.in)),
			   calloc(n, sizeof(*m.text))};

	assert_non_null(m.in);
	assert_non_null(m.text);
	for (size_t i = 0; i < n; i++) {
		m.in[i].type = JOBQ_T_TEXT;
		m.in[i].len =
		    (size_t)snprintf(m.text[i], sizeof(m.text[i]), "%zu", i);
		m.in[i].data = m.text[i];
	}
	return m;
}

/* Every result of h_double over 0..n-1 in @out, input @big excepted. */
static void check_doubled(jobq_obj_t *out, size_t n, size_t big)
{
	for (size_t i = 0; i < n; i++) {
		char want[64];

		if (i == big) {
			assert_int_equal(out[i].type, JOBQ_T_TEXT);
			assert_string_equal(out[i].data, jobq_strerror(-E2BIG));
		} else if (i % 7 == 3) {
			snprintf(want, sizeof(want), "input %zu refused", i);
			assert_int_equal(out[i].type, JOBQ_T_TEXT);
			assert_string_equal(out[i].data, want);
		} else {
			snprintf(want, sizeof(want), "%zu", 2 * i);
			assert_int_equal(out[i].type, JOBQ_T_TEXT);
			assert_string_equal(out[i].data, want);
		}
		jobq_obj_free(&out[i]);
	}
}

/* Inputs in chunks: results in input order, a failed input fails alone
 * (the first failure in input order is the answer), an input over the
 * largest object fails alone, and each chunk is one job. */
static void test_map_chunked(void **state)
{
	jobq_t *q = open_q(state);
	size_t n = 1000, big = 500;
	struct map_in m = map_inputs(n);
	jobq_obj_t *out = calloc(n, sizeof(*out));
	size_t maxo = jobq_max_object(q);
	char *huge = calloc(1, maxo + 1);
	struct jobq_submit_opts once = {.no_retry = 1};
	pid_t w[2];

	rec = jqt_shared(sizeof(*rec));
	w[0] = start_worker(0, "double", h_double, 4);
	w[1] = start_worker(1, "double", h_double, 4);
	wait_served(q, "double", 2);
	m.in[big] =
	    (jobq_obj_t){.type = JOBQ_T_BYTES, .len = maxo + 1, .data = huge};

	assert_rc(jobq_map_chunked(q, "double", m.in, n, 64, 4, NULL, out, 30),
		  JOBQ_EJOBFAILED);
	check_doubled(out, n, big);
	assert_int_equal(atomic_load(&rec->n), n - 1);
	/* Inputs 0..63 ran in one job, 64 in the next. */
	for (int i = 1; i < 64; i++)
		assert_int_equal(rec->ids[i], rec->ids[0]);
	assert_int_not_equal(rec->ids[64], rec->ids[0]);
	for (int i = 65; i < 128; i++)
		assert_int_equal(rec->ids[i], rec->ids[64]);

	/* The same without chunks, jobq_map() itself, and chunk 1. */
	atomic_store(&rec->n, 0);
	assert_rc(jobq_map(q, "double", m.in, n, 16, &once, out, 30),
		  JOBQ_EJOBFAILED);
	check_doubled(out, n, big);
	assert_int_not_equal(rec->ids[1], rec->ids[0]);
	assert_rc(jobq_map_chunked(q, "double", m.in, 3, 1, 0, NULL, out, 30),
		  0);
	for (int i = 0; i < 3; i++)
		jobq_obj_free(&out[i]);

	/* Every input refused: no job at all. */
	m.in[0] = m.in[big];
	assert_rc(jobq_map_chunked(q, "double", m.in, 1, 8, 0, NULL, out, 30),
		  -E2BIG);
	jobq_obj_free(&out[0]);

	/* Results of one chunk over the largest object: the chunk fails,
	 * for good, saying so, for each of its inputs. */
	for (int i = 0; i < 4; i++)
		m.in[i].len = (size_t)snprintf(m.text[i], sizeof(m.text[i]),
					       "-%zu", maxo / 3);
	m.in[0].data = m.text[0];
	assert_rc(jobq_map_chunked(q, "double", m.in, 4, 4, 0, NULL, out, 30),
		  JOBQ_EJOBFAILED);
	for (int i = 0; i < 4; i++) {
		assert_non_null(strstr(out[i].data, "use smaller chunks"));
		jobq_obj_free(&out[i]);
	}

	stop_worker(w[0]);
	stop_worker(w[1]);
	free(huge);
	free(out);
	free(m.in);
	free(m.text);
	jobq_close(q);
}

/* Chunks of a built-in type, served by the built-in workers. */
static void test_map_chunked_builtin(void **state)
{
	jobq_t *q = open_q(state);
	size_t n = 300;
	jobq_obj_t *in = calloc(n, sizeof(*in)), *out = calloc(n, sizeof(*out));
	char(*text)[32] = calloc(n, sizeof(*text));
	pid_t w = start_worker(0, NULL, NULL, 8);

	wait_served(q, "echo", 1);
	for (size_t i = 0; i < n; i++) {
		in[i].type = JOBQ_T_JSON;
		in[i].len = (size_t)snprintf(text[i], sizeof(text[i]),
					     "{\"i\": %zu}", i);
		in[i].data = text[i];
	}
	assert_rc(jobq_map_chunked(q, "echo", in, n, 50, 0, NULL, out, 30), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i].type, JOBQ_T_JSON);
		assert_memory_equal(out[i].data, text[i], in[i].len);
		jobq_obj_free(&out[i]);
	}
	stop_worker(w);
	free(in);
	free(out);
	free(text);
	jobq_close(q);
}

/* Args "N": counts the input, kills its worker on input 2 of a first
 * attempt, else the result "N*2". */
static int h_crash_once(jobq_job_t *job, void *arg)
{
	long n = args_n(job);

	atomic_fetch_add(&rec->n, 1);
	if (n == 2 && jobq_job_attempt(job) == 1)
		abort();
	return succeed_doubled(job, n);
}

/* Counts the input, then sleeps 0.4 s on the engine. */
static int h_slow(jobq_job_t *job, void *arg)
{
	int rc;

	atomic_fetch_add(&rec->n, 1);
	rc = jobq_io_sleep(0.4);
	if (!rc)
		atomic_fetch_add(&rec->finished, 1);
	return rc ? rc : jobq_job_succeed(job, JOBQ_T_TEXT, "ok", 2);
}

/* A chunk whose worker dies runs again whole, on the other worker, and
 * the map still gets every result. */
static void test_chunk_worker_dies(void **state)
{
	jobq_t *q = open_q(state);
	struct map_in m = map_inputs(4);
	jobq_obj_t out[4] = {0};
	pid_t w[2];

	rec = jqt_shared(sizeof(*rec));
	w[0] = start_worker(0, "crash-once", h_crash_once, 1);
	w[1] = start_worker(1, "crash-once", h_crash_once, 1);
	wait_served(q, "crash-once", 2);
	assert_rc(
	    jobq_map_chunked(q, "crash-once", m.in, 4, 4, 1, NULL, out, 30), 0);
	for (int i = 0; i < 4; i++) {
		char want[8];

		snprintf(want, sizeof(want), "%d", 2 * i);
		assert_string_equal(out[i].data, want);
		jobq_obj_free(&out[i]);
	}
	/* Inputs 0, 1 and 2 on the first attempt, all four on the second. */
	assert_int_equal(atomic_load(&rec->n), 7);
	stop_worker(w[0]);
	stop_worker(w[1]);
	free(m.in);
	free(m.text);
	jobq_close(q);
}

/* The --timeout covers the whole chunk: when it runs out the chunk
 * stops between inputs and fails as a whole, for each of its inputs. */
static void test_chunk_timeout(void **state)
{
	jobq_t *q = open_q(state);
	struct map_in m = map_inputs(4);
	struct jobq_submit_opts o = {.timeout = 1, .no_retry = 1};
	jobq_obj_t out[4] = {0};
	double t0;
	pid_t w;

	rec = jqt_shared(sizeof(*rec));
	w = start_worker(0, "slow", h_slow, 1);
	wait_served(q, "slow", 1);
	t0 = jqt_now();
	assert_rc(jobq_map_chunked(q, "slow", m.in, 4, 4, 1, &o, out, 30),
		  JOBQ_EJOBFAILED);
	print_message("chunk timed out after %.2f s\n", jqt_now() - t0);
	for (int i = 0; i < 4; i++) {
		assert_non_null(strstr(out[i].data, "timed out"));
		jobq_obj_free(&out[i]);
	}
	/* The third input's sleep was cut short (the second's, on a slow
	 * machine) and the fourth never began. */
	assert_in_range(atomic_load(&rec->n), 2, 3);
	assert_int_equal(atomic_load(&rec->finished), atomic_load(&rec->n) - 1);
	stop_worker(w);
	free(m.in);
	free(m.text);
	jobq_close(q);
}

/* A job whose args say chunk but are not one fails for good, saying so,
 * and the worker goes on serving. */
static void test_chunk_malformed(void **state)
{
	static const uint8_t truncated[] = {'J', 'Q', 'C', '1', 2, 0, 0,
					    0,	 0,   0,   0,	0, 3, 0,
					    0,	 0,   1,   0,	0, 0, '7'};
	jobq_t *q = open_q(state);
	uint64_t a, b, c;
	char *t;
	pid_t w;

	rec = jqt_shared(sizeof(*rec));
	w = start_worker(0, "double", h_double, 2);
	assert_rc(jobq_submit(q, "double", JOBQ_T_CHUNK, "junk", 4, NULL, &a),
		  0);
	assert_rc(jobq_submit(q, "double", JOBQ_T_CHUNK, truncated,
			      sizeof(truncated), NULL, &b),
		  0);
	c = submit(q, "double", "8", NULL);
	assert_int_equal(jobq_job_wait(q, a, 10), JOBQ_EJOBFAILED);
	assert_int_equal(jobq_job_wait(q, b, 10), JOBQ_EJOBFAILED);
	assert_rc(jobq_job_wait(q, c, 10), 0);
	assert_int_equal(info(q, a).attempts, 1);
	t = result_text(q, a);
	assert_non_null(strstr(t, "not one"));
	free(t);
	t = result_text(q, b);
	assert_non_null(strstr(t, "malformed"));
	free(t);
	t = result_text(q, c);
	assert_string_equal(t, "16");
	free(t);
	stop_worker(w);
	jobq_close(q);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_priority),	     T(test_delay),
	    T(test_after),	     T(test_cancel_queued),
	    T(test_cancel_running),  T(test_cancel_deaf),
	    T(test_retry_kick),	     T(test_poison_pill),
	    T(test_lease_expiry),    T(test_unknown_type),
	    T(test_map_chunked),     T(test_map_chunked_builtin),
	    T(test_chunk_malformed), T(test_chunk_worker_dies),
	    T(test_chunk_timeout),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
