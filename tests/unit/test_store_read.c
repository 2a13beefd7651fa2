/* SPDX-License-Identifier: MIT */
/*
 * test_store_read.c - a reader of the store never waits forever on a
 * record left under write: with the manager gone it fails with
 * JOBQ_ECLOSED, with the manager alive but stuck it gives up, and a write
 * that ends lets it through. The handle is a fake: a store header and a
 * queue record in this process, a socketpair for the connection.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"

struct fake {
	struct jobq *q;
	struct jobq_store_hdr hdr;
	struct jobq_queue_rec rec;
	int peer; /* the manager's end of the connection */
};

static double now_s(void)
{
	return (double)jobq__now_ns() / 1e9;
}

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	int sv[2];

	if (!f || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		return -1;
	f->q = calloc(1, sizeof(*f->q));
	if (!f->q)
		return -1;
	f->q->sock = sv[0];
	f->peer = sv[1];
	f->hdr.manager_pid = getpid();
	store_relaxed(&f->hdr.nqueues, 1);
	f->q->sh = &f->hdr;
	f->q->queues = &f->rec;
	f->q->max_queues = 1;
	snprintf(f->rec.name, sizeof(f->rec.name), "q");
	f->rec.in_use = 1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	if (f->q->sock >= 0)
		close(f->q->sock);
	if (f->peer >= 0)
		close(f->peer);
	free(f->q);
	free(f);
	return 0;
}

static void even_reads_at_once(void **state)
{
	struct fake *f = *state;
	uint32_t s = 1;

	store_relaxed(&f->rec.seq, 4);
	assert_int_equal(jobq__seq_begin(f->q, &f->rec.seq, &s), 0);
	assert_int_equal(s, 4);
}

/* Finding 6: the manager died inside a write (its socket closed). */
static void dead_manager_closed(void **state)
{
	struct fake *f = *state;
	struct jobq_queue_info *list = NULL;
	size_t n = 0;
	uint32_t s;
	double t0 = now_s();

	store_relaxed(&f->rec.seq, 7);
	close(f->peer);
	f->peer = -1;
	assert_int_equal(jobq__seq_begin(f->q, &f->rec.seq, &s), JOBQ_ECLOSED);
	/* And so does every public read of that record. */
	assert_int_equal(jobq_queues(f->q, &list, &n), JOBQ_ECLOSED);
	assert_null(list);
	/* Bound only to catch a hang. */
	assert_true(now_s() - t0 < 4);
}

/* The same, told by the pid in the store header: no such process. */
static void dead_pid_closed(void **state)
{
	struct fake *f = *state;
	uint32_t s;
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	close(f->q->sock);
	f->q->sock = -1;
	f->hdr.manager_pid = pid;
	store_relaxed(&f->rec.seq, 9);
	assert_int_equal(jobq__seq_begin(f->q, &f->rec.seq, &s), JOBQ_ECLOSED);
}

/* A live manager that never ends its write: the reader gives up. */
static void stuck_manager_gives_up(void **state)
{
	struct fake *f = *state;
	uint32_t s;
	double t0 = now_s();

	store_relaxed(&f->rec.seq, 11);
	assert_int_equal(jobq__seq_begin(f->q, &f->rec.seq, &s), -EAGAIN);
	assert_true(now_s() - t0 < 30);
}

static void *end_write(void *arg)
{
	struct fake *f = arg;
	struct timespec ts = {0, 50 * 1000 * 1000};

	nanosleep(&ts, NULL);
	store_release(&f->rec.seq, 12);
	return NULL;
}

/* A write that ends while the reader waits lets it through. */
static void write_ends(void **state)
{
	struct fake *f = *state;
	pthread_t t;
	uint32_t s = 0;

	store_relaxed(&f->rec.seq, 11);
	assert_int_equal(pthread_create(&t, NULL, end_write, f), 0);
	assert_int_equal(jobq__seq_begin(f->q, &f->rec.seq, &s), 0);
	assert_int_equal(s, 12);
	pthread_join(t, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(even_reads_at_once, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(dead_manager_closed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(dead_pid_closed, setup, teardown),
	    cmocka_unit_test_setup_teardown(stuck_manager_gives_up, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(write_ends, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
