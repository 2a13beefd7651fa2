/* SPDX-License-Identifier: MIT */
/*
 * lock.c - named locks, semaphores and events.
 *
 * The manager keeps holders and waiters; the library only names the lock
 * (by its id, its record in the store and the record's generation, cached
 * per handle like queue ids) and the owner: the calling thread's id, so
 * that a lock taken by one thread of a handle is not released by another
 * by mistake.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

/* Opens (creating it when missing) lock @name of @kind and caches its id. */
static int lock_open(jobq_t *q, const char *name, int kind, unsigned value,
		     uint32_t *id)
{
	return jobq__name_open(q, &q->lnames, q->max_locks, JOBQ_OP_L_OPEN,
			       name, (uint64_t)kind, value, id);
}

/*
 * The id of lock @name: cached, else from the store, else (when @kind is
 * not 0) created as @kind. Returns 0, -EINVAL or -ENOENT (not created).
 */
static int lock_resolve(jobq_t *q, const char *name, int kind, uint32_t *id)
{
	int err = jobq__check_name(name);

	if (err)
		return err;
	/* A lock nobody used any more may have been freed: a cached id is
	 * checked in the store, and the name looked up again if it went. */
	if (!jobq__name_find(q, &q->lnames, jobq__store_find_lock, name, id) &&
	    jobq__store_lock_live(q, *id))
		return 0;
	if (!jobq__store_find_lock(q, name, id)) {
		jobq__name_cache(q, &q->lnames, name, *id);
		return 0;
	}
	if (!kind)
		return -ENOENT;
	return lock_open(q, name, kind, 1, id);
}

int jobq_lock_create(jobq_t *q, const char *name, int kind, unsigned value)
{
	int err = jobq__check_name(name);

	if (err)
		return err;
	if (kind < JOBQ_LOCK || kind > JOBQ_EVENT)
		return -EINVAL;
	if (kind != JOBQ_SEMAPHORE)
		value = 1;
	return lock_open(q, name, kind, value, NULL);
}

static int lock_call(jobq_t *q, uint8_t opcode, uint32_t id, int64_t tmo,
		     int64_t lease)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int res;

	jobq__op_init(&op, &r, opcode, NULL, 0);
	op.sqe.id = id;
	op.sqe.owner = (uint64_t)gettid();
	op.sqe.timeout_ns = tmo;
	op.sqe.arg1 = (uint64_t)(lease > 0 ? lease : 0);
	res = jobq__call(q, &op);
	return res < 0 ? res : 0;
}

/*
 * Resolves lock @name (creating it as @kind unless 0) and sends @opcode
 * for it. Two answers make it try again, by name:
 *   - JOBQ_ELOST: the manager restarted meanwhile (its id names nothing
 *     in the new manager); made again for what is left of the timeout;
 *   - -ESTALE: a lock nobody used was freed between the lookup and the
 *     request; looked up, or made, again (a few times at most).
 */
static int named_call(jobq_t *q, const char *name, int kind, uint8_t opcode,
		      int64_t tmo, int64_t lease)
{
	uint64_t deadline = tmo > 0 ? jobq__now_ns() + (uint64_t)tmo : 0;

	for (int stale = 0;;) {
		uint32_t id;
		int err = lock_resolve(q, name, kind, &id);

		if (err)
			return err;
		err = lock_call(q, opcode, id, tmo, lease);
		if (err == -ESTALE && stale++ < 8)
			continue;
		if (err != JOBQ_ELOST)
			return err;
		if (deadline) {
			uint64_t now = jobq__now_ns();

			/* 1 ns, not 0: past the deadline the answer is
			 * -ETIMEDOUT, not try-once's -EAGAIN. */
			tmo = now < deadline ? (int64_t)(deadline - now) : 1;
		}
	}
}

int jobq_lock_acquire(jobq_t *q, const char *name, double timeout)
{
	return named_call(q, name, JOBQ_LOCK, JOBQ_OP_L_ACQUIRE,
			  jobq__timeout_ns(timeout), 0);
}

int jobq_lock_acquire_lease(jobq_t *q, const char *name, double timeout,
			    double lease)
{
	int64_t l = jobq__timeout_ns(lease);

	if (!(lease > 0) || l < 0)
		return -EINVAL;
	return named_call(q, name, JOBQ_LOCK, JOBQ_OP_L_ACQUIRE,
			  jobq__timeout_ns(timeout), l);
}

int jobq_lock_release(jobq_t *q, const char *name)
{
	uint32_t id;
	int err = lock_resolve(q, name, 0, &id);

	/* A lock that does not exist (or was freed: nobody held it) is not
	 * held by the caller. */
	if (!err)
		err = lock_call(q, JOBQ_OP_L_RELEASE, id, 0, 0);
	if (err == -ENOENT || err == -ESTALE)
		err = -EPERM;
	/* Not held, by a handle that reconnected: the lock it took went
	 * with the manager that gave it. */
	if (err == -EPERM && jobq__reconnects(q))
		err = JOBQ_ELOST;
	return err;
}

int jobq_lock_many(jobq_t *q, const char *const *names, size_t n,
		   double timeout)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint32_t *ids;
	int err = 0, tries = 0;

	if (!n)
		return 0;
	if (!names || n > UINT32_MAX / sizeof(uint32_t))
		return -EINVAL;
	ids = calloc(n, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
again:
	for (size_t i = 0; i < n && !err; i++)
		err = lock_resolve(q, names[i], JOBQ_LOCK, &ids[i]);
	if (!err) {
		/* The manager sorts the ids: one global order for everyone,
		 * whatever order the caller named them in. */
		jobq__op_init(&op, &r, JOBQ_OP_L_MANY, ids, n * sizeof(*ids));
		op.sqe.owner = (uint64_t)gettid();
		op.sqe.timeout_ns = jobq__timeout_ns(timeout);
		err = jobq__call(q, &op);
		if (err > 0)
			err = 0;
		/* One of them was freed meanwhile: name them again. */
		if (err == -ESTALE && tries++ < 8) {
			err = 0;
			goto again;
		}
	}
	free(ids);
	return err;
}

int jobq_unlock_many(jobq_t *q, const char *const *names, size_t n)
{
	struct jobq_req *reqs, **rp;
	struct jobq__op *ops;
	uint64_t owner = (uint64_t)gettid();
	size_t k = 0;
	int err = 0, sent;

	if (!n)
		return 0;
	if (!names)
		return -EINVAL;
	reqs = calloc(n, sizeof(*reqs));
	ops = calloc(n, sizeof(*ops));
	rp = calloc(n, sizeof(*rp));
	if (!reqs || !ops || !rp) {
		err = -ENOMEM;
		goto out;
	}
	/* Every release goes in one batch; the first error is reported, and
	 * the others are released all the same. */
	for (size_t i = 0; i < n; i++) {
		uint32_t id;
		int e = lock_resolve(q, names[i], 0, &id);

		if (e) {
			if (!err)
				err = e == -ENOENT ? -EPERM : e;
			continue;
		}
		jobq__op_init(&ops[k], &reqs[k], JOBQ_OP_L_RELEASE, NULL, 0);
		ops[k].sqe.id = id;
		ops[k].sqe.owner = owner;
		rp[k] = &reqs[k];
		k++;
	}
	if (!k)
		goto out;
	sent = jobq__submit(q, ops, k);
	if (sent < 0) {
		err = sent;
		goto out;
	}
	jobq__wait(q, rp, (size_t)sent);
	for (int i = 0; i < sent; i++)
		if (reqs[i].res < 0 && !err)
			err = reqs[i].res == -ESTALE ? -EPERM : reqs[i].res;
out:
	free(reqs);
	free(ops);
	free(rp);
	return err;
}

/* Events are lost with a manager that restarts, as locks are: a request
 * in flight then is made again, by name, in the new manager
 * (named_call()). */
static int event_call(jobq_t *q, const char *name, uint8_t opcode, int64_t tmo)
{
	return named_call(q, name, JOBQ_EVENT, opcode, tmo, 0);
}

int jobq_event_set(jobq_t *q, const char *name)
{
	return event_call(q, name, JOBQ_OP_EV_SET, 0);
}

int jobq_event_clear(jobq_t *q, const char *name)
{
	return event_call(q, name, JOBQ_OP_EV_CLEAR, 0);
}

int jobq_event_wait(jobq_t *q, const char *name, double timeout)
{
	return event_call(q, name, JOBQ_OP_EV_WAIT, jobq__timeout_ns(timeout));
}
