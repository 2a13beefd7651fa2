/* SPDX-License-Identifier: MIT */
/*
 * test_quotas.c - one client cannot take a table from the others: a client
 * that tries to make 100,000 queues or locks is stopped at its quota with
 * JOBQ_EQUOTA and a message naming the quota, connecting again does not
 * reset it for the queues it made (its unused locks go with it), and a
 * well-behaved client still makes its own meanwhile.
 * Jobs submitted and not final, and locks held at once, have quotas too
 * (jobs_unfinished, locks_held).
 * Refused entries are counted per client in `jobq stats --clients`, and a
 * client that keeps sending garbage is dropped.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "internal.h"

#define TRIES 100000

/* The default quota: a quarter of the default tables. */
#define QUOTA 1024

/* Makes TRIES queues (@locks: locks) through one handle after the other
 * (a new connection each 10,000): prints how many were made. */
static int hog(int idx, void *arg)
{
	const struct jqt_mgr *m = arg;
	int made = 0, refused = 0, other = 0, want;
	char name[32];

	for (int i = 0; i < TRIES;) {
		jobq_t *q = jqt_open_or_die(m);

		for (int k = 0; k < 10000 && i < TRIES; k++, i++) {
			int rc;

			snprintf(name, sizeof(name), "hog-%d", i);
			rc = idx ? jobq_lock_create(q, name, JOBQ_LOCK, 1)
				 : jobq_queue_open(q, name, NULL);
			if (rc == 0) {
				made++;
			} else if (rc == JOBQ_EQUOTA) {
				if (!refused++ &&
				    !strstr(jobq__last_error_msg(),
					    idx ? "locks made (1024)"
						: "queues made (1024)")) {
					fprintf(stderr, "quota message: %s\n",
						jobq__last_error_msg());
					other++;
				}
			} else {
				other++;
			}
		}
		jobq_close(q);
	}
	/* Queues stay when their maker goes; locks that nobody uses go
	 * with it, so each new connection may make a quota of them. */
	want = idx ? QUOTA * (TRIES / 10000) : QUOTA;
	if (made != want || refused != TRIES - want || other) {
		fprintf(stderr, "hog %d: %d made, %d refused, %d other\n", idx,
			made, refused, other);
		return 1;
	}
	return 0;
}

static void hog_is_stopped(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = NULL;
	struct jobq_client_info *ci;
	struct jobq_stats st;
	pid_t pids[2];
	size_t n;
	int st_[2];

	assert_int_equal(jqt_fork_n(2, hog, m, pids), 0);
	assert_rc(jobq_open(&q, m->dir), 0);
	/* While they hog, and after: the others make their own. */
	for (int i = 0; i < 50; i++) {
		char name[32];

		snprintf(name, sizeof(name), "good-%d", i);
		assert_rc(jobq_queue_open(q, name, NULL), 0);
		assert_rc(jobq_lock_create(q, name, JOBQ_LOCK, 1), 0);
		assert_rc(jobq_put(q, name, JOBQ_T_BYTES, "x", 1, 1), 0);
		jqt_sleep(0.01);
	}
	assert_int_equal(jqt_wait_all(pids, 2, 120, st_), 0);
	assert_rc(jobq_queue_open(q, "good-last", NULL), 0);
	assert_rc(jobq_lock_create(q, "good-last", JOBQ_LOCK, 1), 0);
	assert_rc(jobq_stats(q, &st), 0);
	assert_int_equal(st.queues, QUOTA + 51);
	/* The hog's locks went with its last connection. */
	assert_int_equal(st.locks, 51);
	/* Our own record counts what we made. */
	assert_rc(jobq_clients(q, &ci, &n), 0);
	assert_true(n >= 1);
	for (size_t i = 0; i < n; i++) {
		if (ci[i].pid != getpid())
			continue;
		assert_int_equal(ci[i].queues, 51);
		assert_int_equal(ci[i].locks, 51);
		assert_int_equal(ci[i].quota_queues, QUOTA);
		assert_int_equal(ci[i].quota_locks, QUOTA);
	}
	free(ci);
	jobq_close(q);
}

/* A removed queue gives its maker room again. */
static void remove_gives_back(void **state)
{
	static const char *const args[] = {"--max-queues", "64", NULL};
	struct jqt_mgr mm;
	jobq_t *q = NULL;
	char name[32];

	(void)state;
	assert_int_equal(jqt_mgr_start(&mm, args), 0);
	assert_rc(jobq_open(&q, mm.dir), 0);
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "q%d", i);
		assert_rc(jobq_queue_open(q, name, NULL), 0);
	}
	assert_rc(jobq_queue_open(q, "q16", NULL), JOBQ_EQUOTA);
	assert_non_null(strstr(jobq__last_error_msg(), "queues made (16)"));
	assert_rc(jobq_queue_remove(q, "q3"), 0);
	assert_rc(jobq_queue_open(q, "q16", NULL), 0);
	/* Opening one that exists costs nothing. */
	assert_rc(jobq_queue_open(q, "q0", NULL), 0);
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&mm)));
}

/* With --client-max-bytes, past it a client's puts fail with JOBQ_EQUOTA,
 * the others' go in, and a get gives it room again. */
static void bytes_queued(void **state)
{
	static const char *const args[] = {"--memory", "16M",
					   "--client-max-bytes", "6M", NULL};
	struct jqt_mgr mm;
	struct jobq_client_info *ci;
	jobq_t *hogq = NULL, *q = NULL;
	static char mib[1 << 20];
	jobq_obj_t o;
	size_t n;
	int put = 0, rc;

	(void)state;
	assert_int_equal(jqt_mgr_start(&mm, args), 0);
	assert_rc(jobq_open(&hogq, mm.dir), 0);
	assert_rc(jobq_open(&q, mm.dir), 0);
	while ((rc = jobq_put(hogq, "big", JOBQ_T_BYTES, mib, sizeof(mib),
			      0)) == 0)
		put++;
	assert_rc(rc, JOBQ_EQUOTA);
	assert_non_null(strstr(jobq__last_error_msg(), "bytes of its puts"));
	assert_int_equal(put, 6);
	/* The others still have room. */
	assert_rc(jobq_put(q, "big", JOBQ_T_BYTES, mib, sizeof(mib), 0), 0);
	assert_rc(jobq_clients(q, &ci, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (ci[i].bytes > sizeof(mib))
			assert_int_equal(ci[i].bytes,
					 (uint64_t)put * sizeof(mib));
	free(ci);
	/* A get takes one of the hog's (put first): room for one more. */
	assert_rc(jobq_get(q, "big", &o, 0), 0);
	jobq_obj_free(&o);
	assert_rc(jobq_put(hogq, "big", JOBQ_T_BYTES, mib, sizeof(mib), 0), 0);
	assert_rc(jobq_put(hogq, "big", JOBQ_T_BYTES, mib, sizeof(mib), 0),
		  JOBQ_EQUOTA);
	jobq_close(hogq);
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&mm)));
}

/* A client may have 16,384 requests waiting at once: the next one is
 * refused with JOBQ_EQUOTA at once, and the others' gets still wait. */
static void waits_quota(void **state)
{
	struct jqt_mgr *m = *state;
	struct jobq_client_info *ci;
	struct jqt_raw r;
	struct jobq_sqe sqe;
	struct jobq_cqe cqe;
	jobq_t *q = NULL;
	jobq_obj_t o;
	int64_t id;
	size_t n;
	bool seen = false;

	assert_int_equal(jqt_raw_open(m->dir, &r), 0);
	id = jqt_raw_q_open(&r, "waited");
	assert_true(id >= 0);
	memset(&sqe, 0, sizeof(sqe));
	sqe.op = JOBQ_OP_Q_GET;
	sqe.id = (uint32_t)id;
	sqe.timeout_ns = 60ll * 1000000000;
	for (uint32_t i = 0; i <= 16384; i++) {
		double end = jqt_now() + 10;

		sqe.user_data = i + 1;
		while (jqt_raw_submit(&r, &sqe) == -EBUSY && jqt_now() < end)
			jqt_sleep(0.001);
	}
	/* The one past the quota is the only one answered. */
	assert_int_equal(jqt_raw_wait(&r, &cqe, 10), 0);
	assert_int_equal(cqe.user_data, 16385);
	assert_rc(cqe.res, JOBQ_EQUOTA);

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_clients(q, &ci, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (ci[i].waits == 16384 && ci[i].refused == 1)
			seen = true;
	free(ci);
	assert_true(seen);
	assert_rc(jobq_get(q, "mine", &o, 0.05), -ETIMEDOUT);
	assert_rc(jobq_put(q, "waited", JOBQ_T_BYTES, "x", 1, 0), 0);
	assert_int_equal(jqt_raw_wait(&r, &cqe, 10), 0);
	assert_int_equal(cqe.user_data, 1);
	jqt_raw_close(&r);
	jobq_close(q);
}

/* This process's connection @q in jobq_clients(): its record, copied. */
static struct jobq_client_info mine(jobq_t *q)
{
	struct jobq_client_info *ci, me = {0};
	size_t n;

	assert_rc(jobq_clients(q, &ci, &n), 0);
	/* The newest connection of this process is the one asked about:
	 * the tests below keep one open at a time. */
	for (size_t i = 0; i < n; i++)
		if (ci[i].pid == getpid() &&
		    ci[i].connected_ns >= me.connected_ns)
			me = ci[i];
	free(ci);
	assert_int_equal(me.pid, getpid());
	return me;
}

/* With --client-max-jobs, a client's jobs count until they are final:
 * past the quota a submit fails with JOBQ_EQUOTA and a message naming
 * it, the others still submit, a cancel gives room back, and when the
 * submitter closes its jobs live on and a new connection starts from 0. */
static void jobs_unfinished(void **state)
{
	static const char *const args[] = {"--client-max-jobs", "5", NULL};
	struct jqt_mgr mm;
	struct jobq_client_info me;
	struct jobq_stats st;
	jobq_t *q = NULL, *other = NULL;
	uint64_t ids[5], id;

	(void)state;
	assert_int_equal(jqt_mgr_start(&mm, args), 0);
	/* mine() finds the newest: q. */
	assert_rc(jobq_open(&other, mm.dir), 0);
	jqt_sleep(0.01);
	assert_rc(jobq_open(&q, mm.dir), 0);
	/* No worker serves "nobody": its jobs stay ready. */
	for (int i = 0; i < 5; i++)
		assert_rc(jobq_submit(q, "nobody", JOBQ_T_BYTES, "x", 1, NULL,
				      &ids[i]),
			  0);
	assert_rc(jobq_submit(q, "nobody", JOBQ_T_BYTES, "x", 1, NULL, &id),
		  JOBQ_EQUOTA);
	assert_non_null(strstr(jobq__last_error_msg(),
			       "jobs submitted and not finished (5)"));
	me = mine(q);
	assert_int_equal(me.jobs, 5);
	assert_int_equal(me.quota_jobs, 5);
	assert_int_equal(me.refused, 1);
	/* Another client is not held back. */
	assert_rc(jobq_submit(other, "nobody", JOBQ_T_BYTES, "x", 1, NULL, &id),
		  0);
	/* A final job stops counting. */
	assert_rc(jobq_cancel(q, ids[0]), 0);
	assert_int_equal(mine(q).jobs, 4);
	assert_rc(jobq_submit(q, "nobody", JOBQ_T_BYTES, "x", 1, NULL, &ids[0]),
		  0);
	assert_rc(jobq_submit(q, "nobody", JOBQ_T_BYTES, "x", 1, NULL, &id),
		  JOBQ_EQUOTA);
	/* The submitter goes; its jobs stay, and its count went with it. */
	jobq_close(q);
	q = NULL;
	assert_rc(jobq_stats(other, &st), 0);
	assert_int_equal(st.jobs_by_state[JOBQ_JOB_READY], 6);
	assert_rc(jobq_open(&q, mm.dir), 0);
	assert_int_equal(mine(q).jobs, 0);
	for (int i = 0; i < 5; i++)
		assert_rc(
		    jobq_submit(q, "nobody", JOBQ_T_BYTES, "x", 1, NULL, &id),
		    0);
	/* Cancelling a job of the closed connection changes nobody's
	 * count. */
	assert_rc(jobq_cancel(q, ids[1]), 0);
	assert_int_equal(mine(q).jobs, 5);
	jobq_close(q);
	jobq_close(other);
	assert_true(jqt_status_ok(jqt_mgr_stop(&mm)));
}

/* With --client-max-locks-held, a client holding that many locks is
 * refused one more at once (JOBQ_EQUOTA, naming the quota), waiting or
 * not; taking one it holds again and the others' locks are not
 * affected, and a release gives room back. */
static void locks_held(void **state)
{
	static const char *const args[] = {"--client-max-locks-held", "3",
					   NULL};
	static const char *const two[] = {"m1", "m2"};
	struct jqt_mgr mm;
	struct jobq_client_info me;
	jobq_t *q = NULL, *other = NULL;

	(void)state;
	assert_int_equal(jqt_mgr_start(&mm, args), 0);
	/* mine() finds the newest: q. */
	assert_rc(jobq_open(&other, mm.dir), 0);
	jqt_sleep(0.01);
	assert_rc(jobq_open(&q, mm.dir), 0);
	assert_rc(jobq_lock_create(q, "r", JOBQ_RLOCK, 1), 0);
	assert_rc(jobq_lock_acquire(q, "a", 0), 0);
	assert_rc(jobq_lock_acquire(q, "b", 0), 0);
	assert_rc(jobq_lock_acquire(q, "r", 0), 0);
	/* Again by its holder: no new lock held. */
	assert_rc(jobq_lock_acquire(q, "r", 0), 0);
	assert_rc(jobq_lock_acquire(q, "c", 0), JOBQ_EQUOTA);
	assert_non_null(
	    strstr(jobq__last_error_msg(), "locks held at once (3)"));
	/* Refused before it would wait, too. */
	assert_rc(jobq_lock_acquire(other, "d", 0), 0);
	assert_rc(jobq_lock_acquire(q, "d", 5), JOBQ_EQUOTA);
	assert_rc(jobq_lock_many(q, two, 2, 0), JOBQ_EQUOTA);
	me = mine(q);
	assert_int_equal(me.held, 3);
	assert_int_equal(me.quota_held, 3);
	assert_int_equal(me.refused, 3);
	/* The other client holds its own. */
	assert_rc(jobq_lock_acquire(other, "c", 0), 0);
	assert_rc(jobq_lock_release(q, "r"), 0);
	assert_int_equal(mine(q).held, 3);
	assert_rc(jobq_lock_release(q, "r"), 0);
	assert_int_equal(mine(q).held, 2);
	assert_rc(jobq_lock_acquire(q, "e", 0), 0);
	assert_rc(jobq_unlock_many(q, (const char *const[]){"a", "b"}, 2), 0);
	assert_rc(jobq_lock_many(q, two, 2, 0), 0);
	assert_int_equal(mine(q).held, 3);
	jobq_close(q);
	jobq_close(other);
	assert_true(jqt_status_ok(jqt_mgr_stop(&mm)));
}

/* Sends @n entries of an op that does not exist through @r. */
static void send_garbage(struct jqt_raw *r, int n, uint64_t *ud)
{
	struct jobq_sqe sqe;
	struct jobq_cqe cqe;

	for (int i = 0; i < n; i++) {
		memset(&sqe, 0, sizeof(sqe));
		sqe.op = 0xee;
		sqe.user_data = ++*ud;
		assert_int_equal(jqt_raw_submit(r, &sqe), 0);
		assert_int_equal(jqt_raw_wait(r, &cqe, 10), 0);
		assert_int_equal(cqe.res, -EOPNOTSUPP);
	}
}

/* Refused entries are counted per client; past 1,000 the client goes. */
static void garbage_counted_then_dropped(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_raw r;
	struct jqt_out o;
	struct pollfd pfd;
	struct jobq_sqe sqe;
	json_t *doc, *arr, *e;
	uint64_t ud = 0;
	size_t i;
	bool found = false;

	assert_int_equal(jqt_raw_open(m->dir, &r), 0);
	send_garbage(&r, 10, &ud);
	CLI(&o, "stats", "--clients", "--json");
	assert_int_equal(o.code, 0);
	doc = jqt_json_object(&o);
	assert_non_null(doc);
	arr = json_object_get(doc, "clients");
	json_array_foreach(arr, i, e)
	{
		if (json_integer_value(json_object_get(e, "bad")) == 10) {
			assert_int_equal(
			    json_integer_value(json_object_get(e, "pid")),
			    getpid());
			found = true;
		}
	}
	assert_true(found);
	json_decref(doc);
	jqt_out_free(&o);
	CLI(&o, "stats", "--clients");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "BAD"));
	jqt_out_free(&o);

	send_garbage(&r, 990, &ud);
	/* The 1,001st is one too many: the manager closes its end. */
	memset(&sqe, 0, sizeof(sqe));
	sqe.op = 0xee;
	sqe.user_data = ++ud;
	assert_int_equal(jqt_raw_submit(&r, &sqe), 0);
	pfd.fd = r.sock;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_true(pfd.revents & (POLLHUP | POLLIN));
	jqt_raw_close(&r);

	/* Others are served as before. */
	CLI(&o, "put", "after-garbage", "x");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(hog_is_stopped, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test(remove_gives_back),
	    cmocka_unit_test(bytes_queued),
	    cmocka_unit_test(jobs_unfinished),
	    cmocka_unit_test(locks_held),
	    cmocka_unit_test_setup_teardown(waits_quota, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(garbage_counted_then_dropped,
					    jqt_setup, jqt_teardown),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
