/* SPDX-License-Identifier: MIT */
/*
 * test_jobs_mgr.c - the manager's job machinery without a running daemon:
 * a real store (store.c, heap.c) and jobs.c with the files split from it
 * (jobidx.c, chash.c, timerq.c, lanes.c), included here so their static
 * pieces (backoff, the index's tombstone count) are reachable, with the
 * event loop replaced by the seams below: completions are recorded instead
 * of written to a ring, waiters live on plain lists, and the timer only
 * remembers its deadline.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chash.c"
#include "jobidx.c"
#include "jobs.c"
#include "lanes.c"
#include "timerq.c"

/* ------------------------------------------------------------------------
 * Seams: what loop.c, main.c and supervise.c provide to jobs.c.
 */
struct jobq__mgr jobq__m;

struct posted {
	uint32_t slot;
	uint64_t ud;
	int32_t res;
	uint32_t flags;
	uint64_t val;
	uint32_t len, type;
};

static struct posted posts[16384];
static unsigned nposts;
static uint64_t timer_deadline;

void jobq__log(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

void jobq__post(struct jobq__client *c, uint64_t user_data, int32_t res,
		uint32_t flags, uint64_t val, uint32_t len, uint32_t type)
{
	assert_true(nposts < 16384);
	posts[nposts++] =
	    (struct posted){c->slot, user_data, res, flags, val, len, type};
}

struct jobq__waiter *jobq__wait_new(struct jobq__client *c,
				    const struct jobq_sqe *s, int kind,
				    int *err)
{
	struct jobq__waiter *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->c = c;
	w->sqe = *s;
	w->kind = kind;
	w->tidx = -1;
	jobq__list_init(&w->onode);
	jobq__list_add_tail(&w->cnode, &c->waiters);
	(void)err;
	return w;
}

void jobq__wait_free(struct jobq__waiter *w)
{
	jobq__job_wait_detach(w);
	jobq__list_del(&w->cnode);
	free(w);
}

void jobq__wait_done(struct jobq__waiter *w, int32_t res, uint64_t val)
{
	struct jobq__client *c = w->c;
	uint64_t ud = w->sqe.user_data;

	jobq__wait_free(w);
	jobq__post(c, ud, res, 0, val, 0, 0);
}

const uint8_t *jobq__arena(struct jobq__client *c, uint64_t off)
{
	return c->region + off;
}

bool jobq__client_alive(const struct jobq__client *c)
{
	return c->state == JOBQ__C_LIVE;
}

int jobq__bad(int err)
{
	return err;
}

/* queues.c: the test's one queue is record 0 of generation 0. */
int jobq__queue_index(uint32_t id, uint32_t *qid)
{
	if (id >= load_relaxed(&jobq__hdr()->nqueues))
		return -EINVAL;
	*qid = id;
	return 0;
}

/* clients.c: no quotas here. */
int jobq__quota_room(struct jobq__client *c, int which, uint32_t more)
{
	(void)c;
	(void)which;
	(void)more;
	return 0;
}

void jobq__quota_ref_add(uint64_t ref, int which, int delta)
{
	(void)ref;
	(void)which;
	(void)delta;
}

uint64_t jobq__client_ref(const struct jobq__client *c)
{
	(void)c;
	return 0;
}

void jobq__timer_arm(int which, uint64_t deadline)
{
	if (which == JOBQ__TIMER_JOBS)
		timer_deadline = deadline;
}

void jobq__supervise_registered(pid_t pid, uint32_t *flags)
{
	(void)pid;
	(void)flags;
}

bool jobq__supervise_kill_worker(pid_t pid)
{
	return false;
}

/* The journal: records are kept, in order, as replay would read them:
 * u16 type, u32 len, payload. */
static struct {
	uint8_t *buf;
	size_t len, cap;
} jl;

void jobq__jlog(uint16_t type, const struct iovec *iov, int n, bool ack)
{
	uint32_t len = 0;

	(void)ack;
	for (int i = 0; i < n; i++)
		len += (uint32_t)iov[i].iov_len;
	if (jl.len + 6 + len > jl.cap) {
		size_t ncap = 2 * (jl.len + 6 + len) + 4096;
		uint8_t *nb = realloc(jl.buf, ncap);

		assert_non_null(nb);
		jl.buf = nb;
		jl.cap = ncap;
	}
	memcpy(jl.buf + jl.len, &type, 2);
	memcpy(jl.buf + jl.len + 2, &len, 4);
	jl.len += 6;
	for (int i = 0; i < n; i++) {
		memcpy(jl.buf + jl.len, iov[i].iov_base, iov[i].iov_len);
		jl.len += iov[i].iov_len;
	}
}

int jobq__durable_want_sync(void)
{
	return 0;
}

/* ------------------------------------------------------------------------
 * Fixture: a store, a queue "default" (id 0), four clients.
 */
#define NCLIENTS 4
static struct jobq__client clients[NCLIENTS];
static uint8_t regions[NCLIENTS][8192];

static int setup(void **state)
{
	struct jobq__opts *o = &jobq__m.o;
	char err[256];

	memset(&jobq__m, 0, sizeof(jobq__m));
	o->memory = 32ull << 20;
	o->max_object = 1u << 20;
	o->max_clients = NCLIENTS;
	o->max_jobs = 4096;
	o->keep_ns = 3600 * NSEC;
	assert_int_equal(jobq__store_create(o, err, sizeof(err)), 0);
	strcpy(jobq__m.st.queues[0].name, "default");
	jobq__m.st.queues[0].in_use = 1;
	store_relaxed(&jobq__hdr()->nqueues, 1);
	assert_int_equal(jobq__jobs_init(), 0);
	jobq__m.clients = clients;
	for (uint32_t i = 0; i < NCLIENTS; i++) {
		memset(&clients[i], 0, sizeof(clients[i]));
		clients[i].slot = i;
		clients[i].state = JOBQ__C_LIVE;
		clients[i].pid = 1000 + (pid_t)i;
		clients[i].region = regions[i];
		jobq__list_init(&clients[i].waiters);
	}
	nposts = 0;
	(void)state;
	return 0;
}

/* Gives back what jobs.c allocated, so leak checkers see a clean run. */
static void jobs_free(void)
{
	jobq__lanes_fini(jobq__hdr()->max_types);
	jobq__chash_fini();
	for (uint32_t i = 0; i < NCLIENTS; i++)
		while (!jobq__list_empty(&clients[i].waiters))
			jobq__wait_free(jobq__entry(clients[i].waiters.next,
						    struct jobq__waiter,
						    cnode));
	free(jobq__job_priv);
	free(jobs.type_hash);
	free(jobs.owner);
	free(jobs.tjobs);
	free(jobs.tfree);
	free(jobs.W);
	jobq__timerq_fini();
	free(jobs.finq);
	free(jobs.finq_state);
}

static int teardown(void **state)
{
	jobs_free();
	jobq__store_destroy();
	free(jl.buf);
	memset(&jl, 0, sizeof(jl));
	(void)state;
	return 0;
}

struct sub {
	const char *type;
	int32_t prio;
	int64_t delay_ns, lease_ns;
	uint32_t max_attempts;
	const char *unique;
	const uint64_t *after;
	uint32_t nafter;
};

/* Submits from client 0; returns the result and the id in *id. */
static int submit(const struct sub *o, uint64_t *id)
{
	struct jobq__client *c = &clients[0];
	struct jobq_submit_wire w = {
	    .type_len = (uint32_t)strlen(o->type),
	    .unique_len = o->unique ? (uint32_t)strlen(o->unique) : 0,
	    .nafter = o->nafter,
	    .args_len = 4,
	    .priority = o->prio,
	    .max_attempts = o->max_attempts ? o->max_attempts : 4,
	    .delay_ns = o->delay_ns,
	    .lease_ns = o->lease_ns ? o->lease_ns : 300 * (int64_t)NSEC,
	};
	struct jobq_sqe s = {.op = JOBQ_OP_JOB_SUBMIT, .type = JOBQ_T_TEXT};
	size_t off = sizeof(w);
	int res;

	memcpy(c->region, &w, sizeof(w));
	memcpy(c->region + off, o->type, w.type_len);
	off += w.type_len;
	if (w.unique_len)
		memcpy(c->region + off, o->unique, w.unique_len);
	off += w.unique_len;
	if (o->nafter) {
		off = (off + 7) & ~(size_t)7;
		memcpy(c->region + off, o->after, 8 * o->nafter);
		off += 8 * o->nafter;
	}
	memcpy(c->region + off, "args", 4);
	s.arena_len = (uint32_t)(off + 4);
	res = jobq__op_job_submit(c, &s);
	if (res == JOBQ__NOREPLY) {
		res = posts[nposts - 1].res;
		*id = posts[nposts - 1].val;
	}
	return res;
}

/* Runs an op that takes no arena for client @slot; a self-posted answer is
 * returned as its res. */
static int op(int (*fn)(struct jobq__client *, const struct jobq_sqe *),
	      uint32_t slot, struct jobq_sqe s)
{
	unsigned before = nposts;
	int res = fn(&clients[slot], &s);

	if (res == JOBQ__NOREPLY && nposts > before)
		res = posts[nposts - 1].res;
	return res;
}

static void reg(uint32_t slot, const char *names, uint32_t len, uint32_t cap)
{
	struct jobq_sqe s = {
	    .op = JOBQ_OP_W_REGISTER, .arena_len = len, .arg0 = cap};

	memcpy(clients[slot].region, names, len);
	assert_int_equal(jobq__op_w_register(&clients[slot], &s), 0);
}

static unsigned state_of(uint64_t id)
{
	uint32_t r = jobq__jobidx_lookup(id);

	return r == NONE ? 0 : job_rec(r)->state;
}

/* ------------------------------------------------------------------------
 * Tests.
 */
static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(backoff_ns(1, 1.0), NSEC);
	assert_int_equal(backoff_ns(2, 1.0), 2 * NSEC);
	assert_int_equal(backoff_ns(3, 1.0), 4 * NSEC);
	assert_int_equal(backoff_ns(9, 1.0), 256 * NSEC);
	assert_int_equal(backoff_ns(10, 1.0), 300 * NSEC);
	assert_int_equal(backoff_ns(60000, 1.0), 300 * NSEC);
	assert_int_equal(backoff_ns(1, 0.5), NSEC / 2);
	assert_int_equal(backoff_ns(2, 1.5), 3 * NSEC);
}

/* Priority descending, then id ascending; a reserve hands them in that
 * order, every completion but the last flagged MORE. */
static void test_priority_order(void **state)
{
	static const int32_t prio[] = {0, 5, -1, 5, 0, 10};
	static const uint64_t want[] = {6, 2, 4, 1, 5, 3};
	uint64_t id;
	unsigned first;

	(void)state;
	for (unsigned i = 0; i < 6; i++) {
		struct sub o = {.type = "t", .prio = prio[i]};

		assert_int_equal(submit(&o, &id), 0);
		assert_int_equal(id, i + 1);
		assert_int_equal(state_of(id), JOBQ_JS_READY);
	}
	assert_int_equal(jobq__m.st.types[0].ready, 6);
	assert_int_equal(jobq__m.st.types[0].workers, 0);
	reg(1, "t", 2, 8);
	assert_int_equal(jobq__m.st.types[0].workers, 1);
	first = nposts;
	assert_int_equal(
	    op(jobq__op_w_reserve, 1,
	       (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 8}),
	    0);
	assert_int_equal(nposts - first, 6);
	for (unsigned i = 0; i < 6; i++) {
		const struct posted *p = &posts[first + i];

		assert_int_equal(p->val, want[i]);
		assert_int_equal(p->len, 1); /* the attempt */
		assert_true(p->flags & JOBQ_CQE_JOB);
		assert_int_equal(!!(p->flags & JOBQ_CQE_MORE), i < 5);
		assert_int_equal(state_of(want[i]), JOBQ_JS_RUNNING);
	}
	assert_int_equal(jobq__m.st.workers[1].running, 6);
	assert_int_equal(jobq__m.st.queues[0].running, 6);
	assert_int_equal(jobq__hdr()->jobs_by_state[JOBQ_JS_RUNNING], 6);
}

/* Random priorities and cancellations: what comes out is every job not
 * cancelled, best first. */
static void test_heap_random(void **state)
{
	enum { N = 3000 };
	static int32_t prio[N + 1];
	static bool cancelled[N + 1];
	int32_t lastp = INT32_MAX;
	uint64_t id, lastid = 0;
	unsigned first, got = 0, want = 0;

	(void)state;
	srand(7);
	for (unsigned i = 1; i <= N; i++) {
		struct sub o = {.type = "t", .prio = rand() % 7 - 3};

		prio[i] = o.prio;
		assert_int_equal(submit(&o, &id), 0);
		assert_int_equal(id, i);
	}
	for (unsigned i = 1; i <= N; i++) {
		cancelled[i] = rand() % 4 == 0;
		if (cancelled[i])
			op(jobq__op_job_cancel, 0,
			   (struct jobq_sqe){.arg0 = i});
		else
			want++;
	}
	reg(1, "t", 2, 4096);
	first = nposts;
	op(jobq__op_w_reserve, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 4096});
	for (unsigned k = first; k < nposts; k++) {
		uint64_t v = posts[k].val;

		assert_false(cancelled[v]);
		assert_true(prio[v] < lastp ||
			    (prio[v] == lastp && v > lastid));
		lastp = prio[v];
		lastid = v;
		got++;
	}
	assert_int_equal(got, want);
}

/* Never more than capacity - running; a parked reserve is served when a
 * job comes. */
static void test_capacity_and_parking(void **state)
{
	struct sub o = {.type = "t"};
	uint64_t id;
	unsigned first;

	(void)state;
	reg(1, "t", 2, 1);
	assert_int_equal(submit(&o, &id), 0);
	assert_int_equal(submit(&o, &id), 0);
	first = nposts;
	op(jobq__op_w_reserve, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 5});
	assert_int_equal(nposts - first, 1);
	assert_int_equal(posts[first].val, 1);
	/* Full: try-once says so, a blocking one parks. */
	assert_int_equal(
	    op(jobq__op_w_reserve, 1,
	       (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 1}),
	    -EAGAIN);
	assert_int_equal(op(jobq__op_w_reserve, 1,
			    (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE,
					      .arg0 = 1,
					      .user_data = 77,
					      .timeout_ns = -1}),
			 JOBQ__NOREPLY);
	/* Job 1 done: its slot frees and the parked reserve gets job 2. */
	first = nposts;
	assert_int_equal(
	    op(jobq__op_w_done, 1,
	       (struct jobq_sqe){.op = JOBQ_OP_W_DONE, .arg0 = 1, .arg1 = 1}),
	    0);
	assert_int_equal(state_of(1), JOBQ_JS_SUCCEEDED);
	assert_int_equal(nposts - first, 1);
	assert_int_equal(posts[first].ud, 77);
	assert_int_equal(posts[first].val, 2);
	assert_int_equal(load_relaxed(&jobq__hdr()->counters.done), 1);
}

static void test_pause_and_parallel(void **state)
{
	struct sub o = {.type = "t"};
	uint64_t id;
	unsigned first;

	(void)state;
	for (int i = 0; i < 3; i++)
		submit(&o, &id);
	reg(1, "t", 2, 8);
	op(jobq__op_q_pause, 0,
	   (struct jobq_sqe){.op = JOBQ_OP_Q_PAUSE, .id = 0, .arg0 = 1});
	assert_int_equal(
	    op(jobq__op_w_reserve, 1,
	       (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 8}),
	    -EAGAIN);
	op(jobq__op_q_parallel, 0,
	   (struct jobq_sqe){.op = JOBQ_OP_Q_PARALLEL, .id = 0, .arg0 = 2});
	op(jobq__op_q_pause, 0,
	   (struct jobq_sqe){.op = JOBQ_OP_Q_PAUSE, .id = 0, .arg0 = 0});
	first = nposts;
	op(jobq__op_w_reserve, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 8});
	assert_int_equal(nposts - first, 2);
	assert_int_equal(jobq__m.st.queues[0].running, 2);
	assert_int_equal(jobq__m.st.queues[0].ready, 1);
}

/* A lease that runs out fails the attempt; the late answer is refused. */
static void test_lease_expiry(void **state)
{
	struct sub o = {.type = "t", .lease_ns = 1};
	uint64_t id;

	(void)state;
	submit(&o, &id);
	reg(1, "t", 2, 1);
	op(jobq__op_w_reserve, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 1});
	assert_int_equal(state_of(id), JOBQ_JS_RUNNING);
	assert_true(timer_deadline != 0);
	jobq__jobs_timer();
	assert_int_equal(state_of(id), JOBQ_JS_FAILED);
	assert_true(job_rec(jobq__jobidx_lookup(id))->run_at_ns >
		    jobq__realtime_ns());
	assert_int_equal(jobq__m.st.workers[1].running, 0);
	assert_int_equal(
	    op(jobq__op_w_done, 1,
	       (struct jobq_sqe){.op = JOBQ_OP_W_DONE, .arg0 = id, .arg1 = 1}),
	    -ESTALE);
	assert_int_equal(load_relaxed(&jobq__hdr()->counters.failed), 1);
	assert_int_equal(load_relaxed(&jobq__hdr()->counters.retried), 1);
}

/* A dying worker fails its running jobs; the last attempt ends dead. */
static void test_worker_death(void **state)
{
	struct sub o = {.type = "t", .max_attempts = 1};
	struct jobq_item *it;
	uint64_t id;

	(void)state;
	submit(&o, &id);
	reg(1, "t", 2, 1);
	op(jobq__op_w_reserve, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 1});
	jobq__jobs_drop_client(&clients[1]);
	assert_int_equal(state_of(id), JOBQ_JS_DEAD);
	it = jobq__ptr(job_rec(jobq__jobidx_lookup(id))->result);
	assert_int_equal(it->len, strlen("worker died"));
	assert_memory_equal(it + 1, "worker died", it->len);
	assert_int_equal(jobq__m.st.types[0].workers, 0);
	assert_int_equal(jobq__m.st.workers[1].in_use, 0);
	assert_int_equal(load_relaxed(&jobq__hdr()->counters.dead), 1);
}

static void test_cancel_retry_kick(void **state)
{
	struct sub o = {.type = "t", .max_attempts = 1};
	struct jobq_sqe s = {.arg0 = 1};
	uint64_t id;

	(void)state;
	submit(&o, &id);
	assert_int_equal(op(jobq__op_job_cancel, 0, s), 0);
	assert_int_equal(state_of(1), JOBQ_JS_CANCELLED);
	assert_int_equal(op(jobq__op_job_cancel, 0, s), -EALREADY);
	assert_int_equal(op(jobq__op_job_wait, 0, s), JOBQ_JS_CANCELLED);
	assert_int_equal(op(jobq__op_job_kick, 0, s), -EALREADY);
	assert_int_equal(op(jobq__op_job_retry, 0, s), 0);
	assert_int_equal(state_of(1), JOBQ_JS_READY);
	/* Running: the worker is told; its answer makes it cancelled. */
	reg(1, "t", 2, 1);
	op(jobq__op_w_reserve, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 1});
	assert_int_equal(op(jobq__op_job_cancel, 0, s), 0);
	assert_int_equal(posts[nposts - 1].ud, JOBQ_UD_NOTICE);
	assert_int_equal(posts[nposts - 1].res, JOBQ_NOTICE_CANCEL);
	assert_int_equal(state_of(1), JOBQ_JS_RUNNING);
	op(jobq__op_w_done, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_DONE, .arg0 = 1, .arg1 = 1});
	assert_int_equal(state_of(1), JOBQ_JS_CANCELLED);
	/* Dead ones come back with kick. */
	submit(&o, &id);
	submit(&o, &id);
	op(jobq__op_w_reserve, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 1});
	op(jobq__op_w_done, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_DONE,
			     .arg0 = 2,
			     .arg1 = 1,
			     .flags = JOBQ_SQE_FAIL});
	assert_int_equal(state_of(2), JOBQ_JS_DEAD);
	assert_int_equal(
	    op(jobq__op_job_kick, 0, (struct jobq_sqe){.op = JOBQ_OP_JOB_KICK}),
	    1);
	assert_int_equal(state_of(2), JOBQ_JS_READY);
	assert_int_equal(job_rec(jobq__jobidx_lookup(2))->attempts, 0);
	assert_int_equal(
	    op(jobq__op_job_cancel, 0, (struct jobq_sqe){.arg0 = 99}), -ENOENT);
}

static void test_after_and_unique(void **state)
{
	struct sub a = {.type = "t"};
	uint64_t ida, idb, idc, idu, idu2, bad = 999;
	struct sub b = {.type = "t", .after = &ida, .nafter = 1};
	struct sub c = {.type = "t", .after = &idb, .nafter = 1};
	struct sub x = {.type = "t", .after = &bad, .nafter = 1};
	struct sub u = {.type = "t", .unique = "key"};
	struct jobq_item *it;

	(void)state;
	submit(&a, &ida);
	submit(&b, &idb);
	submit(&c, &idc);
	assert_int_equal(state_of(idb), JOBQ_JS_WAITING);
	assert_int_equal(submit(&x, &bad), -ENOENT);
	op(jobq__op_job_cancel, 0, (struct jobq_sqe){.arg0 = ida});
	assert_int_equal(state_of(idb), JOBQ_JS_DEAD);
	assert_int_equal(state_of(idc), JOBQ_JS_DEAD);
	it = jobq__ptr(job_rec(jobq__jobidx_lookup(idc))->result);
	assert_memory_equal(it + 1, "dependency 2 failed", it->len);

	/* A dependency that succeeds releases its dependent. */
	submit(&a, &ida);
	submit(&b, &idb);
	reg(1, "t", 2, 1);
	op(jobq__op_w_reserve, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 1});
	assert_int_equal(posts[nposts - 1].val, ida);
	op(jobq__op_w_done, 1,
	   (struct jobq_sqe){.op = JOBQ_OP_W_DONE, .arg0 = ida, .arg1 = 1});
	assert_int_equal(state_of(idb), JOBQ_JS_READY);

	assert_int_equal(submit(&u, &idu), 0);
	assert_int_equal(submit(&u, &idu2), 1);
	assert_int_equal(idu2, idu);
	op(jobq__op_job_cancel, 0, (struct jobq_sqe){.arg0 = idu});
	assert_int_equal(submit(&u, &idu2), 0);
	assert_true(idu2 > idu);
}

/* The index stays exact and short under many inserts and deletes. */
/*
 * Replay: what was journaled, played into a fresh manager, gives the same
 * jobs, the running one back to ready with its attempt counted, the key
 * still taken, the chain still waiting, ids going on.
 */
static void test_replay(void **state)
{
	struct sub plain = {.type = "t"}, later = {.type = "t"};
	struct sub chain = {.type = "t", .unique = "u", .nafter = 1};
	struct sub fin = {.type = "f", .max_attempts = 1};
	uint64_t a, b, c, d, e, again;
	uint8_t *buf;
	size_t len;

	later.delay_ns = 3600 * (int64_t)NSEC;
	assert_int_equal(submit(&plain, &a), 0);
	chain.after = &a;
	assert_int_equal(submit(&chain, &b), 0);
	assert_int_equal(submit(&later, &c), 0);
	assert_int_equal(submit(&fin, &d), 0);
	reg(1, "t", 2, 1);
	assert_int_equal(
	    op(jobq__op_w_reserve, 1,
	       (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 1}),
	    0);
	assert_int_equal(state_of(a), JOBQ_JS_RUNNING);
	assert_int_equal(
	    op(jobq__op_job_cancel, 0,
	       (struct jobq_sqe){.op = JOBQ_OP_JOB_CANCEL, .arg0 = d}),
	    0);
	assert_int_equal(state_of(d), JOBQ_JS_CANCELLED);

	/* The manager dies; another replays what was journaled. */
	buf = jl.buf;
	len = jl.len;
	jl.buf = NULL;
	jl.len = jl.cap = 0;
	teardown(NULL);
	setup(NULL);
	for (size_t off = 0; off < len;) {
		uint16_t type;
		uint32_t n;

		memcpy(&type, buf + off, 2);
		memcpy(&n, buf + off + 2, 4);
		assert_int_equal(jobq__jobs_replay(type, buf + off + 6, n), 0);
		off += 6 + n;
	}
	free(buf);
	assert_int_equal(jobq__jobs_replay_done(), 0);
	jobq__jobs_start();

	assert_int_equal(state_of(a), JOBQ_JS_READY);
	assert_int_equal(job_rec(jobq__jobidx_lookup(a))->attempts, 1);
	assert_int_equal(state_of(b), JOBQ_JS_WAITING);
	assert_int_equal(state_of(c), JOBQ_JS_DELAYED);
	assert_int_equal(state_of(d), JOBQ_JS_CANCELLED);
	assert_int_equal(jobq__m.st.queues[0].ready, 1);
	assert_int_equal(load_relaxed(&jobq__hdr()->njobs), 4);
	assert_int_equal(submit(&chain, &again), 1);
	assert_int_equal(again, b);
	assert_int_equal(submit(&plain, &e), 0);
	assert_true(e > d);
	/* The chain goes on: a succeeds, b becomes ready. */
	reg(1, "t", 2, 1);
	assert_int_equal(
	    op(jobq__op_w_reserve, 1,
	       (struct jobq_sqe){.op = JOBQ_OP_W_RESERVE, .arg0 = 1}),
	    0);
	assert_int_equal(state_of(a), JOBQ_JS_RUNNING);
	assert_int_equal(job_rec(jobq__jobidx_lookup(a))->attempts, 2);
	assert_int_equal(
	    op(jobq__op_w_done, 1,
	       (struct jobq_sqe){.op = JOBQ_OP_W_DONE, .arg0 = a, .arg1 = 2}),
	    0);
	assert_int_equal(state_of(a), JOBQ_JS_SUCCEEDED);
	assert_int_equal(state_of(b), JOBQ_JS_READY);
}

static void test_index(void **state)
{
	uint32_t slots = jobq__hdr()->jobidx_slots, live = 0, tombs = 0;
	static uint8_t in[200001];

	(void)state;
	for (uint64_t id = 1; id <= 200000; id++) {
		jobq__jobidx_insert(id, (uint32_t)(id % 4000));
		in[id] = 1;
		/* A window of 3000 live ids, and every seventh step one
		 * younger id goes early: deletes out of insertion order. */
		for (uint64_t old = id > 3000 ? id - 3000 : 0; old;
		     old = (id % 7 == 0 && old + 1000 < id) ? old + 1000 : 0) {
			if (in[old]) {
				jobq__jobidx_delete(old);
				in[old] = 0;
			}
		}
	}
	for (uint64_t id = 1; id <= 200000; id++)
		assert_int_equal(idx_slot(id) != NONE, in[id]);
	for (uint32_t i = 0; i < slots; i++) {
		uint64_t v = jobq__m.st.jobidx[i];

		live += v && v != IDX_TOMB;
		tombs += v == IDX_TOMB;
	}
	assert_true(live <= 4000);
	assert_true(tombs <= slots / 8);
	assert_int_equal(tombs, idx.tombs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test_setup_teardown(test_priority_order, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_heap_random, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capacity_and_parking, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pause_and_parallel, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_lease_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_worker_death, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_retry_kick, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_after_and_unique, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
