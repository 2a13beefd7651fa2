/* SPDX-License-Identifier: MIT */
/*
 * test_locks.c - named locks against a real manager: Lock, RLock
 * re-entry, a Semaphore(n) with n+1 takers, Events, kinds, timeouts and
 * who may release what.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

static jobq_t *open_q(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;

	assert_rc(jobq_open(&q, m->dir), 0);
	return q;
}

static int lock_info(jobq_t *q, const char *name, struct jobq_lock_info *out)
{
	struct jobq_lock_info *list = NULL;
	size_t n = 0;
	int found = -ENOENT;

	if (jobq_locks(q, &list, &n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i].name, name)) {
			*out = list[i];
			found = 0;
		}
	}
	free(list);
	return found;
}

/* Wait (at most 10 s) until lock @name has @n waiters; returns them. */
static unsigned wait_waiters(jobq_t *q, const char *name, unsigned n)
{
	struct jobq_lock_info info = {0};
	double end = jqt_now() + 10;

	do {
		if (lock_info(q, name, &info) == 0 && info.waiters >= n)
			break;
		jqt_sleep(0.01);
	} while (jqt_now() < end);
	return info.waiters;
}

struct hold_arg {
	const char *name;
	double hold;
	struct jqt_barrier *b;
};

/* Take a lock, tell the parent (barrier), hold it a while, release. */
static int hold_lock(int idx, void *arg)
{
	struct hold_arg *h = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);

	CK_RC(jobq_lock_acquire(q, h->name, 10), 0);
	CK_RC(jqt_barrier_wait(h->b, 10), 0);
	jqt_sleep(h->hold);
	CK_RC(jobq_lock_release(q, h->name), 0);
	jobq_close(q);
	return 0;
}

static void test_plain_lock(void **state)
{
	jobq_t *q = open_q(state);
	struct jqt_barrier *b = jqt_shared(sizeof(*b));
	struct hold_arg h = {"plain", 0.5, b};
	struct jobq_lock_info info;
	double t0;
	pid_t pid;

	assert_rc(jobq_lock_release(q, "plain"), -EPERM);
	assert_rc(jobq_lock_acquire(q, "plain", 0), 0);
	assert_rc(lock_info(q, "plain", &info), 0);
	assert_int_equal(info.kind, JOBQ_LOCK);
	assert_int_equal(info.held, 1);
	assert_int_equal(info.holder, getpid());
	assert_true(info.held_since_ns > 0);
	/* The same thread taking a plain lock again would wait forever. */
	assert_rc(jobq_lock_acquire(q, "plain", 1), -EDEADLK);
	assert_rc(jobq_lock_release(q, "plain"), 0);
	assert_rc(jobq_lock_release(q, "plain"), -EPERM);
	assert_rc(lock_info(q, "plain", &info), 0);
	assert_int_equal(info.held, 0);
	assert_int_equal(info.holder, 0);

	/* Held by another process: try once, time out, then get it once it
	 * is released. */
	jqt_barrier_init(b, 2);
	pid = jqt_fork(hold_lock, 0, &h);
	assert_true(pid > 0);
	assert_rc(jqt_barrier_wait(b, 10), 0);
	assert_rc(jobq_lock_acquire(q, "plain", 0), -EAGAIN);
	assert_rc(jobq_lock_release(q, "plain"), -EPERM);
	t0 = jqt_now();
	assert_rc(jobq_lock_acquire(q, "plain", 0.1), -ETIMEDOUT);
	assert_true(jqt_now() - t0 >= 0.08);
	assert_rc(lock_info(q, "plain", &info), 0);
	assert_int_equal(info.holder, pid);
	assert_rc(jobq_lock_acquire(q, "plain", 10), 0);
	assert_true(jqt_now() - t0 >= 0.3);
	assert_int_equal(jqt_wait_all(&pid, 1, 10, NULL), 0);
	assert_rc(jobq_lock_release(q, "plain"), 0);
	jobq_close(q);
}

static void test_rlock(void **state)
{
	jobq_t *q = open_q(state);
	struct jqt_barrier *b = jqt_shared(sizeof(*b));
	struct hold_arg h = {"rl", 0.2, b};
	struct jobq_lock_info info;
	pid_t pid;

	assert_rc(jobq_lock_create(q, "rl", JOBQ_RLOCK, 0), 0);
	assert_rc(jobq_lock_create(q, "rl", JOBQ_RLOCK, 0), 0);
	assert_rc(jobq_lock_create(q, "rl", JOBQ_LOCK, 0), JOBQ_EKIND);
	assert_rc(jobq_lock_acquire(q, "rl", 0), 0);
	assert_rc(jobq_lock_acquire(q, "rl", 0), 0);
	assert_rc(jobq_lock_acquire(q, "rl", 0), 0);
	assert_rc(lock_info(q, "rl", &info), 0);
	assert_int_equal(info.kind, JOBQ_RLOCK);
	assert_int_equal(info.held, 3);
	assert_rc(jobq_lock_release(q, "rl"), 0);
	assert_rc(jobq_lock_release(q, "rl"), 0);

	/* Still held once: another process cannot have it. */
	jqt_barrier_init(b, 2);
	pid = jqt_fork(hold_lock, 0, &h);
	assert_true(pid > 0);
	assert_int_equal(wait_waiters(q, "rl", 1), 1);
	assert_rc(lock_info(q, "rl", &info), 0);
	assert_int_equal(info.holder, getpid());
	assert_int_equal(info.held, 1);
	assert_int_equal(info.waiters, 1);
	assert_rc(jobq_lock_release(q, "rl"), 0);
	assert_rc(jqt_barrier_wait(b, 10), 0);
	assert_rc(jobq_lock_release(q, "rl"), -EPERM);
	assert_int_equal(jqt_wait_all(&pid, 1, 10, NULL), 0);
	jobq_close(q);
}

struct sem_shared {
	_Atomic int inside;
	_Atomic int max_inside;
	_Atomic int got;
};

static int sem_taker(int idx, void *arg)
{
	struct sem_shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	int now, max;

	CK_RC(jobq_lock_acquire(q, "sem", 20), 0);
	now = atomic_fetch_add(&s->inside, 1) + 1;
	max = atomic_load(&s->max_inside);
	while (now > max &&
	       !atomic_compare_exchange_weak(&s->max_inside, &max, now))
		;
	atomic_fetch_add(&s->got, 1);
	jqt_sleep(0.4);
	atomic_fetch_sub(&s->inside, 1);
	CK_RC(jobq_lock_release(q, "sem"), 0);
	jobq_close(q);
	return 0;
}

static void test_semaphore(void **state)
{
	jobq_t *q = open_q(state);
	struct sem_shared *s = jqt_shared(sizeof(*s));
	struct jobq_lock_info info;
	enum { N = 3 };
	pid_t pids[N + 1];
	double end;

	assert_rc(jobq_lock_create(q, "sem", JOBQ_SEMAPHORE, N), 0);
	assert_rc(jobq_lock_create(q, "sem", JOBQ_EVENT, 0), JOBQ_EKIND);
	assert_int_equal(jqt_fork_n(N + 1, sem_taker, s, pids), 0);

	/* n of the n+1 get in; the last one waits. */
	end = jqt_now() + 10;
	while (atomic_load(&s->got) < N && jqt_now() < end)
		jqt_sleep(0.01);
	assert_int_equal(atomic_load(&s->got), N);
	assert_int_equal(wait_waiters(q, "sem", 1), 1);
	assert_rc(lock_info(q, "sem", &info), 0);
	assert_int_equal(info.kind, JOBQ_SEMAPHORE);
	assert_int_equal(info.limit, N);
	/* The takers hold it 0.4 s each: the fourth is still waiting unless
	 * the machine stalled us that long. */
	if (atomic_load(&s->got) == N) {
		assert_int_equal(info.held, N);
		assert_int_equal(info.waiters, 1);
	}
	assert_int_equal(jqt_wait_all(pids, N + 1, 30, NULL), 0);
	assert_int_equal(atomic_load(&s->got), N + 1);
	assert_int_equal(atomic_load(&s->max_inside), N);
	assert_rc(lock_info(q, "sem", &info), 0);
	assert_int_equal(info.held, 0);
	jobq_close(q);
}

static int event_waiter(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	/* The parent sets the event once all three of us wait. */
	CK_RC(jobq_event_wait(q, "ev", 10), 0);
	jobq_close(q);
	return 0;
}

static void test_event(void **state)
{
	jobq_t *q = open_q(state);
	struct jobq_lock_info info;
	pid_t pids[3];

	assert_rc(jobq_lock_create(q, "ev", JOBQ_EVENT, 0), 0);
	assert_rc(jobq_event_wait(q, "ev", 0), -EAGAIN);
	assert_rc(jobq_event_wait(q, "ev", 0.1), -ETIMEDOUT);
	assert_rc(jobq_lock_acquire(q, "ev", 0), JOBQ_EKIND);

	/* set wakes every waiter. */
	assert_int_equal(jqt_fork_n(3, event_waiter, NULL, pids), 0);
	assert_int_equal(wait_waiters(q, "ev", 3), 3);
	assert_rc(lock_info(q, "ev", &info), 0);
	assert_int_equal(info.kind, JOBQ_EVENT);
	assert_int_equal(info.is_set, 0);
	assert_rc(jobq_event_set(q, "ev"), 0);
	assert_int_equal(jqt_wait_all(pids, 3, 10, NULL), 0);

	/* While set, wait returns at once, any number of times. */
	assert_rc(jobq_event_wait(q, "ev", 0), 0);
	assert_rc(jobq_event_wait(q, "ev", 0), 0);
	assert_rc(lock_info(q, "ev", &info), 0);
	assert_int_equal(info.is_set, 1);
	assert_rc(jobq_event_set(q, "ev"), 0);
	assert_rc(jobq_event_clear(q, "ev"), 0);
	assert_rc(jobq_event_wait(q, "ev", 0.1), -ETIMEDOUT);
	assert_rc(lock_info(q, "ev", &info), 0);
	assert_int_equal(info.is_set, 0);
	jobq_close(q);
}

static void test_many_locks(void **state)
{
	jobq_t *q = open_q(state);
	const char *names[] = {"m-c", "m-a", "m-b"};
	const char *two[] = {"m-a", "m-d"};
	struct jobq_lock_info info;

	assert_rc(jobq_lock_many(q, names, 3, 1), 0);
	for (int i = 0; i < 3; i++) {
		assert_rc(lock_info(q, names[i], &info), 0);
		assert_int_equal(info.held, 1);
	}
	assert_rc(jobq_unlock_many(q, names, 3), 0);
	for (int i = 0; i < 3; i++) {
		assert_rc(lock_info(q, names[i], &info), 0);
		assert_int_equal(info.held, 0);
	}

	/* All or none: with m-a held by someone else, m-d is not taken. */
	{
		jobq_t *other = open_q(state);

		assert_rc(jobq_lock_acquire(other, "m-a", 0), 0);
		assert_rc(jobq_lock_many(q, two, 2, 0.2), -ETIMEDOUT);
		assert_rc(lock_info(q, "m-d", &info), 0);
		assert_int_equal(info.held, 0);
		assert_rc(jobq_lock_acquire(other, "m-d", 0), 0);
		jobq_close(other);
	}
	/* Closing the handle released both. */
	assert_rc(jobq_lock_many(q, two, 2, 5), 0);
	assert_rc(jobq_unlock_many(q, two, 2), 0);
	jobq_close(q);
}

#define T(f) cmocka_unit_test_setup_teardown(f, jqt_setup, jqt_teardown)

/* Units of lock @name held now, from the store (0 when there is none). */
static unsigned lock_held(jobq_t *q, const char *name)
{
	struct jobq_lock_info *ls = NULL;
	unsigned held = 0;
	size_t n = 0;

	if (jobq_locks(q, &ls, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ls[i].name, name))
			held = ls[i].held;
	free(ls);
	return held;
}

/* Takes "res" (with a lease of @arg seconds, or none for 0) and stops
 * itself, as a debugger or a SIGSTOP would; released only if continued. */
static int stopped_holder(int idx, void *arg)
{
	double lease = *(double *)arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	int rc = lease > 0 ? jobq_lock_acquire_lease(q, "res", -1, lease)
			   : jobq_lock_acquire(q, "res", -1);

	if (rc)
		return 1;
	raise(SIGSTOP);
	/* Continued: the lease ran out meanwhile, so it is not ours. */
	rc = jobq_lock_release(q, "res");
	jobq_close(q);
	return lease > 0 ? (rc == -EPERM ? 0 : 2) : (rc == 0 ? 0 : 3);
}

/*
 * A holder stopped with SIGSTOP does not stop the others for ever when it
 * took the lock with a lease: the manager takes the lock back when the
 * lease ends. Without a lease the lock stays held (it is the holder's).
 */
static void test_lease(void **state)
{
	struct jqt_mgr *m = *state;
	static double no_lease = 0, one_second = 1;
	double t0, took;
	jobq_t *q;
	pid_t h;
	int st;

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_lock_acquire_lease(q, "res", 0, 0), -EINVAL);

	h = jqt_fork(stopped_holder, 0, &no_lease);
	assert_true(h > 0);
	while (lock_held(q, "res") == 0)
		jqt_sleep(0.01);
	assert_rc(jobq_lock_acquire(q, "res", 1.5), -ETIMEDOUT);
	kill(h, SIGCONT);
	assert_rc(jqt_wait_pid(h, 10, &st), 0);
	assert_true(jqt_status_ok(st));

	h = jqt_fork(stopped_holder, 0, &one_second);
	assert_true(h > 0);
	while (lock_held(q, "res") == 0)
		jqt_sleep(0.01);
	t0 = jqt_now();
	assert_rc(jobq_lock_acquire(q, "res", 10), 0);
	took = jqt_now() - t0;
	print_message("a stopped holder's 1 s lease ended; the lock came "
		      "after %.2f s\n",
		      took);
	assert_true(took < 5);
	kill(h, SIGCONT);
	assert_rc(jqt_wait_pid(h, 10, &st), 0);
	assert_true(jqt_status_ok(st)); /* its release was refused */
	assert_rc(jobq_lock_release(q, "res"), 0);
	jobq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_plain_lock), T(test_rlock),	    T(test_semaphore),
	    T(test_event),	T(test_many_locks), T(test_lease),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
