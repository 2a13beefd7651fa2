/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c - one handle shared by four threads (puts, gets and locks
 * at once, each completion reaching the thread that waits for it), and two
 * handles side by side in one process.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

enum { NTHREADS = 4, PER_THREAD = 1000, LOCK_ROUNDS = 300 };

struct thr {
	jobq_t *q;
	int idx;
	int failed;
	char why[160];
	long *counter;		  /* guarded by the jobq lock "tl" only */
	_Atomic int *shared_seen; /* [NTHREADS * PER_THREAD] */
};

#define TFAIL(t, ...)                                                          \
	do {                                                                   \
		snprintf((t)->why, sizeof((t)->why), __VA_ARGS__);             \
		(t)->failed = 1;                                               \
		return NULL;                                                   \
	} while (0)

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	char own[16], buf[32];
	int rc;

	snprintf(own, sizeof(own), "own-%d", t->idx);
	/* Own queue: FIFO seen by one thread while three others share the
	 * handle. */
	for (int i = 0; i < PER_THREAD; i++) {
		int n = snprintf(buf, sizeof(buf), "%d:%d", t->idx, i);

		rc = jobq_put(t->q, own, JOBQ_T_BYTES, buf, (size_t)n, 5);
		if (rc)
			TFAIL(t, "put own %d: %s", i, jobq_strerror(rc));
		rc = jobq_put(t->q, "shared", JOBQ_T_USER,
			      &(int){t->idx * PER_THREAD + i}, sizeof(int), 5);
		if (rc)
			TFAIL(t, "put shared %d: %s", i, jobq_strerror(rc));
		if (i % 2 == 1) {
			for (int k = i - 1; k <= i; k++) {
				jobq_obj_t o = {0};

				n = snprintf(buf, sizeof(buf), "%d:%d", t->idx,
					     k);
				rc = jobq_get(t->q, own, &o, 5);
				if (rc)
					TFAIL(t, "get own %d: %s", k,
					      jobq_strerror(rc));
				if (o.len != (size_t)n ||
				    memcmp(o.data, buf, (size_t)n)) {
					jobq_obj_free(&o);
					TFAIL(t, "own queue: expected %s", buf);
				}
				jobq_obj_free(&o);
			}
		}
	}
	/* Shared queue: every thread takes as many as it put; which ones
	 * does not matter, but each must come out exactly once. */
	for (int i = 0; i < PER_THREAD; i++) {
		jobq_obj_t o = {0};
		int v;

		rc = jobq_get(t->q, "shared", &o, 10);
		if (rc)
			TFAIL(t, "get shared %d: %s", i, jobq_strerror(rc));
		if (o.len != sizeof(int)) {
			jobq_obj_free(&o);
			TFAIL(t, "shared object of %zu bytes", o.len);
		}
		memcpy(&v, o.data, sizeof(v));
		jobq_obj_free(&o);
		if (v < 0 || v >= NTHREADS * PER_THREAD)
			TFAIL(t, "shared object %d out of range", v);
		atomic_fetch_add(&t->shared_seen[v], 1);
	}
	/* A lock belongs to the thread that took it: these threads of one
	 * handle exclude each other. */
	for (int i = 0; i < LOCK_ROUNDS; i++) {
		long c;

		rc = jobq_lock_acquire(t->q, "tl", 20);
		if (rc) {
			/* Say what the store shows about the lock. */
			struct jobq_lock_info *l = NULL;
			size_t n = 0;

			jobq_locks(t->q, &l, &n);
			for (size_t k = 0; k < n; k++)
				if (!strcmp(l[k].name, "tl"))
					TFAIL(t,
					      "acquire %d: %s (lock: held %u "
					      "by pid %d, %u waiters)",
					      i, jobq_strerror(rc), l[k].held,
					      (int)l[k].holder, l[k].waiters);
			free(l);
			TFAIL(t, "acquire %d: %s", i, jobq_strerror(rc));
		}
		c = *t->counter;
		if (i % 10 == 0)
			usleep(100);
		*t->counter = c + 1;
		rc = jobq_lock_release(t->q, "tl");
		if (rc)
			TFAIL(t, "release %d: %s", i, jobq_strerror(rc));
	}
	return NULL;
}

static void test_shared_handle(void **state)
{
	struct jqt_mgr *m = *state;
	struct thr t[NTHREADS];
	pthread_t th[NTHREADS];
	_Atomic int *seen = calloc(NTHREADS * PER_THREAD, sizeof(*seen));
	long counter = 0;
	struct jobq_queue_info info;
	jobq_t *q;

	assert_non_null(seen);
	assert_rc(jobq_open(&q, m->dir), 0);
	for (int i = 0; i < NTHREADS; i++) {
		t[i] = (struct thr){
		    .q = q, .idx = i, .counter = &counter, .shared_seen = seen};
		assert_int_equal(
		    pthread_create(&th[i], NULL, thread_main, &t[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		if (t[i].failed)
			print_error("thread %d: %s\n", i, t[i].why);
	{
		/* For diagnosis: grants the manager counted against the
		 * critical sections that ran. */
		struct jobq_stats st;

		if (jobq_stats(q, &st) == 0)
			print_message("lock acquires counted by the manager: "
				      "%llu; critical sections run: %ld; "
				      "lock timeouts: %llu\n",
				      (unsigned long long)st.lock_acquires,
				      counter,
				      (unsigned long long)st.lock_timeouts);
	}
	for (int i = 0; i < NTHREADS; i++)
		assert_false(t[i].failed);
	for (int i = 0; i < NTHREADS * PER_THREAD; i++)
		assert_int_equal(atomic_load(&seen[i]), 1);
	assert_int_equal(counter, NTHREADS * LOCK_ROUNDS);
	assert_rc(jobq_queue_info(q, "shared", &info), 0);
	assert_int_equal(info.depth, 0);
	free(seen);
	jobq_close(q);
}

static void test_two_handles(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *a, *b;
	jobq_obj_t o = {0};

	assert_rc(jobq_open(&a, m->dir), 0);
	assert_rc(jobq_open(&b, m->dir), 0);
	assert_string_equal(jobq_dir(a), m->dir);
	assert_string_equal(jobq_dir(b), m->dir);

	assert_rc(jobq_put(a, "two", JOBQ_T_BYTES, "from a", 6, 0), 0);
	assert_rc(jobq_get(b, "two", &o, 5), 0);
	assert_int_equal(o.len, 6);
	assert_memory_equal(o.data, "from a", 6);
	jobq_obj_free(&o);

	/* Each handle is its own owner of locks. */
	assert_rc(jobq_lock_acquire(a, "two-lock", 0), 0);
	assert_rc(jobq_lock_acquire(b, "two-lock", 0), -EAGAIN);
	assert_rc(jobq_lock_release(b, "two-lock"), -EPERM);
	assert_rc(jobq_kv_set(b, "two-key", JOBQ_T_TEXT, "b", 1), 0);
	assert_rc(jobq_kv_get(a, "two-key", &o), 0);
	assert_memory_equal(o.data, "b", 1);
	jobq_obj_free(&o);

	/* Closing one handle releases its locks and leaves the other
	 * working. */
	jobq_close(a);
	assert_rc(jobq_lock_acquire(b, "two-lock", 5), 0);
	assert_rc(jobq_ping(b), 0);
	assert_rc(jobq_lock_release(b, "two-lock"), 0);
	jobq_close(b);
}

/*
 * One thread runs an event loop on jobq_fd() (poll, then jobq_process())
 * while another makes blocking calls on the same handle. Both wait on the
 * completion eventfd; the loop's jobq_process() drains it, so a blocked
 * caller woken only through it could sleep for good after the loop took
 * its wake-up. Every call must return, and the loop must still see the
 * callbacks of asynchronous requests.
 */
struct poller {
	jobq_t *q;
	atomic_bool stop;
	atomic_int ran;
};

static void *poll_loop(void *arg)
{
	struct poller *p = arg;
	struct pollfd pf = {.fd = jobq_fd(p->q), .events = POLLIN};

	while (!atomic_load(&p->stop)) {
		if (poll(&pf, 1, 50) > 0) {
			int n = jobq_process(p->q);

			if (n > 0)
				atomic_fetch_add(&p->ran, n);
		}
	}
	return NULL;
}

static void count_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	(void)q;
	(void)obj;
	(void)arg;
	assert_int_equal(res, 0);
}

static void test_fd_loop_beside_blocking_calls(void **state)
{
	struct jqt_mgr *m = *state;
	struct poller p = {0};
	pthread_t t;
	char v[16];

	assert_rc(jobq_open(&p.q, m->dir), 0);
	assert_int_equal(pthread_create(&t, NULL, poll_loop, &p), 0);
	for (int i = 0; i < 3000; i++) {
		int n = snprintf(v, sizeof(v), "%d", i);

		assert_rc(jobq_kv_set(p.q, "fdloop", JOBQ_T_TEXT, v, (size_t)n),
			  0);
		if (i % 100 == 0)
			assert_rc(jobq_kv_set_async(p.q, "fdloop-async",
						    JOBQ_T_TEXT, v, (size_t)n,
						    count_cb, NULL),
				  0);
	}
	/* The 30 callbacks run on the loop's thread. */
	for (int i = 0; i < 500 && atomic_load(&p.ran) < 30; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&p.ran), 30);
	atomic_store(&p.stop, true);
	pthread_join(t, NULL);
	jobq_close(p.q);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_shared_handle),
	    T(test_two_handles),
	    T(test_fd_loop_beside_blocking_calls),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
