/* SPDX-License-Identifier: MIT */
/*
 * queue.c - named queues: put and get, blocking, batched and asynchronous,
 * and the JoinableQueue counters.
 *
 * A queue is named by the caller and known to the manager by its id: the
 * index of its record in the store and the record's generation. A removed
 * queue's id is never given to another queue (proto.h), so each handle
 * caches name -> id after the first lookup and checks in the store, without
 * a round trip, that the queue is still there before it uses the id.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client.h"

/* Opens (creating it when missing) queue @name with these limits
 * (UINT64_MAX: leave them) and caches its id. */
static int queue_open(jobq_t *q, const char *name, uint64_t max_depth,
		      uint64_t max_bytes, uint32_t *id)
{
	return jobq__name_open(q, &q->qnames, q->max_queues, JOBQ_OP_Q_OPEN,
			       name, max_depth, max_bytes, id);
}

int jobq__queue_resolve(jobq_t *q, const char *name, uint32_t *id)
{
	int err;

	err = jobq__check_name(name);
	if (err)
		return err;
	/* A cached id whose queue was removed must not be sent: it would
	 * fail with -ESTALE. The name is looked up (or made) again. */
	if (!jobq__name_find(q, &q->qnames, jobq__store_find_queue, name, id) &&
	    jobq__store_queue_live(q, *id))
		return 0;
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
	if (opts && !jobq__reserved_zero(opts->reserved, 6))
		return -EINVAL;
	return queue_open(q, name, opts ? opts->max_depth : 0,
			  opts ? opts->max_bytes : 0, NULL);
}

int jobq_queue_remove(jobq_t *q, const char *name)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int err = jobq__check_name(name);

	if (err)
		return err;
	jobq__op_init(&op, &r, JOBQ_OP_Q_REMOVE, name, strlen(name));
	return jobq__call(q, &op);
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

/* The Q_PUT of one object, checked and with its queue resolved: what
 * jobq_put() and jobq_put_async() send. Returns 0 or -errno. */
static int put_prepare(jobq_t *q, struct jobq__op *op, struct jobq_req *r,
		       const char *queue, uint32_t type, const void *data,
		       size_t len, double timeout)
{
	uint32_t id;
	int err;

	err = check_payload(q, data, len);
	if (!err)
		err = jobq__queue_resolve(q, queue, &id);
	if (!err)
		put_op(op, r, id, type, data, len, jobq__timeout_ns(timeout));
	return err;
}

int jobq_put(jobq_t *q, const char *queue, uint32_t type, const void *data,
	     size_t len, double timeout)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int err = put_prepare(q, &op, &r, queue, type, data, len, timeout);

	if (!err)
		err = jobq__call(q, &op);
	return err < 0 ? err : 0;
}

int jobq_put_durable(jobq_t *q, const char *queue, uint32_t type,
		     const void *data, size_t len, double timeout)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int err = put_prepare(q, &op, &r, queue, type, data, len, timeout);

	if (err)
		return err;
	op.sqe.flags |= JOBQ_SQE_DURABLE;
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

/* Objects in one Q_PUT_MANY request at most: its piece list lives on the
 * stack (three pieces an object: record header, payload, padding). */
#define PUT_MANY_MAX 128

/*
 * Sends objs[0..n) (all acceptable) as one Q_PUT_MANY request, or as many
 * of the first ones as fit in @limit bytes (at least one). Returns how many
 * the manager put (a leading run, >= 1) or -errno when none was.
 */
static int put_many_req(jobq_t *q, uint32_t id, const jobq_obj_t *objs,
			size_t n, uint64_t limit, int64_t tmo)
{
	static const uint8_t zeros[8];
	struct jobq_put_rec hdr[PUT_MANY_MAX];
	struct iovec iov[3 * PUT_MANY_MAX];
	struct jobq_req r = {0};
	struct jobq__op op;
	uint64_t bytes = 0;
	size_t k;
	int nv = 0, res;

	for (k = 0; k < n && k < PUT_MANY_MAX; k++) {
		uint64_t len = objs[k].len;
		uint64_t pad = (8 - (len & 7)) & 7;

		if (k && bytes + sizeof(hdr[0]) + len + pad > limit)
			break;
		bytes += sizeof(hdr[0]) + len + pad;
		hdr[k].len = (uint32_t)len;
		hdr[k].type = objs[k].type;
		iov[nv].iov_base = &hdr[k];
		iov[nv++].iov_len = sizeof(hdr[k]);
		if (len) {
			iov[nv].iov_base = objs[k].data;
			iov[nv++].iov_len = len;
		}
		if (pad) {
			iov[nv].iov_base = (void *)zeros;
			iov[nv++].iov_len = pad;
		}
	}
	jobq__op_init(&op, &r, JOBQ_OP_Q_PUT_MANY, NULL, 0);
	op.iovv = iov;
	op.iovc = nv;
	op.sqe.id = id;
	op.sqe.arg0 = k;
	op.sqe.timeout_ns = tmo;
	res = jobq__call(q, &op);
	if (res == 0 || res > (int)k)
		return -EPROTO; /* the manager broke the contract */
	return res;
}

int jobq_put_many(jobq_t *q, const char *queue, const jobq_obj_t *objs,
		  size_t n, double timeout)
{
	int64_t tmo = jobq__timeout_ns(timeout);
	uint64_t deadline = 0;
	size_t ok, done = 0;
	uint32_t id;
	int err;

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
	if (tmo > 0)
		deadline = jobq__now_ns() + (uint64_t)tmo;

	/*
	 * Packed batches, one after the other: the manager copies a whole
	 * batch in one request and answers once. A batch that went in only
	 * partly (a limit was reached) is followed by one for the rest, which
	 * waits for room as a single put would, within what is left of the
	 * timeout. Batches are not pipelined, so that a partial one cannot be
	 * overtaken by the next: what was put stays a leading run.
	 */
	while (done < ok) {
		int64_t t = tmo;
		int res;

		if (deadline) {
			uint64_t now = jobq__now_ns();

			t = now < deadline ? (int64_t)(deadline - now) : 0;
		}
		res = put_many_req(q, id, objs + done, ok - done,
				   q->arena_size / 4, t);
		if (res < 0)
			return done ? (int)done : res;
		done += (size_t)res;
	}
	return (int)done;
}

static void get_op(struct jobq__op *op, struct jobq_req *r, uint32_t id,
		   size_t max, int64_t tmo)
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

/* jobq_get_many() and jobq_get_many_into(): @buf may be NULL. */
static int get_many(jobq_t *q, const char *queue, jobq_obj_t *out, size_t max,
		    void *buf, size_t buflen, double timeout)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint32_t id;
	int err;

	if (!out || !max || (!buf && buflen))
		return -EINVAL;
	err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;
	if (max > get_cap(q))
		max = get_cap(q);
	memset(out, 0, max * sizeof(*out));
	r.objs = out;
	r.buf = buf;
	r.buflen = buflen;
	get_op(&op, &r, id, max, jobq__timeout_ns(timeout));
	err = jobq__call(q, &op);
	if (r.nobj)
		return (int)r.nobj;
	if (err < 0)
		return err;
	/* Success without an object: the manager broke the contract, or
	 * the object was outside the store. */
	return r.copy_err ? r.copy_err : -EPROTO;
}

int jobq_get_many(jobq_t *q, const char *queue, jobq_obj_t *out, size_t max,
		  double timeout)
{
	return get_many(q, queue, out, max, NULL, 0, timeout);
}

int jobq_get_many_into(jobq_t *q, const char *queue, jobq_obj_t *out,
		       size_t max, void *buf, size_t buflen, double timeout)
{
	return get_many(q, queue, out, max, buf, buflen, timeout);
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

int jobq_put_async(jobq_t *q, const char *queue, uint32_t type,
		   const void *data, size_t len, double timeout, jobq_cb cb,
		   void *arg)
{
	struct jobq_req *r = jobq__async_req(cb, arg);
	struct jobq__op op;
	int err;

	if (!r)
		return -ENOMEM;
	err = put_prepare(q, &op, r, queue, type, data, len, timeout);
	if (err) {
		free(r);
		return err;
	}
	return jobq__submit_async(q, &op);
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
	r = jobq__async_req(cb, arg);
	if (!r)
		return -ENOMEM;
	r->objs = &r->obj1;
	get_op(&op, r, id, 1, jobq__timeout_ns(timeout));
	return jobq__submit_async(q, &op);
}

/* One Q_TASK_DONE or Q_JOIN round trip on queue @queue; 0 or -errno. */
static int queue_call(jobq_t *q, const char *queue, uint8_t opcode,
		      uint64_t arg0, int64_t tmo)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint32_t id;
	int err;

	err = jobq__queue_resolve(q, queue, &id);
	if (err)
		return err;
	jobq__op_init(&op, &r, opcode, NULL, 0);
	op.sqe.id = id;
	op.sqe.arg0 = arg0;
	op.sqe.timeout_ns = tmo;
	err = jobq__call(q, &op);
	return err < 0 ? err : 0;
}

int jobq_task_done(jobq_t *q, const char *queue)
{
	return queue_call(q, queue, JOBQ_OP_Q_TASK_DONE, 1, 0);
}

int jobq_join(jobq_t *q, const char *queue, double timeout)
{
	return queue_call(q, queue, JOBQ_OP_Q_JOIN, 0,
			  jobq__timeout_ns(timeout));
}
