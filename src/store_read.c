/* SPDX-License-Identifier: MIT */
/*
 * store_read.c - what can be read from the store without asking the
 * manager: the queue and lock tables and the counters.
 *
 * The manager writes every record inside its seqlock. A reader copies what
 * it needs into private memory and keeps the copy only when the sequence
 * number did not move; the copy is then validated like any untrusted input
 * (names are NUL-terminated here, whatever the store holds).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* How many records of a table are in use, never more than it holds. */
static uint32_t used_records(const _Atomic uint32_t *n, uint32_t max)
{
	uint32_t v = load_acquire(n);

	return v < max ? v : max;
}

static void read_queue(const struct jobq_queue_rec *rec,
		       struct jobq_queue_rec *copy)
{
	uint32_t s;

	do {
		s = seq_read_begin(&rec->seq);
		memcpy((char *)copy + sizeof(copy->seq),
		       (const char *)rec + sizeof(rec->seq),
		       sizeof(*rec) - sizeof(rec->seq));
	} while (seq_read_retry(&rec->seq, s));
	copy->name[JOBQ_NAME_MAX] = '\0';
}

static void read_lock(const struct jobq_lock_rec *rec,
		      struct jobq_lock_rec *copy)
{
	uint32_t s;

	do {
		s = seq_read_begin(&rec->seq);
		memcpy((char *)copy + sizeof(copy->seq),
		       (const char *)rec + sizeof(rec->seq),
		       sizeof(*rec) - sizeof(rec->seq));
	} while (seq_read_retry(&rec->seq, s));
	copy->name[JOBQ_NAME_MAX] = '\0';
}

int jobq__store_find_queue(jobq_t *q, const char *name, uint32_t *id)
{
	uint32_t n = used_records(&q->sh->nqueues, q->max_queues);
	struct jobq_queue_rec c;

	for (uint32_t i = 0; i < n; i++) {
		read_queue(&q->queues[i], &c);
		if (c.in_use && !strcmp(c.name, name)) {
			*id = i;
			return 0;
		}
	}
	return -ENOENT;
}

int jobq__store_find_lock(jobq_t *q, const char *name, uint32_t *id)
{
	uint32_t n = used_records(&q->sh->nlocks, q->max_locks);
	struct jobq_lock_rec c;

	for (uint32_t i = 0; i < n; i++) {
		read_lock(&q->locks[i], &c);
		if (c.in_use && !strcmp(c.name, name)) {
			*id = i;
			return 0;
		}
	}
	return -ENOENT;
}

static void queue_info(const struct jobq_queue_rec *c,
		       struct jobq_queue_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->name, c->name, sizeof(out->name));
	out->name[sizeof(out->name) - 1] = '\0';
	out->depth = c->depth;
	out->bytes = c->bytes;
	out->max_depth = c->max_depth;
	out->max_bytes = c->max_bytes;
	out->getters = c->getters;
	out->putters = c->putters;
	out->total_put = c->total_put;
	out->total_get = c->total_get;
	out->unfinished = c->unfinished;
}

int jobq_queues(jobq_t *q, struct jobq_queue_info **out, size_t *n)
{
	uint32_t max = used_records(&q->sh->nqueues, q->max_queues), k = 0;
	struct jobq_queue_info *v;
	struct jobq_queue_rec c;

	/* One spare element, so that an empty table still yields a pointer
	 * the caller can free(). */
	v = calloc((size_t)max + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < max; i++) {
		read_queue(&q->queues[i], &c);
		if (c.in_use)
			queue_info(&c, &v[k++]);
	}
	*out = v;
	*n = k;
	return 0;
}

int jobq_queue_info(jobq_t *q, const char *name, struct jobq_queue_info *out)
{
	struct jobq_queue_rec c;
	uint32_t id;
	int err;

	err = jobq__check_name(name);
	if (err)
		return err;
	pthread_mutex_lock(&q->mu);
	err = jobq__name_get(q, &q->qnames, name, &id);
	pthread_mutex_unlock(&q->mu);
	if (err && jobq__store_find_queue(q, name, &id))
		return -ENOENT;
	read_queue(&q->queues[id], &c);
	if (!c.in_use || strcmp(c.name, name))
		return -ENOENT;
	queue_info(&c, out);
	return 0;
}

int jobq_locks(jobq_t *q, struct jobq_lock_info **out, size_t *n)
{
	uint32_t max = used_records(&q->sh->nlocks, q->max_locks), k = 0;
	struct jobq_lock_info *v;
	struct jobq_lock_rec c;

	v = calloc((size_t)max + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < max; i++) {
		struct jobq_lock_info *li = &v[k];

		read_lock(&q->locks[i], &c);
		if (!c.in_use)
			continue;
		memcpy(li->name, c.name, sizeof(li->name));
		li->name[sizeof(li->name) - 1] = '\0';
		li->kind = (int)c.kind;
		li->limit = c.limit;
		li->held = c.held;
		li->waiters = c.waiters;
		li->holder = c.holder_pid;
		li->is_set = c.is_set ? 1 : 0;
		li->held_since_ns = c.held_since_ns;
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

int jobq_stats(jobq_t *q, struct jobq_stats *out)
{
	const struct jobq_store_hdr *h = q->sh;
	const struct jobq_counters *c = &h->counters;

	memset(out, 0, sizeof(*out));
	out->manager_pid = h->manager_pid;
	out->started_ns = h->started_ns;
	out->generation = h->generation;
	out->memory_total = h->heap_size;
	out->memory_used = load_relaxed(&h->heap_used);
	out->max_object = h->max_object;
	out->clients = load_relaxed(&h->nclients);
	out->queues = load_relaxed(&h->nqueues);
	out->locks = load_relaxed(&h->nlocks);
	out->keys = load_relaxed(&h->nkeys);
	out->puts = load_relaxed(&c->puts);
	out->gets = load_relaxed(&c->gets);
	out->kv_sets = load_relaxed(&c->kv_sets);
	out->kv_dels = load_relaxed(&c->kv_dels);
	out->lock_acquires = load_relaxed(&c->lock_acquires);
	out->lock_timeouts = load_relaxed(&c->lock_timeouts);
	out->deadlocks = load_relaxed(&c->deadlocks);
	out->clients_total = load_relaxed(&c->clients_total);
	out->clients_died = load_relaxed(&c->clients_died);
	out->requeued = load_relaxed(&c->requeued);
	out->bad_requests = load_relaxed(&c->bad_requests);
	out->submitted = load_relaxed(&c->submitted);
	out->done = load_relaxed(&c->done);
	out->failed = load_relaxed(&c->failed);
	out->retried = load_relaxed(&c->retried);
	out->dead = load_relaxed(&c->dead);
	return 0;
}
