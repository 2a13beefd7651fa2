/* SPDX-License-Identifier: MIT */
/*
 * job.c - the jobs API of a client: submit, wait (one, any, all, with a
 * callback), apply, map, results and job state read from the store, and
 * the job controls (cancel, retry, kick, pause, resume, parallel).
 *
 * A job id is a future. Whether it is final is first looked up in the
 * store, which the manager writes before it answers anything, so a job
 * that is already final costs no round trip; otherwise a JOB_WAIT request
 * stays with the manager until the job is final or its timeout passes.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chunk.h"
#include "client.h"

#define DEFAULT_QUEUE	 "default"
#define DEFAULT_LEASE_NS (300 * JOBQ__NSEC_PER_SEC)
#define DEFAULT_RETRIES	 3
#define MAX_AFTER	 64
#define MAX_ATTEMPTS	 65535 /* the record counts attempts in 16 bits */
#define DEFAULT_WINDOW	 256
/*
 * jobq_wait_any() abandons the waits of the jobs that did not finish
 * first. Each of those keeps a completion entry reserved until the manager
 * answers it, so they are sent with at most this timeout and sent again
 * while the caller's own timeout lasts: an abandoned wait lives no longer.
 */
#define ANY_SLICE_NS (2 * JOBQ__NSEC_PER_SEC)
/*
 * At most this many of jobq_wait_any()'s jobs have a wait in flight (the
 * first ones), so that a long list cannot fill the completion ring; the
 * others are looked up in the store after each, then shorter, slice.
 */
#define ANY_MAX		   256
#define ANY_SHORT_SLICE_NS (50 * 1000000LL)
/* Waits sent at once by jobq_wait_all(), well inside the completion ring. */
#define ALL_CHUNK 256
/* Submits jobq_submit_many() prepares at once. */
#define MANY_CHUNK 4096

static const char *const state_names[] = {
    [JOBQ_JOB_WAITING] = "waiting",	[JOBQ_JOB_DELAYED] = "delayed",
    [JOBQ_JOB_READY] = "ready",		[JOBQ_JOB_RUNNING] = "running",
    [JOBQ_JOB_SUCCEEDED] = "succeeded", [JOBQ_JOB_FAILED] = "failed",
    [JOBQ_JOB_DEAD] = "dead",		[JOBQ_JOB_CANCELLED] = "cancelled",
};

const char *jobq_job_state_name(int state)
{
	if (state > 0 && state <= JOBQ_JOB_CANCELLED)
		return state_names[state];
	return "unknown";
}

static bool is_final(int state)
{
	return state == JOBQ_JS_SUCCEEDED || state == JOBQ_JS_DEAD ||
	       state == JOBQ_JS_CANCELLED;
}

/* What jobq_job_wait() returns for a job in final @state. */
static int final_res(int state)
{
	switch (state) {
	case JOBQ_JS_SUCCEEDED:
		return 0;
	case JOBQ_JS_DEAD:
		return JOBQ_EJOBFAILED;
	case JOBQ_JS_CANCELLED:
		return -ECANCELED;
	default:
		return -EPROTO;
	}
}

/* The answer of a JOB_WAIT (res = the final state, or -errno). */
static int wait_res(int res)
{
	if (res < 0)
		return res;
	return is_final(res) ? final_res(res) : -EPROTO;
}

static bool is_wait_timeout(int res)
{
	return res == -ETIMEDOUT || res == -EAGAIN;
}

/* ------------------------------------------------------------------------
 * Submitting.
 */

/*
 * Everything of a submit but the args, checked once: the wire head
 * (args_len filled per job) and the bytes that follow it up to the args.
 */
struct submit_tmpl {
	struct jobq_submit_wire w;
	uint8_t *tail; /* type, unique key, padding, after ids */
	size_t tail_len;
};

static int check_type_name(const char *type, size_t *len)
{
	size_t n;

	if (!type)
		return -EINVAL;
	n = strlen(type);
	if (n < 1 || n > JOBQ_TYPE_MAX)
		return -EINVAL;
	/* Workers list their types comma-separated in the store. */
	if (jobq__check_text(type, n) || memchr(type, ',', n))
		return -EINVAL;
	*len = n;
	return 0;
}

static int tmpl_init(jobq_t *q, const char *type,
		     const struct jobq_submit_opts *o, struct submit_tmpl *t)
{
	static const struct jobq_submit_opts none;
	size_t type_len, unique_len = 0, head, pad;
	uint32_t qid;
	int err, attempts;

	memset(t, 0, sizeof(*t));
	if (!o)
		o = &none;
	if (!jobq__reserved_zero(o->reserved, 5) || o->reserved0)
		return -EINVAL;
	err = check_type_name(type, &type_len);
	if (err)
		return err;
	if (o->unique) {
		unique_len = strlen(o->unique);
		if (unique_len < 1 || unique_len > JOBQ_KEY_MAX)
			return -EINVAL;
	}
	if (o->nafter > MAX_AFTER || (o->nafter && !o->after))
		return -EINVAL;
	if (isnan(o->delay) || o->delay < 0 || isnan(o->timeout) ||
	    o->timeout < 0)
		return -EINVAL;
	for (size_t i = 0; i < o->nafter; i++)
		if (!o->after[i])
			return -ENOENT; /* ids start at 1 */
	if (o->no_retry || o->retries < 0)
		attempts = 1;
	else if (o->retries == 0)
		attempts = DEFAULT_RETRIES + 1;
	else
		attempts =
		    o->retries >= MAX_ATTEMPTS ? MAX_ATTEMPTS : o->retries + 1;
	err = jobq__queue_resolve(q, o->queue ? o->queue : DEFAULT_QUEUE, &qid);
	if (err)
		return err;

	t->w.type_len = (uint32_t)type_len;
	t->w.unique_len = (uint32_t)unique_len;
	t->w.nafter = (uint32_t)o->nafter;
	t->w.priority = o->priority;
	t->w.max_attempts = (uint32_t)attempts;
	t->w.queue_id = qid;
	t->w.flags = o->durable ? JOBQ_SUBMIT_DURABLE : 0;
	t->w.delay_ns = o->delay > 0 ? jobq__timeout_ns(o->delay) : 0;
	if (t->w.delay_ns < 0)
		return -EINVAL; /* beyond what 64-bit nanoseconds hold */
	t->w.lease_ns = o->timeout > 0 ? jobq__timeout_ns(o->timeout)
				       : (int64_t)DEFAULT_LEASE_NS;
	if (t->w.lease_ns <= 0)
		return -EINVAL;

	/* The after ids are 8-byte aligned from the start of the wire head;
	 * without ids there is no padding (as the manager reads it). */
	head = sizeof(t->w) + type_len + unique_len;
	pad = o->nafter ? (8 - head % 8) % 8 : 0;
	t->tail_len =
	    type_len + unique_len + pad + o->nafter * sizeof(uint64_t);
	t->tail = calloc(1, t->tail_len);
	if (!t->tail)
		return -ENOMEM;
	memcpy(t->tail, type, type_len);
	if (unique_len)
		memcpy(t->tail + type_len, o->unique, unique_len);
	if (o->nafter)
		memcpy(t->tail + type_len + unique_len + pad, o->after,
		       o->nafter * sizeof(uint64_t));
	return 0;
}

static void tmpl_free(struct submit_tmpl *t)
{
	free(t->tail);
	t->tail = NULL;
}

static int check_args(jobq_t *q, const void *args, size_t len)
{
	if (len && !args)
		return -EINVAL;
	if (len > q->max_object || len > UINT32_MAX)
		return -E2BIG;
	return 0;
}

/* JSON args must be JSON: a worker that parses them must not be the
 * first to find out. Returns 0 or -EINVAL. */
static int check_json(const void *args, size_t len)
{
	json_error_t e;
	json_t *v = json_loadb(len ? args : "", len,
			       JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

	if (!v)
		return -EINVAL;
	json_decref(v);
	return 0;
}

static int check_obj(jobq_t *q, const jobq_obj_t *o)
{
	int err = check_args(q, o->data, o->len);

	if (!err && o->type == JOBQ_T_JSON)
		err = check_json(o->data, o->len);
	return err;
}

/* Builds the op of one submit; @w is where its wire head lives until the
 * op is submitted (the payload is copied into the arena then). */
static void submit_op(struct jobq__op *op, struct jobq_req *r,
		      const struct submit_tmpl *t, struct jobq_submit_wire *w,
		      uint32_t args_type, const void *args, size_t len)
{
	*w = t->w;
	w->args_len = (uint32_t)len;
	jobq__op_init(op, r, JOBQ_OP_JOB_SUBMIT, w, sizeof(*w));
	op->iov[1].iov_base = t->tail;
	op->iov[1].iov_len = t->tail_len;
	op->iov[2].iov_base = (void *)args;
	op->iov[2].iov_len = len;
	op->niov = 3;
	op->sqe.type = args_type;
}

/* jobq_submit() of args that were checked (@json_ok: or that are JSON,
 * as jansson wrote them). */
static int submit(jobq_t *q, const char *type, uint32_t args_type,
		  const void *args, size_t len,
		  const struct jobq_submit_opts *opts, uint64_t *id,
		  bool json_ok)
{
	struct jobq_submit_wire w;
	struct submit_tmpl t;
	struct jobq_req r = {0};
	struct jobq__op op;
	int err;

	err = check_args(q, args, len);
	if (!err && args_type == JOBQ_T_JSON && !json_ok)
		err = check_json(args, len);
	if (err)
		return err;
	err = tmpl_init(q, type, opts, &t);
	if (err)
		return err;
	submit_op(&op, &r, &t, &w, args_type, args, len);
	err = jobq__call(q, &op);
	tmpl_free(&t);
	if (err < 0)
		return err;
	if (id)
		*id = r.val;
	return err > 0 ? 1 : 0;
}

int jobq_submit(jobq_t *q, const char *type, uint32_t args_type,
		const void *args, size_t len,
		const struct jobq_submit_opts *opts, uint64_t *id)
{
	return submit(q, type, args_type, args, len, opts, id, false);
}

int jobq_submit_json(jobq_t *q, const char *type, const struct json_t *args,
		     const struct jobq_submit_opts *opts, uint64_t *id)
{
	char *s;
	int err;

	if (!args)
		return -EINVAL;
	s = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return -ENOMEM;
	err = submit(q, type, JOBQ_T_JSON, s, strlen(s), opts, id, true);
	free(s);
	return err;
}

int jobq_submit_many(jobq_t *q, const char *type, const jobq_obj_t *args,
		     size_t n, const struct jobq_submit_opts *opts,
		     uint64_t *ids)
{
	struct jobq_submit_wire *ws = NULL;
	struct jobq_req *reqs = NULL, **rp = NULL;
	struct jobq__op *ops = NULL;
	struct submit_tmpl t;
	size_t ok, done = 0, chunk;
	int err;

	if (!n)
		return 0;
	if (!args || !ids || n > INT32_MAX)
		return -EINVAL;
	/* Only a leading run of acceptable jobs is sent, so that what was
	 * submitted is always "the first ones". */
	for (ok = 0; ok < n; ok++)
		if (check_obj(q, &args[ok]))
			break;
	if (!ok)
		return check_obj(q, &args[0]);
	err = tmpl_init(q, type, opts, &t);
	if (err)
		return err;
	/* The request records of a chunk at a time: a batch of millions
	 * must not cost hundreds of bytes per job at once. */
	chunk = ok < MANY_CHUNK ? ok : MANY_CHUNK;
	ws = calloc(chunk, sizeof(*ws));
	reqs = calloc(chunk, sizeof(*reqs));
	rp = calloc(chunk, sizeof(*rp));
	ops = calloc(chunk, sizeof(*ops));
	if (!ws || !reqs || !rp || !ops) {
		err = -ENOMEM;
		goto out;
	}
	while (done < ok) {
		size_t k = ok - done < chunk ? ok - done : chunk, i;
		int sent;

		for (i = 0; i < k; i++) {
			const jobq_obj_t *a = &args[done + i];

			memset(&reqs[i], 0, sizeof(reqs[i]));
			submit_op(&ops[i], &reqs[i], &t, &ws[i], a->type,
				  a->data, a->len);
			rp[i] = &reqs[i];
		}
		/* One submission: the entries go out with one tail store
		 * and one wake-up, in as few pieces as the rings allow. */
		sent = jobq__submit(q, ops, k);
		if (sent < 0) {
			err = done ? 0 : sent;
			goto out;
		}
		jobq__wait(q, rp, (size_t)sent);
		for (i = 0; i < (size_t)sent; i++) {
			if (reqs[i].res < 0)
				break;
			ids[done + i] = reqs[i].val;
		}
		if (i < k) {
			err = done + i ? 0 : reqs[i < (size_t)sent ? i : 0].res;
			done += i;
			goto out;
		}
		done += k;
	}
	err = 0;
out:
	tmpl_free(&t);
	free(ws);
	free(reqs);
	free(rp);
	free(ops);
	return done ? (int)done : err;
}

/* ------------------------------------------------------------------------
 * Waiting.
 */

/* The job's state from the store: 0 and *state, or -ENOENT. */
static int store_state(jobq_t *q, uint64_t id, int *state)
{
	struct jobq_job_rec c;
	int err = jobq__job_lookup(q, id, &c, 0, NULL);

	if (!err)
		*state = c.state;
	return err;
}

/*
 * Whether final @state, read from the store, answers a wait. Not with
 * jobqd --backend (jobs_shared): the record is this host's copy, and
 * another host may have retried or kicked the job since; a caller that
 * saw that retry answered must wait for the new run, not get the old
 * outcome. The wait goes to jobqd then, which confirms a final copy
 * against PostgreSQL before it answers.
 */
static bool store_final(jobq_t *q, int state)
{
	return is_final(state) && !q->sh->jobs_shared;
}

static void wait_op(struct jobq__op *op, struct jobq_req *r, uint64_t id,
		    int64_t tmo)
{
	jobq__op_init(op, r, JOBQ_OP_JOB_WAIT, NULL, 0);
	op->sqe.arg0 = id;
	op->sqe.timeout_ns = tmo;
}

int jobq_job_wait(jobq_t *q, uint64_t id, double timeout)
{
	int64_t tmo = jobq__timeout_ns(timeout);
	struct jobq_req r = {0};
	struct jobq__op op;
	int state, res;

	if (tmo == JOBQ__TIMEOUT_BAD)
		return -EINVAL;
	/* An unknown id still goes to the manager, which has the last word
	 * (and the store may lack the job tables). */
	if (!store_state(q, id, &state)) {
		if (store_final(q, state))
			return final_res(state);
		if (tmo == 0 && !is_final(state))
			return -EAGAIN;
	}
	wait_op(&op, &r, id, tmo);
	res = jobq__call(q, &op);
	return wait_res(res);
}

struct any_arg {
	struct jobq_req **reqs;
	size_t n;
};

static bool any_done(jobq_t *q, void *arg)
{
	struct any_arg *a = arg;

	(void)q;
	for (size_t i = 0; i < a->n; i++)
		if (a->reqs[i] && a->reqs[i]->done)
			return true;
	return false;
}

/* Lets go of the waits still in flight; frees the finished ones. */
static void release_reqs(jobq_t *q, struct jobq_req **reqs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (reqs[i] && !jobq__detach(q, reqs[i]))
			free(reqs[i]);
		reqs[i] = NULL;
	}
}

int jobq_wait_any(jobq_t *q, const uint64_t *ids, size_t n, double timeout,
		  size_t *which)
{
	int64_t tmo = jobq__timeout_ns(timeout);
	uint64_t deadline = tmo > 0 ? jobq__now_ns() + (uint64_t)tmo : 0;
	size_t cap = n > ANY_MAX ? ANY_MAX : n;
	struct jobq_req **reqs;
	struct jobq__op *ops;
	size_t *idx;
	int err = 0;

	if (!n || !ids || tmo == JOBQ__TIMEOUT_BAD)
		return -EINVAL;
	reqs = calloc(cap, sizeof(*reqs));
	ops = calloc(cap, sizeof(*ops));
	/* The ids watched, then (cap more) the final copies to confirm. */
	idx = calloc(2 * cap, sizeof(*idx));
	if (!reqs || !ops || !idx) {
		free(reqs);
		free(ops);
		free(idx);
		return -ENOMEM;
	}
	for (;;) {
		struct any_arg a = {reqs, 0};
		int64_t slice = n > ANY_MAX ? ANY_SHORT_SLICE_NS : ANY_SLICE_NS;
		size_t i, k = 0, nconf = 0, c = 0, others;
		size_t *conf = idx + cap;
		int sent;

		for (i = 0; i < n; i++) {
			int state;

			if (store_state(q, ids[i], &state) || !is_final(state))
				continue;
			if (store_final(q, state)) {
				if (which)
					*which = i;
				err = final_res(state);
				goto out;
			}
			if (nconf < cap)
				conf[nconf++] = i;
		}
		if (tmo == 0 && !nconf) {
			err = -EAGAIN;
			goto out;
		}
		if (deadline) {
			uint64_t now = jobq__now_ns();

			if (now >= deadline) {
				err = -ETIMEDOUT;
				goto out;
			}
			if (deadline - now < (uint64_t)slice)
				slice = (int64_t)(deadline - now);
		}
		/* Watched, in input order: the final copies jobqd is to
		 * confirm (jobs_shared), and the first of the others; only
		 * the copies when the caller takes one look. */
		others = tmo == 0 ? 0 : cap - nconf;
		for (i = 0; i < n && k < cap; i++) {
			if (c < nconf && conf[c] == i) {
				idx[k++] = i;
				c++;
			} else if (others) {
				idx[k++] = i;
				others--;
			}
		}
		for (i = 0; i < k; i++) {
			reqs[i] = calloc(1, sizeof(*reqs[i]));
			if (!reqs[i]) {
				k = i;
				err = -ENOMEM;
				break;
			}
			wait_op(&ops[i], reqs[i], ids[idx[i]],
				tmo == 0 ? 0 : slice);
		}
		sent = k ? jobq__submit(q, ops, k) : err;
		if (sent < 0) {
			err = sent;
			for (i = 0; i < k; i++) {
				free(reqs[i]);
				reqs[i] = NULL;
			}
			goto out;
		}
		for (i = (size_t)sent; i < k; i++) {
			free(reqs[i]);
			reqs[i] = NULL;
		}
		a.n = (size_t)sent;
		err = jobq__wait_until(q, any_done, &a, 0);
		if (err) {
			release_reqs(q, reqs, a.n);
			goto out;
		}
		/* The first finished one in input order that is an answer,
		 * not the end of a slice. */
		pthread_mutex_lock(&q->mu);
		for (i = 0; i < a.n; i++)
			if (reqs[i]->done && !is_wait_timeout(reqs[i]->res))
				break;
		if (i < a.n)
			err = wait_res(reqs[i]->res);
		pthread_mutex_unlock(&q->mu);
		release_reqs(q, reqs, a.n);
		if (i < a.n) {
			if (which)
				*which = idx[i];
			goto out;
		}
		err = 0;
	}
out:
	free(reqs);
	free(ops);
	free(idx);
	return err;
}

int jobq_wait_all(jobq_t *q, const uint64_t *ids, size_t n, double timeout)
{
	int64_t tmo = jobq__timeout_ns(timeout);
	uint64_t deadline = tmo > 0 ? jobq__now_ns() + (uint64_t)tmo : 0;
	struct jobq_req reqs[ALL_CHUNK], *rp[ALL_CHUNK];
	struct jobq__op ops[ALL_CHUNK];
	size_t idx[ALL_CHUNK];
	int first = 0;
	size_t i = 0;

	if ((n && !ids) || tmo == JOBQ__TIMEOUT_BAD)
		return -EINVAL;
	while (i < n) {
		size_t k = 0;
		int64_t left = tmo;
		int sent;

		/* The final ones cost nothing; the others wait in chunks,
		 * each with what is left of the caller's timeout. */
		for (; i < n && k < ALL_CHUNK; i++) {
			int state;

			if (!store_state(q, ids[i], &state)) {
				if (store_final(q, state)) {
					if (!first)
						first = final_res(state);
					continue;
				}
				if (tmo == 0 && !is_final(state)) {
					if (!first)
						first = -EAGAIN;
					continue;
				}
			}
			idx[k++] = i;
		}
		if (!k)
			continue;
		if (deadline) {
			uint64_t now = jobq__now_ns();

			/* 1 ns, not 0: past the deadline the answer is
			 * -ETIMEDOUT, as asked, not try-once's -EAGAIN. */
			left = now >= deadline ? 1 : (int64_t)(deadline - now);
		}
		for (size_t j = 0; j < k; j++) {
			memset(&reqs[j], 0, sizeof(reqs[j]));
			wait_op(&ops[j], &reqs[j], ids[idx[j]], left);
			rp[j] = &reqs[j];
		}
		sent = jobq__submit(q, ops, k);
		if (sent < 0)
			return first ? first : sent;
		jobq__wait(q, rp, (size_t)sent);
		/* Input order: a chunk holds increasing indexes. */
		for (size_t j = 0; j < (size_t)sent && !first; j++)
			first = wait_res(reqs[j].res);
		if ((size_t)sent < k && !first)
			first = -ENOMEM;
	}
	return first;
}

/* A done callback and its JOB_WAIT, in one allocation: the client frees
 * the request (the first member) after the callback ran. */
struct on_done {
	struct jobq_req r;
	jobq_job_cb cb;
	void *arg;
	uint64_t id;
};

static void on_done_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct on_done *d = arg;

	(void)obj;
	d->cb(q, d->id, wait_res(res), d->arg);
}

int jobq_job_on_done(jobq_t *q, uint64_t id, jobq_job_cb cb, void *arg)
{
	struct on_done *d;
	struct jobq__op op;
	int n;

	if (!cb)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cb = cb;
	d->arg = arg;
	d->id = id;
	d->r.async = true;
	d->r.keep_res = true;
	d->r.cb = on_done_cb;
	d->r.arg = d;
	wait_op(&op, &d->r, id, -1);
	n = jobq__submit(q, &op, 1);
	if (n < 0) {
		free(d);
		return n;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Results and state from the store.
 */
int jobq_job_result(jobq_t *q, uint64_t id, jobq_obj_t *out)
{
	struct jobq_job_rec c;
	jobq_obj_t o = {0};
	int err;

	if (!out)
		return -EINVAL;
	err = jobq__job_lookup(q, id, &c, JOBQ__ITEM_RESULT, &o);
	if (err)
		return err;
	if (!is_final(c.state)) {
		jobq_obj_free(&o);
		return -EAGAIN;
	}
	*out = o;
	return 0;
}

int jobq_job_args_of(jobq_t *q, uint64_t id, jobq_obj_t *out)
{
	struct jobq_job_rec c;

	if (!out)
		return -EINVAL;
	return jobq__job_lookup(q, id, &c, JOBQ__ITEM_ARGS, out);
}

static void fill_info(jobq_t *q, const struct jobq_job_rec *c,
		      struct jobq_job_info *out)
{
	char qname[JOBQ_NAME_MAX + 1];
	uint32_t workers = 0;

	memset(out, 0, sizeof(*out));
	out->id = c->id;
	if (jobq__type_read(q, c->type_id, out->type, &workers))
		out->type[0] = '\0';
	if (!jobq__queue_name(q, c->queue_id, qname))
		memcpy(out->queue, qname, sizeof(qname));
	out->state = c->state;
	out->priority = c->priority;
	out->attempts = c->attempts;
	out->max_attempts = c->max_attempts;
	out->worker = c->worker_pid;
	out->progress = c->progress / 100.0;
	out->created_ns = c->created_ns;
	out->started_ns = c->started_ns;
	out->finished_ns = c->finished_ns;
	out->run_at_ns = c->run_at_ns;
	out->lease = (double)c->lease_ns / 1e9;
	out->type_has_worker = workers > 0;
}

int jobq_job_info(jobq_t *q, uint64_t id, struct jobq_job_info *out)
{
	struct jobq_job_rec c;
	int err;

	if (!out)
		return -EINVAL;
	err = jobq__job_lookup(q, id, &c, 0, NULL);
	if (err)
		return err;
	fill_info(q, &c, out);
	return 0;
}

/* A job found by the scan of jobq_jobs(): small, so that a large table
 * costs little memory before the limit applies. */
struct found {
	uint64_t id;
	uint32_t rec;
};

static int by_id_desc(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

int jobq_jobs_find(jobq_t *q, const struct jobq_job_filter *flt,
		   struct jobq_job_info **out, size_t *n, size_t *total)
{
	static const struct jobq_job_filter any;
	uint32_t max = jobq__job_records(q), type_id = UINT32_MAX;
	uint32_t queue_id = UINT32_MAX;
	uint64_t now = jobq__realtime_ns(), newest = UINT64_MAX, oldest = 0;
	struct jobq_job_info *v;
	struct jobq_job_rec c;
	struct found *f = NULL;
	size_t nf = 0, capf = 0, k = 0, skip;

	if (!out || !n)
		return -EINVAL;
	if (!flt)
		flt = &any;
	if (!jobq__reserved_zero(flt->reserved, 6) || flt->state < 0 ||
	    flt->state > JOBQ_JOB_CANCELLED || !(flt->min_age >= 0) ||
	    !(flt->max_age >= 0))
		return -EINVAL;
	if (flt->type) {
		char name[JOBQ_TYPE_MAX + 1];

		/* Type ids are never reused: find the one of that name. */
		for (uint32_t t = 0; !jobq__type_read(q, t, name, NULL); t++)
			if (!strcmp(name, flt->type)) {
				type_id = t;
				break;
			}
		if (type_id == UINT32_MAX)
			max = 0;
	}
	if (flt->queue && jobq__store_find_queue(q, flt->queue, &queue_id))
		max = 0;
	/* Ages bound the creation time: at least min_age ago, at most
	 * max_age ago. */
	if (flt->min_age > 0)
		newest = now - (uint64_t)(flt->min_age * 1e9);
	if (flt->max_age > 0 && (uint64_t)(flt->max_age * 1e9) < now)
		oldest = now - (uint64_t)(flt->max_age * 1e9);
	for (uint32_t i = 0; i < max; i++) {
		if (jobq__job_scan(q, i, &c))
			continue;
		if ((flt->state && c.state != flt->state) ||
		    (flt->type && c.type_id != type_id) ||
		    (flt->queue && c.queue_id != (queue_id & JOBQ_QID_MASK)) ||
		    c.created_ns > newest || c.created_ns < oldest)
			continue;
		if (nf == capf) {
			size_t nc = capf ? 2 * capf : 256;
			struct found *nfp = realloc(f, nc * sizeof(*f));

			if (!nfp) {
				free(f);
				return -ENOMEM;
			}
			f = nfp;
			capf = nc;
		}
		f[nf].id = c.id;
		f[nf++].rec = i;
	}
	if (nf)
		qsort(f, nf, sizeof(*f), by_id_desc);
	if (total)
		*total = nf;
	skip = flt->offset < nf ? flt->offset : nf;
	nf -= skip;
	if (flt->limit && nf > flt->limit)
		nf = flt->limit;
	/* One spare element, so that an empty list is still a pointer the
	 * caller can free(). */
	v = calloc(nf + 1, sizeof(*v));
	if (!v) {
		free(f);
		return -ENOMEM;
	}
	for (size_t i = skip; i < skip + nf; i++) {
		/* Read again: a job freed since the scan is left out. */
		if (jobq__job_scan(q, f[i].rec, &c) || c.id != f[i].id)
			continue;
		fill_info(q, &c, &v[k++]);
	}
	free(f);
	*out = v;
	*n = k;
	return 0;
}

int jobq_jobs(jobq_t *q, int state, const char *type, size_t limit,
	      struct jobq_job_info **out, size_t *n)
{
	struct jobq_job_filter flt = {
	    .state = state, .type = type, .limit = limit};

	return jobq_jobs_find(q, &flt, out, n, NULL);
}

int jobq_job_last_error(jobq_t *q, uint64_t id, jobq_obj_t *out)
{
	struct jobq_job_rec c;
	jobq_obj_t o = {0};
	int err;

	if (!out)
		return -EINVAL;
	err = jobq__job_lookup(q, id, &c, JOBQ__ITEM_RESULT, &o);
	if (err)
		return err;
	/* Until a job is final its result slot holds the error text of
	 * the last failed attempt, if any attempt failed. */
	if (c.state == JOBQ_JS_SUCCEEDED || !o.data || !c.attempts) {
		jobq_obj_free(&o);
		return -ENOENT;
	}
	*out = o;
	return 0;
}

int jobq_workers(jobq_t *q, struct jobq_worker_info **out, size_t *n)
{
	uint32_t max = jobq__worker_records(q);
	struct jobq_worker_info *v;
	struct jobq_worker_rec c;
	size_t k = 0;

	if (!out || !n)
		return -EINVAL;
	v = calloc((size_t)max + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < max; i++) {
		struct jobq_worker_info *wi = &v[k];

		if (jobq__worker_read(q, i, &c))
			continue;
		wi->pid = c.pid;
		memcpy(wi->types, c.types, sizeof(wi->types));
		wi->capacity = c.capacity;
		wi->running = c.running;
		wi->done = c.done;
		wi->failed = c.failed;
		wi->started_ns = c.started_ns;
		wi->supervised = !!(c.flags & JOBQ_WF_SUPERVISED);
		wi->daemon = !!(c.flags & JOBQ_WF_DAEMON);
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

/* ------------------------------------------------------------------------
 * Submit and wait.
 */

/* A final job's result or error text into *out; an empty object when it
 * cannot be read (expired meanwhile). */
/*
 * take_result - the result of job @id, final with @res, into *out.
 * Returns @res, or -ENODATA when the job is gone before its result was
 * read (jobqd --keep ran out): an empty result must not pass for one.
 */
static int take_result(jobq_t *q, uint64_t id, jobq_obj_t *out, int res)
{
	if (!jobq_job_result(q, id, out))
		return res;
	memset(out, 0, sizeof(*out));
	return res ? res : -ENODATA;
}

static bool has_result(int res)
{
	return res == 0 || res == JOBQ_EJOBFAILED || res == -ECANCELED;
}

int jobq_apply(jobq_t *q, const char *type, uint32_t args_type,
	       const void *args, size_t len,
	       const struct jobq_submit_opts *opts, jobq_obj_t *out,
	       double timeout)
{
	uint64_t id;
	int err;

	if (out)
		memset(out, 0, sizeof(*out));
	err = jobq_submit(q, type, args_type, args, len, opts, &id);
	if (err < 0)
		return err;
	err = jobq_job_wait(q, id, timeout);
	if (out && has_result(err))
		err = take_result(q, id, out, err);
	return err;
}

/* The text of @err as a result; without memory, none. */
static void text_obj(jobq_obj_t *o, int err)
{
	const char *s = jobq_strerror(err);

	jobq__obj_set(o, JOBQ_T_TEXT, s, strlen(s));
}

/*
 * One job of jobq_map() in flight: first its JOB_SUBMIT, then its
 * JOB_WAIT, then M_DONE until its result is copied out. A slot with send
 * set has an op waiting to go out; otherwise its request is in flight.
 */
enum { M_IDLE, M_SUBMIT, M_WAIT, M_DONE };

struct mslot {
	struct jobq_req r;
	struct jobq_submit_wire w;
	size_t idx;
	uint64_t id;
	int phase;
	bool send;
};

struct map_arg {
	struct mslot *s;
	size_t n;
};

static bool map_any_done(jobq_t *q, void *arg)
{
	struct map_arg *a = arg;

	(void)q;
	for (size_t i = 0; i < a->n; i++)
		if (a->s[i].phase != M_IDLE && !a->s[i].send && a->s[i].r.done)
			return true;
	return false;
}

/*
 * map_run - jobq_map() with the outcome of each job in codes[i] (0 or a
 * failure, whose results[i] is then its error text). Returns 0, or -errno
 * when it could not start (nothing is then in flight).
 */
static int map_run(jobq_t *q, const char *type, const jobq_obj_t *inputs,
		   size_t n, size_t window, const struct jobq_submit_opts *opts,
		   jobq_obj_t *results, int64_t tmo, int *codes)
{
	uint64_t deadline = tmo > 0 ? jobq__now_ns() + (uint64_t)tmo : 0;
	struct submit_tmpl t;
	struct mslot *s = NULL, **order = NULL;
	struct jobq__op *ops = NULL;
	size_t next = 0, busy = 0;
	int err;
	bool closed = false;

	memset(results, 0, n * sizeof(*results));
	memset(codes, 0, n * sizeof(*codes));
	if (!window)
		window = DEFAULT_WINDOW;
	if (window > n)
		window = n;
	/* Each slot has at most one request in flight; the completion ring
	 * bounds how many can be. */
	if (window > q->cq_entries / 2)
		window = q->cq_entries / 2;
	err = tmpl_init(q, type, opts, &t);
	if (err)
		return err;
	s = calloc(window, sizeof(*s));
	order = calloc(window, sizeof(*order));
	ops = calloc(window, sizeof(*ops));
	if (!s || !order || !ops) {
		err = -ENOMEM;
		goto out;
	}

	while (next < n || busy) {
		struct map_arg a = {s, window};
		uint64_t now = deadline ? jobq__now_ns() : 0;
		int64_t left = tmo;
		size_t nops = 0;
		int sent = 0;

		/* What is left of the timeout, for this round's waits; 1 ns,
		 * not 0, past the deadline: the answer is then -ETIMEDOUT, as
		 * asked, not try-once's -EAGAIN. */
		if (deadline)
			left = now >= deadline ? 1 : (int64_t)(deadline - now);

		/* Fill idle slots with the next inputs. */
		for (size_t i = 0; i < window && next < n; i++) {
			struct mslot *m = &s[i];
			const jobq_obj_t *in = &inputs[next];

			if (m->phase != M_IDLE)
				continue;
			m->idx = next++;
			err = check_args(q, in->data, in->len);
			if (!err && closed)
				err = JOBQ_ECLOSED;
			if (!err && deadline && now >= deadline)
				err = -ETIMEDOUT;
			if (err) {
				codes[m->idx] = err;
				text_obj(&results[m->idx], err);
				continue;
			}
			m->phase = M_SUBMIT;
			m->send = true;
			busy++;
		}
		/* Every op ready to go, in one submission. */
		for (size_t i = 0; i < window; i++) {
			struct mslot *m = &s[i];

			if (!m->send)
				continue;
			memset(&m->r, 0, sizeof(m->r));
			if (m->phase == M_SUBMIT) {
				const jobq_obj_t *in = &inputs[m->idx];

				submit_op(&ops[nops], &m->r, &t, &m->w,
					  in->type, in->data, in->len);
			} else {
				wait_op(&ops[nops], &m->r, m->id, left);
			}
			order[nops++] = m;
		}
		if (nops) {
			sent = jobq__submit(q, ops, nops);
			if (sent < 0) {
				/* The first op failed: that job fails, the
				 * rest go out in the next round. */
				struct mslot *m = order[0];

				codes[m->idx] = sent;
				text_obj(&results[m->idx], sent);
				m->send = false;
				m->phase = M_IDLE;
				busy--;
				if (sent == JOBQ_ECLOSED)
					closed = true;
				sent = 0;
			}
			for (int i = 0; i < sent; i++)
				order[i]->send = false;
		}
		if (!busy)
			continue;
		if (sent || !nops) {
			err = jobq__wait_until(q, map_any_done, &a, 0);
			if (err == JOBQ_ECLOSED)
				closed = true;
		}

		pthread_mutex_lock(&q->mu);
		for (size_t i = 0; i < window; i++) {
			struct mslot *m = &s[i];
			int res;

			if (m->phase == M_IDLE || m->send || !m->r.done)
				continue;
			res = m->r.res;
			if (m->phase == M_SUBMIT && res >= 0) {
				m->id = m->r.val;
				m->phase = M_WAIT;
				m->send = !closed;
				if (!closed)
					continue;
				res = JOBQ_ECLOSED;
			}
			if (m->phase == M_WAIT)
				codes[m->idx] = wait_res(res);
			else
				codes[m->idx] = res;
			if (m->phase == M_SUBMIT)
				m->id = 0;
			m->phase = M_DONE;
		}
		pthread_mutex_unlock(&q->mu);
		/* Results are read outside q->mu: the store needs no lock. */
		for (size_t i = 0; i < window; i++) {
			struct mslot *m = &s[i];

			if (m->phase != M_DONE)
				continue;
			if (m->id && has_result(codes[m->idx]))
				codes[m->idx] = take_result(
				    q, m->id, &results[m->idx], codes[m->idx]);
			else
				text_obj(&results[m->idx], codes[m->idx]);
			m->phase = M_IDLE;
			busy--;
		}
	}
	err = 0;
out:
	tmpl_free(&t);
	free(s);
	free(order);
	free(ops);
	return err;
}

/* The first failure in input order, or 0. */
static int first_code(const int *codes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (codes[i])
			return codes[i];
	return 0;
}

int jobq_map(jobq_t *q, const char *type, const jobq_obj_t *inputs, size_t n,
	     size_t window, const struct jobq_submit_opts *opts,
	     jobq_obj_t *results, double timeout)
{
	int64_t tmo = jobq__timeout_ns(timeout);
	int *codes, err;

	if (!n)
		return 0;
	if (!inputs || !results || tmo == JOBQ__TIMEOUT_BAD)
		return -EINVAL;
	codes = calloc(n, sizeof(*codes));
	if (!codes)
		return -ENOMEM;
	err = map_run(q, type, inputs, n, window, opts, results, tmo, codes);
	if (!err)
		err = first_code(codes, n);
	free(codes);
	return err;
}

/*
 * Packs inputs[from..] into @b until it holds @chunk of them or the next
 * would take it past @max bytes; an input refused by check_args() gets
 * its code at once and owner SIZE_MAX. Returns the index after the last
 * input looked at, or -ENOMEM.
 */
static ssize_t pack_chunk(jobq_t *q, const jobq_obj_t *inputs, size_t n,
			  size_t from, size_t chunk, size_t max, size_t c,
			  struct jobq__chunk_buf *b, size_t *owner, int *codes,
			  jobq_obj_t *results)
{
	size_t i;

	for (i = from; i < n && b->count < chunk; i++) {
		const jobq_obj_t *in = &inputs[i];
		size_t len = b->len ? b->len : JOBQ__CHUNK_HEAD;
		int err = check_args(q, in->data, in->len);

		if (!err && jobq__chunk_size(in->len) > max - len) {
			if (b->count)
				break; /* the next chunk takes it */
			err = -E2BIG;
		}
		if (err) {
			codes[i] = err;
			owner[i] = SIZE_MAX;
			text_obj(&results[i], err);
			continue;
		}
		if (jobq__chunk_add(b, 0, in->type, in->data, in->len))
			return -ENOMEM;
		owner[i] = c;
	}
	return (ssize_t)i;
}

/* Hands chunk result @res (code @code) out to the inputs @owner gives
 * chunk @c, from input @from on; returns the index after them. */
static size_t unpack_chunk(size_t c, int code, const jobq_obj_t *res,
			   size_t from, size_t n, const size_t *owner,
			   int *codes, jobq_obj_t *results)
{
	struct jobq__chunk_iter it;
	int bad = code;
	size_t i;

	if (!bad && (res->type != JOBQ_T_CHUNK ||
		     jobq__chunk_open(&it, res->data, res->len)))
		bad = -EPROTO; /* a worker that does not know chunks */
	for (i = from; i < n && (owner[i] == c || owner[i] == SIZE_MAX); i++) {
		jobq_obj_t item;
		int32_t icode;
		int r;

		if (owner[i] != c)
			continue;
		if (!bad) {
			r = jobq__chunk_next(&it, &icode, &item);
			if (r != 1)
				bad = -EPROTO;
		}
		if (bad) {
			codes[i] = bad;
			/* A chunk that failed as a whole: its error text
			 * for each of its inputs. */
			if (!code || !res->data ||
			    jobq__obj_set(&results[i], res->type, res->data,
					  res->len))
				text_obj(&results[i], bad);
			continue;
		}
		codes[i] = icode;
		if (jobq__obj_set(&results[i], item.type, item.data, item.len))
			codes[i] = -ENOMEM; /* results[i] stays empty */
	}
	return i;
}

int jobq_map_chunked(jobq_t *q, const char *type, const jobq_obj_t *inputs,
		     size_t n, size_t chunk, size_t window,
		     const struct jobq_submit_opts *opts, jobq_obj_t *results,
		     double timeout)
{
	int64_t tmo = jobq__timeout_ns(timeout);
	size_t max = q->max_object < UINT32_MAX ? q->max_object : UINT32_MAX;
	size_t *owner = NULL, nchunks = 0, cap = 0, next = 0;
	jobq_obj_t *chunks = NULL, *cres = NULL;
	int *codes = NULL, *ccodes = NULL, err = -ENOMEM;

	if (chunk <= 1)
		return jobq_map(q, type, inputs, n, window, opts, results,
				timeout);
	if (!n)
		return 0;
	if (!inputs || !results || tmo == JOBQ__TIMEOUT_BAD)
		return -EINVAL;
	memset(results, 0, n * sizeof(*results));
	owner = calloc(n, sizeof(*owner));
	codes = calloc(n, sizeof(*codes));
	if (!owner || !codes)
		goto out;
	while (next < n) {
		struct jobq__chunk_buf b = {0};
		ssize_t end;

		if (nchunks == cap) {
			size_t ncap = cap ? 2 * cap : n / chunk + 1;
			jobq_obj_t *p = realloc(chunks, ncap * sizeof(*p));

			if (!p)
				goto out;
			chunks = p;
			cap = ncap;
		}
		end = pack_chunk(q, inputs, n, next, chunk, max, nchunks, &b,
				 owner, codes, results);
		if (end < 0 || (b.count && jobq__chunk_finish(&b))) {
			jobq__chunk_buf_free(&b);
			goto out;
		}
		next = (size_t)end;
		if (!b.count)
			continue; /* only refused inputs: no chunk */
		chunks[nchunks++] = (jobq_obj_t){
		    .type = JOBQ_T_CHUNK, .len = b.len, .data = b.data};
	}
	if (nchunks) {
		cres = calloc(nchunks, sizeof(*cres));
		ccodes = calloc(nchunks, sizeof(*ccodes));
		if (!cres || !ccodes)
			goto out;
		err = map_run(q, type, chunks, nchunks, window, opts, cres, tmo,
			      ccodes);
		if (err)
			goto out;
		for (size_t c = 0, i = 0; c < nchunks; c++)
			i = unpack_chunk(c, ccodes[c], &cres[c], i, n, owner,
					 codes, results);
	}
	err = first_code(codes, n);
	goto done;
out: /* nothing went out, or nothing came back: no result at all */
	for (size_t i = 0; i < n; i++)
		jobq_obj_free(&results[i]);
done:
	for (size_t c = 0; c < nchunks; c++) {
		free(chunks[c].data);
		if (cres)
			jobq_obj_free(&cres[c]);
	}
	free(chunks);
	free(cres);
	free(ccodes);
	free(owner);
	free(codes);
	return err;
}

/* ------------------------------------------------------------------------
 * Controls.
 */
static int job_call(jobq_t *q, uint8_t opcode, uint64_t id)
{
	struct jobq_req r = {0};
	struct jobq__op op;

	jobq__op_init(&op, &r, opcode, NULL, 0);
	op.sqe.arg0 = id;
	return jobq__call(q, &op);
}

int jobq_cancel(jobq_t *q, uint64_t id)
{
	int res = job_call(q, JOBQ_OP_JOB_CANCEL, id);

	return res < 0 ? res : 0;
}

int jobq_retry(jobq_t *q, uint64_t id)
{
	int res = job_call(q, JOBQ_OP_JOB_RETRY, id);

	return res < 0 ? res : 0;
}

int jobq_kick(jobq_t *q, uint64_t id)
{
	int res = job_call(q, JOBQ_OP_JOB_KICK, id);

	if (res < 0)
		return res;
	return id ? 0 : res;
}

static int queue_call(jobq_t *q, uint8_t opcode, const char *queue,
		      uint64_t arg0)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint32_t qid;
	int err;

	err = jobq__queue_resolve(q, queue, &qid);
	if (err)
		return err;
	jobq__op_init(&op, &r, opcode, NULL, 0);
	op.sqe.id = qid;
	op.sqe.arg0 = arg0;
	err = jobq__call(q, &op);
	return err < 0 ? err : 0;
}

int jobq_pause(jobq_t *q, const char *queue)
{
	return queue_call(q, JOBQ_OP_Q_PAUSE, queue, 1);
}

int jobq_resume(jobq_t *q, const char *queue)
{
	return queue_call(q, JOBQ_OP_Q_PAUSE, queue, 0);
}

int jobq_queue_parallel(jobq_t *q, const char *queue, unsigned parallel)
{
	return queue_call(q, JOBQ_OP_Q_PARALLEL, queue, parallel);
}
