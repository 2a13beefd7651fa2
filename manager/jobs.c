/* SPDX-License-Identifier: MIT */
/*
 * jobs.c - jobs, job types and workers: the job state machine and the
 * request handlers.
 *
 * The public state of a job is its record in the store's job table (found
 * by id through the job index, jobidx.c), written here only, inside the
 * record's seqlock. What only the manager needs lives in its own memory and
 * is kept small, since a queued job must cost little beyond its args:
 *
 *   priv[rec]  16 bytes per record (jobs.h): its place in its lane or in
 *              the timer queue (a job is in at most one of them), two list
 *              links (free list, a worker's running list, the finished list
 *              or its lane's in-order run, at most one), the count of
 *              unfinished dependencies and the hash of its unique key;
 *   lanes      the READY jobs per (type, queue) pair, and which one a
 *              reserving worker gets next (lanes.c);
 *   timers     one deadline per record for delayed jobs, retry backoff,
 *              leases and the cancel grace period (timerq.c), registered
 *              in the loop as a single timer: the earliest deadline, or
 *              the expiry of the oldest finished job if that comes first;
 *   keys, deps the unique keys of live jobs and the jobs waiting for each
 *              unfinished one (chash.c);
 *   finished   one list in the order jobs finished, which with one --keep
 *              period is also the order they expire in; a full store
 *              evicts from it only jobs whose --keep ran out.
 *
 * State changes (to_ready(), to_later(), to_final() ...) move a job
 * between those structures and keep the counts in the queue, type and
 * worker records. Every entry point ends with settle(): dependents of jobs
 * that became final are released or failed, parked W_RESERVE requests are
 * served when something became ready or a limit was lifted, and the timer
 * is re-armed.
 *
 * Durability. The records and what they reference are the state; the
 * structures above are rebuilt from them. Every change that cannot be
 * worked out again is journaled before its answer is seen ("The journal"
 * below), and a start replays the journal into the records, then places
 * each job by its state ("Replay and snapshot", at the end).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "jobs.h"

#define NSEC		       JOBQ__NSEC_PER_SEC
#define JOBQ__CANCEL_GRACE_NS  (5 * NSEC)
#define JOBQ__BACKOFF_MAX_NS   (300 * NSEC)
#define JOBQ__WORKER_TYPES_MAX 64
#define JOBQ__WORKER_CAP_MAX   4096
#define JOBQ__NOTE_MAX	       1024
#define JOBQ__WAIT_BUCKETS     1024u /* JOB_WAIT waiters, hashed by job id */
#define AUX_WAITED	       (1u << 31) /* a JOB_WAIT waiter may be parked on it */
#define AUX_DEPS	       0x7fu /* unfinished dependencies (WAITING), <= 64 */
/* The low 24 bits of the unique key's hash (JOBQ_JF_UNIQUE): all that its
 * bucket needs, as the key table has at most 2^24 buckets (chash.c). */
#define AUX_UKH_SHIFT 7
#define AUX_UKH	      (0xffffffu << AUX_UKH_SHIFT)

struct jpriv *jobq__job_priv;

_Static_assert(sizeof(struct jpriv) == 16, "paid by every record");
_Static_assert(64 <= AUX_DEPS, "a job waits for at most 64 others");
_Static_assert((AUX_UKH & (AUX_WAITED | AUX_DEPS)) == 0, "aux fields overlap");

struct jworker {
	bool reg, stopping;
	uint32_t flags, capacity, running, ntypes;
	uint16_t types[JOBQ__WORKER_TYPES_MAX];
	uint32_t run_head; /* running jobs, linked through priv[].prev/next */
	struct jobq__waiter *reserve; /* its parked W_RESERVE */
};

static struct {
	uint32_t max_jobs, hwm, free_head;
	uint32_t fin_head, fin_tail; /* finished, oldest first */
	uint16_t *type_hash;	     /* type id + 1, open addressing */
	uint32_t type_hash_mask;
	/* Type records: how many job records name each one ([max_types]);
	 * and the free ones below ntypes, freed longest ago first (a ring
	 * of max_types). */
	uint32_t *tjobs;
	uint16_t *tfree;
	uint32_t tfree_head, tfree_n;
	/* Replaying: no type is freed before jobq__jobs_replay_done(), as
	 * replay cannot see the workers that kept a type alive between its
	 * jobs (the next job of it comes with no JOBQ__JR_JOB_TYPE). */
	bool replaying;
	uint64_t armed;		     /* deadline given to the loop */
	struct jworker *W;	     /* [max_clients] by client slot */
	struct jobq__list reservers; /* parked W_RESERVE, oldest first */
	struct jobq__list waits[JOBQ__WAIT_BUCKETS];
	/* [max_jobs] by record: jobq__client_ref() of the connection that
	 * submitted the job while it counts against that client's quota
	 * (until it is final), else 0. Replayed jobs count for nobody. */
	uint64_t *owner;
	uint64_t *finq; /* ids that became final, for deps */
	uint8_t *finq_state;
	uint32_t finq_n, finq_cap;
	bool need_serve;
	uint64_t rng;
	uint64_t keep_id, keep_at; /* oldest finished job, its expiry */
	/* This request journaled a change its answer acknowledges. */
	bool jacked;
} jobs;

/* ------------------------------------------------------------------------
 * Small helpers.
 */
/*
 * The clocks, read once per turn of the loop: a burst of requests in one
 * turn shares one reading instead of a few per job. A turn is short (one
 * pass over the rings), so a time kept for it is early by at most that;
 * deadlines computed from it fire no later for it. Without a running loop
 * (turn 0) every call reads the clock.
 */
static uint64_t clk_turn, clk_real_ns, clk_mono_ns;

static void clk_read(void)
{
	clk_real_ns = jobq__realtime_ns();
	clk_mono_ns = jobq__now_ns();
	clk_turn = jobq__m.turn;
}

static uint64_t clk_real(void)
{
	if (!jobq__m.turn || clk_turn != jobq__m.turn)
		clk_read();
	return clk_real_ns;
}

static uint64_t clk_mono(void)
{
	if (!jobq__m.turn || clk_turn != jobq__m.turn)
		clk_read();
	return clk_mono_ns;
}

static bool is_final(unsigned st)
{
	return st == JOBQ_JS_SUCCEEDED || st == JOBQ_JS_DEAD ||
	       st == JOBQ_JS_CANCELLED;
}

static uint64_t rnd(void)
{
	/* xorshift64*: jitter needs no more. */
	jobs.rng ^= jobs.rng >> 12;
	jobs.rng ^= jobs.rng << 25;
	jobs.rng ^= jobs.rng >> 27;
	return jobs.rng * 0x2545f4914f6cdd1dULL;
}

/* Changes a record's state and the per-state counts; inside the record's
 * write section. */
static void set_state(struct jobq_job_rec *j, unsigned st)
{
	_Atomic uint32_t *c = jobq__hdr()->jobs_by_state;

	if (j->state)
		store_relaxed(&c[j->state], load_relaxed(&c[j->state]) - 1);
	if (st)
		store_relaxed(&c[st], load_relaxed(&c[st]) + 1);
	j->state = (uint8_t)st;
}

static void q_adj(uint32_t qid, int64_t dready, int32_t drun)
{
	struct jobq_queue_rec *q = &jobq__m.st.queues[qid];

	seq_write_begin(&q->seq);
	q->ready += (uint64_t)dready;
	q->running += (uint32_t)drun;
	seq_write_end(&q->seq);
}

static void t_adj(uint32_t tid, int64_t dready, int64_t drun)
{
	struct jobq_type_rec *t = &jobq__m.st.types[tid];

	seq_write_begin(&t->seq);
	t->ready += (uint64_t)dready;
	t->running += (uint64_t)drun;
	seq_write_end(&t->seq);
}

/* ------------------------------------------------------------------------
 * The journal. A job's record is journaled whole when it is submitted
 * (JOBQ__JR_JOB_NEW, with its key and dependencies as records of their
 * own), then as updates (JOBQ__JR_JOB_UPD) at each change that replay
 * cannot work out by itself: hand-out (the attempt counted), a retry
 * scheduled, a final state with its result, a rerun, a cancel asked of a
 * running job. What follows from those and the clock is not journaled: a
 * delay or backoff that ran out, dependents released, are done again at
 * replay. Answers that acknowledge a change wait for its commit (@ack);
 * a hand-out does not: lost with a crash, the job runs again.
 */

/* What a JOBQ__JR_JOB_NEW record holds before the args and the result. */
struct jjob {
	uint64_t id;
	uint64_t created_ns, started_ns, finished_ns, run_at_ns, lease_ns;
	int32_t priority;
	uint32_t queue_id;
	uint16_t type_id, attempts, max_attempts;
	uint8_t state, flags; /* flags: jflags() */
	uint32_t args_type, args_len;
	uint32_t res_type, res_len;
	uint32_t has_result; /* 1: res_len bytes of result follow the args */
	uint32_t zero;
};

/* What a JOBQ__JR_JOB_UPD record holds before the result. */
struct jupd {
	uint64_t id;
	uint64_t started_ns, finished_ns, run_at_ns;
	uint16_t attempts;
	uint8_t state, flags;
	uint32_t res; /* JRES_* */
	uint32_t res_type, res_len;
};

enum { JRES_KEEP = 0, JRES_NONE = 1, JRES_BYTES = 2 };

_Static_assert(sizeof(struct jjob) == 88, "a record's layout");
_Static_assert(sizeof(struct jupd) == 48, "a record's layout");

/* What an empty piece of a record points to (never NULL: memcpy). */
static uint8_t jnothing[1];

/*
 * The flags journaled with job @j: JOBQ_JF_CANCELLING, and JOBQ_JF_AWAY
 * when it runs under a worker that may outlive this manager (one not
 * flagged JOBQ_WF_DAEMON: a program linking libjobq, a --worker CMD, a
 * built-in one under --workers-nondaemon), or still waits for one to come
 * back. Replay reads the bit as "wait for the worker" (place()); a daemon
 * worker dies with the manager, so its jobs run again at once.
 */
static uint8_t jflags(const struct jobq_job_rec *j)
{
	uint8_t f = j->flags & (JOBQ_JF_CANCELLING | JOBQ_JF_AWAY);
	uint32_t slot = j->worker_client;

	if (j->state != JOBQ_JS_RUNNING)
		return f & JOBQ_JF_CANCELLING;
	if (slot < jobq__m.o.max_clients && jobs.W[slot].reg &&
	    !(jobs.W[slot].flags & JOBQ_WF_DAEMON))
		f |= JOBQ_JF_AWAY;
	return f;
}

/* Journals the state of job @r, and its result with @result. */
static void jlog_upd(uint32_t r, bool result, bool ack)
{
	const struct jobq_job_rec *j = job_rec(r);
	const struct jobq_item *it =
	    result && j->result ? jobq__ptr(j->result) : NULL;
	struct jupd u = {
	    .id = j->id,
	    .started_ns = j->started_ns,
	    .finished_ns = j->finished_ns,
	    .run_at_ns = j->run_at_ns,
	    .attempts = j->attempts,
	    .state = j->state,
	    .flags = jflags(j),
	    .res = !result ? JRES_KEEP
		   : it	   ? JRES_BYTES
			   : JRES_NONE,
	    .res_type = it ? it->type : 0,
	    .res_len = it ? it->len : 0,
	};
	struct iovec v[2] = {
	    {.iov_base = &u, .iov_len = sizeof(u)},
	    {.iov_base = it ? (void *)(it + 1) : jnothing,
	     .iov_len = it ? it->len : 0},
	};

	jobq__jlog(JOBQ__JR_JOB_UPD, v, it ? 2 : 1, ack);
	jobs.jacked |= ack;
}

/*
 * answer - what an op returns, @res, acknowledges the changes it
 * journaled. jobq__jlog() marks the next answer posted, and completions
 * posted on the way (a hand-out to a worker, a waiter told) may have
 * taken the mark: the request's own answer must wait for the commit too.
 */
static int answer(int res)
{
	if (jobs.jacked)
		jobq__m.jdep = true;
	jobs.jacked = false;
	return res;
}

/* Adds the whole of job @r to @jn (a snapshot), or journals it (@jn
 * NULL: a submit, whose answer waits for it). */
static int jlog_new(struct jobq__journal *jn, uint32_t r)
{
	const struct jobq_job_rec *j = job_rec(r);
	const struct jobq_item *it = j->result ? jobq__ptr(j->result) : NULL;
	struct jjob h = {
	    .id = j->id,
	    .created_ns = j->created_ns,
	    .started_ns = j->started_ns,
	    .finished_ns = j->finished_ns,
	    .run_at_ns = j->run_at_ns,
	    .lease_ns = j->lease_ns,
	    .priority = j->priority,
	    .queue_id = j->queue_id,
	    .type_id = j->type_id,
	    .attempts = j->attempts,
	    .max_attempts = j->max_attempts,
	    .state = j->state,
	    .flags = jflags(j),
	    .args_type = j->args_type,
	    .args_len = j->args_len,
	    .res_type = it ? it->type : 0,
	    .res_len = it ? it->len : 0,
	    .has_result = it != NULL,
	};
	struct iovec v[3] = {
	    {.iov_base = &h, .iov_len = sizeof(h)},
	    {.iov_base = j->args_len ? jobq__ptr(j->args) : jnothing,
	     .iov_len = j->args_len},
	    {.iov_base = it ? (void *)(it + 1) : jnothing,
	     .iov_len = it ? it->len : 0},
	};

	if (jn)
		return jobq__journal_add(jn, JOBQ__JR_JOB_NEW, v, 3);
	jobq__jlog(JOBQ__JR_JOB_NEW, v, 3, true);
	jobs.jacked = true;
	return 0;
}

static void jlog_key(struct jobq__journal *jn, uint64_t id, const char *key,
		     uint32_t len, int *err)
{
	struct iovec v[2] = {
	    {.iov_base = &id, .iov_len = sizeof(id)},
	    {.iov_base = (void *)key, .iov_len = len},
	};

	if (!jn)
		jobq__jlog(JOBQ__JR_JOB_KEY, v, 2, true);
	else if (!*err)
		*err = jobq__journal_add(jn, JOBQ__JR_JOB_KEY, v, 2);
}

static void jlog_dep(struct jobq__journal *jn, uint64_t dep, uint64_t waiter,
		     int *err)
{
	uint64_t p[2] = {dep, waiter};
	struct iovec v = {.iov_base = p, .iov_len = sizeof(p)};

	if (!jn)
		jobq__jlog(JOBQ__JR_JOB_DEP, &v, 1, true);
	else if (!*err)
		*err = jobq__journal_add(jn, JOBQ__JR_JOB_DEP, &v, 1);
}

static void jlog_queue(struct jobq__journal *jn, uint32_t qid, int *err)
{
	const struct jobq_queue_rec *q = &jobq__m.st.queues[qid];
	uint32_t p[3] = {qid, q->paused, q->parallel};
	struct iovec v = {.iov_base = p, .iov_len = sizeof(p)};

	if (!jn) {
		jobq__jlog(JOBQ__JR_JOB_QUEUE, &v, 1, true);
		jobs.jacked = true;
	} else if (!*err)
		*err = jobq__journal_add(jn, JOBQ__JR_JOB_QUEUE, &v, 1);
}

static void jlog_type(struct jobq__journal *jn, uint32_t tid, int *err)
{
	const struct jobq_type_rec *t = &jobq__m.st.types[tid];
	struct iovec v[2] = {
	    {.iov_base = &tid, .iov_len = sizeof(tid)},
	    {.iov_base = (void *)t->name, .iov_len = strlen(t->name)},
	};

	if (!jn)
		jobq__jlog(JOBQ__JR_JOB_TYPE, v, 2, false);
	else if (!*err)
		*err = jobq__journal_add(jn, JOBQ__JR_JOB_TYPE, v, 2);
}

/* ------------------------------------------------------------------------
 * Items in the store. A finished job is kept for --keep: its result is
 * acknowledged data, so a full store refuses new work (JOBQ_EFULL) rather
 * than drop it. Only a finished job whose --keep ran out may make room
 * (the timer frees those too, but a full store may come first).
 */
static void free_record(uint32_t r);
static void type_maybe_free(uint32_t tid);

static bool evict_one(void)
{
	uint32_t r = jobs.fin_head;

	if (r == NONE ||
	    job_rec(r)->finished_ns + jobq__hdr()->keep_ns > clk_real())
		return false;
	free_record(r);
	return true;
}

static uint64_t item_new(const void *data, uint32_t len, uint32_t type)
{
	struct jobq_item *it;
	uint64_t off;

	while (!(off = jobq__alloc(sizeof(*it) + len)))
		if (!evict_one())
			return 0;
	it = jobq__ptr(off);
	it->next = 0;
	it->len = len;
	it->type = type;
	if (len)
		memcpy(it + 1, data, len);
	return off;
}

static uint64_t text_new(const char *s)
{
	return item_new(s, (uint32_t)strlen(s), JOBQ_T_TEXT);
}

/* The args of a job: @len bytes in a heap block of their own, no item
 * header (see struct jobq_job_rec). @len > 0. The offset or 0 when full. */
static uint64_t args_new(const void *data, uint32_t len)
{
	uint64_t off;

	while (!(off = jobq__alloc(len)))
		if (!evict_one())
			return 0;
	memcpy(jobq__ptr(off), data, len);
	return off;
}

/* A worker's running list has a head only (order does not matter). */
static void run_add(struct jworker *wk, uint32_t r)
{
	jobq__job_priv[r].prev = NONE;
	jobq__job_priv[r].next = wk->run_head;
	if (wk->run_head != NONE)
		jobq__job_priv[wk->run_head].prev = r;
	wk->run_head = r;
}

/* ------------------------------------------------------------------------
 * State changes.
 */

/* Job @r (in no lane, timer queue or list) becomes READY. */
static void to_ready(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	seq_write_begin(&j->seq);
	set_state(j, JOBQ_JS_READY);
	j->run_at_ns = 0;
	seq_write_end(&j->seq);
	if (jobq__lane_push(r)) {
		/* Out of manager memory: try again in a second. */
		jobq__log(JOBQ__LOG_ERROR,
			  "job %llu: out of memory for the ready heap",
			  (unsigned long long)j->id);
		seq_write_begin(&j->seq);
		set_state(j, JOBQ_JS_DELAYED);
		j->run_at_ns = clk_real() + NSEC;
		seq_write_end(&j->seq);
		jobq__timerq_set(r, clk_mono() + NSEC);
		return;
	}
	t_adj(j->type_id, 1, 0);
	q_adj(j->queue_id, 1, 0);
	jobs.need_serve = true;
}

/* Job @r waits until run_at_ns (REALTIME): DELAYED (or FAILED while a
 * retry is pending), or READY when that time has come. */
static void to_later(uint32_t r, unsigned state, uint64_t run_at)
{
	struct jobq_job_rec *j = job_rec(r);
	uint64_t real = clk_real();

	if (run_at <= real && state == JOBQ_JS_DELAYED) {
		to_ready(r);
		return;
	}
	seq_write_begin(&j->seq);
	set_state(j, state);
	j->run_at_ns = run_at;
	seq_write_end(&j->seq);
	jobq__timerq_set(r, clk_mono() + (run_at > real ? run_at - real : 0));
}

/* Removes a READY job from its lane. */
static void unready(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	jobq__lane_remove(r);
	t_adj(j->type_id, -1, 0);
	q_adj(j->queue_id, -1, 0);
}

/* Job @r stops counting against its submitter's quota (a no-op once the
 * submitter has gone: the count went with its record). */
static void owner_drop(uint32_t r)
{
	if (!jobs.owner[r])
		return;
	jobq__quota_ref_add(jobs.owner[r], JOBQ_QUOTA_JOBS, -1);
	jobs.owner[r] = 0;
}

/* Job @r reached a final state (set by the caller): keep it on the
 * finished list, drop its unique key, answer its waiters and note it for
 * its dependents. */
static void finalize(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);
	uint64_t id = j->id;

	owner_drop(r);
	if (j->flags & JOBQ_JF_UNIQUE) {
		jobq__uq_drop(r, (jobq__job_priv[r].aux & AUX_UKH) >>
				     AUX_UKH_SHIFT);
		seq_write_begin(&j->seq);
		j->flags &= (uint8_t)~JOBQ_JF_UNIQUE;
		seq_write_end(&j->seq);
	}
	list_add_tail(&jobs.fin_head, &jobs.fin_tail, r);
	if (jobq__job_priv[r].aux & AUX_WAITED) {
		struct jobq__list *b =
		    &jobs.waits[jobq__job_hash(id) % JOBQ__WAIT_BUCKETS];

		jobq__job_priv[r].aux &= ~AUX_WAITED;
		for (struct jobq__list *p = b->next, *nx; p != b; p = nx) {
			struct jobq__waiter *w =
			    jobq__entry(p, struct jobq__waiter, onode);

			nx = p->next;
			if (w->sqe.arg0 == id)
				jobq__wait_done(w, j->state, id);
		}
	}
	if (jobq__deps_any()) {
		if (jobs.finq_n == jobs.finq_cap) {
			uint32_t ncap = jobs.finq_cap ? 2 * jobs.finq_cap : 64;
			uint64_t *a = realloc(jobs.finq, ncap * sizeof(*a));
			uint8_t *b = a ? realloc(jobs.finq_state, ncap) : NULL;

			if (a)
				jobs.finq = a;
			if (b)
				jobs.finq_state = b;
			if (!a || !b) {
				jobq__log(0,
					  "job %llu: out of memory for its "
					  "dependents",
					  (unsigned long long)id);
				return;
			}
			jobs.finq_cap = ncap;
		}
		jobs.finq[jobs.finq_n] = id;
		jobs.finq_state[jobs.finq_n++] = j->state;
	}
}

/* Sets a final state with @text as the error (0: none). */
static void to_final(uint32_t r, unsigned state, uint64_t text)
{
	struct jobq_job_rec *j = job_rec(r);
	uint64_t old;

	seq_write_begin(&j->seq);
	old = j->result;
	set_state(j, state);
	j->result = text;
	j->finished_ns = clk_real();
	j->flags &= (uint8_t)~JOBQ_JF_CANCELLING;
	jobq__free(old);
	seq_write_end(&j->seq);
	if (state == JOBQ_JS_DEAD)
		jobq__count(dead);
	jlog_upd(r, true, true);
	finalize(r);
}

static void to_cancelled(uint32_t r)
{
	to_final(r, JOBQ_JS_CANCELLED, text_new("cancelled"));
}

/* Takes RUNNING job @r off its worker and out of the running counts. */
static void stop_running(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);
	uint32_t slot = j->worker_client;

	jobq__timerq_del(r);
	if (j->flags & JOBQ_JF_AWAY) {
		/* Waiting for its worker after a restart: it has none. */
		seq_write_begin(&j->seq);
		j->flags &= (uint8_t)~JOBQ_JF_AWAY;
		seq_write_end(&j->seq);
	} else if (slot < jobq__m.o.max_clients && jobs.W[slot].reg) {
		struct jworker *wk = &jobs.W[slot];
		struct jobq_worker_rec *wr = &jobq__m.st.workers[slot];

		list_del(&wk->run_head, NULL, r);
		wk->running--;
		seq_write_begin(&wr->seq);
		wr->running = wk->running;
		seq_write_end(&wr->seq);
	}
	t_adj(j->type_id, 0, -1);
	q_adj(j->queue_id, 0, -1);
	/* A slot on its worker and maybe in its queue's limit came free. */
	jobs.need_serve = true;
}

/*
 * ignored_cancel - running job @r was cancelled and its worker did not
 * stop it within the grace period. A worker this manager started is
 * killed (through its pidfd: see jobq__supervise_kill_worker()); one that
 * lives inside an application is not signalled, since a pid taken at
 * connect time may name the whole application or, by now, another
 * process: its connection is dropped instead, so its late outcome is
 * refused and its other jobs go to other workers. The job is cancelled
 * either way.
 */
static void ignored_cancel(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);
	uint32_t slot = j->worker_client;
	pid_t pid = j->worker_pid;
	struct jobq__client *c =
	    slot < jobq__m.o.max_clients ? &jobq__m.clients[slot] : NULL;

	if (pid > 0 && jobq__supervise_kill_worker(pid)) {
		jobq__log(JOBQ__LOG_WARN,
			  "job %llu: worker pid %d did not stop within 5 s "
			  "of the cancel; killed it",
			  (unsigned long long)j->id, (int)pid);
	} else if (c && c->state == JOBQ__C_LIVE && c->pid == pid) {
		jobq__log(JOBQ__LOG_WARN,
			  "job %llu: worker pid %d (not started by jobqd) did "
			  "not stop within 5 s of the cancel; dropping its "
			  "connection",
			  (unsigned long long)j->id, (int)pid);
		c->broken = true;
	}
	stop_running(r);
	to_cancelled(r);
}

static void worker_count(uint32_t slot, bool ok)
{
	struct jobq_worker_rec *wr;

	if (slot >= jobq__m.o.max_clients || !jobs.W[slot].reg)
		return;
	wr = &jobq__m.st.workers[slot];
	seq_write_begin(&wr->seq);
	if (ok)
		wr->done++;
	else
		wr->failed++;
	seq_write_end(&wr->seq);
}

/*
 * jobq__backoff_ns - the wait before retry @n (1 for the first retry):
 * min(1 s * 2^(n-1), 300 s), times a jitter @u from [0.5, 1.5).
 */
static uint64_t backoff_ns(uint32_t n, double u)
{
	uint64_t b = NSEC;

	for (uint32_t i = 1; i < n && b < JOBQ__BACKOFF_MAX_NS; i++)
		b *= 2;
	if (b > JOBQ__BACKOFF_MAX_NS)
		b = JOBQ__BACKOFF_MAX_NS;
	return (uint64_t)((double)b * u);
}

/* An attempt of job @r (taken off its worker already) failed with error
 * text @text: retry after a backoff, or dead when @final or out of
 * attempts. */
static void attempt_failed(uint32_t r, uint64_t text, bool final)
{
	struct jobq_job_rec *j = job_rec(r);
	uint64_t wait, old;

	jobq__count(failed);
	worker_count(j->worker_client, false);
	if (final || j->attempts >= j->max_attempts) {
		to_final(r, JOBQ_JS_DEAD, text);
		return;
	}
	wait = backoff_ns(j->attempts,
			  0.5 + (double)(rnd() >> 11) / (double)(1ull << 53));
	seq_write_begin(&j->seq);
	old = j->result;
	j->result = text;
	j->finished_ns = 0;
	jobq__free(old);
	seq_write_end(&j->seq);
	jobq__count(retried);
	to_later(r, JOBQ_JS_FAILED, clk_real() + wait);
	jlog_upd(r, true, true);
}

/*
 * free_record - a finished job goes: its items, its index slot, its
 * record (cleared inside the write section, so a reader that raced it
 * sees id 0 or retries).
 */
static void free_record(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	list_del(&jobs.fin_head, &jobs.fin_tail, r);
	owner_drop(r);
	jobs.tjobs[j->type_id]--;
	type_maybe_free(j->type_id);
	jobq__jobidx_delete(j->id);
	{
		struct iovec v = {.iov_base = &j->id, .iov_len = sizeof(j->id)};

		jobq__jlog(JOBQ__JR_JOB_FREE, &v, 1, false);
	}
	seq_write_begin(&j->seq);
	set_state(j, JOBQ_JS_FREE);
	jobq__free(j->args);
	jobq__free(j->result);
	jobq__free(j->note);
	j->id = 0;
	j->flags = 0;
	j->args = j->result = j->note = 0;
	j->args_len = j->args_type = 0;
	seq_write_end(&j->seq);
	jobq__job_priv[r] =
	    (struct jpriv){.pos = NONE, .prev = NONE, .next = jobs.free_head};
	jobs.free_head = r;
	store_relaxed(&jobq__hdr()->njobs,
		      load_relaxed(&jobq__hdr()->njobs) - 1);
}

/* A free record, evicting the oldest finished job when the table is
 * full. Returns NONE when every record holds a live job. */
static uint32_t record_new(void)
{
	uint32_t r;

	if (jobs.free_head == NONE && jobs.hwm == jobs.max_jobs && !evict_one())
		return NONE;
	if (jobs.free_head != NONE) {
		r = jobs.free_head;
		jobs.free_head = jobq__job_priv[r].next;
	} else {
		r = jobs.hwm++;
	}
	jobq__job_priv[r] =
	    (struct jpriv){.pos = NONE, .prev = NONE, .next = NONE};
	return r;
}

/* Job @r, just made RUNNING on worker @c: on the worker's running list
 * and count, its lease timer armed from @mono, the change journaled. */
static void run_begin(struct jobq__client *c, uint32_t r, uint64_t mono)
{
	struct jworker *wk = &jobs.W[c->slot];
	struct jobq_worker_rec *wr = &jobq__m.st.workers[c->slot];

	run_add(wk, r);
	wk->running++;
	seq_write_begin(&wr->seq);
	wr->running = wk->running;
	seq_write_end(&wr->seq);
	if (jobq__timerq_set(r, mono + job_rec(r)->lease_ns))
		jobq__log(JOBQ__LOG_ERROR,
			  "job %llu: out of memory for its lease timer",
			  (unsigned long long)job_rec(r)->id);
	jlog_upd(r, false, false);
}

/* Hands READY job @r (the head of lane @l) to worker @c at @real
 * (CLOCK_REALTIME) / @mono (CLOCK_MONOTONIC). */
static void hand_out(struct jobq__client *c, struct lane *l, uint32_t r,
		     uint64_t real, uint64_t mono)
{
	struct jobq_job_rec *j = job_rec(r);

	jobq__lane_take(l, r);
	seq_write_begin(&j->seq);
	set_state(j, JOBQ_JS_RUNNING);
	j->attempts++;
	j->started_ns = real;
	j->finished_ns = 0;
	j->worker_pid = c->pid;
	j->worker_client = c->slot;
	j->progress = 0;
	jobq__free(j->note);
	j->note = 0;
	seq_write_end(&j->seq);
	t_adj(j->type_id, -1, 1);
	q_adj(j->queue_id, -1, 1);
	run_begin(c, r, mono);
}

/*
 * give - hand worker @c up to @max ready jobs (never more than its
 * capacity minus what it runs), one completion each for request @ud, all
 * but the last flagged JOBQ_CQE_MORE. Returns how many.
 */
static uint32_t give(struct jobq__client *c, uint64_t ud, uint64_t max)
{
	struct jworker *wk = &jobs.W[c->slot];
	uint32_t n = 0, prev = NONE, r;
	uint64_t real, mono;
	struct lane *l;

	if (wk->stopping || jobq__m.stopping || !jobq__client_alive(c))
		return 0;
	if (max > wk->capacity - wk->running)
		max = wk->capacity - wk->running;
	if (!max)
		return 0;
	real = clk_real();
	mono = clk_mono();
	while (n < max && (l = jobq__lane_best(wk->types, wk->ntypes, &r))) {
		if (prev != NONE)
			jobq__post(c, ud, 0, JOBQ_CQE_JOB | JOBQ_CQE_MORE,
				   job_rec(prev)->id, job_rec(prev)->attempts,
				   job_rec(prev)->type_id);
		hand_out(c, l, r, real, mono);
		prev = r;
		n++;
	}
	if (prev != NONE)
		jobq__post(c, ud, 0, JOBQ_CQE_JOB, job_rec(prev)->id,
			   job_rec(prev)->attempts, job_rec(prev)->type_id);
	return n;
}

/* Parked reservers take what became available, oldest first. */
static void serve(void)
{
	struct jobq__list *p, *nx;

	for (p = jobs.reservers.next; p != &jobs.reservers; p = nx) {
		struct jobq__waiter *w =
		    jobq__entry(p, struct jobq__waiter, onode);

		nx = p->next;
		if (give(w->c, w->sqe.user_data, w->sqe.arg0 ? w->sqe.arg0 : 1))
			jobq__wait_free(w);
	}
}

/* Job @r (WAITING) has no unfinished dependency left. */
static void release_waiting(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	if (j->run_at_ns > clk_real())
		to_later(r, JOBQ_JS_DELAYED, j->run_at_ns);
	else
		to_ready(r);
}

/* Dependents of the jobs that became final. */
static void settle_deps(void)
{
	for (uint32_t k = 0; k < jobs.finq_n; k++) {
		uint64_t id = jobs.finq[k];
		unsigned st = jobs.finq_state[k];
		uint64_t waiter;
		uint32_t w;

		while (jobq__dep_take(id, &waiter, &w)) {
			char msg[64];

			if (job_rec(w)->id != waiter ||
			    job_rec(w)->state != JOBQ_JS_WAITING)
				continue;
			if (st == JOBQ_JS_SUCCEEDED) {
				if ((jobq__job_priv[w].aux & AUX_DEPS) &&
				    !(--jobq__job_priv[w].aux & AUX_DEPS))
					release_waiting(w);
				continue;
			}
			snprintf(msg, sizeof(msg), "dependency %llu failed",
				 (unsigned long long)id);
			/* Appends to finq: this loop reaches it too. */
			to_final(w, JOBQ_JS_DEAD, text_new(msg));
		}
	}
	jobs.finq_n = 0;
}

static uint64_t next_deadline(void)
{
	uint64_t at = 0;

	jobq__timerq_first(&at, NULL);

	if (jobs.fin_head != NONE) {
		/* Worked out once per oldest finished job: clock reads on
		 * every request cost more than the rest of a small one. */
		if (jobs.keep_id != job_rec(jobs.fin_head)->id) {
			uint64_t exp = job_rec(jobs.fin_head)->finished_ns +
				       jobq__hdr()->keep_ns;
			uint64_t real = clk_real();

			jobs.keep_id = job_rec(jobs.fin_head)->id;
			jobs.keep_at =
			    clk_mono() + (exp > real ? exp - real : 0);
		}
		if (!at || jobs.keep_at < at)
			at = jobs.keep_at;
	}
	return at;
}

/* The end of every entry point: see the comment at the top. */
static void settle(void)
{
	uint64_t at;

	if (jobs.finq_n)
		settle_deps();
	if (jobs.need_serve) {
		jobs.need_serve = false;
		if (!jobq__list_empty(&jobs.reservers))
			serve();
	}
	at = next_deadline();
	if (at != jobs.armed) {
		jobs.armed = at;
		jobq__timer_arm(JOBQ__TIMER_JOBS, at);
	}
}

/* Job @r (running when its manager died, in no structure now) lost its
 * worker: back to READY with its attempt counted, or DEAD when that was
 * the last one. */
static void worker_gone(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	if (j->attempts >= j->max_attempts) {
		to_final(r, JOBQ_JS_DEAD,
			 text_new("jobqd stopped while it ran"));
	} else {
		jobq__count(retried);
		to_ready(r);
	}
}

void jobq__jobs_timer(void)
{
	uint64_t now, real;

	/* The loop fired us for a deadline it saw pass: read afresh. */
	clk_read();
	now = clk_mono_ns;
	real = clk_real_ns;

	jobs.armed = 0;
	jobs.keep_id = 0;
	for (;;) {
		struct jobq_job_rec *j;
		uint64_t at;
		uint32_t r;

		if (!jobq__timerq_first(&at, &r) || at > now)
			break;
		j = job_rec(r);
		jobq__timerq_del(r);
		switch (j->state) {
		case JOBQ_JS_DELAYED:
		case JOBQ_JS_FAILED:
			to_ready(r);
			break;
		case JOBQ_JS_RUNNING:
			if (j->flags & JOBQ_JF_CANCELLING) {
				ignored_cancel(r);
			} else if (j->flags & JOBQ_JF_AWAY) {
				stop_running(r);
				worker_gone(r);
			} else {
				stop_running(r);
				attempt_failed(r, text_new("lease expired"),
					       false);
			}
			break;
		}
	}
	while (jobs.fin_head != NONE &&
	       job_rec(jobs.fin_head)->finished_ns + jobq__hdr()->keep_ns <=
		   real)
		free_record(jobs.fin_head);
	settle();
}

/* ------------------------------------------------------------------------
 * Types.
 */
static int check_type_name(const char *s, uint32_t len)
{
	if (len < 1 || len > JOBQ_TYPE_MAX || jobq__check_text(s, len))
		return -EINVAL;
	for (uint32_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		/* Commas separate names in a worker record. */
		if (ch < 0x20 || ch == 0x7f || ch == ',')
			return -EINVAL;
	}
	return 0;
}

/*
 * Type records are reused: a type that no job record (of any state still
 * kept) and no worker names is freed (type_maybe_free()), and its record
 * goes to the back of the free ring, so that distinct names do not wear
 * the table out. Nothing outside names a type by its record for longer
 * than that: job records and workers hold it, and clients read a name
 * through a job's record. The journal says JOBQ__JR_JOB_TYPE when a
 * record takes a name, never when it is freed: replay_type() frees what a
 * record held before, which no job can still name then (its jobs' FREE
 * records came first).
 */
static uint32_t type_slot(const char *name, uint32_t len)
{
	return jobq__hash(name, len) & jobs.type_hash_mask;
}

/* The id of type @name, or -1. */
static int type_find(const char *name, uint32_t len)
{
	uint32_t m = jobs.type_hash_mask, i = type_slot(name, len);

	for (; jobs.type_hash[i]; i = (i + 1) & m) {
		const struct jobq_type_rec *t =
		    &jobq__m.st.types[jobs.type_hash[i] - 1];

		/* len < sizeof(t->name) (check_type_name): a plain memcmp,
		 * the name's end checked apart. */
		if (t->name[len] == '\0' && !memcmp(t->name, name, len))
			return jobs.type_hash[i] - 1;
	}
	return -1;
}

/* Takes type @tid out of the hash: linear probing, so the entries after
 * it in its run move back where their probe would look for them. */
static void type_hash_del(uint32_t tid)
{
	const char *name = jobq__m.st.types[tid].name;
	uint32_t m = jobs.type_hash_mask, i = type_slot(name, strlen(name));

	while (jobs.type_hash[i] != tid + 1)
		i = (i + 1) & m;
	for (uint32_t k = (i + 1) & m; jobs.type_hash[k]; k = (k + 1) & m) {
		const char *o = jobq__m.st.types[jobs.type_hash[k] - 1].name;
		uint32_t home = type_slot(o, (uint32_t)strlen(o));

		/* It stays when its home is cyclically in (i, k]. */
		if (i <= k ? (i < home && home <= k) : (i < home || home <= k))
			continue;
		jobs.type_hash[i] = jobs.type_hash[k];
		i = k;
	}
	jobs.type_hash[i] = 0;
}

/* Frees type record @tid, which nothing names; @ring: to the free ring
 * (replay builds the ring at its end instead). */
static void type_free(uint32_t tid, bool ring)
{
	struct jobq_type_rec *t = &jobq__m.st.types[tid];
	struct jobq_store_hdr *h = jobq__hdr();

	type_hash_del(tid);
	jobq__lanes_type_free(tid);
	seq_write_begin(&t->seq);
	t->in_use = 0;
	memset(t->name, 0, sizeof(t->name));
	t->workers = 0;
	t->ready = t->running = 0;
	seq_write_end(&t->seq);
	store_relaxed(&h->types_live, load_relaxed(&h->types_live) - 1);
	if (ring)
		jobs.tfree[(jobs.tfree_head + jobs.tfree_n++) % h->max_types] =
		    (uint16_t)tid;
}

/* Frees type @tid if no job record and no worker names it any more. */
static void type_maybe_free(uint32_t tid)
{
	const struct jobq_type_rec *t = &jobq__m.st.types[tid];

	if (t->in_use && !jobs.tjobs[tid] && !t->workers && !jobs.replaying)
		type_free(tid, true);
}

/* Gives free type record @tid the name @name (checked, not in the hash). */
static void type_claim(uint32_t tid, const char *name, uint32_t len)
{
	struct jobq_store_hdr *h = jobq__hdr();
	struct jobq_type_rec *t = &jobq__m.st.types[tid];
	uint32_t m = jobs.type_hash_mask, i = type_slot(name, len);

	seq_write_begin(&t->seq);
	memset(t->name, 0, sizeof(t->name));
	memcpy(t->name, name, len);
	t->workers = 0;
	t->ready = t->running = 0;
	t->in_use = 1;
	seq_write_end(&t->seq);
	if (tid >= load_relaxed(&h->ntypes))
		store_release(&h->ntypes, tid + 1);
	store_relaxed(&h->types_live, load_relaxed(&h->types_live) + 1);
	while (jobs.type_hash[i])
		i = (i + 1) & m;
	jobs.type_hash[i] = (uint16_t)(tid + 1);
}

/* The id of type @name (checked), created when missing: in the record
 * freed longest ago, else a new one. Returns the id or JOBQ_ELIMIT when
 * every record holds a type. A new type that nothing comes to name is
 * freed again by the caller (type_maybe_free()). */
static int type_get(const char *name, uint32_t len)
{
	struct jobq_store_hdr *h = jobq__hdr();
	int found = type_find(name, len);
	uint32_t id;

	if (found >= 0)
		return found;
	if (jobs.tfree_n) {
		id = jobs.tfree[jobs.tfree_head];
		jobs.tfree_head = (jobs.tfree_head + 1) % h->max_types;
		jobs.tfree_n--;
	} else {
		id = load_relaxed(&h->ntypes);
		if (id >= h->max_types)
			return JOBQ_ELIMIT;
	}
	type_claim(id, name, len);
	jlog_type(NULL, id, NULL);
	return (int)id;
}

/* ------------------------------------------------------------------------
 * Ops.
 */

/*
 * jobq__submit_read - the submit request @s (arena bytes @a) read once
 * into @wv and checked: lengths, limits, that its pieces fit the arena
 * (*@aoff: where the ids of --after begin, 8-byte aligned, then the args).
 * wv->queue_id comes back as the queue's record. Returns 0, -EINVAL
 * (counted as a bad entry), -E2BIG, -ENOENT or -ESTALE (a queue removed).
 */
int jobq__submit_read(const struct jobq_sqe *s, const uint8_t *a,
		      struct jobq_submit_wire *wv, uint64_t *aoff)
{
	int err;

	if (s->arena_len < sizeof(*wv))
		return jobq__bad(-EINVAL);
	memcpy(wv, a, sizeof(*wv));
	if (wv->type_len < 1 || wv->type_len > JOBQ_TYPE_MAX ||
	    wv->unique_len > JOBQ_KEY_MAX || wv->nafter > 64 ||
	    wv->delay_ns < 0 || wv->lease_ns <= 0 || wv->max_attempts < 1 ||
	    wv->max_attempts > UINT16_MAX || (wv->flags & ~JOBQ_SUBMIT_DURABLE))
		return jobq__bad(-EINVAL);
	/* The ids are 8-byte aligned; without ids there is no padding. */
	*aoff = sizeof(*wv) + (uint64_t)wv->type_len + wv->unique_len;
	if (wv->nafter)
		*aoff = (*aoff + 7) & ~7ull;
	if (*aoff + 8ull * wv->nafter + wv->args_len > s->arena_len)
		return jobq__bad(-EINVAL);
	if (wv->args_len > jobq__m.o.max_object)
		return -E2BIG;
	err = jobq__queue_index(wv->queue_id, &wv->queue_id);
	if (err)
		return err == -ESTALE ? err : -ENOENT;
	return 0;
}

/* jobq__jobs_use_queue - whether a job record, of any state, names queue
 * record @qid: such a queue cannot be removed (queues.c). */
bool jobq__jobs_use_queue(uint32_t qid)
{
	for (uint32_t r = 0; r < jobs.hwm; r++)
		if (job_rec(r)->id && job_rec(r)->queue_id == qid)
			return true;
	return false;
}

int jobq__op_job_submit(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *a = jobq__arena(c, s->arena_off);
	struct jobq_submit_wire wv;
	char type[JOBQ_TYPE_MAX + 1], key[JOBQ_KEY_MAX + 1];
	uint64_t after[64], aoff, args = 0, id;
	uint64_t real = clk_real(), failed_dep = 0;
	uint32_t pending = 0, r;
	struct jobq_job_rec *j;
	int tid, qerr;

#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_submit(c, s);
#endif
	qerr = jobq__submit_read(s, a, &wv, &aoff);
	if (qerr)
		return qerr;
	memcpy(type, a + sizeof(wv), wv.type_len);
	type[wv.type_len] = '\0';
	if (check_type_name(type, wv.type_len))
		return -EINVAL;
	/* Before anything changes; a --unique answer waits for it too. */
	if (wv.flags & JOBQ_SUBMIT_DURABLE) {
		int err = jobq__durable_want_sync();

		if (err)
			return err;
	}
	memcpy(key, a + sizeof(wv) + wv.type_len, wv.unique_len);
	key[wv.unique_len] = '\0';
	if (wv.unique_len) {
		uint32_t u = jobq__uq_find(key, wv.unique_len,
					   jobq__hash(key, wv.unique_len));

		if (u != NONE) {
			jobq__post(c, s->user_data, 1, 0, job_rec(u)->id, 0, 0);
			return JOBQ__NOREPLY;
		}
	}
	memcpy(after, a + aoff, 8ull * wv.nafter);
	for (uint32_t i = 0; i < wv.nafter; i++) {
		uint32_t d = jobq__jobidx_lookup(after[i]);

		if (d == NONE)
			return -ENOENT;
		if (job_rec(d)->state == JOBQ_JS_SUCCEEDED)
			continue;
		if (is_final(job_rec(d)->state)) {
			if (!failed_dep)
				failed_dep = after[i];
			continue;
		}
		pending++;
	}
	/* A unique key that is already there made no job; this one would. */
	if (jobq__quota_room(c, JOBQ_QUOTA_JOBS, 1))
		return JOBQ_EQUOTA;
	tid = type_get(type, wv.type_len);
	if (tid < 0)
		return tid;

	/* Allocations may evict finished jobs, dependencies among them:
	 * from here on only the ids gathered above are used. */
	r = record_new();
	if (r == NONE) {
		type_maybe_free((uint32_t)tid);
		return JOBQ_ELIMIT;
	}
	/* The ids it waits for live in the dependency table while they are
	 * unfinished; the record keeps none of them. */
	if (wv.args_len)
		args = args_new(a + aoff + 8ull * wv.nafter, wv.args_len);
	if (wv.args_len && !args) {
		jobq__job_priv[r].next = jobs.free_head;
		jobs.free_head = r;
		type_maybe_free((uint32_t)tid);
		return JOBQ_EFULL;
	}
	jobs.tjobs[tid]++;
	id = load_relaxed(&jobq__hdr()->next_job_id);
	store_relaxed(&jobq__hdr()->next_job_id, id + 1);

	j = job_rec(r);
	seq_write_begin(&j->seq);
	j->state = JOBQ_JS_FREE;
	j->flags = wv.unique_len ? JOBQ_JF_UNIQUE : 0;
	j->type_id = (uint16_t)tid;
	j->id = id;
	j->queue_id = wv.queue_id;
	j->priority = wv.priority;
	j->attempts = 0;
	j->max_attempts = (uint16_t)wv.max_attempts;
	j->worker_pid = 0;
	j->worker_client = UINT32_MAX;
	j->progress = 0;
	j->created_ns = real;
	j->started_ns = j->finished_ns = 0;
	j->run_at_ns = wv.delay_ns ? real + (uint64_t)wv.delay_ns : 0;
	j->lease_ns = (uint64_t)wv.lease_ns;
	j->args = args;
	j->result = j->note = 0;
	j->args_len = wv.args_len;
	j->args_type = s->type;
	set_state(j, JOBQ_JS_WAITING);
	seq_write_end(&j->seq);
	jobq__jobidx_insert(id, r);
	store_relaxed(&jobq__hdr()->njobs,
		      load_relaxed(&jobq__hdr()->njobs) + 1);
	jobq__count(submitted);
	jobs.owner[r] = jobq__client_ref(c);
	jobq__quota_ref_add(jobs.owner[r], JOBQ_QUOTA_JOBS, 1);

	jlog_new(NULL, r);
	if (wv.unique_len) {
		uint32_t hash = jobq__hash(key, wv.unique_len);

		if (!jobq__uq_add(r, key, wv.unique_len, hash)) {
			jobq__job_priv[r].aux |=
			    (hash << AUX_UKH_SHIFT) & AUX_UKH;
			jlog_key(NULL, id, key, wv.unique_len, NULL);
		} else {
			seq_write_begin(&j->seq);
			j->flags = 0;
			seq_write_end(&j->seq);
		}
	}

	if (failed_dep) {
		char msg[64];

		snprintf(msg, sizeof(msg), "dependency %llu failed",
			 (unsigned long long)failed_dep);
		to_final(r, JOBQ_JS_DEAD, text_new(msg));
	} else if (pending) {
		for (uint32_t i = 0; i < wv.nafter; i++) {
			uint32_t d = jobq__jobidx_lookup(after[i]);

			if (d == NONE || is_final(job_rec(d)->state))
				continue;
			if (jobq__dep_add(after[i], id, r)) {
				pending--;
				continue;
			}
			jlog_dep(NULL, after[i], id, NULL);
			jobq__job_priv[r].aux++;
		}
		if (!(jobq__job_priv[r].aux & AUX_DEPS))
			release_waiting(r);
	} else if (wv.delay_ns) {
		to_later(r, JOBQ_JS_DELAYED, j->run_at_ns);
	} else {
		to_ready(r);
	}
	settle();
	answer(0);
	jobq__post(c, s->user_data, 0, 0, id, 0, 0);
	return JOBQ__NOREPLY;
}

int jobq__op_job_wait(struct jobq__client *c, const struct jobq_sqe *s)
{
#ifdef JOBQ_HAVE_PG
	/* With a backend the record is this host's copy of the job's row,
	 * which may be behind PostgreSQL: jobs_pg.c decides whether the row
	 * is read before the wait is answered or parked here. */
	if (jobq__m.o.backend)
		return jobq__jobs_pg_wait(c, s);
#endif
	return jobq__job_wait_here(c, s);
}

int jobq__job_wait_here(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r = jobq__jobidx_lookup(s->arg0);
	struct jobq__waiter *w;
	int err = -ENOMEM;

	if (r == NONE)
		return -ENOENT;
	if (is_final(job_rec(r)->state))
		return job_rec(r)->state;
	if (s->timeout_ns == 0)
		return -EAGAIN;
	w = jobq__wait_new(c, s, JOBQ__W_JOB, &err);
	if (!w)
		return err;
	jobq__list_add_tail(
	    &w->onode,
	    &jobs.waits[jobq__job_hash(s->arg0) % JOBQ__WAIT_BUCKETS]);
	jobq__job_priv[r].aux |= AUX_WAITED;
	return JOBQ__NOREPLY;
}

int jobq__op_job_cancel(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r = jobq__jobidx_lookup(s->arg0);
	struct jobq_job_rec *j;

#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_cancel(c, s);
#endif
	if (r == NONE)
		return -ENOENT;
	j = job_rec(r);
	switch (j->state) {
	case JOBQ_JS_RUNNING: {
		uint32_t slot = j->worker_client;

		if (j->flags & JOBQ_JF_CANCELLING)
			return 0;
		if (j->flags & JOBQ_JF_AWAY) {
			/* Nobody to tell: cancelled at once. Its worker, if
			 * it comes back, finds it gone (a claim skips it, a
			 * result is stale). */
			stop_running(r);
			break;
		}
		seq_write_begin(&j->seq);
		j->flags |= JOBQ_JF_CANCELLING;
		seq_write_end(&j->seq);
		jlog_upd(r, false, true);
		if (slot < jobq__m.o.max_clients)
			jobq__post(&jobq__m.clients[slot], JOBQ_UD_NOTICE,
				   JOBQ_NOTICE_CANCEL, JOBQ_CQE_NOTICE, j->id,
				   0, 0);
		jobq__timerq_set(r, clk_mono() + JOBQ__CANCEL_GRACE_NS);
		settle();
		return answer(0);
	}
	case JOBQ_JS_READY:
		unready(r);
		break;
	case JOBQ_JS_DELAYED:
	case JOBQ_JS_FAILED:
		jobq__timerq_del(r);
		break;
	case JOBQ_JS_WAITING:
		/* Its dependency entries go when their jobs finish. */
		jobq__job_priv[r].aux &= ~AUX_DEPS;
		break;
	default:
		return -EALREADY;
	}
	to_cancelled(r);
	settle();
	return answer(0);
}

/* Job @r (FAILED, DEAD or CANCELLED) runs again from its first attempt. */
static void rerun(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	if (j->state == JOBQ_JS_FAILED)
		jobq__timerq_del(r);
	else
		list_del(&jobs.fin_head, &jobs.fin_tail, r);
	/* It finishes again later: its expiry must be worked out anew. */
	jobs.keep_id = 0;
	seq_write_begin(&j->seq);
	j->attempts = 0;
	j->finished_ns = 0;
	j->flags &= (uint8_t)~JOBQ_JF_CANCELLING;
	seq_write_end(&j->seq);
	jobq__count(retried);
	to_ready(r);
	jlog_upd(r, false, true);
}

int jobq__op_job_retry(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r = jobq__jobidx_lookup(s->arg0);
	unsigned st;

#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_retry(c, s, false);
#endif
	if (r == NONE)
		return -ENOENT;
	st = job_rec(r)->state;
	if (st != JOBQ_JS_FAILED && st != JOBQ_JS_DEAD &&
	    st != JOBQ_JS_CANCELLED)
		return -EALREADY;
	rerun(r);
	settle();
	return answer(0);
}

int jobq__op_job_kick(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r, n = 0;

#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_retry(c, s, true);
#endif
	if (s->arg0) {
		r = jobq__jobidx_lookup(s->arg0);
		if (r == NONE)
			return -ENOENT;
		if (job_rec(r)->state != JOBQ_JS_DEAD)
			return -EALREADY;
		rerun(r);
		settle();
		return answer(1);
	}
	for (r = jobs.fin_head; r != NONE;) {
		uint32_t nx = jobq__job_priv[r].next;

		if (job_rec(r)->state == JOBQ_JS_DEAD) {
			rerun(r);
			n++;
		}
		r = nx;
	}
	settle();
	return answer((int)(n > INT32_MAX ? INT32_MAX : n));
}

int jobq__op_q_pause(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq_queue_rec *q;
	uint32_t qid;
	int err = jobq__queue_index(s->id, &qid);

	if (err)
		return err == -ESTALE ? err : -ENOENT;
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_queue(c, s, qid, s->arg0 ? 1 : 0, -1);
#endif
	q = &jobq__m.st.queues[qid];
	seq_write_begin(&q->seq);
	q->paused = s->arg0 ? 1 : 0;
	seq_write_end(&q->seq);
	jlog_queue(NULL, qid, NULL);
	jobs.need_serve = true;
	settle();
	return answer(0);
}

int jobq__op_q_parallel(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq_queue_rec *q;
	uint32_t qid;
	int err = jobq__queue_index(s->id, &qid);

	if (err)
		return err == -ESTALE ? err : -ENOENT;
	if (s->arg0 > UINT32_MAX || (jobq__m.o.backend && s->arg0 > INT32_MAX))
		return -EINVAL;
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_queue(c, s, qid, -1, (int64_t)s->arg0);
#endif
	q = &jobq__m.st.queues[qid];
	seq_write_begin(&q->seq);
	q->parallel = (uint32_t)s->arg0;
	seq_write_end(&q->seq);
	jlog_queue(NULL, qid, NULL);
	jobs.need_serve = true;
	settle();
	return answer(0);
}

int jobq__op_w_register(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jworker *wk = &jobs.W[c->slot];
	struct jobq_worker_rec *wr = &jobq__m.st.workers[c->slot];
	const uint8_t *a = jobq__arena(c, s->arena_off);
	char names[JOBQ__WORKER_TYPES_MAX * (JOBQ_TYPE_MAX + 1)];
	char list[sizeof(wr->types)] = "";
	uint16_t ids[JOBQ__WORKER_TYPES_MAX];
	uint32_t n = 0, len = s->arena_len, flags, cap, used = 0;
	int err;

	if (wk->reg)
		return -EALREADY;
	if (len < 2 || len > sizeof(names))
		return jobq__bad(-EINVAL);
	memcpy(names, a, len);
	if (names[len - 1] != '\0')
		return jobq__bad(-EINVAL);
	cap = s->arg0 ? (uint32_t)(s->arg0 > JOBQ__WORKER_CAP_MAX
				       ? JOBQ__WORKER_CAP_MAX
				       : s->arg0)
		      : 1;
	for (uint32_t off = 0; off < len;) {
		uint32_t l = (uint32_t)strlen(names + off);
		bool dup = false;
		int tid;

		if (check_type_name(names + off, l) ||
		    n == JOBQ__WORKER_TYPES_MAX) {
			err = -EINVAL;
			goto unmade;
		}
		tid = type_get(names + off, l);
		if (tid < 0) {
			err = tid;
			goto unmade;
		}
		for (uint32_t i = 0; i < n; i++)
			dup |= ids[i] == tid;
		if (!dup) {
			ids[n++] = (uint16_t)tid;
			/* The record's list keeps whole names only. */
			if (used + l + (used ? 1 : 0) < sizeof(list)) {
				if (used)
					list[used++] = ',';
				memcpy(list + used, names + off, l);
				used += l;
				list[used] = '\0';
			}
		}
		off += l + 1;
	}
	flags = (uint32_t)s->arg1 & (JOBQ_WF_DAEMON | JOBQ_WF_BUILTIN);
	jobq__supervise_registered(c->pid, &flags);

	memset(wk, 0, sizeof(*wk));
	wk->reg = true;
	wk->flags = flags;
	wk->capacity = cap;
	wk->ntypes = n;
	memcpy(wk->types, ids, n * sizeof(ids[0]));
	wk->run_head = NONE;
	for (uint32_t i = 0; i < n; i++) {
		struct jobq_type_rec *t = &jobq__m.st.types[ids[i]];

		seq_write_begin(&t->seq);
		t->workers++;
		seq_write_end(&t->seq);
	}
	seq_write_begin(&wr->seq);
	wr->in_use = 1;
	wr->pid = c->pid;
	wr->capacity = cap;
	wr->running = 0;
	wr->flags = flags;
	wr->started_ns = clk_real();
	wr->done = wr->failed = 0;
	memcpy(wr->types, list, sizeof(list));
	seq_write_end(&wr->seq);
	jobq__log(1, "worker pid %d registered: %s (capacity %u)", (int)c->pid,
		  list, cap);
	return 0;
unmade:
	/* The types made for it so far serve nobody. */
	for (uint32_t i = 0; i < n; i++)
		type_maybe_free(ids[i]);
	return err;
}

int jobq__op_w_reserve(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jworker *wk = &jobs.W[c->slot];

	if (!wk->reg)
		return jobq__bad(-EINVAL);
	if (wk->reserve)
		return -EBUSY;
	if (wk->stopping || jobq__m.stopping)
		return JOBQ_ECLOSED;
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_reserve(c, s);
#endif
	if (give(c, s->user_data, s->arg0 ? s->arg0 : 1)) {
		settle();
		return JOBQ__NOREPLY;
	}
	return jobq__jobs_park_reserve(c, s);
}

/*
 * A worker that reconnected to a manager that restarted takes back the
 * jobs it still runs. The restart kept each of them RUNNING with no
 * worker (JOBQ_JF_AWAY) for the rejoin grace, or put it back to READY
 * (a daemon worker's job, or the grace ended; the attempt stays counted
 * either way). One in either state with the attempt the worker holds was
 * handed to nobody since, so it runs on where it ran and the worker's
 * result for it is accepted. One handed out again meanwhile has a newer
 * attempt: the old worker's result for it stays stale.
 */
int jobq__op_w_claim(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *a = jobq__arena(c, s->arena_off);
	struct jworker *wk = &jobs.W[c->slot];
	uint32_t n = s->arena_len / 16, got = 0;
	uint64_t mono = clk_mono();

	if (!wk->reg)
		return -EPERM;
	if (s->arena_len % 16)
		return jobq__bad(-EINVAL);
	for (uint32_t i = 0; i < n && wk->running < wk->capacity; i++) {
		uint64_t pair[2];
		struct jobq_job_rec *j;
		bool serves = false, away;
		uint32_t r;

		memcpy(pair, a + 16 * (size_t)i, sizeof(pair));
		r = jobq__jobidx_lookup(pair[0]);
		if (r == NONE)
			continue;
		j = job_rec(r);
		away = j->state == JOBQ_JS_RUNNING &&
		       (j->flags & JOBQ_JF_AWAY) &&
		       !(j->flags & JOBQ_JF_CANCELLING);
		if ((j->state != JOBQ_JS_READY && !away) || !j->attempts ||
		    j->attempts != pair[1])
			continue;
		for (uint32_t t = 0; t < wk->ntypes && !serves; t++)
			serves = wk->types[t] == j->type_id;
		if (!serves)
			continue;
		if (away) {
			/* Already in the running counts (place()). */
			jobq__timerq_del(r);
		} else {
			unready(r);
			t_adj(j->type_id, 0, 1);
			q_adj(j->queue_id, 0, 1);
		}
		seq_write_begin(&j->seq);
		set_state(j, JOBQ_JS_RUNNING);
		j->flags &= (uint8_t)~JOBQ_JF_AWAY;
		j->worker_pid = c->pid;
		j->worker_client = c->slot;
		seq_write_end(&j->seq);
		run_begin(c, r, mono);
		got++;
	}
	return (int)got;
}

/* The RUNNING job @s names (arg0 id, arg1 attempt) if @c holds it. */
static int held(struct jobq__client *c, const struct jobq_sqe *s, uint32_t *rp)
{
	uint32_t r = jobq__jobidx_lookup(s->arg0);
	struct jobq_job_rec *j;

	if (r == NONE)
		return -ENOENT;
	j = job_rec(r);
	if (!jobs.W[c->slot].reg || j->state != JOBQ_JS_RUNNING ||
	    j->worker_client != c->slot || j->attempts != s->arg1)
		return -ESTALE;
	*rp = r;
	return 0;
}

int jobq__op_w_done(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *a = jobq__arena(c, s->arena_off);
	struct jobq_job_rec *j;
	uint32_t r;
	uint64_t item;
	int ret = held(c, s, &r);

	if (ret)
		return ret;
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_done(c, s, r);
#endif
	j = job_rec(r);
	if (j->flags & JOBQ_JF_CANCELLING) {
		stop_running(r);
		to_cancelled(r);
		settle();
		return answer(0);
	}
	if (s->arena_len > jobq__m.o.max_object)
		return -E2BIG;
	if (s->flags & JOBQ_SQE_FAIL) {
		/* Without room for the text it still fails, wordless. */
		item = item_new(a, s->arena_len, JOBQ_T_TEXT);
		stop_running(r);
		attempt_failed(r, item, s->flags & JOBQ_SQE_FINAL);
		settle();
		return answer(0);
	}
	item = item_new(a, s->arena_len, s->type);
	if (!item)
		return JOBQ_EFULL;
	stop_running(r);
	worker_count(c->slot, true);
	jobq__count(done);
	seq_write_begin(&j->seq);
	j->progress = 10000;
	seq_write_end(&j->seq);
	to_final(r, JOBQ_JS_SUCCEEDED, item);
	settle();
	return answer(0);
}

int jobq__op_w_progress(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *a = jobq__arena(c, s->arena_off);
	struct jobq_job_rec *j;
	uint64_t note = 0, old;
	uint32_t r;
	int ret = held(c, s, &r);

	if (ret)
		return ret;
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		jobq__jobs_pg_progress(c, s, r);
#endif
	j = job_rec(r);
	if (s->arena_len)
		note = item_new(a,
				s->arena_len > JOBQ__NOTE_MAX ? JOBQ__NOTE_MAX
							      : s->arena_len,
				JOBQ_T_TEXT);
	seq_write_begin(&j->seq);
	j->progress = s->id > 10000 ? 10000 : s->id;
	old = j->note;
	if (s->arena_len) {
		j->note = note;
		jobq__free(old);
	}
	seq_write_end(&j->seq);
	return 0;
}

int jobq__op_w_extend(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r;
	int ret = held(c, s, &r);

	if (ret)
		return ret;
	if (s->timeout_ns <= 0)
		return -EINVAL;
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__jobs_pg_extend(c, s, r);
#endif

	/* A cancel's grace period is not the worker's to extend. */
	if (!(job_rec(r)->flags & JOBQ_JF_CANCELLING))
		jobq__timerq_set(r, jobq__now_ns() + (uint64_t)s->timeout_ns);
	settle();
	return 0;
}

int jobq__op_w_stopping(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jworker *wk = &jobs.W[c->slot];

	if (!wk->reg)
		return jobq__bad(-EINVAL);
	wk->stopping = true;
	if (wk->reserve)
		jobq__wait_done(wk->reserve, -ECANCELED, 0);
	return 0;
}

void jobq__job_wait_detach(struct jobq__waiter *w)
{
	jobq__list_del(&w->onode);
	if (w->kind == JOBQ__W_RESERVE && jobs.W[w->c->slot].reserve == w)
		jobs.W[w->c->slot].reserve = NULL;
}

void jobq__jobs_drop_client(struct jobq__client *c)
{
	struct jworker *wk = &jobs.W[c->slot];
	struct jobq_worker_rec *wr = &jobq__m.st.workers[c->slot];

	if (!wk->reg)
		return;
#ifdef JOBQ_HAVE_PG
	/* Its jobs' rows are failed (or cancelled) through the backend. */
	while (jobq__m.o.backend && wk->run_head != NONE) {
		uint32_t r = wk->run_head;

		jobq__jobs_pg_lost(r);
		jobq__jobs_mirror_unhold(r);
	}
#endif
	while (wk->run_head != NONE) {
		uint32_t r = wk->run_head;

		stop_running(r);
		if (job_rec(r)->flags & JOBQ_JF_CANCELLING)
			to_cancelled(r);
		else
			attempt_failed(r, text_new("worker died"), false);
	}
	for (uint32_t i = 0; i < wk->ntypes; i++) {
		struct jobq_type_rec *t = &jobq__m.st.types[wk->types[i]];

		seq_write_begin(&t->seq);
		t->workers--;
		seq_write_end(&t->seq);
		type_maybe_free(wk->types[i]);
	}
	memset(wk, 0, sizeof(*wk));
	wk->run_head = NONE;
	seq_write_begin(&wr->seq);
	memset((char *)wr + sizeof(wr->seq), 0, sizeof(*wr) - sizeof(wr->seq));
	seq_write_end(&wr->seq);
	settle();
}

void jobq__jobs_notify_stop(uint64_t grace_ns)
{
	for (uint32_t i = 0; i < jobq__m.o.max_clients; i++) {
		if (!jobs.W[i].reg)
			continue;
		jobq__post(&jobq__m.clients[i], JOBQ_UD_NOTICE,
			   JOBQ_NOTICE_STOP, JOBQ_CQE_NOTICE, grace_ns, 0, 0);
	}
}

void jobq__jobs_end_daemons(void)
{
	for (uint32_t i = 0; i < jobq__m.o.max_clients; i++)
		/*
		 * A daemon worker dies with its manager. One whose handler
		 * blocks cannot read a notice until it returns; the end of
		 * our side of its socket reaches it anyway (as SIGIO: see
		 * src/worker.c).
		 */
		if (jobs.W[i].reg && (jobs.W[i].flags & JOBQ_WF_DAEMON) &&
		    jobs.W[i].running)
			shutdown(jobq__m.clients[i].sock, SHUT_WR);
}

uint32_t jobq__jobs_running(bool daemon_too)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < jobq__m.o.max_clients; i++)
		if (jobs.W[i].reg &&
		    (daemon_too || !(jobs.W[i].flags & JOBQ_WF_DAEMON)))
			n += jobs.W[i].running;
	return n;
}

int jobq__jobs_init(void)
{
	struct jobq_store_hdr *h = jobq__hdr();

	memset(&jobs, 0, sizeof(jobs));
	jobs.max_jobs = h->max_jobs;
	jobs.free_head = jobs.fin_head = jobs.fin_tail = NONE;
	/* calloc'd: pages are touched only as records come into use. */
	jobq__job_priv = calloc(jobs.max_jobs, sizeof(*jobq__job_priv));
	jobs.owner = calloc(jobs.max_jobs, sizeof(*jobs.owner));
	jobq__jobidx_init();
	/* At most half full: a power of two, at least twice the table. */
	jobs.type_hash_mask = 1;
	while (jobs.type_hash_mask < 2 * h->max_types - 1)
		jobs.type_hash_mask = 2 * jobs.type_hash_mask + 1;
	jobs.type_hash =
	    calloc(jobs.type_hash_mask + 1, sizeof(*jobs.type_hash));
	jobs.tjobs = calloc(h->max_types, sizeof(*jobs.tjobs));
	jobs.tfree = calloc(h->max_types, sizeof(*jobs.tfree));
	jobs.W = calloc(jobq__m.o.max_clients, sizeof(*jobs.W));
	if (!jobq__job_priv || !jobs.owner || jobq__lanes_init(h->max_types) ||
	    !jobs.type_hash || !jobs.tjobs || !jobs.tfree || !jobs.W ||
	    jobq__chash_init())
		return -ENOMEM;
	for (uint32_t i = 0; i < jobq__m.o.max_clients; i++)
		jobs.W[i].run_head = NONE;
	jobq__list_init(&jobs.reservers);
	for (uint32_t i = 0; i < JOBQ__WAIT_BUCKETS; i++)
		jobq__list_init(&jobs.waits[i]);
	if (getrandom(&jobs.rng, sizeof(jobs.rng), 0) != sizeof(jobs.rng) ||
	    !jobs.rng)
		jobs.rng = jobq__now_ns() | 1;
	return 0;
}

/* ------------------------------------------------------------------------
 * Replay and snapshot.
 *
 * Replay puts each job's record back in the store as the records say,
 * and leaves it in no lane, timer or list; the unique keys and
 * dependencies wait beside it. jobq__jobs_replay_done() then places every
 * job as its state says: RUNNING ones lost their worker with the old
 * manager and go back to READY (the attempt stays counted), or first wait
 * the rejoin grace for a worker that may have outlived it (away()), DELAYED and
 * FAILED ones wait for their time, WAITING ones for the dependencies
 * still unfinished, final ones join the finished list in the order they
 * finished.
 */
static struct {
	char **key;	    /* [max_jobs] by record: its unique key, or NULL */
	uint32_t *keylen;   /* [max_jobs] */
	uint64_t (*dep)[2]; /* dependency, waiter */
	size_t ndep, depcap;
} rp;

/*
 * Record @tid takes a name. A record is freed without a journal record,
 * so what it held before, and the record that held this name before, are
 * let go here; no job may name either then (their jobs were freed first,
 * and said so), else the journal is not one the manager wrote.
 */
static int replay_type(const uint8_t *p, uint32_t len)
{
	const char *name = (const char *)p + sizeof(uint32_t);
	uint32_t tid, nlen = len - (uint32_t)sizeof(tid);
	int had;

	if (len <= sizeof(tid) || len > sizeof(tid) + JOBQ_TYPE_MAX)
		return -EBADMSG;
	memcpy(&tid, p, sizeof(tid));
	if (tid >= jobq__hdr()->max_types)
		return JOBQ_ELIMIT;
	if (check_type_name(name, nlen))
		return -EBADMSG;
	had = type_find(name, nlen);
	if (had == (int)tid)
		return 0;
	if (had >= 0) {
		if (jobs.tjobs[had])
			return -EBADMSG;
		type_free((uint32_t)had, false);
	}
	if (jobq__m.st.types[tid].in_use) {
		if (jobs.tjobs[tid])
			return -EBADMSG;
		type_free(tid, false);
	}
	type_claim(tid, name, nlen);
	return 0;
}

static void next_id_past(uint64_t id)
{
	if (load_relaxed(&jobq__hdr()->next_job_id) <= id)
		store_relaxed(&jobq__hdr()->next_job_id, id + 1);
}

static int replay_new(const uint8_t *p, uint32_t len)
{
	struct jobq_job_rec *j;
	uint64_t args = 0, res = 0;
	struct jjob h;
	uint32_t r;

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, p, sizeof(h));
	if (len != sizeof(h) + (uint64_t)h.args_len + h.res_len || !h.id ||
	    h.type_id >= load_relaxed(&jobq__hdr()->ntypes) ||
	    !jobq__m.st.types[h.type_id].in_use ||
	    h.queue_id >= load_relaxed(&jobq__hdr()->nqueues) ||
	    h.state < JOBQ_JS_WAITING || h.state > JOBQ_JS_CANCELLED ||
	    jobq__jobidx_lookup(h.id) != NONE)
		return -EBADMSG;
	r = record_new();
	if (r == NONE)
		return JOBQ_ELIMIT;
	if (h.args_len)
		args = args_new(p + sizeof(h), h.args_len);
	if (h.has_result)
		res =
		    item_new(p + sizeof(h) + h.args_len, h.res_len, h.res_type);
	if ((h.args_len && !args) || (h.has_result && !res)) {
		jobq__free(args);
		jobq__job_priv[r].next = jobs.free_head;
		jobs.free_head = r;
		return JOBQ_EFULL;
	}
	j = job_rec(r);
	seq_write_begin(&j->seq);
	j->state = JOBQ_JS_FREE;
	j->flags = h.flags & (JOBQ_JF_CANCELLING | JOBQ_JF_AWAY);
	j->type_id = h.type_id;
	jobs.tjobs[h.type_id]++;
	j->id = h.id;
	j->queue_id = h.queue_id;
	j->priority = h.priority;
	j->attempts = h.attempts;
	j->max_attempts = h.max_attempts;
	j->worker_pid = 0;
	j->worker_client = UINT32_MAX;
	j->progress = h.state == JOBQ_JS_SUCCEEDED ? 10000 : 0;
	j->created_ns = h.created_ns;
	j->started_ns = h.started_ns;
	j->finished_ns = h.finished_ns;
	j->run_at_ns = h.run_at_ns;
	j->lease_ns = h.lease_ns;
	j->args = args;
	j->result = res;
	j->note = 0;
	j->args_len = h.args_len;
	j->args_type = h.args_type;
	set_state(j, h.state);
	seq_write_end(&j->seq);
	jobq__jobidx_insert(h.id, r);
	store_relaxed(&jobq__hdr()->njobs,
		      load_relaxed(&jobq__hdr()->njobs) + 1);
	next_id_past(h.id);
	return 0;
}

static int replay_upd(const uint8_t *p, uint32_t len)
{
	struct jobq_job_rec *j;
	uint64_t res = 0;
	struct jupd u;
	uint32_t r;

	if (len < sizeof(u))
		return -EBADMSG;
	memcpy(&u, p, sizeof(u));
	if (len != sizeof(u) + (u.res == JRES_BYTES ? u.res_len : 0) ||
	    u.res > JRES_BYTES || u.state < JOBQ_JS_WAITING ||
	    u.state > JOBQ_JS_CANCELLED)
		return -EBADMSG;
	r = jobq__jobidx_lookup(u.id);
	if (r == NONE)
		return -EBADMSG;
	if (u.res == JRES_BYTES) {
		res = item_new(p + sizeof(u), u.res_len, u.res_type);
		if (!res)
			return JOBQ_EFULL;
	}
	j = job_rec(r);
	seq_write_begin(&j->seq);
	set_state(j, u.state);
	j->flags = u.flags & (JOBQ_JF_CANCELLING | JOBQ_JF_AWAY);
	j->attempts = u.attempts;
	j->started_ns = u.started_ns;
	j->finished_ns = u.finished_ns;
	j->run_at_ns = u.run_at_ns;
	j->progress = u.state == JOBQ_JS_SUCCEEDED ? 10000 : 0;
	if (u.res != JRES_KEEP) {
		jobq__free(j->result);
		j->result = res;
	}
	seq_write_end(&j->seq);
	return 0;
}

static void rp_forget_key(uint32_t r)
{
	if (rp.key && rp.key[r]) {
		free(rp.key[r]);
		rp.key[r] = NULL;
	}
}

static int replay_key(const uint8_t *p, uint32_t len)
{
	uint64_t id;
	uint32_t r;

	if (len <= sizeof(id) || len > sizeof(id) + JOBQ_KEY_MAX)
		return -EBADMSG;
	memcpy(&id, p, sizeof(id));
	r = jobq__jobidx_lookup(id);
	if (r == NONE)
		return -EBADMSG;
	if (!rp.key) {
		rp.key = calloc(jobs.max_jobs, sizeof(*rp.key));
		rp.keylen = calloc(jobs.max_jobs, sizeof(*rp.keylen));
		if (!rp.key || !rp.keylen)
			return -ENOMEM;
	}
	rp_forget_key(r);
	rp.key[r] = malloc(len - sizeof(id) + 1);
	if (!rp.key[r])
		return -ENOMEM;
	memcpy(rp.key[r], p + sizeof(id), len - sizeof(id));
	rp.key[r][len - sizeof(id)] = '\0';
	rp.keylen[r] = len - (uint32_t)sizeof(id);
	return 0;
}

static int replay_dep(const uint8_t *p, uint32_t len)
{
	if (len != sizeof(rp.dep[0]))
		return -EBADMSG;
	if (rp.ndep == rp.depcap) {
		size_t ncap = rp.depcap ? 2 * rp.depcap : 256;
		void *n = realloc(rp.dep, ncap * sizeof(rp.dep[0]));

		if (!n)
			return -ENOMEM;
		rp.dep = n;
		rp.depcap = ncap;
	}
	memcpy(rp.dep[rp.ndep++], p, sizeof(rp.dep[0]));
	return 0;
}

static int replay_queue(const uint8_t *p, uint32_t len)
{
	struct jobq_queue_rec *q;
	uint32_t v[3];

	if (len != sizeof(v))
		return -EBADMSG;
	memcpy(v, p, sizeof(v));
	if (v[0] >= load_relaxed(&jobq__hdr()->nqueues))
		return -EBADMSG;
	q = &jobq__m.st.queues[v[0]];
	seq_write_begin(&q->seq);
	q->paused = v[1] ? 1 : 0;
	q->parallel = v[2];
	seq_write_end(&q->seq);
	return 0;
}

int jobq__jobs_replay(uint16_t type, const uint8_t *p, uint32_t len)
{
	uint64_t id;
	uint32_t r;

	jobs.replaying = true;
	/* With --backend the jobs are PostgreSQL's rows, mirrored afresh
	 * once connected: the journal keeps types and queue settings. */
	if (jobq__m.o.backend && type != JOBQ__JR_JOB_TYPE &&
	    type != JOBQ__JR_JOB_QUEUE)
		return 0;
	switch (type) {
	case JOBQ__JR_JOB_TYPE:
		return replay_type(p, len);
	case JOBQ__JR_JOB_NEW:
		return replay_new(p, len);
	case JOBQ__JR_JOB_KEY:
		return replay_key(p, len);
	case JOBQ__JR_JOB_DEP:
		return replay_dep(p, len);
	case JOBQ__JR_JOB_UPD:
		return replay_upd(p, len);
	case JOBQ__JR_JOB_FREE:
		if (len != sizeof(id))
			return -EBADMSG;
		memcpy(&id, p, sizeof(id));
		r = jobq__jobidx_lookup(id);
		if (r == NONE)
			return 0;
		rp_forget_key(r);
		/* On no list yet: free_record's unlink finds it alone. */
		free_record(r);
		return 0;
	case JOBQ__JR_JOB_NEXTID:
		if (len != sizeof(id))
			return -EBADMSG;
		memcpy(&id, p, sizeof(id));
		if (id)
			next_id_past(id - 1);
		return 0;
	case JOBQ__JR_JOB_QUEUE:
		return replay_queue(p, len);
	}
	return -EBADMSG;
}

static int by_finish(const void *a, const void *b)
{
	const struct jobq_job_rec *x = job_rec(*(const uint32_t *)a);
	const struct jobq_job_rec *y = job_rec(*(const uint32_t *)b);

	if (x->finished_ns != y->finished_ns)
		return x->finished_ns < y->finished_ns ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * away - replayed job @r ran under a worker that may have outlived the
 * manager that died (JOBQ_JF_AWAY, see jflags()). It stays RUNNING with
 * no worker, handed to nobody, for the rejoin grace: --rejoin-grace, and
 * never past the end of its lease (a worker that kept it longer would
 * have lost it anyway). A worker that comes back within it claims it
 * (jobq__op_w_claim()) and its result is accepted; when the grace ends
 * first, the timer sends it back to READY as a restart always did
 * (worker_gone()). The bit stays journaled with the state, so a second
 * crash within the grace waits again: the job is handed to nobody else
 * until the grace ends, and a hand-out after that journals a new attempt,
 * which the old worker's claim no longer matches.
 */
static void away(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);
	uint64_t real = clk_real(), grace = jobq__m.o.rejoin_grace_ns;
	uint64_t end = j->started_ns + j->lease_ns;

	if (end <= real)
		grace = 0;
	else if (end - real < grace)
		grace = end - real;
	if (!grace || jobq__timerq_set(r, clk_mono() + grace)) {
		seq_write_begin(&j->seq);
		j->flags &= (uint8_t)~JOBQ_JF_AWAY;
		seq_write_end(&j->seq);
		worker_gone(r);
		return;
	}
	/* In the running counts, as it was; stop_running() takes it out. */
	seq_write_begin(&j->seq);
	set_state(j, JOBQ_JS_RUNNING);
	seq_write_end(&j->seq);
	t_adj(j->type_id, 0, 1);
	q_adj(j->queue_id, 0, 1);
}

/* Job @r, replayed in state @st, is placed in the structures of it. */
static void place(uint32_t r, unsigned st)
{
	struct jobq_job_rec *j = job_rec(r);

	switch (st) {
	case JOBQ_JS_RUNNING:
		/* Its worker was a client of the manager that died. */
		if (j->flags & JOBQ_JF_CANCELLING) {
			seq_write_begin(&j->seq);
			j->flags &= (uint8_t)~JOBQ_JF_AWAY;
			seq_write_end(&j->seq);
			to_cancelled(r);
		} else if (j->flags & JOBQ_JF_AWAY) {
			away(r);
		} else {
			worker_gone(r);
		}
		break;
	case JOBQ_JS_READY:
		to_ready(r);
		break;
	case JOBQ_JS_DELAYED:
	case JOBQ_JS_FAILED:
		to_later(r, st, j->run_at_ns);
		break;
	}
}

int jobq__jobs_replay_done(void)
{
	uint32_t *fin = NULL, nfin = 0, nlive = 0;
	uint32_t nt = load_relaxed(&jobq__hdr()->ntypes);
	int ret = 0;

	/* No worker is registered yet: a type no job names is free, and the
	 * free ring is made afresh (replay freed records without it). */
	jobs.replaying = false;
	jobs.tfree_head = jobs.tfree_n = 0;
	for (uint32_t t = 0; t < nt; t++) {
		if (jobq__m.st.types[t].in_use && !jobs.tjobs[t])
			type_free(t, false);
		if (!jobq__m.st.types[t].in_use)
			jobs.tfree[jobs.tfree_n++] = (uint16_t)t;
	}

	for (uint32_t r = 0; r < jobs.hwm; r++)
		if (job_rec(r)->id)
			nlive++;
	if (nlive && !(fin = malloc(nlive * sizeof(*fin))))
		ret = -ENOMEM;
	/* Final jobs first, in the order they finished: the finished list
	 * is also the order they expire in. */
	for (uint32_t r = 0; r < jobs.hwm && !ret; r++) {
		struct jobq_job_rec *j = job_rec(r);

		if (j->id && is_final(j->state)) {
			fin[nfin++] = r;
			rp_forget_key(r);
		}
	}
	if (nfin)
		qsort(fin, nfin, sizeof(*fin), by_finish);
	for (uint32_t i = 0; i < nfin; i++)
		list_add_tail(&jobs.fin_head, &jobs.fin_tail, fin[i]);
	free(fin);
	/* Unique keys of the live jobs. */
	for (uint32_t r = 0; rp.key && r < jobs.hwm && !ret; r++) {
		struct jobq_job_rec *j = job_rec(r);
		uint32_t hash;

		if (!rp.key[r])
			continue;
		hash = jobq__hash(rp.key[r], rp.keylen[r]);
		if (jobq__uq_find(rp.key[r], rp.keylen[r], hash) == NONE &&
		    !jobq__uq_add(r, rp.key[r], rp.keylen[r], hash)) {
			jobq__job_priv[r].aux |=
			    (hash << AUX_UKH_SHIFT) & AUX_UKH;
			seq_write_begin(&j->seq);
			j->flags |= JOBQ_JF_UNIQUE;
			seq_write_end(&j->seq);
		}
		rp_forget_key(r);
	}
	/* Dependencies still unfinished; one that failed fails its waiter
	 * (done at once by the manager that died, unless it died first). */
	for (size_t i = 0; i < rp.ndep && !ret; i++) {
		uint64_t dep = rp.dep[i][0], waiter = rp.dep[i][1];
		uint32_t w = jobq__jobidx_lookup(waiter);
		uint32_t d = jobq__jobidx_lookup(dep);
		unsigned st;

		if (w == NONE || job_rec(w)->state != JOBQ_JS_WAITING)
			continue;
		st = d == NONE ? JOBQ_JS_SUCCEEDED : job_rec(d)->state;
		if (st == JOBQ_JS_SUCCEEDED)
			continue;
		if (is_final(st)) {
			char msg[64];

			snprintf(msg, sizeof(msg), "dependency %llu failed",
				 (unsigned long long)dep);
			jobq__job_priv[w].aux &= ~AUX_DEPS;
			to_final(w, JOBQ_JS_DEAD, text_new(msg));
			continue;
		}
		if ((jobq__job_priv[w].aux & AUX_DEPS) < AUX_DEPS &&
		    !jobq__dep_add(dep, waiter, w))
			jobq__job_priv[w].aux++;
	}
	/* Everything else where its state says. */
	for (uint32_t r = 0; r < jobs.hwm && !ret; r++) {
		struct jobq_job_rec *j = job_rec(r);
		unsigned st = j->state;

		if (!j->id || is_final(st))
			continue;
		if (st == JOBQ_JS_WAITING) {
			if (!(jobq__job_priv[r].aux & AUX_DEPS))
				release_waiting(r);
			continue;
		}
		seq_write_begin(&j->seq);
		set_state(j, JOBQ_JS_FREE);
		seq_write_end(&j->seq);
		place(r, st);
	}
	free(rp.key);
	free(rp.keylen);
	free(rp.dep);
	memset(&rp, 0, sizeof(rp));
	return ret;
}

void jobq__jobs_start(void)
{
	jobs.jacked = false;
	settle();
}

/* The snapshot being written and its first error. */
struct snap_arg {
	struct jobq__journal *j;
	int err;
};

static void snap_key(void *arg, uint32_t r, const char *key, uint32_t len)
{
	struct snap_arg *a = arg;

	jlog_key(a->j, job_rec(r)->id, key, len, &a->err);
}

static void snap_dep(void *arg, uint64_t dep, uint64_t waiter)
{
	struct snap_arg *a = arg;
	uint32_t w = jobq__jobidx_lookup(waiter);

	if (w != NONE && job_rec(w)->state == JOBQ_JS_WAITING)
		jlog_dep(a->j, dep, waiter, &a->err);
}

int jobq__jobs_snapshot(struct jobq__journal *jn)
{
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t nt = load_relaxed(&h->ntypes), nq = load_relaxed(&h->nqueues);
	uint64_t next = load_relaxed(&h->next_job_id);
	struct iovec v = {.iov_base = &next, .iov_len = sizeof(next)};
	struct snap_arg da = {.j = jn};
	int err = 0;

	/* Free type records are left out: a record's name comes with it. */
	for (uint32_t t = 0; t < nt; t++)
		if (jobq__m.st.types[t].in_use)
			jlog_type(jn, t, &err);
	if (!err)
		err = jobq__journal_add(jn, JOBQ__JR_JOB_NEXTID, &v, 1);
	for (uint32_t q = 0; q < nq; q++)
		if (jobq__m.st.queues[q].paused ||
		    jobq__m.st.queues[q].parallel)
			jlog_queue(jn, q, &err);
	/* Mirrors of a --backend's rows are not this journal's to keep. */
	for (uint32_t r = 0; r < jobs.hwm && !err && !jobq__m.o.backend; r++)
		if (job_rec(r)->id)
			err = jlog_new(jn, r);
	if (err)
		return err;
	jobq__uq_each(snap_key, &da);
	jobq__dep_each(snap_dep, &da);
	return da.err;
}

/* ------------------------------------------------------------------------
 * Mirrors of the rows of a --backend (jobs.h). The counts of each type
 * and queue follow a mirror's state as they follow a local job's: READY
 * counts as ready, RUNNING as running, whoever runs it.
 */
static void mirror_count(uint32_t r, int64_t sign)
{
	struct jobq_job_rec *j = job_rec(r);
	bool q = j->queue_id < load_relaxed(&jobq__hdr()->nqueues);

	if (j->state == JOBQ_JS_READY) {
		t_adj(j->type_id, sign, 0);
		if (q)
			q_adj(j->queue_id, sign, 0);
	} else if (j->state == JOBQ_JS_RUNNING) {
		t_adj(j->type_id, 0, sign);
		if (q)
			q_adj(j->queue_id, 0, (int32_t)sign);
	}
}

/* The local queue named @name, or UINT32_MAX when this host has none of
 * that name (no client here opened it): its records name the queue by
 * number, and readers show no name for one out of range. */
static uint32_t mirror_queue(const char *name)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nqueues);

	for (uint32_t i = 0; name && i < n; i++)
		if (!strcmp(jobq__m.st.queues[i].name, name))
			return i;
	return UINT32_MAX;
}

static uint64_t mirror_item(const void *data, uint32_t len, uint32_t type)
{
	return len || type ? item_new(data, len, type) : 0;
}

uint32_t jobq__jobs_mirror(const struct jobq__mirror *m)
{
	uint32_t r = jobq__jobidx_lookup(m->id), len;
	struct jobq_job_rec *j;
	uint64_t args = 0, res = 0;
	bool fresh = r == NONE, was_final;
	int tid;

	len = (uint32_t)strnlen(m->type, JOBQ_TYPE_MAX + 1);
	if (check_type_name(m->type, len) || (tid = type_get(m->type, len)) < 0)
		return NONE;
	if (fresh) {
		r = record_new();
		if (r == NONE)
			return NONE;
	}
	/* Allocated before the write section: an eviction may run. */
	if (m->args && m->args_len)
		args = args_new(m->args, m->args_len);
	if (m->result)
		res = mirror_item(m->result, m->result_len, m->result_type);
	j = job_rec(r);
	was_final = !fresh && is_final(j->state);
	if (fresh) {
		seq_write_begin(&j->seq);
		memset((char *)j + sizeof(j->seq), 0,
		       sizeof(*j) - sizeof(j->seq));
		j->id = m->id;
		j->worker_client = UINT32_MAX;
		seq_write_end(&j->seq);
		jobq__jobidx_insert(m->id, r);
		store_relaxed(&jobq__hdr()->njobs,
			      load_relaxed(&jobq__hdr()->njobs) + 1);
	} else {
		mirror_count(r, -1);
		if (was_final && !is_final(m->state))
			list_del(&jobs.fin_head, &jobs.fin_tail, r);
	}
	/* A type is freed when no record names it: count this one. */
	if (fresh || j->type_id != tid) {
		uint32_t had = j->type_id;

		jobs.tjobs[tid]++;
		if (!fresh) {
			jobs.tjobs[had]--;
			type_maybe_free(had);
		}
	}
	seq_write_begin(&j->seq);
	set_state(j, m->state);
	j->type_id = (uint16_t)tid;
	j->queue_id = mirror_queue(m->queue);
	j->priority = m->priority;
	j->attempts = (uint16_t)m->attempts;
	j->max_attempts = (uint16_t)m->max_attempts;
	if (m->progress >= 0)
		j->progress = (uint32_t)m->progress;
	j->created_ns = m->created_ns;
	j->started_ns = m->started_ns;
	j->finished_ns = m->finished_ns;
	j->run_at_ns = m->run_at_ns;
	j->lease_ns = m->lease_ns;
	if (m->args) {
		jobq__free(j->args);
		j->args = args;
		j->args_len = args ? m->args_len : 0;
		j->args_type = m->args_type;
	}
	if (m->result) {
		jobq__free(j->result);
		j->result = res;
	}
	seq_write_end(&j->seq);
	mirror_count(r, 1);
	if (is_final(m->state) && (fresh || !was_final)) {
		/* A record held by a local worker stays held until its worker
		 * answers; only the count of what it runs is settled then. */
		if (m->state == JOBQ_JS_DEAD)
			jobq__count(dead);
		finalize(r);
	}
	return r;
}

void jobq__jobs_mirror_hold(uint32_t r, struct jobq__client *c)
{
	struct jobq_job_rec *j = job_rec(r);
	struct jworker *wk = &jobs.W[c->slot];
	struct jobq_worker_rec *wr = &jobq__m.st.workers[c->slot];

	seq_write_begin(&j->seq);
	j->worker_pid = c->pid;
	j->worker_client = c->slot;
	j->flags &= (uint8_t)~JOBQ_JF_CANCELLING;
	seq_write_end(&j->seq);
	run_add(wk, r);
	wk->running++;
	seq_write_begin(&wr->seq);
	wr->running = wk->running;
	seq_write_end(&wr->seq);
}

void jobq__jobs_mirror_unhold(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);
	uint32_t slot = j->worker_client;

	if (slot >= jobq__m.o.max_clients || !jobs.W[slot].reg)
		return;
	list_del(&jobs.W[slot].run_head, NULL, r);
	jobs.W[slot].running--;
	seq_write_begin(&jobq__m.st.workers[slot].seq);
	jobq__m.st.workers[slot].running = jobs.W[slot].running;
	seq_write_end(&jobq__m.st.workers[slot].seq);
	seq_write_begin(&j->seq);
	j->worker_client = UINT32_MAX;
	seq_write_end(&j->seq);
}

bool jobq__jobs_worker(uint32_t slot, uint32_t *free_slots, bool *stopping,
		       const char **names, uint32_t *ntypes)
{
	struct jworker *wk = &jobs.W[slot];

	if (slot >= jobq__m.o.max_clients || !wk->reg)
		return false;
	*free_slots = wk->capacity - wk->running;
	*stopping = wk->stopping || jobq__m.stopping;
	for (uint32_t i = 0; i < wk->ntypes; i++)
		names[i] = jobq__m.st.types[wk->types[i]].name;
	*ntypes = wk->ntypes;
	return true;
}

int jobq__jobs_park_reserve(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq__waiter *w;
	int err = -ENOMEM;

	if (s->timeout_ns == 0)
		return -EAGAIN;
	w = jobq__wait_new(c, s, JOBQ__W_RESERVE, &err);
	if (!w)
		return err;
	jobq__list_add_tail(&w->onode, &jobs.reservers);
	jobs.W[c->slot].reserve = w;
	return JOBQ__NOREPLY;
}

struct jobq__waiter *jobq__jobs_parked(uint32_t slot)
{
	return slot < jobq__m.o.max_clients ? jobs.W[slot].reserve : NULL;
}

uint32_t jobq__jobs_hwm(void)
{
	return jobs.hwm;
}
