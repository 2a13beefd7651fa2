/* SPDX-License-Identifier: MIT */
/*
 * worker.c - the worker runtime: register job types, reserve jobs, run
 * each as a fiber on one io_uring loop, report each outcome the moment
 * its job ends; and the built-in types echo, sleep and fail.
 *
 * Everything a worker does happens in the thread that called
 * jobq_worker_run(), on its loop:
 *
 *  - the coordinator fiber keeps one W_RESERVE in flight for as many jobs
 *    as there are free job fibers (capacity minus jobs running), so that a
 *    job handed out is a job started: none waits in the worker for a
 *    neighbour, and none can lose its lease before it began;
 *  - each job runs its handler in a fiber of its own. When the handler
 *    returns, the fiber queues the job's W_DONE and frees its place; the
 *    W_DONEs of every job that ended in one turn of the loop go to the
 *    manager together at the end of that turn (one publish, at most one
 *    wake-up of the manager), and the coordinator reserves again;
 *  - a keeper fiber renews each running job's lease (W_EXTEND) before it
 *    runs out while the job's fiber lives, and cancels the job's fiber
 *    when the job's own --timeout has passed;
 *  - after every turn the loop reaps what the manager posted and runs the
 *    callbacks, which wake the fibers waiting for them. Only when the loop
 *    is about to sleep does it ask the manager to signal the completion
 *    eventfd (a wake hold), which is polled through the ring: a busy
 *    worker costs the manager no write(2) per turn, and itself no poll
 *    completion and no read(2) of the eventfd;
 *  - the control socket is polled through the ring too (POLLRDHUP): the
 *    manager's end closing is how a worker learns the manager is gone.
 *
 * So an idle worker sleeps in io_uring_enter() with two polls armed and
 * wakes for nothing else: no thread, no timer, no reservation sent again
 * every so often.
 *
 * Notices come through the handle's notice hook, in whichever thread
 * reaps: a cancel sets the job's cancelled flag (and is kept in a short
 * list, for a job whose reservation is still being answered) and makes
 * the eventfd readable, so that the coordinator cancels the job's fiber;
 * a stop notice is jobq_worker_stop().
 *
 * A daemon worker dies with the manager. When the manager goes while the
 * loop is free to notice, the running jobs' fibers are cancelled and the
 * worker returns JOBQ_ECLOSED. A handler that blocks without yielding
 * keeps the loop from noticing, so a daemon worker also sets O_ASYNC on
 * the control socket: the kernel signals the worker's thread when the
 * manager's end closes, and if a fiber (not the loop) is running at that
 * moment, the process is killed (SIGKILL, as PR_SET_PDEATHSIG would do),
 * the job unfinished; the manager counts that attempt as failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "builtin.h"
#include "builtin_impl.h"
#include "chunk.h"
#include "client.h"
#include "engine.h"

#define MAX_CAPACITY 4096
/* Each job a W_RESERVE may bring takes a completion entry of the client
 * ring until it is answered: a bigger worker reserves in several goes. */
#define MAX_RESERVE    512
#define RECENT_CANCELS 64
/* Registrations (or reserves refused as from an unknown worker) in a row
 * before jobq_worker_run() gives up with the error. */
#define REGISTER_TRIES	 16
#define DEFAULT_LEASE_NS (300 * JOBQ__NSEC_PER_SEC)

struct handler {
	char type[JOBQ_TYPE_MAX + 1];
	jobq_handler fn;
	void *arg;
};

/*
 * A W_RESERVE and room for the jobs it brings, in one allocation (the
 * request first: the client frees it by that pointer once its callback
 * ran).
 */
struct reservation {
	struct jobq_req r;
	struct jobq_worker *w;
	struct jobq_cqe jobs[];
};

struct jobq_job {
	struct jobq_worker *w;
	_Atomic uint64_t id; /* 0 while the slot is free; the hook reads it */
	_Atomic int cancelled;
	bool busy; /* the slot holds a job whose fiber has not ended */
	unsigned attempt;
	uint32_t type_id;
	const struct handler *h;
	jobq_obj_t args;
	uint64_t lease_ns;
	uint64_t started_ns; /* monotonic */

	jobq_fiber_t *fiber; /* runs the handler */
	uint64_t action_ns;  /* when the keeper acts for it next, 0: never */
	uint8_t phase;	     /* of its lease: see lease_action() */
	bool timed_out;

	/* The outcome, set through jobq_job_succeed() / jobq_job_fail(). */
	jobq_obj_t result;
	char *error;
	bool failed;
	bool final;
};

struct jobq_worker {
	jobq_t *q;
	unsigned capacity;
	int daemon;
	size_t stack_size;
	bool builtin;
	bool registered;

	struct handler *handlers;
	size_t nhandlers;
	int32_t *type_map; /* type id -> handler index; -1 unknown, -2 none */
	uint32_t type_map_len;

	struct jobq_job *jobs; /* capacity slots */
	unsigned running;      /* slots busy */

	_Atomic int stop;
	_Atomic int stop_notice; /* the manager said stop */
	_Atomic int cancel_seen; /* a cancel notice came: look at the flags */
	uint64_t stale;		 /* outcomes the manager refused (-ESTALE) */

	pthread_mutex_t mu; /* the recent cancels and slot ids vs the hook */
	uint64_t cancels[RECENT_CANCELS];
	unsigned ncancels;

	/* Only the loop's thread touches what follows. */
	jobq_loop_t *loop;
	jobq_fiber_t *coord;
	jobq_fiber_t *keeper; /* renews leases, enforces timeouts */
	uint64_t keeper_at;   /* when its nap ends; 0: parked, no job due */
	bool reserving;	      /* a W_RESERVE is in flight */
	bool stopping_sent;   /* W_STOPPING went out */
	bool stopping_done;   /* ... and was answered */
	bool closed;	      /* the manager is gone */
	/* The handle reconnected: the poll on the old completion eventfd
	 * will never fire, so after_process() arms one on the new. */
	_Atomic bool rearm_efd;
	/* The manager does not know this worker (its registration after a
	 * reconnect failed, was not sent, or a reserve was refused as from
	 * nobody): the coordinator registers again before it reserves.
	 * Set from the reconnect hook and the answers' callbacks. */
	_Atomic bool need_register;
	bool registering;	/* the coordinator's W_REGISTER is in flight */
	unsigned reg_failures;	/* registrations refused in a row */
	bool finishing;		/* the polls are not armed again */
	unsigned polls;		/* poll requests in flight */
	unsigned outstanding;	/* W_DONE, W_EXTEND and the like in flight */
	int err;		/* what ends jobq_worker_run() */
	struct jobq_cqe *ready; /* handed out, not started yet */
	unsigned nready;
	/* W_DONEs of jobs that ended and are not sent yet (flush_dones()),
	 * and the bytes each payload points to, owned here until then. At
	 * most one per slot: a slot is taken again only after a flush. */
	struct jobq__op *pend;
	char **pend_buf;
	unsigned npend;
	bool wake_held; /* the loop sleeps, or is about to: jobq__wake_hold() */
};

/* ------------------------------------------------------------------------
 * Setting up.
 */
int jobq_worker_new(jobq_worker_t **wp, jobq_t *q,
		    const struct jobq_worker_opts *opts)
{
	struct jobq_worker *w;
	unsigned cap = opts && opts->concurrency ? opts->concurrency : 1;

	if (!wp || !q)
		return -EINVAL;
	if (cap > MAX_CAPACITY)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->q = q;
	w->capacity = cap;
	w->daemon = opts ? opts->daemon : 0;
	w->stack_size = opts ? opts->stack_size : 0;
	w->jobs = calloc(cap, sizeof(*w->jobs));
	w->ready = calloc(cap, sizeof(*w->ready));
	w->pend = calloc(cap, sizeof(*w->pend));
	w->pend_buf = calloc(cap, sizeof(*w->pend_buf));
	if (!w->jobs || !w->ready || !w->pend || !w->pend_buf) {
		free(w->jobs);
		free(w->ready);
		free(w->pend);
		free(w->pend_buf);
		free(w);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < cap; i++)
		w->jobs[i].w = w;
	pthread_mutex_init(&w->mu, NULL);
	*wp = w;
	return 0;
}

void jobq_worker_free(jobq_worker_t *w)
{
	if (!w)
		return;
	for (unsigned i = 0; i < w->capacity; i++) {
		jobq_obj_free(&w->jobs[i].args);
		jobq_obj_free(&w->jobs[i].result);
		free(w->jobs[i].error);
	}
	pthread_mutex_destroy(&w->mu);
	free(w->handlers);
	free(w->type_map);
	free(w->jobs);
	free(w->ready);
	free(w->pend);
	free(w->pend_buf);
	free(w);
}

int jobq_worker_handle(jobq_worker_t *w, const char *type, jobq_handler fn,
		       void *arg)
{
	struct handler *h;
	size_t len;

	if (!w || !type || !fn)
		return -EINVAL;
	if (w->registered)
		return -EBUSY;
	len = strlen(type);
	if (len < 1 || len > JOBQ_TYPE_MAX || strchr(type, ','))
		return -EINVAL;
	for (size_t i = 0; i < w->nhandlers; i++)
		if (!strcmp(w->handlers[i].type, type)) {
			w->handlers[i].fn = fn;
			w->handlers[i].arg = arg;
			return 0;
		}
	h = realloc(w->handlers, (w->nhandlers + 1) * sizeof(*h));
	if (!h)
		return -ENOMEM;
	w->handlers = h;
	h = &h[w->nhandlers++];
	memcpy(h->type, type, len + 1);
	h->fn = fn;
	h->arg = arg;
	return 0;
}

/* Makes the completion eventfd readable, which wakes the worker's loop
 * (it polls that descriptor). Async-signal-safe. */
static void kick(struct jobq_worker *w)
{
	uint64_t one = 1;

	if (write(w->q->cq_efd, &one, sizeof(one)) < 0) {
		/* Saturated counter: readable already. */
	}
}

void jobq_worker_stop(jobq_worker_t *w)
{
	/* Async-signal-safe: an atomic store and a write(2). The loop wakes
	 * on the eventfd and finds the flag. */
	atomic_store(&w->stop, 1);
	kick(w);
}

/* ------------------------------------------------------------------------
 * Inside a handler.
 */
uint64_t jobq_job_id(const jobq_job_t *job)
{
	return atomic_load(&((jobq_job_t *)job)->id);
}

const char *jobq_job_type(const jobq_job_t *job)
{
	return job->h ? job->h->type : "";
}

const jobq_obj_t *jobq_job_args(const jobq_job_t *job)
{
	return &job->args;
}

unsigned jobq_job_attempt(const jobq_job_t *job)
{
	return job->attempt;
}

/*
 * jobq_job_succeed - the job's result: @len bytes at @data of @type, copied.
 * A later call replaces an earlier one. Returns 0, -E2BIG when it exceeds
 * jobq_max_object(), -ENOMEM.
 */
int jobq_job_succeed(jobq_job_t *job, uint32_t type, const void *data,
		     size_t len)
{
	jobq_obj_t o;
	int err;

	if (len && !data)
		return -EINVAL;
	if (len > job->w->q->max_object || len > UINT32_MAX)
		return -E2BIG;
	err = jobq__obj_set(&o, type, data, len);
	if (err)
		return err;
	jobq_obj_free(&job->result);
	job->result = o;
	return 0;
}

/*
 * jobq_job_fail - the job fails with the formatted error text, for good
 * when @final is set (no retry), else retryably. The job fails whatever
 * the handler then returns. Returns -EIO, so that a handler can end with
 * "return jobq_job_fail(...)".
 */
int jobq_job_fail(jobq_job_t *job, int final, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(job->error);
	job->error = s;
	job->failed = true;
	job->final = final != 0;
	return -EIO;
}

/*
 * A request to the manager from a fiber: submitted asynchronously, its
 * callback (run by jobq_process() in the loop) wakes the fiber. The
 * fiber waits for the answer even when cancelled, since the answer lands
 * in its stack. Outside a fiber it is an ordinary blocking call.
 */
struct fcall {
	jobq_fiber_t *f;
	bool done;
	int res;
};

static void fcall_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct fcall *c = arg;

	(void)q;
	(void)obj;
	c->res = res;
	c->done = true;
	jobq__fiber_unpark(c->f);
}

static int worker_call(struct jobq_worker *w, uint8_t opcode, uint64_t arg0,
		       uint64_t arg1, uint32_t id, int64_t timeout_ns,
		       const void *data, size_t len)
{
	struct fcall c = {.f = jobq_fiber_current()};
	struct jobq_req sync = {0}, *r = &sync;
	struct jobq__op op;
	int err;

	if (c.f && w->loop && jobq_loop_current() == w->loop) {
		r = jobq__async_req(fcall_cb, &c);
		if (!r)
			return -ENOMEM;
	}
	jobq__op_init(&op, r, opcode, data, len);
	op.sqe.arg0 = arg0;
	op.sqe.arg1 = arg1;
	op.sqe.id = id;
	op.sqe.timeout_ns = timeout_ns;
	if (r == &sync) {
		err = jobq__call(w->q, &op);
		return err < 0 ? err : 0;
	}
	err = jobq__submit_async(w->q, &op);
	if (err)
		return err;
	w->outstanding++;
	while (!c.done)
		jobq__fiber_park(false);
	w->outstanding--;
	return c.res < 0 ? c.res : 0;
}

static int job_request(jobq_job_t *job, uint8_t opcode, uint32_t id,
		       int64_t timeout_ns, const void *data, size_t len)
{
	return worker_call(job->w, opcode, atomic_load(&job->id), job->attempt,
			   id, timeout_ns, data, len);
}

/*
 * jobq_job_progress - report @percent (0..100) and an optional message.
 * One round trip (the job's fiber waits, its neighbours run). Returns 0,
 * -ESTALE when the job is no longer this worker's, or -errno.
 */
int jobq_job_progress(jobq_job_t *job, double percent, const char *msg)
{
	uint32_t p;

	if (!(percent >= 0))
		percent = 0;
	if (percent > 100)
		percent = 100;
	p = (uint32_t)(percent * 100 + 0.5);
	return job_request(job, JOBQ_OP_W_PROGRESS, p, 0, msg,
			   msg ? strlen(msg) : 0);
}

/* jobq_job_extend - the lease runs @seconds from now. Returns 0, -EINVAL,
 * -ESTALE when the job is no longer this worker's, or -errno. */
int jobq_job_extend(jobq_job_t *job, double seconds)
{
	int64_t ns = jobq__timeout_ns(seconds);

	if (ns <= 0)
		return -EINVAL;
	return job_request(job, JOBQ_OP_W_EXTEND, 0, ns, NULL, 0);
}

int jobq_job_cancelled(const jobq_job_t *job)
{
	jobq_job_t *j = (jobq_job_t *)job;

	if (j->fiber && jobq_fiber_cancelled(j->fiber))
		return 1;
	/* A handler that does not yield keeps the loop from reaping:
	 * look for notices here. */
	if (!atomic_load(&j->cancelled))
		jobq__poll(j->w->q);
	return atomic_load(&j->cancelled);
}

jobq_loop_t *jobq_job_loop(jobq_job_t *job)
{
	return job ? job->w->loop : NULL;
}

/* ------------------------------------------------------------------------
 * Notices. Called with q->mu held, from whichever thread reaps.
 */
static void on_notice(jobq_t *q, const struct jobq_cqe *c, void *arg)
{
	struct jobq_worker *w = arg;

	(void)q;
	if (c->res == JOBQ_NOTICE_STOP) {
		atomic_store(&w->stop_notice, 1);
		jobq_worker_stop(w);
		return;
	}
	if (c->res != JOBQ_NOTICE_CANCEL || !c->val)
		return;
	pthread_mutex_lock(&w->mu);
	w->cancels[w->ncancels++ % RECENT_CANCELS] = c->val;
	for (unsigned i = 0; i < w->capacity; i++)
		if (atomic_load(&w->jobs[i].id) == c->val)
			atomic_store(&w->jobs[i].cancelled, 1);
	pthread_mutex_unlock(&w->mu);
	/* The reaping thread may have drained the eventfd already. */
	atomic_store(&w->cancel_seen, 1);
	kick(w);
}

/* Takes slot @job for job @id; a cancel that came first is kept. */
static void slot_take(struct jobq_worker *w, jobq_job_t *job, uint64_t id)
{
	unsigned n;

	pthread_mutex_lock(&w->mu);
	atomic_store(&job->cancelled, 0);
	atomic_store(&job->id, id);
	n = w->ncancels < RECENT_CANCELS ? w->ncancels : RECENT_CANCELS;
	for (unsigned i = 0; i < n; i++)
		if (w->cancels[i] == id)
			atomic_store(&job->cancelled, 1);
	pthread_mutex_unlock(&w->mu);
}

static void slot_release(struct jobq_worker *w, jobq_job_t *job)
{
	pthread_mutex_lock(&w->mu);
	atomic_store(&job->id, 0);
	pthread_mutex_unlock(&w->mu);
	jobq_obj_free(&job->args);
	jobq_obj_free(&job->result);
	free(job->error);
	job->error = NULL;
	job->failed = job->final = job->timed_out = false;
	job->action_ns = 0;
	job->phase = 0;
	job->h = NULL;
	job->fiber = NULL;
	job->busy = false;
}

/* ------------------------------------------------------------------------
 * Running jobs.
 */

/* The handler of type @type_id, or NULL. Type ids are never reused, so
 * what a known type maps to is remembered. */
static const struct handler *find_handler(struct jobq_worker *w,
					  uint32_t type_id)
{
	char name[JOBQ_TYPE_MAX + 1];
	int32_t hi = -2;

	if (type_id < w->type_map_len && w->type_map[type_id] != -1)
		return w->type_map[type_id] >= 0
			   ? &w->handlers[w->type_map[type_id]]
			   : NULL;
	if (jobq__type_read(w->q, type_id, name, NULL))
		return NULL; /* not in the store (yet): not remembered */
	for (size_t i = 0; i < w->nhandlers; i++)
		if (!strcmp(w->handlers[i].type, name))
			hi = (int32_t)i;
	if (type_id >= w->type_map_len && type_id <= UINT16_MAX) {
		uint32_t len = type_id + 16;
		int32_t *m = realloc(w->type_map, len * sizeof(*m));

		if (m) {
			for (uint32_t i = w->type_map_len; i < len; i++)
				m[i] = -1;
			w->type_map = m;
			w->type_map_len = len;
		}
	}
	if (type_id < w->type_map_len)
		w->type_map[type_id] = hi;
	return hi >= 0 ? &w->handlers[hi] : NULL;
}

static void done_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct jobq_worker *w = arg;

	(void)q;
	(void)obj;
	/* -ESTALE: the lease was lost (expired, or the job was taken
	 * back); another attempt owns the job now. */
	if (res == -ESTALE)
		w->stale++;
	w->outstanding--;
	jobq__fiber_unpark(w->coord);
}

/*
 * Sends the W_DONEs queued so far, in one submission: one lock of the
 * handle, one publish and at most one wake-up of the manager for all of
 * them. The outcomes are copied into the client's arena on submission, so
 * their bytes are freed at once and nobody waits for the answers. Called
 * at the end of every turn of the loop (so each result goes out in the
 * turn its job ended) and before the coordinator sends anything: requests
 * go to the manager in order, so it has the W_DONEs before the W_RESERVE
 * that may follow for the freed places.
 */
static void flush_dones(struct jobq_worker *w)
{
	unsigned n = w->npend, i = 0;

	if (!n)
		return;
	w->npend = 0;
	while (i < n) {
		int sent = jobq__submit(w->q, &w->pend[i], n - i);

		if (sent > 0) {
			w->outstanding += (unsigned)sent;
			i += (unsigned)sent;
			continue;
		}
		/* That one cannot go (too big, the manager gone): its lease
		 * runs out and the manager takes the job back. The rest
		 * are tried still. */
		free(w->pend[i].req);
		i++;
	}
	for (i = 0; i < n; i++) {
		free(w->pend_buf[i]);
		w->pend_buf[i] = NULL;
	}
}

/*
 * Queues the job's W_DONE for flush_dones(), taking its outcome's bytes
 * from the slot, so that the slot is free at once.
 */
static void queue_done(jobq_job_t *job)
{
	struct jobq_worker *w = job->w;
	struct jobq_req *r;
	struct jobq__op *op;

	if (w->npend == w->capacity)
		flush_dones(w); /* cannot be: one per slot between flushes */
	r = jobq__async_req(done_cb, w);
	if (!r)
		return; /* the lease runs out: the manager takes it back */
	op = &w->pend[w->npend];
	if (job->failed) {
		const char *e = job->error ? job->error : "the job failed";

		jobq__op_init(op, r, JOBQ_OP_W_DONE, e, strlen(e));
		op->sqe.type = JOBQ_T_TEXT;
		op->sqe.flags =
		    JOBQ_SQE_FAIL | (job->final ? JOBQ_SQE_FINAL : 0);
		w->pend_buf[w->npend] = job->error;
		job->error = NULL;
	} else {
		jobq__op_init(op, r, JOBQ_OP_W_DONE, job->result.data,
			      job->result.len);
		op->sqe.type =
		    job->result.data ? job->result.type : JOBQ_T_NONE;
		w->pend_buf[w->npend] = job->result.data;
		job->result.data = NULL;
		job->result.len = 0;
	}
	op->sqe.arg0 = atomic_load(&job->id);
	op->sqe.arg1 = job->attempt;
	w->npend++;
}

/* ------------------------------------------------------------------------
 * Leases.
 *
 * The manager takes a job back when its lease (the job's --timeout) runs
 * out without word from the worker. A job whose fiber waits behind its
 * neighbours must not lose its lease for that, so one keeper fiber per
 * worker renews the leases ahead of time; and when a job's own time is up
 * it cancels the job's fiber (its IO returns -ECANCELED and the job fails
 * as timed out), keeping the lease alive while the fiber unwinds. The
 * keeper sleeps until the earliest of the running jobs' next actions, and
 * parks when no job runs: a worker whose jobs are all short arms one timer
 * for the first of them, and an idle worker none.
 */
struct extend_ctx {
	struct jobq_worker *w;
	jobq_job_t *job;
	uint64_t id;
	unsigned attempt;
};

static void extend_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct extend_ctx *c = arg;
	jobq_job_t *job = c->job;

	(void)q;
	(void)obj;
	/* -ESTALE: the job is no longer ours (taken back, or cancelled
	 * and its grace over): stop working on it. */
	if (res == -ESTALE && job->busy && atomic_load(&job->id) == c->id &&
	    job->attempt == c->attempt && job->fiber)
		jobq_fiber_cancel(job->fiber);
	c->w->outstanding--;
	jobq__fiber_unpark(c->w->coord);
	free(c);
}

/* Renews @job's lease to @ns from now, without waiting for the answer. */
static void send_extend(struct jobq_worker *w, jobq_job_t *job, uint64_t ns)
{
	struct extend_ctx *c = malloc(sizeof(*c));
	struct jobq_req *r = c ? jobq__async_req(extend_cb, c) : NULL;
	struct jobq__op op;

	if (!r) {
		free(c);
		return; /* the next action tries again */
	}
	c->w = w;
	c->job = job;
	c->id = atomic_load(&job->id);
	c->attempt = job->attempt;
	jobq__op_init(&op, r, JOBQ_OP_W_EXTEND, NULL, 0);
	op.sqe.arg0 = c->id;
	op.sqe.arg1 = c->attempt;
	op.sqe.timeout_ns = (int64_t)ns;
	if (jobq__submit_async(w->q, &op) == 0)
		w->outstanding++;
	else
		free(c);
}

/* How long before a lease ends the keeper renews it: a round trip plus
 * the neighbours' turn, generously. */
static uint64_t lease_margin(uint64_t lease)
{
	return lease / 4 < JOBQ__NSEC_PER_SEC ? lease / 4 : JOBQ__NSEC_PER_SEC;
}

static uint64_t job_lease(const jobq_job_t *job)
{
	return job->lease_ns ? job->lease_ns : DEFAULT_LEASE_NS;
}

/*
 * What the keeper does for @job when its action time came:
 *   phase 0: the lease is about to run out, the job's time not yet:
 *            renew it through the end of the job's time and a little more
 *            (so that the W_DONE of a job ending at its deadline lands);
 *   phase 1: the job's time is up: cancel its fiber, then as phase 2;
 *   phase 2: its fiber unwinds: keep the lease alive meanwhile.
 */
static void lease_action(struct jobq_worker *w, jobq_job_t *job, uint64_t now)
{
	uint64_t lease = job_lease(job), margin = lease_margin(lease);
	uint64_t keep = lease > 2 * margin ? lease : 2 * margin;

	switch (job->phase) {
	case 0:
		send_extend(w, job, 2 * margin);
		job->action_ns = job->started_ns + lease;
		job->phase = 1;
		return;
	case 1:
		job->timed_out = true;
		if (job->fiber)
			jobq_fiber_cancel(job->fiber);
		/* fall through */
	default:
		send_extend(w, job, keep);
		job->action_ns = now + keep / 2;
		job->phase = 2;
	}
}

static void keeper_fn(void *arg)
{
	struct jobq_worker *w = arg;

	while (!jobq_fiber_cancelled(NULL)) {
		uint64_t now = jobq__now_ns(), next = 0;
		int r;

		for (unsigned i = 0; i < w->capacity; i++) {
			jobq_job_t *job = &w->jobs[i];

			if (!job->busy || !job->action_ns)
				continue;
			if (job->action_ns <= now)
				lease_action(w, job, now);
			if (!next || job->action_ns < next)
				next = job->action_ns;
		}
		w->keeper_at = next;
		if (next)
			r = jobq__fiber_nap((double)(next - now) / 1e9);
		else
			r = jobq__fiber_park(true);
		if (r == -ECANCELED)
			break;
	}
	w->keeper_at = 0;
}

/* A job started: the keeper must wake for it if it would sleep past its
 * first action. */
static void keeper_note(struct jobq_worker *w, jobq_job_t *job)
{
	if (w->keeper && (!w->keeper_at || job->action_ns < w->keeper_at))
		jobq__fiber_unpark(w->keeper);
}

/* Whether the job must stop: cancelled, or its lease ran out. */
static bool job_stopped(const jobq_job_t *job)
{
	return job->timed_out || atomic_load(&job->cancelled);
}

/* Adds the outcome of the handler on one object of a chunk to @out and
 * clears it from @job for the next. */
static int chunk_outcome(jobq_job_t *job, int rc, struct jobq__chunk_buf *out)
{
	int err;

	if (job->failed || rc < 0) {
		const char *e =
		    job->error ? job->error : jobq_strerror(rc < 0 ? rc : -EIO);

		err = jobq__chunk_add(out, JOBQ_EJOBFAILED, JOBQ_T_TEXT, e,
				      strlen(e));
	} else {
		err = jobq__chunk_add(out, 0, job->result.type,
				      job->result.data, job->result.len);
	}
	jobq_obj_free(&job->result);
	free(job->error);
	job->error = NULL;
	job->failed = false;
	job->final = false;
	return err;
}

/*
 * run_chunk - a job whose args are a chunk (jobq_map_chunked()): the
 * handler runs on each object of it in turn, each seen as the job's args
 * (a NUL-terminated copy, as any args), and their outcomes go back
 * together as the job's result. An object's failure is its own: its error
 * text takes its place, and the chunk goes on. A cancel or the lease
 * running out stops it between objects, and the chunk fails as a whole.
 */
static int run_chunk(jobq_job_t *job)
{
	const jobq_obj_t whole = job->args;
	struct jobq__chunk_buf out = {0};
	struct jobq__chunk_iter it;
	char *copy = NULL;
	size_t cap = 0;
	jobq_obj_t item;
	int32_t code;
	int r = 0, rc = 0;

	if (jobq__chunk_open(&it, whole.data, whole.len))
		return jobq_job_fail(job, 1,
				     "its args are marked a chunk "
				     "but are not one");
	while (!job_stopped(job) &&
	       (r = jobq__chunk_next(&it, &code, &item)) == 1) {
		if (item.len >= cap) {
			char *p = realloc(copy, item.len + 1);

			if (!p) {
				rc = -ENOMEM;
				break;
			}
			copy = p;
			cap = item.len + 1;
		}
		memcpy(copy, item.data, item.len);
		copy[item.len] = '\0';
		item.data = copy;
		item.flags = JOBQ_OBJ_BORROWED;
		job->args = item;
		rc = job->h->fn(job, job->h->arg);
		if (job_stopped(job))
			break;
		rc = chunk_outcome(job, rc, &out);
		if (rc)
			break;
	}
	job->args = whole;
	free(copy);
	if (job_stopped(job) || rc) {
		jobq__chunk_buf_free(&out);
		return rc ? rc : -ECANCELED;
	}
	if (r < 0) {
		jobq__chunk_buf_free(&out);
		return jobq_job_fail(job, 1,
				     "its chunk of args is malformed: "
				     "an object runs past its end");
	}
	rc = jobq__chunk_finish(&out);
	if (!rc && out.len > job->w->q->max_object)
		rc = jobq_job_fail(
		    job, 1,
		    "the results of its %u objects take %zu bytes, over the "
		    "largest object (%zu bytes): use smaller chunks",
		    out.count, out.len, (size_t)job->w->q->max_object);
	if (!rc) {
		jobq_obj_free(&job->result);
		job->result = (jobq_obj_t){
		    .type = JOBQ_T_CHUNK, .len = out.len, .data = out.data};
		return 0;
	}
	jobq__chunk_buf_free(&out);
	return rc;
}

/* The fiber of one job: read its args, run its handler, send W_DONE. */
static void job_fn(void *arg)
{
	jobq_job_t *job = arg;
	struct jobq_worker *w = job->w;
	struct jobq_job_rec rec;
	uint64_t id = atomic_load(&job->id);
	int rc, err;

	job->fiber = jobq_fiber_current();
	if (!job->h) {
		char name[JOBQ_TYPE_MAX + 1];

		if (jobq__type_read(w->q, job->type_id, name, NULL))
			snprintf(name, sizeof(name), "#%u", job->type_id);
		jobq_job_fail(job, 1, "this worker has no handler for type %s",
			      name);
		goto done;
	}
	err = jobq__job_lookup(w->q, id, &rec, JOBQ__ITEM_ARGS, &job->args);
	if (err) {
		jobq_job_fail(job, 0, "cannot read the args of job %llu: %s",
			      (unsigned long long)id, jobq_strerror(err));
		goto done;
	}
	if (atomic_load(&job->cancelled)) {
		jobq_job_fail(job, 1, "cancelled before it started");
		goto done;
	}
	job->lease_ns = rec.lease_ns;
	job->action_ns =
	    job->started_ns + job_lease(job) - lease_margin(job_lease(job));
	keeper_note(w, job);
	if (job->args.type == JOBQ_T_CHUNK)
		rc = run_chunk(job);
	else
		rc = job->h->fn(job, job->h->arg);
	if (job->timed_out) {
		jobq_job_fail(job, 0,
			      "timed out after %.3g s (the job's --timeout)",
			      (double)job_lease(job) / 1e9);
	} else if (rc < 0 && !job->failed) {
		jobq_job_fail(job, 0, "%s", jobq_strerror(rc));
	}
done:
	if (!w->closed)
		queue_done(job);
	slot_release(w, job);
	w->running--;
	jobq__fiber_unpark(w->coord);
	/* No job left: the keeper parks instead of waking for nothing. */
	if (!w->running && w->keeper_at)
		jobq__fiber_unpark(w->keeper);
}

/* Starts the job of reservation completion @c in a free slot. */
static void start_job(struct jobq_worker *w, const struct jobq_cqe *c)
{
	jobq_job_t *job = NULL;

	for (unsigned i = 0; i < w->capacity; i++)
		if (!w->jobs[i].busy) {
			job = &w->jobs[i];
			break;
		}
	if (!job)
		return; /* cannot be: never reserved beyond free slots */
	slot_take(w, job, c->val);
	job->busy = true;
	job->attempt = c->len;
	job->type_id = c->type;
	job->h = find_handler(w, c->type);
	job->started_ns = jobq__now_ns();
	memset(&job->args, 0, sizeof(job->args));
	w->running++;
	if (jobq_spawn(w->loop, job_fn, job, NULL)) {
		/* No memory for a stack: hand the job back as failed. */
		jobq_job_fail(job, 0, "the worker has no memory for a fiber");
		queue_done(job);
		slot_release(w, job);
		w->running--;
	}
}

/* ------------------------------------------------------------------------
 * The coordinator.
 */
static void reserve_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct reservation *rv = arg;
	struct jobq_worker *w = rv->w;

	(void)obj;
	for (uint32_t i = 0; i < rv->r.njobs && w->nready < w->capacity; i++)
		w->ready[w->nready++] = rv->jobs[i];
	w->reserving = false;
	/* A manager that is shutting down refuses to hand out more
	 * (JOBQ_ECLOSED as the answer, the connection still up): that is a
	 * stop too. */
	if (res >= 0)
		w->reg_failures = 0;
	if (res == JOBQ_ECLOSED && !atomic_load(&q->closed))
		atomic_store(&w->stop, 1);
	else if (res == JOBQ_ECLOSED)
		w->closed = true;
	else if (res == -EINVAL && !w->stopping_sent &&
		 ++w->reg_failures <= REGISTER_TRIES)
		/* The manager knows no worker on this connection: one that
		 * restarted and lost (or never got) our registration. */
		atomic_store(&w->need_register, true);
	else if (res < 0 && res != -ETIMEDOUT && res != -EAGAIN &&
		 !w->stopping_sent && !w->err)
		w->err = res; /* (once we stop, the manager may refuse it) */
	jobq__fiber_unpark(w->coord);
}

static int send_reserve(struct jobq_worker *w, unsigned want)
{
	struct reservation *rv;
	struct jobq__op op;
	int err;

	flush_dones(w); /* they free the places this asks to fill */
	rv = calloc(1, sizeof(*rv) + want * sizeof(rv->jobs[0]));
	if (!rv)
		return -ENOMEM;
	rv->w = w;
	rv->r.async = true;
	rv->r.cb = reserve_cb;
	rv->r.arg = rv;
	rv->r.jobs = rv->jobs;
	rv->r.maxjobs = want;
	jobq__op_init(&op, &rv->r, JOBQ_OP_W_RESERVE, NULL, 0);
	op.sqe.arg0 = want;
	op.sqe.timeout_ns = -1; /* parked until there is work or a stop */
	err = jobq__submit_async(w->q, &op);
	if (!err)
		w->reserving = true;
	return err;
}

static int send_register(struct jobq_worker *w);

static void stopping_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct jobq_worker *w = arg;

	(void)q;
	(void)res;
	(void)obj;
	w->stopping_done = true;
	jobq__fiber_unpark(w->coord);
}

static void cancel_flagged(struct jobq_worker *w)
{
	if (!atomic_exchange(&w->cancel_seen, 0))
		return;
	for (unsigned i = 0; i < w->capacity; i++) {
		jobq_job_t *job = &w->jobs[i];

		if (job->busy && job->fiber && atomic_load(&job->cancelled))
			jobq_fiber_cancel(job->fiber);
	}
}

static void cancel_all(struct jobq_worker *w)
{
	for (unsigned i = 0; i < w->capacity; i++)
		if (w->jobs[i].busy && w->jobs[i].fiber)
			jobq_fiber_cancel(w->jobs[i].fiber);
}

/* Whether sending a request failed with @err (0: it did not): the
 * manager closing, or an error that ends the run. */
static bool send_failed(struct jobq_worker *w, int err)
{
	if (err == JOBQ_ECLOSED)
		w->closed = true;
	else if (err)
		w->err = err;
	return err != 0;
}

static void coordinator_fn(void *arg)
{
	struct jobq_worker *w = arg;
	bool yielded = false;

	for (;;) {
		bool stop = atomic_load(&w->stop) != 0;

		flush_dones(w);
		cancel_flagged(w);
		/* Jobs handed out start at once: the reservation asked for
		 * no more than there are free fibers. */
		for (unsigned i = 0; i < w->nready; i++)
			start_job(w, &w->ready[i]);
		w->nready = 0;

		if (w->closed || w->err) {
			/* Nobody to report to: the jobs end now. */
			cancel_all(w);
			if (!w->running && !w->outstanding)
				break;
		} else if (stop) {
			if (!w->stopping_sent) {
				struct jobq_req *r =
				    jobq__async_req(stopping_cb, w);
				struct jobq__op op;

				if (r) {
					jobq__op_init(&op, r,
						      JOBQ_OP_W_STOPPING, NULL,
						      0);
					if (!jobq__submit_async(w->q, &op))
						w->stopping_sent = true;
				}
				if (!w->stopping_sent)
					w->stopping_done = w->stopping_sent =
					    true;
			}
			/* Daemon or not, a stop notice lets the running jobs
			 * finish: the manager waits --grace for them, then
			 * closes its end, and a daemon worker ends them. */
			if (w->stopping_done && !w->reserving && !w->running &&
			    !w->outstanding && !w->nready)
				break;
		} else if (atomic_load(&w->need_register)) {
			/* Before any reserve: one sent now would be refused.
			 * The answer (register_cb) clears the flag or sets it
			 * again; a parked reserve stays as it is. */
			int err = 0;

			if (!w->registering) {
				atomic_store(&w->need_register, false);
				err = send_register(w);
				if (!err)
					w->registering = true;
			}
			if (send_failed(w, err))
				continue;
		} else if (!w->reserving && !w->registering &&
			   w->running < w->capacity) {
			unsigned want;
			int err;

			if (!yielded) {
				yielded = true;
				jobq_yield();
				continue;
			}
			yielded = false;
			want = w->capacity - w->running;
			err = send_reserve(w, want < MAX_RESERVE ? want
								 : MAX_RESERVE);
			if (send_failed(w, err))
				continue;
		}
		jobq__fiber_park(false);
	}
	jobq_fiber_cancel(w->keeper);
	jobq_loop_stop(w->loop);
}

/* ------------------------------------------------------------------------
 * The two polls: the completion eventfd and the control socket.
 */
static void arm_efd(struct jobq_worker *w);
static void arm_sock(struct jobq_worker *w);

static void after_process(struct jobq_worker *w, int r)
{
	if (r == JOBQ_ECLOSED || atomic_load(&w->q->closed))
		w->closed = true;
	if (atomic_exchange(&w->rearm_efd, false) && !w->finishing &&
	    !w->closed)
		arm_efd(w);
	jobq__fiber_unpark(w->coord);
}

static void on_efd(jobq_loop_t *l, ssize_t res, void *arg)
{
	struct jobq_worker *w = arg;

	(void)l;
	w->polls--;
	/* jobq_process() drains the eventfd, reaps and runs the callbacks
	 * of finished requests (which wake their fibers). */
	after_process(w, jobq_process(w->q));
	if (res >= 0 && !w->finishing)
		arm_efd(w);
}

static void on_sock(jobq_loop_t *l, ssize_t res, void *arg)
{
	struct jobq_worker *w = arg;

	(void)l;
	w->polls--;
	if (res < 0 || w->finishing)
		return;
	/* Nothing is expected on the socket after the handshake: whatever
	 * woke us, jobq_process() looks whether it is closed. */
	after_process(w, jobq_process(w->q));
	if (!w->closed)
		arm_sock(w);
}

static void arm_efd(struct jobq_worker *w)
{
	if (jobq_io_poll_cb(w->loop, w->q->cq_efd, POLLIN, -1, on_efd, w) == 0)
		w->polls++;
	else
		w->err = -ENOMEM;
}

static void arm_sock(struct jobq_worker *w)
{
	if (jobq_io_poll_cb(w->loop, w->q->sock, POLLRDHUP, -1, on_sock, w) ==
	    0)
		w->polls++;
	else
		w->err = -ENOMEM;
}

/*
 * After every turn of the loop: send the W_DONEs of the jobs that ended in
 * it, then take what the manager posted and run the callbacks (they wake
 * the fibers waiting for answers). While the worker is busy this is all:
 * the manager sees no NEED_WAKEUP and writes no eventfd. When the loop is
 * about to sleep (@idle), take a wake hold and look once more: completions
 * posted before the manager could see the hold are found here, those
 * after it write the eventfd that the ring polls (on_efd()).
 */
static bool turn_hook(jobq_loop_t *l, void *arg, bool idle)
{
	struct jobq_worker *w = arg;

	(void)l;
	if (!idle) {
		if (w->wake_held) {
			w->wake_held = false;
			jobq__wake_release(w->q);
		}
		flush_dones(w);
		jobq__process_ready(w->q);
		if (atomic_load(&w->q->closed) && !w->closed) {
			w->closed = true;
			jobq__fiber_unpark(w->coord);
		}
		return false;
	}
	if (!w->wake_held) {
		w->wake_held = true;
		jobq__wake_hold(w->q);
	}
	return jobq__cq_ready(w->q) && jobq__process_ready(w->q) > 0;
}

/* ------------------------------------------------------------------------
 * A daemon worker's last resort against a handler that never yields:
 * SIGIO from the control socket (O_ASYNC) when the manager's end closes.
 */
static struct jobq_worker *volatile sigio_worker;

static void on_sigio(int sig, siginfo_t *si, void *uc)
{
	struct jobq_worker *w = sigio_worker;
	char b;

	(void)sig;
	(void)si;
	(void)uc;
	if (!w || !w->loop || !jobq__loop_in_fiber(w->loop))
		return; /* the loop itself is free to notice */
	if (recv(w->q->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		kill(getpid(), SIGKILL);
}

struct sigio_state {
	bool on;
	struct sigaction old;
	int old_fl;
};

static void sigio_start(struct jobq_worker *w, struct sigio_state *s)
{
	struct sigaction sa = {0};
	struct f_owner_ex own = {.type = F_OWNER_TID,
				 .pid = (pid_t)syscall(SYS_gettid)};
	int fl = fcntl(w->q->sock, F_GETFL);

	s->on = false;
	if (!w->daemon || sigio_worker || fl < 0)
		return;
	sa.sa_sigaction = on_sigio;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGIO, &sa, &s->old))
		return;
	sigio_worker = w;
	s->old_fl = fl;
	if (fcntl(w->q->sock, F_SETOWN_EX, &own) ||
	    fcntl(w->q->sock, F_SETFL, fl | O_ASYNC)) {
		sigio_worker = NULL;
		sigaction(SIGIO, &s->old, NULL);
		return;
	}
	s->on = true;
}

static void sigio_end(struct jobq_worker *w, struct sigio_state *s)
{
	if (!s->on)
		return;
	fcntl(w->q->sock, F_SETFL, s->old_fl);
	sigio_worker = NULL;
	sigaction(SIGIO, &s->old, NULL);
}

/* ------------------------------------------------------------------------
 * Running.
 */
/* The W_REGISTER request of @w into @op (its names in *names, which the
 * caller frees once the op is submitted). Returns 0 or -errno. */
static int register_op(struct jobq_worker *w, struct jobq__op *op,
		       struct jobq_req *r, char **names)
{
	size_t len = 0, at = 0;

	if (!w->nhandlers)
		return -EINVAL;
	for (size_t i = 0; i < w->nhandlers; i++)
		len += strlen(w->handlers[i].type) + 1;
	*names = malloc(len);
	if (!*names)
		return -ENOMEM;
	for (size_t i = 0; i < w->nhandlers; i++) {
		size_t n = strlen(w->handlers[i].type) + 1;

		memcpy(*names + at, w->handlers[i].type, n);
		at += n;
	}
	jobq__op_init(op, r, JOBQ_OP_W_REGISTER, *names, len);
	op->sqe.arg0 = w->capacity;
	op->sqe.arg1 = (w->daemon ? JOBQ_WF_DAEMON : 0) |
		       (w->builtin ? JOBQ_WF_BUILTIN : 0);
	return 0;
}

/*
 * The answer to a registration sent after a reconnect (by the hook or the
 * coordinator). The manager answers -EALREADY when it knows the worker
 * already (a copy resent after another reconnect came first). Anything
 * else that is an error leaves the worker unknown there: the coordinator
 * registers again, REGISTER_TRIES times in a row at most.
 */
static void register_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct jobq_worker *w = arg;

	(void)q;
	(void)obj;
	w->registering = false;
	if (res < 0 && res != -EALREADY) {
		if (res != JOBQ_ECLOSED && ++w->reg_failures > REGISTER_TRIES) {
			if (!w->err)
				w->err = res;
		} else {
			atomic_store(&w->need_register, true);
		}
	}
	jobq__fiber_unpark(w->coord);
}

/* Sends W_REGISTER without waiting; register_cb() reads the answer. */
static int send_register(struct jobq_worker *w)
{
	struct jobq_req *r = jobq__async_req(register_cb, w);
	struct jobq__op op;
	char *names = NULL;
	int err;

	if (!r)
		return -ENOMEM;
	err = register_op(w, &op, r, &names);
	if (!err)
		err = jobq__submit_async(w->q, &op);
	if (err)
		free(r);
	free(names);
	return err;
}

static int do_register(struct jobq_worker *w)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	char *names = NULL;
	int res;

	res = register_op(w, &op, &r, &names);
	if (res)
		return res;
	res = jobq__call(w->q, &op);
	free(names);
	if (res < 0)
		return res;
	w->registered = true;
	return 0;
}

/*
 * The handle reconnected to a manager that came back (under q->mu, before
 * the requests in flight are resent): the new manager knows no worker of
 * ours, so the registration goes first, and the reservation resent after
 * it finds a worker. Jobs that were running went back to ready in the new
 * manager (their attempt counted); the results sent for them now are
 * refused as stale, and they run again.
 */
static void on_reconnect(jobq_t *q, void *arg)
{
	struct jobq_worker *w = arg;
	struct jobq_req *r = jobq__async_req(register_cb, w);
	struct jobq__op op;
	char *names = NULL;
	uint64_t *held;
	unsigned n = 0;

	atomic_store(&w->rearm_efd, true);
	/* Not sent (no memory, a full ring): the coordinator sends it, and
	 * the reserve resent meanwhile is refused and sent again after. */
	if (!r || register_op(w, &op, r, &names) ||
	    jobq__submit_locked(q, &op)) {
		free(r);
		free(names);
		atomic_store(&w->need_register, true);
		return;
	}
	free(names);
	/* Then the jobs it runs, to take them back (JOBQ_OP_W_CLAIM). */
	held = calloc(2 * (size_t)w->capacity, sizeof(*held));
	r = held ? jobq__async_req(NULL, NULL) : NULL;
	if (!r) {
		free(held);
		return;
	}
	pthread_mutex_lock(&w->mu);
	for (unsigned i = 0; i < w->capacity; i++) {
		uint64_t id = atomic_load(&w->jobs[i].id);

		if (id && w->jobs[i].busy) {
			held[2 * n] = id;
			held[2 * n + 1] = w->jobs[i].attempt;
			n++;
		}
	}
	pthread_mutex_unlock(&w->mu);
	jobq__op_init(&op, r, JOBQ_OP_W_CLAIM, held, n * 2 * sizeof(*held));
	if (!n || jobq__submit_locked(q, &op))
		free(r);
	free(held);
}

/*
 * jobq_worker_run - the loop is made here, in the thread that runs it
 * (an io_uring set up for a single issuer belongs to the thread that made
 * it). When io_uring is unavailable this returns its error at once and
 * jobq_loop_why() says why.
 */
int jobq_worker_run(jobq_worker_t *w)
{
	struct jobq_loop_opts lo = {.stack_size = 0};
	struct sigio_state sio;
	int err;

	if (!w)
		return -EINVAL;
	if (w->loop)
		return -EBUSY;
	lo.stack_size = w->stack_size;
	/* Room for every job's request and its link timeout, the keepers,
	 * the polls and the cancels: the SQ flushes when full anyway. */
	lo.entries = w->capacity * 4 + 16 < 4096 ? w->capacity * 4 + 16 : 4096;
	err = jobq_loop_new(&w->loop, &lo);
	if (err)
		return err;
	if (!w->registered) {
		err = do_register(w);
		if (err) {
			jobq_loop_free(w->loop);
			w->loop = NULL;
			return err;
		}
	}
	w->err = 0;
	w->closed = w->finishing = false;
	w->stopping_sent = w->stopping_done = false;
	w->reserving = false;
	w->registering = false;
	w->reg_failures = 0;
	atomic_store(&w->need_register, false);
	w->nready = 0;
	jobq__set_notice_hook(w->q, on_notice, w);
	w->wake_held = false;
	jobq__loop_set_turn_hook(w->loop, turn_hook, w);
	jobq__set_reconnect_hook(w->q, on_reconnect, w);
	sigio_start(w, &sio);
	err = jobq_spawn(w->loop, coordinator_fn, w, &w->coord);
	if (!err)
		err = jobq_spawn(w->loop, keeper_fn, w, &w->keeper);
	if (!err) {
		arm_efd(w);
		arm_sock(w);
		err = jobq_loop_run(w->loop);
		if (err == 1)
			err = 0;
	}
	w->finishing = true;
	sigio_end(w, &sio);
	/* The polls are cancelled (their callbacks see -ECANCELED and do
	 * not arm again); a coordinator that did not end is cancelled. */
	if (w->coord)
		jobq_fiber_cancel(w->coord);
	jobq__loop_set_turn_hook(w->loop, NULL, NULL);
	jobq_loop_free(w->loop);
	/* Jobs that ended while the loop was freed (an error ended it):
	 * their outcomes still go, unless the manager is gone. */
	flush_dones(w);
	if (w->wake_held) {
		w->wake_held = false;
		jobq__wake_release(w->q);
	}
	w->loop = NULL;
	w->coord = w->keeper = NULL;
	w->keeper_at = 0;
	jobq__set_notice_hook(w->q, NULL, NULL);
	jobq__set_reconnect_hook(w->q, NULL, NULL);
	if (!err)
		err = w->err;
	if (!err && w->closed)
		err = JOBQ_ECLOSED;
	return err;
}

/* ------------------------------------------------------------------------
 * Built-in types.
 */
static int echo_handler(jobq_job_t *job, void *arg)
{
	const jobq_obj_t *a = jobq_job_args(job);

	(void)arg;
	return jobq_job_succeed(job, a->type, a->data, a->len);
}

/*
 * sleep: {"ms": N}. One timer on the ring, so that a worker sleeps for
 * many jobs at once; a cancel (or the job's timeout) ends it at once.
 */
static int sleep_handler(jobq_job_t *job, void *arg)
{
	uint64_t t0 = jobq__now_ns();
	char out[64];
	json_t *v, *ms;
	long long total;
	int n, r;

	(void)arg;
	v = jobq__bargs(job, "sleep");
	if (!v)
		return -EINVAL;
	ms = json_object_get(v, "ms");
	if (!json_is_integer(ms) || json_integer_value(ms) < 0) {
		json_decref(v);
		return jobq_job_fail(job, 1,
				     "sleep: args need \"ms\": a "
				     "whole number of milliseconds "
				     ">= 0, as in {\"ms\": 100}");
	}
	total = json_integer_value(ms);
	json_decref(v);
	r = jobq_io_sleep((double)total / 1000);
	if (r == -ECANCELED)
		return jobq_job_fail(
		    job, 1, "sleep: cancelled after %lld ms",
		    (long long)((jobq__now_ns() - t0) / 1000000));
	if (r < 0)
		return jobq_job_fail(job, 0, "sleep: %s", strerror(-r));
	n = snprintf(out, sizeof(out), "{\"slept_ms\":%lld}", total);
	return jobq_job_succeed(job, JOBQ_T_JSON, out, (size_t)n);
}

static int fail_handler(jobq_job_t *job, void *arg)
{
	json_t *v, *e;
	int rc;

	(void)arg;
	v = jobq__bargs(job, "fail");
	if (!v)
		return -EINVAL;
	e = json_object_get(v, "error");
	if (e && !json_is_string(e)) {
		json_decref(v);
		return jobq_job_fail(job, 1,
				     "fail: \"error\" must be a string");
	}
	rc = jobq_job_fail(job, 0, "%s",
			   e ? json_string_value(e) : "failed as asked");
	json_decref(v);
	return rc;
}

/*
 * The built-in job types, served by `jobqd --workers N`. A new built-in
 * type is one line here (its handler in a builtin_*.c file of its own).
 */
static const struct {
	const char *type;
	jobq_handler fn;
} builtins[] = {
    {"echo", echo_handler},
    {"sleep", sleep_handler},
    {"fail", fail_handler},
};

int jobq_worker_builtin_types(jobq_worker_t *w, const char *types)
{
	size_t nb = sizeof(builtins) / sizeof(builtins[0]);
	int err;

	if (!w)
		return -EINVAL;
	/* Every name must be a built-in type: a typo serves nothing. */
	if (types) {
		char *copy = strdup(types), *save = NULL, *t;
		bool any = false;

		if (!copy)
			return -ENOMEM;
		for (t = strtok_r(copy, ",", &save); t;
		     t = strtok_r(NULL, ",", &save)) {
			bool known = jobq__builtin_io_type(t);

			for (size_t i = 0; i < nb && !known; i++)
				known = !strcmp(builtins[i].type, t);
			if (!known) {
				free(copy);
				return -EINVAL;
			}
			any = true;
		}
		free(copy);
		if (!any)
			return -EINVAL;
	}
	for (size_t i = 0; i < nb; i++) {
		if (!jobq__type_listed(types, builtins[i].type))
			continue;
		err = jobq_worker_handle(w, builtins[i].type, builtins[i].fn,
					 NULL);
		if (err)
			return err;
	}
	/* The IO types (builtin_*.c) take the handle as their arg. */
	err = jobq__builtins_register(w, w->q, types);
	if (err)
		return err;
	w->builtin = true;
	return 0;
}

int jobq_worker_builtin(jobq_worker_t *w)
{
	return jobq_worker_builtin_types(w, NULL);
}
