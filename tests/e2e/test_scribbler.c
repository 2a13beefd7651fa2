/* SPDX-License-Identifier: MIT */
/*
 * test_scribbler.c - hostile and careless clients cannot hurt the others.
 *
 * The scribbler: two processes connect as the library would and then write
 * random bytes over their whole client region (ring headers, entries,
 * arena) and ring the manager's doorbell, again and again, reconnecting
 * each time they are dropped. Meanwhile well-behaved clients run a
 * producer/consumer exchange (every object received exactly once) and the
 * ticket seller (no ticket sold twice, none lost). They must pass, the
 * manager must stay up, and the scribblers must have been dropped.
 *
 * Churn: 10,000 connects and disconnects, some clean, some abandoned
 * mid-request by a killed process; afterwards the manager holds no more
 * file descriptors, mappings or children than before (counted in /proc).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

enum {
	SCRIBBLERS = 2,
	PRODUCERS = 2,
	CONSUMERS = 2,
	PER_PRODUCER = 5000,
	SELLERS = 6,
	TICKETS = 300,
};

struct shared {
	_Atomic int stop;
	_Atomic int drops; /* scribbler connections the manager ended */
	_Atomic int lost;  /* hellos the manager never answered */
	_Atomic int received[PRODUCERS * PER_PRODUCER];
	_Atomic int sold[TICKETS];
	_Atomic int sellers_done;
};

static struct shared *sh;

static int scribbler(int idx, void *arg)
{
	uint64_t seed = 0x5eed0000u + (uint64_t)idx;

	while (!atomic_load(&sh->stop)) {
		struct jqt_raw r;
		uint64_t one = 1;
		char b;

		if (jqt_raw_open(jqt_cur->dir, &r)) {
			jqt_sleep(0.01);
			continue;
		}
		/* Scribble until the manager hangs up on us. */
		for (int round = 0; !atomic_load(&sh->stop); round++) {
			uint64_t *w = (uint64_t *)r.region;
			size_t n = r.region_size / sizeof(*w);

			/* The headers and rings every round; the arena in
			 * slices, so that a round stays short. */
			for (size_t i = 0; i < n && i < 16384; i++)
				w[i] = jqt_rand(&seed);
			for (int k = 0; k < 64; k++)
				w[jqt_rand(&seed) % n] = jqt_rand(&seed);
			(void)!write(r.sq_efd, &one, sizeof(one));
			if (recv(r.sock, &b, 1, MSG_DONTWAIT) == 0) {
				atomic_fetch_add(&sh->drops, 1);
				break;
			}
			if (round % 64 == 63)
				jqt_sleep(0.001);
		}
		jqt_raw_close(&r);
	}
	return 0;
}

static int producer(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	for (uint32_t i = 0; i < PER_PRODUCER; i++) {
		uint32_t v = (uint32_t)idx * PER_PRODUCER + i;

		if (jobq_put(q, "work", JOBQ_T_BYTES, &v, sizeof(v), 30))
			return 1;
	}
	jobq_close(q);
	return 0;
}

static int consumer(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_obj_t o;

	for (;;) {
		uint32_t v;
		int rc = jobq_get(q, "work", &o, 30);

		if (rc)
			return 2;
		if (o.len != sizeof(v)) {
			jobq_obj_free(&o);
			return 3;
		}
		memcpy(&v, o.data, sizeof(v));
		jobq_obj_free(&o);
		if (v == UINT32_MAX) /* the end marker */
			break;
		if (v >= PRODUCERS * PER_PRODUCER)
			return 4;
		atomic_fetch_add(&sh->received[v], 1);
	}
	jobq_close(q);
	return 0;
}

/* Sells tickets from a counter in the store, under a lock, until none is
 * left; each ticket it sells is marked, so a double sale shows. */
static int seller(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);

	for (;;) {
		char buf[32];
		ssize_t n;
		long left;

		if (jobq_lock_acquire(q, "tickets", 30))
			return 5;
		n = jobq_kv_get_buf(q, "tickets_left", buf, sizeof(buf) - 1,
				    NULL);
		if (n < 0 || n >= (ssize_t)sizeof(buf))
			return 6;
		buf[n] = '\0';
		left = strtol(buf, NULL, 10);
		if (left > 0) {
			atomic_fetch_add(&sh->sold[left - 1], 1);
			n = snprintf(buf, sizeof(buf), "%ld", left - 1);
			if (jobq_kv_set(q, "tickets_left", JOBQ_T_TEXT, buf,
					(size_t)n))
				return 7;
		}
		if (jobq_lock_release(q, "tickets"))
			return 8;
		if (left <= 0)
			break;
	}
	atomic_fetch_add(&sh->sellers_done, 1);
	jobq_close(q);
	return 0;
}

static void test_scribbler(void **state)
{
	struct jqt_mgr *m = *state;
	pid_t scrib[SCRIBBLERS], prod[PRODUCERS], cons[CONSUMERS],
	    sell[SELLERS];
	int st[SELLERS];
	char n[16];
	jobq_t *q;

	sh = jqt_shared(sizeof(*sh));
	assert_rc(jobq_open(&q, m->dir), 0);
	snprintf(n, sizeof(n), "%d", TICKETS);
	assert_rc(jobq_kv_set(q, "tickets_left", JOBQ_T_TEXT, n, strlen(n)), 0);
	assert_rc(jqt_fork_n(SCRIBBLERS, scribbler, NULL, scrib), 0);
	jqt_sleep(0.2); /* let them start scribbling first */
	assert_rc(jqt_fork_n(CONSUMERS, consumer, NULL, cons), 0);
	assert_rc(jqt_fork_n(PRODUCERS, producer, NULL, prod), 0);
	assert_rc(jqt_fork_n(SELLERS, seller, NULL, sell), 0);

	assert_rc(jqt_wait_all(prod, PRODUCERS, 120, st), 0);
	for (int i = 0; i < PRODUCERS; i++)
		assert_true(jqt_status_ok(st[i]));
	for (int i = 0; i < CONSUMERS; i++) {
		uint32_t end = UINT32_MAX;

		assert_rc(
		    jobq_put(q, "work", JOBQ_T_BYTES, &end, sizeof(end), 10),
		    0);
	}
	assert_rc(jqt_wait_all(cons, CONSUMERS, 120, st), 0);
	for (int i = 0; i < CONSUMERS; i++)
		assert_true(jqt_status_ok(st[i]));
	assert_rc(jqt_wait_all(sell, SELLERS, 120, st), 0);
	for (int i = 0; i < SELLERS; i++)
		assert_true(jqt_status_ok(st[i]));

	atomic_store(&sh->stop, 1);
	assert_rc(jqt_wait_all(scrib, SCRIBBLERS, 30, st), 0);

	for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
		if (atomic_load(&sh->received[i]) != 1)
			fail_msg("object %d received %d times", i,
				 atomic_load(&sh->received[i]));
	for (int i = 0; i < TICKETS; i++)
		if (atomic_load(&sh->sold[i]) != 1)
			fail_msg("ticket %d sold %d times", i + 1,
				 atomic_load(&sh->sold[i]));
	print_message("scribbler connections dropped by the manager: %d\n",
		      atomic_load(&sh->drops));
	assert_true(atomic_load(&sh->drops) >= SCRIBBLERS);
	assert_true(jqt_mgr_alive(m));
	{
		struct jobq_stats s;

		assert_rc(jobq_stats(q, &s), 0);
		print_message("requests refused as malformed: %llu\n",
			      (unsigned long long)s.bad_requests);
	}
	jobq_close(q);
}

/* Entries of /proc/PID/fd, lines of /proc/PID/maps, and children. */
static void census(pid_t pid, int *fds, int *maps, int *kids)
{
	char path[64], line[512];
	struct dirent *e;
	DIR *d;
	FILE *f;

	*fds = *maps = *kids = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)))
		*fds += e->d_name[0] != '.';
	closedir(d);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		(*maps)++;
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
		 (int)pid);
	f = fopen(path, "r");
	if (f) {
		int c;

		while (fscanf(f, "%d", &c) == 1)
			(*kids)++;
		fclose(f);
	}
}

/* A client killed in the middle of things: a blocked get, a held lock. */
static int dies_busy(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_obj_t o;

	jobq_lock_acquire(q, "churn", 5);
	jobq_get(q, "nothing-here", &o, -1); /* killed while blocked */
	return 0;
}

static void test_churn(void **state)
{
	struct jqt_mgr *m = *state;
	int fds0, maps0, kids0, fds1, maps1, kids1;
	jobq_t *q;

	/*
	 * A thousand connections first, so that what the manager keeps once
	 * warmed up (its allocator's arenas, tables grown to their working
	 * size) is in the baseline; then nine thousand more must leave
	 * nothing behind. A leak per connection would show in thousands.
	 */
	for (int i = 0; i < 10000; i++) {
		if (i == 1000) {
			jqt_sleep(0.3);
			census(m->pid, &fds0, &maps0, &kids0);
		}
		assert_rc(jobq_open(&q, m->dir), 0);
		if (i % 3 == 0)
			assert_rc(jobq_put(q, "churn", JOBQ_T_BYTES, "x", 1, 5),
				  0);
		jobq_close(q);
		if (i % 1000 == 999) {
			pid_t p = jqt_fork(dies_busy, 0, NULL);

			jqt_sleep(0.1);
			jqt_kill_child(p);
		}
	}
	/* The manager finishes dropping what went last. */
	for (double end = jqt_now() + 10;; jqt_sleep(0.1)) {
		census(m->pid, &fds1, &maps1, &kids1);
		/* A few mappings of the allocator may come and go. */
		if (fds1 <= fds0 && maps1 <= maps0 + 8 && kids1 <= kids0)
			break;
		if (jqt_now() > end) {
			print_error("fds %d -> %d, maps %d -> %d, children %d "
				    "-> %d\n",
				    fds0, fds1, maps0, maps1, kids0, kids1);
			fail();
		}
	}
	print_message("after 10,000 connections: fds %d -> %d, maps %d -> "
		      "%d, children %d -> %d\n",
		      fds0, fds1, maps0, maps1, kids0, kids1);
	assert_true(jqt_mgr_alive(m));
}

/*
 * Connections dropped while others connect. A breaker says hello, then
 * sends one more message (the manager arms its socket's recv again) and
 * a garbage sq tail at once, so that it is dropped in the turn that saw
 * both; meanwhile joiners connect and close as fast as they can. The
 * descriptors of a dropped client must stay its own until no request
 * names them: once a recv armed for it read a joiner's hello, and that
 * joiner's jobq_open() timed out.
 */
enum { BREAKERS = 2, JOINERS = 2, JOINS = 400 };

static int breaker(int idx, void *arg)
{
	while (!atomic_load(&sh->stop)) {
		struct jqt_raw r;
		uint32_t junk = 0x6a756e6b;
		uint64_t one = 1;
		char b;
		int rc = jqt_raw_open(jqt_cur->dir, &r);

		if (rc == -ETIMEDOUT)
			atomic_fetch_add(&sh->lost, 1);
		if (rc)
			continue;
		(void)!send(r.sock, &junk, sizeof(junk), MSG_NOSIGNAL);
		r.hdr->sq.tail = 0x80000000u + (uint32_t)idx;
		(void)!write(r.sq_efd, &one, sizeof(one));
		if (recv(r.sock, &b, 1, 0) == 0)
			atomic_fetch_add(&sh->drops, 1);
		jqt_raw_close(&r);
	}
	return 0;
}

static int joiner(int idx, void *arg)
{
	for (int i = 0; i < JOINS; i++) {
		jobq_t *q;
		int rc = jobq_open(&q, jqt_cur->dir);

		if (rc) {
			fprintf(stderr, "joiner %d: open %d: %s\n", idx, i,
				jobq_strerror(rc));
			return 1;
		}
		jobq_close(q);
	}
	return 0;
}

static void test_drop_while_connecting(void **state)
{
	struct jqt_mgr *m = *state;
	pid_t brk[BREAKERS], join[JOINERS];
	int st[JOINERS];

	sh = jqt_shared(sizeof(*sh));
	assert_rc(jqt_fork_n(BREAKERS, breaker, NULL, brk), 0);
	assert_rc(jqt_fork_n(JOINERS, joiner, NULL, join), 0);
	assert_rc(jqt_wait_all(join, JOINERS, 120, st), 0);
	atomic_store(&sh->stop, 1);
	assert_rc(jqt_wait_all(brk, BREAKERS, 30, NULL), 0);
	for (int i = 0; i < JOINERS; i++)
		assert_true(jqt_status_ok(st[i]));
	print_message("breaker connections dropped: %d\n",
		      atomic_load(&sh->drops));
	assert_int_equal(atomic_load(&sh->lost), 0);
	assert_true(atomic_load(&sh->drops) >= BREAKERS);
	assert_true(jqt_mgr_alive(m));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_scribbler, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(test_churn, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(test_drop_while_connecting,
					    jqt_setup, jqt_teardown),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
