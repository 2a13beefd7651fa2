/* SPDX-License-Identifier: MIT */
/*
 * worker.c - the worker runtime: register job types, reserve jobs, run
 * their handlers, report the outcome; and the built-in types echo, sleep
 * and fail.
 *
 * The loop, per round:
 *
 *   1. send the outcomes (W_DONE) of the jobs that finished and a W_RESERVE
 *      for the free capacity, in one submission (one wake-up);
 *   2. wait until the reservation is answered or a stop is asked;
 *   3. run each job handed out: read its args from the store (the record
 *      keeps its args item while the job runs), call the handler.
 *
 * A worker never asks for more jobs than it has free slots: a slot is
 * taken from the moment a job is handed out until the manager has
 * answered its W_DONE, so capacity - busy slots is exactly what W_RESERVE
 * may take. Each running job has its own struct jobq_job and nothing
 * about a job lives outside it, so that handlers can later run side by
 * side as fibers; today they run one after another in the calling thread.
 *
 * Notices come through the handle's notice hook, in whichever thread
 * reaps completions: a cancel sets the job's cancelled flag (and is kept
 * in a short list, for a job handed out in the same batch and not started
 * yet); a stop notice is jobq_worker_stop().
 *
 * A daemon worker dies with the manager, as a daemon process does with
 * its parent: a watcher thread looks for the stop notice and for the
 * manager's end of the socket closing, and if either comes while a
 * handler runs, the process is killed (SIGKILL, as PR_SET_PDEATHSIG would
 * do), the job unfinished; the manager counts that attempt as failed.
 * An idle daemon worker just returns from jobq_worker_run().
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "builtin.h"
#include "client.h"

/* A reservation waits at most this long in the manager before it is sent
 * again. The manager answers a parked one as soon as the worker sends
 * W_STOPPING; the slice only bounds how long a stop would wait for a
 * manager that did not, at the cost of one idle round trip per slice. */
#define RESERVE_SLICE_NS (10 * JOBQ__NSEC_PER_SEC)
#define MAX_CAPACITY	 256
#define RECENT_CANCELS	 64
#define SLEEP_SLICE_MS	 10
/* How often a daemon worker's watcher looks for a stop notice. */
#define WATCH_MS 100

struct handler {
	char type[JOBQ_TYPE_MAX + 1];
	jobq_handler fn;
	void *arg;
};

enum slot_state {
	SLOT_FREE,
	SLOT_RUNNING, /* handed out, handler not finished */
	SLOT_DONE,    /* outcome ready, W_DONE not sent yet */
	SLOT_SENT,    /* W_DONE in flight */
};

/*
 * A W_RESERVE and room for the jobs it brings, in one allocation (the
 * request first): a reservation still in flight when jobq_worker_run()
 * returns is handed to the client, which frees it when it is answered.
 */
struct reservation {
	struct jobq_req r;
	struct jobq_cqe jobs[];
};

struct jobq_job {
	struct jobq_worker *w;
	_Atomic uint64_t id; /* 0 while the slot is free; the hook reads it */
	_Atomic int cancelled;
	enum slot_state state;
	unsigned attempt;
	const struct handler *h;
	jobq_obj_t args;

	/* The outcome, set through jobq_job_succeed() / jobq_job_fail(). */
	jobq_obj_t result;
	char *error;
	bool failed;
	bool final;

	struct jobq_req done_req; /* its W_DONE */
};

struct jobq_worker {
	jobq_t *q;
	unsigned capacity;
	int daemon;
	bool builtin;
	bool registered;

	struct handler *handlers;
	size_t nhandlers;
	int32_t *type_map; /* type id -> handler index; -1 unknown, -2 none */
	uint32_t type_map_len;

	struct jobq_job *jobs; /* capacity slots */

	_Atomic int stop;
	_Atomic int stop_notice; /* the manager said stop */
	_Atomic int in_handler;	 /* a handler runs now */
	uint64_t stale;		 /* outcomes the manager refused (-ESTALE) */

	pthread_t watcher; /* daemon workers only */
	int watch_efd;	   /* ends the watcher; -1: no watcher */

	pthread_mutex_t mu; /* the recent cancels and slot ids vs the hook */
	uint64_t cancels[RECENT_CANCELS];
	unsigned ncancels;

	struct reservation *res; /* the W_RESERVE */
	bool reserving;		 /* ... is in flight */
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
	w->jobs = calloc(cap, sizeof(*w->jobs));
	if (!w->jobs) {
		free(w);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < cap; i++)
		w->jobs[i].w = w;
	w->watch_efd = -1;
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
	free(w->res);
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

void jobq_worker_stop(jobq_worker_t *w)
{
	uint64_t one = 1;

	/* Async-signal-safe: an atomic store and a write(2). The write
	 * wakes a loop asleep on the completion eventfd; it then finds the
	 * flag. */
	atomic_store(&w->stop, 1);
	if (write(w->q->cq_efd, &one, sizeof(one)) < 0) {
		/* Saturated counter: readable already. */
	}
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
	char *p;

	if (len && !data)
		return -EINVAL;
	if (len > job->w->q->max_object || len > UINT32_MAX)
		return -E2BIG;
	p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	if (len)
		memcpy(p, data, len);
	p[len] = '\0';
	jobq_obj_free(&job->result);
	job->result.type = type;
	job->result.len = len;
	job->result.data = p;
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

static int job_request(jobq_job_t *job, uint8_t opcode, uint32_t id,
		       int64_t timeout_ns, const void *data, size_t len)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int res;

	jobq__op_init(&op, &r, opcode, data, len);
	op.sqe.arg0 = atomic_load(&job->id);
	op.sqe.arg1 = job->attempt;
	op.sqe.id = id;
	op.sqe.timeout_ns = timeout_ns;
	res = jobq__call(job->w->q, &op);
	return res < 0 ? res : 0;
}

/*
 * jobq_job_progress - report @percent (0..100) and an optional message.
 * One round trip. Returns 0, -ESTALE when the job is no longer this
 * worker's, or -errno.
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

	/* While a handler runs, nobody else may be reaping: look. */
	if (!atomic_load(&j->cancelled))
		jobq__poll(j->w->q);
	return atomic_load(&j->cancelled);
}

/* ------------------------------------------------------------------------
 * Notices. Called with q->mu held, from whichever thread reaps.
 */
static void on_notice(jobq_t *q, const struct jobq_cqe *c, void *arg)
{
	struct jobq_worker *w = arg;

	(void)q;
	if (c->res == JOBQ_NOTICE_STOP) {
		/* The caller reaps and then re-checks what it waits for,
		 * so the flag alone is enough here. */
		atomic_store(&w->stop_notice, 1);
		atomic_store(&w->stop, 1);
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
	job->failed = job->final = false;
	job->h = NULL;
	job->state = SLOT_FREE;
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

/* Runs the job of reservation completion @c in a free slot. */
static void run_job(struct jobq_worker *w, const struct jobq_cqe *c)
{
	struct jobq_job_rec rec;
	jobq_job_t *job = NULL;
	int rc, err;

	for (unsigned i = 0; i < w->capacity; i++)
		if (w->jobs[i].state == SLOT_FREE) {
			job = &w->jobs[i];
			break;
		}
	if (!job)
		return; /* cannot happen: never reserved beyond free slots */
	slot_take(w, job, c->val);
	job->attempt = c->len;
	job->state = SLOT_RUNNING;
	job->h = find_handler(w, c->type);
	memset(&job->args, 0, sizeof(job->args));

	if (!job->h) {
		char name[JOBQ_TYPE_MAX + 1];

		if (jobq__type_read(w->q, c->type, name, NULL))
			snprintf(name, sizeof(name), "#%u", c->type);
		jobq_job_fail(job, 1, "this worker has no handler for type %s",
			      name);
		goto done;
	}
	err = jobq__job_lookup(w->q, c->val, &rec, JOBQ__ITEM_ARGS, &job->args);
	if (err) {
		jobq_job_fail(job, 0, "cannot read the args of job %llu: %s",
			      (unsigned long long)c->val, jobq_strerror(err));
		goto done;
	}
	if (atomic_load(&job->cancelled)) {
		jobq_job_fail(job, 1, "cancelled before it started");
		goto done;
	}
	atomic_store(&w->in_handler, 1);
	rc = job->h->fn(job, job->h->arg);
	atomic_store(&w->in_handler, 0);
	if (rc < 0 && !job->failed)
		jobq_job_fail(job, 0, "%s", jobq_strerror(rc));
done:
	job->state = SLOT_DONE;
}

/* The W_DONE of a finished job. */
static void done_op(jobq_job_t *job, struct jobq__op *op)
{
	memset(&job->done_req, 0, sizeof(job->done_req));
	if (job->failed) {
		const char *e = job->error ? job->error : "the job failed";

		jobq__op_init(op, &job->done_req, JOBQ_OP_W_DONE, e, strlen(e));
		op->sqe.type = JOBQ_T_TEXT;
		op->sqe.flags =
		    JOBQ_SQE_FAIL | (job->final ? JOBQ_SQE_FINAL : 0);
	} else {
		jobq__op_init(op, &job->done_req, JOBQ_OP_W_DONE,
			      job->result.data, job->result.len);
		op->sqe.type =
		    job->result.data ? job->result.type : JOBQ_T_NONE;
	}
	op->sqe.arg0 = atomic_load(&job->id);
	op->sqe.arg1 = job->attempt;
}

/*
 * Sends the outcomes of finished jobs, then @extra (a W_RESERVE or
 * W_STOPPING, may be NULL), in one submission. Returns 0 or -errno.
 */
static int send_round(struct jobq_worker *w, struct jobq__op *extra)
{
	struct jobq__op ops[MAX_CAPACITY + 1];
	jobq_job_t *sent[MAX_CAPACITY];
	size_t n = 0, k = 0;
	int r;

	for (unsigned i = 0; i < w->capacity; i++)
		if (w->jobs[i].state == SLOT_DONE) {
			done_op(&w->jobs[i], &ops[n]);
			sent[k++] = &w->jobs[i];
			n++;
		}
	if (extra)
		ops[n++] = *extra;
	if (!n)
		return 0;
	r = jobq__submit(w->q, ops, n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < k && i < (size_t)r; i++)
		sent[i]->state = SLOT_SENT;
	return (size_t)r < n ? -EIO : 0;
}

/* Waits for the W_DONE answers in flight and frees their slots. */
static int collect_done(struct jobq_worker *w)
{
	struct jobq_req *reqs[MAX_CAPACITY];
	jobq_job_t *jobs[MAX_CAPACITY];
	size_t n = 0;
	int err;

	for (unsigned i = 0; i < w->capacity; i++)
		if (w->jobs[i].state == SLOT_SENT) {
			jobs[n] = &w->jobs[i];
			reqs[n++] = &w->jobs[i].done_req;
		}
	if (!n)
		return 0;
	err = jobq__wait(w->q, reqs, n);
	for (size_t i = 0; i < n; i++) {
		/* -ESTALE: the lease was lost (expired, or the job was
		 * taken back); another attempt owns the job now. */
		if (jobs[i]->done_req.res == -ESTALE)
			w->stale++;
		slot_release(w, jobs[i]);
	}
	return err;
}

static unsigned free_slots(struct jobq_worker *w)
{
	unsigned n = 0;

	for (unsigned i = 0; i < w->capacity; i++)
		if (w->jobs[i].state == SLOT_FREE ||
		    w->jobs[i].state == SLOT_DONE ||
		    w->jobs[i].state == SLOT_SENT)
			n++;
	return n;
}

static bool reserved_or_stop(jobq_t *q, void *arg)
{
	struct jobq_worker *w = arg;

	(void)q;
	return w->res->r.done || atomic_load(&w->stop);
}

static int do_register(struct jobq_worker *w)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	size_t len = 0, at = 0;
	char *names;
	int res;

	if (!w->nhandlers)
		return -EINVAL;
	for (size_t i = 0; i < w->nhandlers; i++)
		len += strlen(w->handlers[i].type) + 1;
	names = malloc(len);
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < w->nhandlers; i++) {
		size_t n = strlen(w->handlers[i].type) + 1;

		memcpy(names + at, w->handlers[i].type, n);
		at += n;
	}
	jobq__op_init(&op, &r, JOBQ_OP_W_REGISTER, names, len);
	op.sqe.arg0 = w->capacity;
	op.sqe.arg1 = (w->daemon ? JOBQ_WF_DAEMON : 0) |
		      (w->builtin ? JOBQ_WF_BUILTIN : 0);
	res = jobq__call(w->q, &op);
	free(names);
	if (res < 0)
		return res;
	w->registered = true;
	return 0;
}

/*
 * Runs the jobs the answered reservation handed out. Returns 0, or the
 * error that ended the reservation when it is not the end of its slice.
 */
static int take_reservation(struct jobq_worker *w)
{
	int err = collect_done(w), res = w->res->r.res;

	w->reserving = false;
	if (err)
		return err;
	for (uint32_t i = 0; i < w->res->r.njobs; i++)
		run_job(w, &w->res->jobs[i]);
	if (res < 0 && res != -ETIMEDOUT && res != -EAGAIN)
		return res;
	return 0;
}

/*
 * A graceful stop: tell the manager, wait for the reservation still out
 * (it ends at the latest after its slice), run what it brought, and send
 * every outcome.
 */
static int stop_gracefully(struct jobq_worker *w)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	struct jobq_req *rp = &r;
	int err;

	jobq__op_init(&op, &r, JOBQ_OP_W_STOPPING, NULL, 0);
	err = send_round(w, &op);
	if (err)
		return err;
	err = jobq__wait(w->q, &rp, 1);
	if (!err && w->reserving) {
		struct jobq_req *rr = &w->res->r;

		err = jobq__wait(w->q, &rr, 1);
		/* However the reservation ended (the manager may refuse it
		 * once we stop), the jobs it brought are ours to run. */
		if (!err)
			err = take_reservation(w) == JOBQ_ECLOSED ? JOBQ_ECLOSED
								  : 0;
		if (!err)
			err = send_round(w, NULL);
	}
	if (!err)
		err = collect_done(w);
	return err;
}

/*
 * The watcher of a daemon worker. While a handler runs nobody else reaps,
 * so it looks for notices itself every WATCH_MS; the socket tells at once
 * when the manager is gone.
 */
static void *watch(void *arg)
{
	struct jobq_worker *w = arg;

	for (;;) {
		struct pollfd p[2] = {
		    {.fd = w->watch_efd, .events = POLLIN},
		    {.fd = w->q->sock, .events = POLLIN},
		};
		bool gone = false;
		int r = poll(p, 2, WATCH_MS);

		if (r > 0 && p[0].revents)
			return NULL;
		if (r > 0 && p[1].revents)
			gone = jobq__socket_dead(w->q);
		if (!gone)
			jobq__poll(w->q);
		if ((gone || atomic_load(&w->stop_notice)) &&
		    atomic_load(&w->in_handler))
			kill(getpid(), SIGKILL);
		if (gone)
			return NULL; /* the worker's loop sees it too */
	}
}

static int watch_start(struct jobq_worker *w)
{
	int err;

	w->watch_efd = eventfd(0, EFD_CLOEXEC);
	if (w->watch_efd < 0)
		return -errno;
	err = pthread_create(&w->watcher, NULL, watch, w);
	if (err) {
		close(w->watch_efd);
		w->watch_efd = -1;
		return -err;
	}
	return 0;
}

static void watch_stop(struct jobq_worker *w)
{
	uint64_t one = 1;

	if (w->watch_efd < 0)
		return;
	if (write(w->watch_efd, &one, sizeof(one)) < 0) {
		/* Cannot fail on a fresh eventfd: the thread is joined. */
	}
	pthread_join(w->watcher, NULL);
	close(w->watch_efd);
	w->watch_efd = -1;
}

/*
 * Leaves nothing of this worker in the handle's request table: outcomes
 * in flight are waited for (answered at once, or failed when the manager
 * is gone), a reservation in flight is handed over to the client.
 */
static void finish_run(struct jobq_worker *w)
{
	watch_stop(w);
	collect_done(w);
	if (w->reserving) {
		w->reserving = false;
		if (jobq__detach(w->q, &w->res->r))
			w->res = NULL;
	}
	jobq__set_notice_hook(w->q, NULL, NULL);
}

int jobq_worker_run(jobq_worker_t *w)
{
	int err = 0;

	if (!w)
		return -EINVAL;
	if (!w->res) {
		w->res = malloc(sizeof(*w->res) +
				w->capacity * sizeof(w->res->jobs[0]));
		if (!w->res)
			return -ENOMEM;
	}
	if (!w->registered) {
		err = do_register(w);
		if (err)
			return err;
	}
	jobq__set_notice_hook(w->q, on_notice, w);
	if (w->daemon && w->watch_efd < 0) {
		err = watch_start(w);
		if (err) {
			jobq__set_notice_hook(w->q, NULL, NULL);
			return err;
		}
	}
	for (;;) {
		struct jobq__op op;
		unsigned want;

		if (atomic_load(&w->stop)) {
			err = stop_gracefully(w);
			break;
		}
		want = free_slots(w);
		if (!w->reserving && want) {
			memset(&w->res->r, 0, sizeof(w->res->r));
			w->res->r.jobs = w->res->jobs;
			w->res->r.maxjobs = want;
			jobq__op_init(&op, &w->res->r, JOBQ_OP_W_RESERVE, NULL,
				      0);
			op.sqe.arg0 = want;
			op.sqe.timeout_ns = RESERVE_SLICE_NS;
			err = send_round(w, &op);
			if (err)
				break;
			w->reserving = true;
		} else {
			err = send_round(w, NULL);
			if (err)
				break;
		}
		err = jobq__wait_until(w->q, reserved_or_stop, w, 0);
		if (err)
			break;
		/* Unless a stop came (its path waits for the reservation
		 * itself), the predicate saw the reservation done under
		 * q->mu, in this thread: its jobs can be read. */
		if (atomic_load(&w->stop))
			continue;
		if (w->reserving) {
			err = take_reservation(w);
			/* A manager that is shutting down refuses to hand out
			 * more (JOBQ_ECLOSED as the answer, the connection
			 * still up): that is a stop too. */
			if (err == JOBQ_ECLOSED && !atomic_load(&w->q->closed))
				atomic_store(&w->stop, 1);
			else if (err)
				break;
		}
	}
	finish_run(w);
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

/* Parses the args as a JSON object; on failure the job fails for good with
 * a message that says what @what expects. */
static json_t *args_object(jobq_job_t *job, const char *what)
{
	const jobq_obj_t *a = jobq_job_args(job);
	json_error_t e;
	json_t *v;

	v = json_loadb(a->data ? a->data : "", a->len, 0, &e);
	if (!v) {
		jobq_job_fail(job, 1, "%s: args are not JSON (%s at %d:%d)",
			      what, e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(v)) {
		jobq_job_fail(job, 1, "%s: args must be a JSON object", what);
		json_decref(v);
		return NULL;
	}
	return v;
}

static int sleep_handler(jobq_job_t *job, void *arg)
{
	char out[64];
	json_t *v, *ms;
	long long total, left;
	int n;

	(void)arg;
	v = args_object(job, "sleep");
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
	total = left = json_integer_value(ms);
	json_decref(v);
	/* In slices, so that a cancel ends it soon. */
	while (left > 0) {
		long long slice = left < SLEEP_SLICE_MS ? left : SLEEP_SLICE_MS;
		struct timespec ts = {
		    .tv_sec = 0,
		    .tv_nsec = (long)slice * 1000000L,
		};

		if (jobq_job_cancelled(job))
			return jobq_job_fail(job, 1,
					     "sleep: cancelled after "
					     "%lld ms",
					     total - left);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			; /* a signal: sleep what is left of the slice */
		left -= slice;
	}
	n = snprintf(out, sizeof(out), "{\"slept_ms\":%lld}", total);
	return jobq_job_succeed(job, JOBQ_T_JSON, out, (size_t)n);
}

static int fail_handler(jobq_job_t *job, void *arg)
{
	json_t *v, *e;
	int rc;

	(void)arg;
	v = args_object(job, "fail");
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

int jobq_worker_builtin(jobq_worker_t *w)
{
	int err;

	if (!w)
		return -EINVAL;
	err = jobq_worker_handle(w, "echo", echo_handler, NULL);
	if (!err)
		err = jobq_worker_handle(w, "sleep", sleep_handler, NULL);
	if (!err)
		err = jobq_worker_handle(w, "fail", fail_handler, NULL);
	if (!err)
		err = jobq__builtins_register(w, w->q);
	if (!err)
		w->builtin = true;
	return err;
}
