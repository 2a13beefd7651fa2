/* SPDX-License-Identifier: MIT */
/*
 * test_tables.c - the queue table does not wear out: `jobq queue rm` and
 * jobq_queue_remove() free a queue's record for the next queue, 20,000
 * distinct names come and go on a default instance (and 20,000 locks,
 * freed when nobody uses them any more), an id cached before a
 * removal never reaches the queue that took the record, blocked getters
 * are told the queue went, a removal survives a restart (also one made
 * while consumers held objects they had not acknowledged), and a table that
 * is truly full says which table, its size and the option that raises it.
 * Job type records are reused too (type_churn), and a reused record does
 * not confuse a replay.
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
#include <jansson.h>

#include "harness.h"

/* 20,000 distinct queue names, each made, used and removed: every one
 * succeeds although the table holds 4,096. */
static void churn(void **state)
{
	struct jqt_mgr *m = *state;
	struct jobq_stats st;
	jobq_t *q = NULL;
	char name[32];

	assert_rc(jobq_open(&q, m->dir), 0);
	for (int i = 0; i < 20000; i++) {
		jobq_obj_t o;

		snprintf(name, sizeof(name), "churn-%d", i);
		assert_rc(jobq_put(q, name, JOBQ_T_BYTES, "x", 1, 0), 0);
		if (i % 2) {
			/* Half are emptied first, half go with an object. */
			assert_rc(jobq_get(q, name, &o, 0), 0);
			jobq_obj_free(&o);
			assert_rc(jobq_queue_remove(q, name), 0);
		} else {
			assert_rc(jobq_queue_remove(q, name), 1);
		}
	}
	assert_rc(jobq_stats(q, &st), 0);
	assert_int_equal(st.queues, 0);
	assert_int_equal(st.max_queues, 4096);
	/* What was dropped went back to the heap. */
	assert_true(st.memory_used < (1u << 20));
	jobq_close(q);
}

/* 20,000 distinct locks, a thousand a connection, each taken and
 * released: a lock nobody uses any more is freed with its last user, so
 * the table (4,096) never fills. A set Event keeps its state. */
static void lock_churn(void **state)
{
	struct jqt_mgr *m = *state;
	struct jobq_stats st;
	jobq_t *q = NULL;
	char name[32];

	for (int i = 0; i < 20000;) {
		assert_rc(jobq_open(&q, m->dir), 0);
		for (int k = 0; k < 1000; k++, i++) {
			snprintf(name, sizeof(name), "lk-%d", i);
			assert_rc(jobq_lock_acquire(q, name, 5), 0);
			assert_rc(jobq_lock_release(q, name), 0);
		}
		if (i == 1000)
			assert_rc(jobq_event_set(q, "flag"), 0);
		jobq_close(q);
	}
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_stats(q, &st), 0);
	assert_int_equal(st.max_locks, 4096);
	/* The Event, and the locks of the connection that just went, if
	 * the manager has not seen it go yet. */
	assert_true(st.locks >= 1 && st.locks <= 1001);
	assert_rc(jobq_event_wait(q, "flag", 0), 0);
	jobq_close(q);
}

/* A handle that cached a queue's id, the queue removed and made again by
 * another: its next put goes to the new queue, never to a stale id. A raw
 * client that keeps sending the old id is refused with -ESTALE. */
static void stale_ids(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *a = NULL, *b = NULL;
	struct jqt_raw raw;
	struct jobq_sqe sqe;
	struct jobq_cqe cqe;
	jobq_obj_t o;
	int64_t old, now;

	assert_rc(jobq_open(&a, m->dir), 0);
	assert_rc(jobq_open(&b, m->dir), 0);
	assert_int_equal(jqt_raw_open(m->dir, &raw), 0);
	old = jqt_raw_q_open(&raw, "stale");
	assert_true(old >= 0);
	assert_rc(jobq_put(a, "stale", JOBQ_T_BYTES, "1", 1, 0), 0);
	assert_rc(jobq_queue_remove(b, "stale"), 1);
	assert_rc(jobq_queue_remove(b, "stale"), -ENOENT);
	/* Another queue may take the record: fill the table's front. */
	assert_rc(jobq_put(b, "other", JOBQ_T_BYTES, "o", 1, 0), 0);
	assert_rc(jobq_put(a, "stale", JOBQ_T_BYTES, "2", 1, 0), 0);
	now = jqt_raw_q_open(&raw, "stale");
	assert_true(now >= 0);
	assert_true(now != old);

	memset(&sqe, 0, sizeof(sqe));
	sqe.op = JOBQ_OP_Q_GET;
	sqe.id = (uint32_t)old;
	sqe.user_data = 7;
	assert_int_equal(jqt_raw_submit(&raw, &sqe), 0);
	assert_int_equal(jqt_raw_wait(&raw, &cqe, 10), 0);
	assert_rc(cqe.res, -ESTALE);

	/* The new queue holds only what was put after the removal. */
	assert_rc(jobq_get(b, "stale", &o, 0), 0);
	assert_int_equal(o.len, 1);
	assert_memory_equal(o.data, "2", 1);
	jobq_obj_free(&o);
	assert_rc(jobq_get(b, "stale", &o, 0), -EAGAIN);
	assert_rc(jobq_get(b, "other", &o, 0), 0);
	jobq_obj_free(&o);
	jqt_raw_close(&raw);
	jobq_close(a);
	jobq_close(b);
}

static int blocked_getter(int idx, void *arg)
{
	const struct jqt_mgr *m = arg;
	jobq_t *q = jqt_open_or_die(m);
	jobq_obj_t o;
	int rc = jobq_get(q, "waited", &o, 20);

	jobq_close(q);
	if (rc != -EIDRM) {
		fprintf(stderr, "blocked get: %d (%s), expected -EIDRM\n", rc,
			jobq_strerror(rc));
		return 1;
	}
	return 0;
}

/* A getter blocked on a queue that is removed fails with -EIDRM. */
static void waiters_fail(void **state)
{
	struct jqt_mgr *m = *state;
	struct jobq_queue_info qi;
	jobq_t *q = NULL;
	pid_t pid;
	int st;

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_queue_open(q, "waited", NULL), 0);
	pid = jqt_fork(blocked_getter, 0, m);
	assert_true(pid > 0);
	for (double end = jqt_now() + 10; jqt_now() < end;) {
		if (!jobq_queue_info(q, "waited", &qi) && qi.getters == 1)
			break;
		jqt_sleep(0.01);
	}
	assert_int_equal(qi.getters, 1);
	assert_rc(jobq_queue_remove(q, "waited"), 0);
	assert_int_equal(jqt_wait_pid(pid, 10, &st), 0);
	assert_true(jqt_status_ok(st));
	jobq_close(q);
}

/* The command line: rm of a queue with objects, of none, --json. */
static void cli_rm(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	json_t *doc;

	CLI(&o, "put", "cliq", "a");
	jqt_out_free(&o);
	CLI(&o, "put", "cliq", "b");
	jqt_out_free(&o);
	CLI(&o, "queue", "rm", "cliq", "--json");
	assert_int_equal(o.code, 0);
	doc = jqt_json_object(&o);
	assert_non_null(doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "dropped")),
			 2);
	json_decref(doc);
	jqt_out_free(&o);
	CLI(&o, "queue", "rm", "cliq");
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "no such queue"));
	jqt_out_free(&o);
	CLI(&o, "queues", "--json");
	assert_int_equal(o.code, 0);
	assert_null(strstr(o.out, "\"cliq\""));
	jqt_out_free(&o);
	/* Naming it again makes a new, empty queue. */
	CLI(&o, "get", "cliq", "--nowait");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);
}

/* A removal is journaled: after kill -9 and a restart the removed queue
 * stays removed, and the queue that took its record keeps its objects. */
static void survives_restart(void **state)
{
	struct jqt_mgr m;
	jobq_t *q = NULL;
	jobq_obj_t o;
	struct jobq_queue_info qi;

	(void)state;
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	assert_rc(jobq_put(q, "gone", JOBQ_T_BYTES, "g1", 2, 0), 0);
	assert_rc(jobq_put(q, "kept", JOBQ_T_BYTES, "k1", 2, 0), 0);
	assert_rc(jobq_put(q, "gone", JOBQ_T_BYTES, "g2", 2, 0), 0);
	assert_rc(jobq_queue_remove(q, "gone"), 2);
	assert_rc(jobq_put(q, "again", JOBQ_T_BYTES, "a1", 2, 0), 0);
	assert_rc(jobq_put(q, "gone", JOBQ_T_BYTES, "g3", 2, 0), 0);
	jobq_close(q);
	kill(m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_int_equal(jqt_mgr_restart(&m, NULL), 0);

	assert_rc(jobq_open(&q, m.dir), 0);
	assert_rc(jobq_queue_info(q, "gone", &qi), 0);
	assert_int_equal(qi.depth, 1);
	assert_rc(jobq_get(q, "gone", &o, 0), 0);
	assert_memory_equal(o.data, "g3", 2);
	jobq_obj_free(&o);
	assert_rc(jobq_get(q, "kept", &o, 0), 0);
	assert_memory_equal(o.data, "k1", 2);
	jobq_obj_free(&o);
	assert_rc(jobq_get(q, "again", &o, 0), 0);
	assert_memory_equal(o.data, "a1", 2);
	jobq_obj_free(&o);
	assert_rc(jobq_queue_remove(q, "kept"), 0);
	jobq_close(q);

	/* And after a graceful stop, which writes a snapshot. */
	kill(m.pid, SIGTERM);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_true(jqt_status_ok(m.exit_status));
	assert_int_equal(jqt_mgr_restart(&m, NULL), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	assert_rc(jobq_queue_info(q, "kept", &qi), -ENOENT);
	assert_rc(jobq_queue_info(q, "again", &qi), 0);
	assert_int_equal(qi.depth, 0);
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
}

/* Takes one object of queue @qid through raw connection @r, without
 * acknowledging it: returns its completion (peeked, not consumed). */
static struct jobq_cqe take_unacked(struct jqt_raw *r, int64_t qid, uint64_t ud)
{
	struct jobq_sqe sqe;
	struct jobq_cqe cqe;

	memset(&sqe, 0, sizeof(sqe));
	sqe.op = JOBQ_OP_Q_GET;
	sqe.id = (uint32_t)qid;
	sqe.arg0 = 1;
	sqe.user_data = ud;
	assert_int_equal(jqt_raw_submit(r, &sqe), 0);
	assert_int_equal(jqt_raw_peek(r, 0, &cqe, 10), 0);
	assert_int_equal(cqe.user_data, ud);
	assert_rc(cqe.res, 0);
	assert_true(cqe.flags & JOBQ_CQE_OBJECT);
	assert_int_equal(cqe.len, 2);
	assert_true(cqe.val + cqe.len <= r->store_size);
	return cqe;
}

/* The store's heap bytes in use, once they stop moving: objects whose
 * completions were consumed are freed on the manager's next turn. */
static uint64_t heap_settled(jobq_t *q, uint64_t want)
{
	struct jobq_stats st;

	for (double end = jqt_now() + 10; jqt_now() < end; jqt_sleep(0.01)) {
		assert_rc(jobq_stats(q, &st), 0);
		if (st.memory_used == want)
			break;
	}
	return st.memory_used;
}

/*
 * A queue removed while consumers hold objects of it that they took and
 * have not acknowledged (their completions not consumed yet): the removal
 * drops only the objects still queued, a consumer still reads the object
 * it was given, intact, and acknowledging it frees it; one that closes
 * without acknowledging gives its object back to a queue that is gone, so
 * it is dropped, and one still holding its object when the manager is
 * killed does not bring the queue back after a restart. Nothing leaks:
 * the heap comes back to what it was, and the manager stops cleanly
 * (under ASan, with no leak reported).
 */
static void rm_while_handed(void **state)
{
	struct jqt_mgr mm, *m = &mm;
	struct jqt_raw a, b, c;
	struct jobq_cqe ca, cb, cc;
	struct jobq_queue_info qi;
	struct jqt_out o;
	jobq_t *q = NULL;
	struct jobq_stats st;
	uint64_t used0, blk;
	int64_t qa, qb, qc;
	json_t *doc;
	jobq_obj_t obj;

	(void)state;
	assert_int_equal(jqt_mgr_start(m, NULL), 0);
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_int_equal(jqt_raw_open(m->dir, &a), 0);
	assert_int_equal(jqt_raw_open(m->dir, &b), 0);
	assert_int_equal(jqt_raw_open(m->dir, &c), 0);
	qa = jqt_raw_q_open(&a, "handed");
	qb = jqt_raw_q_open(&b, "handed");
	qc = jqt_raw_q_open(&c, "handed");
	assert_true(qa >= 0 && qa == qb && qb == qc);
	assert_rc(jobq_stats(q, &st), 0);
	used0 = st.memory_used;
	assert_rc(jobq_put(q, "handed", JOBQ_T_BYTES, "h1", 2, 0), 0);
	assert_rc(jobq_stats(q, &st), 0);
	/* What one object of a put of its own takes. */
	blk = st.memory_used - used0;
	assert_true(blk > 0);
	assert_rc(jobq_put(q, "handed", JOBQ_T_BYTES, "h2", 2, 0), 0);
	assert_rc(jobq_put(q, "handed", JOBQ_T_BYTES, "h3", 2, 0), 0);
	assert_rc(jobq_put(q, "handed", JOBQ_T_BYTES, "h4", 2, 0), 0);
	ca = take_unacked(&a, qa, 1);
	cb = take_unacked(&b, qb, 2);
	cc = take_unacked(&c, qc, 3);
	assert_memory_equal(a.store + ca.val, "h1", 2);
	assert_memory_equal(b.store + cb.val, "h2", 2);
	assert_memory_equal(c.store + cc.val, "h3", 2);

	/* Only h4 was still queued. */
	CLI(&o, "queue", "rm", "handed", "--json");
	assert_int_equal(o.code, 0);
	doc = jqt_json_object(&o);
	assert_non_null(doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "dropped")),
			 1);
	json_decref(doc);
	jqt_out_free(&o);
	assert_rc(jobq_queue_info(q, "handed", &qi), -ENOENT);

	/* A still reads what it was given, and its acknowledgement frees it;
	 * a request on the old id is told the queue went. */
	assert_memory_equal(a.store + ca.val, "h1", 2);
	assert_int_equal(jqt_raw_wait(&a, &ca, 10), 0);
	assert_int_equal(ca.user_data, 1);
	{
		struct jobq_sqe sqe;

		memset(&sqe, 0, sizeof(sqe));
		sqe.op = JOBQ_OP_Q_GET;
		sqe.id = (uint32_t)qa;
		sqe.arg0 = 1;
		sqe.user_data = 9;
		assert_int_equal(jqt_raw_submit(&a, &sqe), 0);
		assert_int_equal(jqt_raw_wait(&a, &ca, 10), 0);
		assert_int_equal(ca.user_data, 9);
		assert_rc(ca.res, -ESTALE);
	}
	/* C goes without acknowledging: h3 comes back to no queue. */
	jqt_raw_close(&c);
	jqt_raw_close(&a);
	/* The name makes a new, empty queue: none of the old objects. */
	assert_rc(jobq_get(q, "handed", &obj, 0), -EAGAIN);
	assert_rc(jobq_queue_remove(q, "handed"), 0);
	assert_int_equal(jqt_mgr_alive(m), 1);
	/* Of the four objects, only the one B holds is left. */
	assert_int_equal(heap_settled(q, used0 + blk), used0 + blk);

	/* B still holds h2 when the manager is killed. */
	assert_memory_equal(b.store + cb.val, "h2", 2);
	jobq_close(q);
	kill(m->pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(m, 10), 0);
	jqt_raw_close(&b);
	assert_int_equal(jqt_mgr_restart(m, NULL), 0);
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_queue_info(q, "handed", &qi), -ENOENT);
	assert_rc(jobq_get(q, "handed", &obj, 0), -EAGAIN);
	assert_rc(jobq_queue_remove(q, "handed"), 0);
	assert_int_equal(heap_settled(q, used0), used0);
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(m)));
}

static jobq_worker_t *type_worker;

/* Runs one job and stops its worker. */
static int run_once(jobq_job_t *job, void *arg)
{
	(void)job;
	(void)arg;
	jobq_worker_stop(type_worker);
	return 0;
}

/* Submits a job of @type through @q, waiting while the type table is
 * full (finished jobs free their types once --keep lets them go).
 * Returns jobq_submit()'s answer; *waits counts the waits. */
static int submit_type(jobq_t *q, const char *type, uint64_t *id, int *waits)
{
	double end = jqt_now() + 30;
	int rc;

	while ((rc = jobq_submit(q, type, JOBQ_T_BYTES, "x", 1, NULL, id)) ==
		   JOBQ_ELIMIT &&
	       jqt_now() < end) {
		(*waits)++;
		jqt_sleep(0.01);
	}
	return rc;
}

/*
 * 20,000 distinct job type names on a table of 1,024: each job is
 * cancelled, or run by a worker made for its type (one in a hundred), and
 * forgotten after --keep; its type record is then free for the next name.
 * A kill -9 and a restart after all that reuse, with live jobs whose
 * types sit in reused records, gives each job back its own type name.
 */
static void type_churn(void **state)
{
	static const char *const args[] = {"--keep", "0.05", NULL};
	struct jqt_mgr mm, *m = &mm;
	struct jobq_job_info ji;
	struct jobq_stats st;
	uint64_t id, live[3];
	int waits = 0;
	char name[48];
	jobq_t *q = NULL;

	(void)state;
	assert_int_equal(jqt_mgr_start(m, args), 0);
	assert_rc(jobq_open(&q, m->dir), 0);
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "type-%d", i);
		assert_rc(submit_type(q, name, &id, &waits), 0);
		if (i % 100 == 0) {
			jobq_t *wq = NULL;

			assert_rc(jobq_open(&wq, m->dir), 0);
			assert_rc(jobq_worker_new(&type_worker, wq, NULL), 0);
			assert_rc(jobq_worker_handle(type_worker, name,
						     run_once, NULL),
				  0);
			assert_rc(jobq_worker_run(type_worker), 0);
			jobq_worker_free(type_worker);
			jobq_close(wq);
			assert_rc(jobq_job_wait(q, id, 10), 0);
		} else {
			assert_rc(jobq_cancel(q, id), 0);
		}
	}
	/* Every name went its way: the table is empty again. */
	for (double end = jqt_now() + 10; jqt_now() < end; jqt_sleep(0.01)) {
		assert_rc(jobq_stats(q, &st), 0);
		if (!st.types)
			break;
	}
	assert_int_equal(st.types, 0);
	assert_int_equal(st.max_types, 1024);
	fprintf(stderr, "type_churn: waited %d times for a free type record\n",
		waits);

	/* Jobs whose types took reused records, then a crash. */
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "live-%d", i);
		assert_rc(submit_type(q, name, &live[i], &waits), 0);
	}
	jobq_close(q);
	kill(m->pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(m, 10), 0);
	assert_int_equal(jqt_mgr_restart(m, args), 0);
	assert_rc(jobq_open(&q, m->dir), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "live-%d", i);
		assert_rc(jobq_job_info(q, live[i], &ji), 0);
		assert_string_equal(ji.type, name);
		assert_int_equal(ji.state, JOBQ_JOB_READY);
	}
	assert_rc(jobq_stats(q, &st), 0);
	assert_int_equal(st.types, 3);
	/* New names after the restart take free records too. */
	assert_rc(jobq_submit(q, "after", JOBQ_T_BYTES, "x", 1, NULL, &id), 0);
	assert_rc(jobq_job_info(q, id, &ji), 0);
	assert_string_equal(ji.type, "after");
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(m)));
}

/*
 * A type that a worker keeps while its only job is forgotten stays, and
 * the next job of it is journaled without a new type record: a replay,
 * which sees no workers, must not free the type in between.
 */
static void type_kept_by_worker(void **state)
{
	static const char *const args[] = {"--keep", "0.05", NULL};
	static const char names[] = "kept";
	struct jqt_mgr mm, *m = &mm;
	struct jobq_job_info ji;
	struct jqt_raw r;
	struct jobq_sqe sqe;
	struct jobq_cqe cqe;
	jobq_t *q = NULL;
	uint64_t first, second;

	(void)state;
	assert_int_equal(jqt_mgr_start(m, args), 0);
	assert_int_equal(jqt_raw_open(m->dir, &r), 0);
	memset(&sqe, 0, sizeof(sqe));
	sqe.op = JOBQ_OP_W_REGISTER;
	sqe.arena_off = jqt_raw_arena_put(&r, 0, names, sizeof(names));
	sqe.arena_len = sizeof(names);
	sqe.arg0 = 1;
	sqe.user_data = 1;
	assert_int_equal(jqt_raw_submit(&r, &sqe), 0);
	assert_int_equal(jqt_raw_wait(&r, &cqe, 10), 0);
	assert_rc(cqe.res, 0);

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_submit(q, "kept", JOBQ_T_BYTES, "x", 1, NULL, &first),
		  0);
	assert_rc(jobq_cancel(q, first), 0);
	for (double end = jqt_now() + 10; jqt_now() < end; jqt_sleep(0.01))
		if (jobq_job_info(q, first, &ji) == -ENOENT)
			break;
	assert_rc(jobq_job_info(q, first, &ji), -ENOENT);
	assert_rc(jobq_submit(q, "kept", JOBQ_T_BYTES, "x", 1, NULL, &second),
		  0);
	jobq_close(q);
	kill(m->pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(m, 10), 0);
	jqt_raw_close(&r);
	assert_int_equal(jqt_mgr_restart(m, args), 0);
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_job_info(q, second, &ji), 0);
	assert_string_equal(ji.type, "kept");
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(m)));
}

/* A full job type table says so: its size and the option. */
static void full_type_table(void **state)
{
	static const char *const args[] = {"--max-types", "16", NULL};
	struct jqt_mgr mm, *m = &mm;
	struct jqt_out o;
	char name[32];

	(void)state;
	assert_int_equal(jqt_mgr_start(m, args), 0);
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		CLI(&o, "submit", name, "{}");
		assert_int_equal(o.code, 0);
		jqt_out_free(&o);
	}
	CLI(&o, "submit", "one-more", "{}");
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "job type table"));
	assert_non_null(strstr(o.err, "16 types"));
	assert_non_null(strstr(o.err, "jobqd --max-types"));
	jqt_out_free(&o);
	assert_true(jqt_status_ok(jqt_mgr_stop(m)));
}

/* A table that is full says which, its size and the option. */
static void full_table_message(void **state)
{
	static const char *const args[] = {"--max-queues", "16", NULL};
	struct jqt_mgr mm, *m = &mm;
	struct jqt_out o;
	char name[32];

	(void)state;
	assert_int_equal(jqt_mgr_start(m, args), 0);
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "full-%d", i);
		CLI(&o, "put", name, "x");
		assert_int_equal(o.code, 0);
		jqt_out_free(&o);
	}
	CLI(&o, "put", "one-more", "x");
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "queue table"));
	assert_non_null(strstr(o.err, "16 queues"));
	assert_non_null(strstr(o.err, "jobqd --max-queues"));
	jqt_out_free(&o);
	/* A removal makes room at once. */
	CLI(&o, "queue", "rm", "full-3");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	CLI(&o, "put", "one-more", "x");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	assert_true(jqt_status_ok(jqt_mgr_stop(m)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(churn, jqt_setup, jqt_teardown),
	    cmocka_unit_test_setup_teardown(lock_churn, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(stale_ids, jqt_setup, jqt_teardown),
	    cmocka_unit_test_setup_teardown(waiters_fail, jqt_setup,
					    jqt_teardown),
	    cmocka_unit_test_setup_teardown(cli_rm, jqt_setup, jqt_teardown),
	    cmocka_unit_test(survives_restart),
	    cmocka_unit_test(full_table_message),
	    cmocka_unit_test(rm_while_handed),
	    cmocka_unit_test(type_churn),
	    cmocka_unit_test(type_kept_by_worker),
	    cmocka_unit_test(full_type_table),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
