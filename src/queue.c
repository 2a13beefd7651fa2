/* SPDX-License-Identifier: MIT */
/*
 * queue.c - named queues: put and get, blocking, batched and asynchronous,
 * and the JoinableQueue counters.
 *
 * A queue is named by the caller and known to the manager by its id, the
 * index of its record in the store. Ids are never reused while the manager
 * lives, so each handle caches name -> id after the first lookup.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client.h"

static int queue_open(jobq_t *q, const char *name, uint64_t max_depth,
		      uint64_t max_bytes, uint32_t *id)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int res;

	jobq__op_init(&op, &r, JOBQ_OP_Q_OPEN, name, strlen(name));
	op.sqe.flags = JOBQ_SQE_CREATE;
	op.sqe.arg0 = max_depth;
	op.sqe.arg1 = max_bytes;
	res = jobq__call(q, &op);
	if (res < 0)
		return res;
	if ((uint32_t)res >= q->max_queues)
		return -EPROTO;
	pthread_mutex_lock(&q->mu);
	jobq__name_put(q, &q->qnames, name, (uint32_t)res);
	pthread_mutex_unlock(&q->mu);
	if (id)
		*id = (uint32_t)res;
	return 0;
}

int jobq__queue_resolve(jobq_t *q, const char *name, uint32_t *id)
{
	int err;

	err = jobq__check_name(name);
	if (err)
		return err;
	pthread_mutex_lock(&q->mu);
	err = jobq__name_get(q, &q->qnames, name, id);
	pthread_mutex_unlock(&q->mu);
	if (!err)
		return 0;
	if (!jobq__store_find_queue(q, name, id)) {
		pthread_mutex_lock(&q->mu);
		jobq__name_put(q, &q->qnames, name, *id);
		pthread_mutex_unlock(&q->mu);
		return 0;
	}
	/* Not there yet: create it, unbounded. If another client made it
	 * meanwhile, this returns its id and leaves its limits alone
	 * (UINT64_MAX: leave). */
	return queue_open(q, name, UINT64_MAX, UINT64_MAX, id);
}

int jobq_queue_open(jobq_t *q, const char *name,
		    const struct jobq_queue_opts *opts)
{
	int err = jobq__check_name(name);

	if (err)
		return err;
	return queue_open(q, name, opts ? opts->max_depth : 0,
			  opts ? opts->max_bytes : 0, NULL);
}

static int check_payload(jobq_t *q, const void *data, size_t len)
{
	if (len && !data)
		return -EINVAL;
	if (len > q->max_object || len > UINT32_MAX)
		return -E2BIG;
	return 0;
}

static void put_op(struct jobq__op *op, struct jobq_req *r, uint32_t id,
		   uint32_t type, const void *data, size_t len, int64_t tmo)
{
	jobq__op_init(op, r, JOBQ_OP_Q_PUT, data, len);
	op->sqe.id = id;
	op->sqe.type = type;
	op->sqe.timeout_ns = tmo;
}

int jobq_put(jobq_t *q, const char *queue, uint32_t type, const void *data,
	     size_t len, double timeout)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint32_t id;
	int err;

	err = check_payload(q, data, len);
	if (!err)
		err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;
	put_op(&op, &r, id, type, data, len, jobq__timeout_ns(timeout));
	err = jobq__call(q, &op);
	return err < 0 ? err : 0;
}

int jobq_put_json(jobq_t *q, const char *queue, const struct json_t *value,
		  double timeout)
{
	char *s;
	int err;

	if (!value)
		return -EINVAL;
	s = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return -ENOMEM;
	err = jobq_put(q, queue, JOBQ_T_JSON, s, strlen(s), timeout);
	free(s);
	return err;
}

int jobq_put_many(jobq_t *q, const char *queue, const jobq_obj_t *objs,
		  size_t n, double timeout)
{
	int64_t tmo = jobq__timeout_ns(timeout);
	struct jobq_req *reqs, **rp;
	struct jobq__op *ops;
	size_t ok, i;
	uint32_t id;
	int err, sent;

	if (!n)
		return 0;
	if (!objs || n > INT32_MAX)
		return -EINVAL;
	/* Only a leading run of acceptable objects is put, so that what
	 * was put is always "the first ones, in order". */
	for (ok = 0; ok < n; ok++)
		if (check_payload(q, objs[ok].data, objs[ok].len))
			break;
	if (!ok)
		return check_payload(q, objs[0].data, objs[0].len);
	err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;

	reqs = calloc(ok, sizeof(*reqs));
	ops = calloc(ok, sizeof(*ops));
	rp = calloc(ok, sizeof(*rp));
	if (!reqs || !ops || !rp) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < ok; i++) {
		put_op(&ops[i], &reqs[i], id, objs[i].type, objs[i].data,
		       objs[i].len, tmo);
		rp[i] = &reqs[i];
	}
	/* One submission: every entry published with one tail store and
	 * the manager woken once, unless the rings are too small for the
	 * batch, in which case it goes in as few pieces as they allow. */
	sent = jobq__submit(q, ops, ok);
	if (sent < 0) {
		err = sent;
		goto out;
	}
	jobq__wait(q, rp, (size_t)sent);
	for (i = 0; i < (size_t)sent; i++)
		if (reqs[i].res < 0)
			break;
	err = i ? (int)i : reqs[0].res;
out:
	free(reqs);
	free(ops);
	free(rp);
	return err;
}

static void get_op(jobq_t *q, struct jobq__op *op, struct jobq_req *r,
		   uint32_t id, size_t max, int64_t tmo)
{
	jobq__op_init(op, r, JOBQ_OP_Q_GET, NULL, 0);
	op->sqe.id = id;
	op->sqe.timeout_ns = tmo;
	op->sqe.arg0 = max;
	r->maxobj = (uint32_t)max;
}

/* The most objects one get may ask for: its completions are reserved in
 * the completion ring, and half of the ring stays for other requests. */
static size_t get_cap(jobq_t *q)
{
	return q->cq_entries / 2 ? q->cq_entries / 2 : 1;
}

int jobq_get_many(jobq_t *q, const char *queue, jobq_obj_t *out, size_t max,
		  double timeout)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint32_t id;
	int err;

	if (!out || !max)
		return -EINVAL;
	err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;
	if (max > get_cap(q))
		max = get_cap(q);
	memset(out, 0, max * sizeof(*out));
	r.objs = out;
	get_op(q, &op, &r, id, max, jobq__timeout_ns(timeout));
	err = jobq__call(q, &op);
	if (r.nobj)
		return (int)r.nobj;
	if (err < 0)
		return err;
	/* Success without an object: the manager broke the contract, or
	 * the object was outside the store. */
	return r.copy_err ? r.copy_err : -EPROTO;
}

int jobq_get(jobq_t *q, const char *queue, jobq_obj_t *out, double timeout)
{
	int n = jobq_get_many(q, queue, out, 1, timeout);

	return n < 0 ? n : 0;
}

int jobq_get_json(jobq_t *q, const char *queue, struct json_t **out,
		  double timeout)
{
	jobq_obj_t obj;
	int err;

	if (!out)
		return -EINVAL;
	err = jobq_get(q, queue, &obj, timeout);
	if (err)
		return err;
	err = jobq_obj_json(&obj, out);
	jobq_obj_free(&obj);
	return err;
}

static int submit_async(jobq_t *q, struct jobq__op *op)
{
	int n = jobq__submit(q, op, 1);

	if (n < 0) {
		free(op->req);
		return n;
	}
	return 0;
}

int jobq_put_async(jobq_t *q, const char *queue, uint32_t type,
		   const void *data, size_t len, double timeout, jobq_cb cb,
		   void *arg)
{
	struct jobq_req *r;
	struct jobq__op op;
	uint32_t id;
	int err;

	err = check_payload(q, data, len);
	if (!err)
		err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->async = true;
	r->cb = cb;
	r->arg = arg;
	put_op(&op, r, id, type, data, len, jobq__timeout_ns(timeout));
	return submit_async(q, &op);
}

int jobq_get_async(jobq_t *q, const char *queue, double timeout, jobq_cb cb,
		   void *arg)
{
	struct jobq_req *r;
	struct jobq__op op;
	uint32_t id;
	int err;

	err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->async = true;
	r->cb = cb;
	r->arg = arg;
	r->objs = &r->obj1;
	get_op(q, &op, r, id, 1, jobq__timeout_ns(timeout));
	return submit_async(q, &op);
}

int jobq_task_done(jobq_t *q, const char *queue)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint32_t id;
	int err;

	err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;
	jobq__op_init(&op, &r, JOBQ_OP_Q_TASK_DONE, NULL, 0);
	op.sqe.id = id;
	op.sqe.arg0 = 1;
	err = jobq__call(q, &op);
	return err < 0 ? err : 0;
}

int jobq_join(jobq_t *q, const char *queue, double timeout)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint32_t id;
	int err;

	err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;
	jobq__op_init(&op, &r, JOBQ_OP_Q_JOIN, NULL, 0);
	op.sqe.id = id;
	op.sqe.timeout_ns = jobq__timeout_ns(timeout);
	err = jobq__call(q, &op);
	return err < 0 ? err : 0;
}
