/* SPDX-License-Identifier: MIT */
/*
 * store_read.c - what can be read from the store without asking the
 * manager: the queue, lock, job, type and worker tables and the counters.
 *
 * The manager writes every record inside its seqlock. A reader copies what
 * it needs into private memory and keeps the copy only when the sequence
 * number did not move; the copy is then validated like any untrusted input
 * (names are NUL-terminated here, whatever the store holds).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

/*
 * A write section takes the manager well under a microsecond; a reader
 * spins this many times before it suspects more, then sleeps between
 * looks, checks that the manager still lives, and gives up after
 * SEQ_GIVE_UP_NS.
 */
#define SEQ_SPINS      2048u
#define SEQ_SLEEP_NS   100000L
#define SEQ_GIVE_UP_NS (5 * JOBQ__NSEC_PER_SEC)

/* Whether the manager is gone: its end of our socket closed (that
 * happens as it exits, even while it lingers as a zombie), or no process
 * has its pid. Consumes nothing from the socket. */
static bool manager_gone(const jobq_t *q)
{
	struct pollfd p = {.fd = q->sock, .events = POLLRDHUP};
	pid_t pid = q->sh->manager_pid;

	if (q->sock >= 0 && poll(&p, 1, 0) == 1 &&
	    (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
		return true;
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

int jobq__seq_begin(const jobq_t *q, const _Atomic uint32_t *seq, uint32_t *out)
{
	uint64_t start = 0;
	uint32_t spins = 0, s;

	while ((s = load_acquire(seq)) & 1) {
		struct timespec ts = {0, SEQ_SLEEP_NS};
		uint64_t now;

		if (++spins < SEQ_SPINS) {
			jobq__cpu_relax();
			continue;
		}
		now = jobq__now_ns();
		if (!start)
			start = now;
		if (manager_gone(q))
			return JOBQ_ECLOSED;
		if (now - start > SEQ_GIVE_UP_NS)
			return -EAGAIN;
		nanosleep(&ts, NULL);
	}
	*out = s;
	return 0;
}

/* How many records of a table are in use, never more than it holds. */
static uint32_t used_records(const _Atomic uint32_t *n, uint32_t max)
{
	uint32_t v = load_acquire(n);

	return v < max ? v : max;
}

/*
 * Copies the first @size bytes of the record at @src, whose first member is
 * its seqlock word, into @dst (all but that word) in one read section.
 * Every table record in the store starts with its seqlock.
 */
static int seq_copy(jobq_t *q, void *dst, const void *src, size_t size)
{
	const _Atomic uint32_t *seq = src;
	uint32_t s;
	int err;

	do {
		err = jobq__seq_begin(q, seq, &s);
		if (err)
			return err;
		memcpy((char *)dst + sizeof(*seq),
		       (const char *)src + sizeof(*seq), size - sizeof(*seq));
	} while (seq_read_retry(seq, s));
	return 0;
}

static int read_queue(jobq_t *q, const struct jobq_queue_rec *rec,
		      struct jobq_queue_rec *copy)
{
	int err = seq_copy(q, copy, rec, sizeof(*rec));

	copy->name[JOBQ_NAME_MAX] = '\0';
	return err;
}

static int read_lock(jobq_t *q, const struct jobq_lock_rec *rec,
		     struct jobq_lock_rec *copy)
{
	int err = seq_copy(q, copy, rec, sizeof(*rec));

	copy->name[JOBQ_NAME_MAX] = '\0';
	return err;
}

/* The head that queue and lock records share: a name lookup copies only
 * this much of each record. */
struct named_head {
	_Atomic uint32_t seq;
	uint32_t in_use;
	char name[JOBQ_NAME_MAX + 1];
};

_Static_assert(offsetof(struct jobq_queue_rec, name) ==
		   offsetof(struct named_head, name),
	       "a queue record starts like struct named_head");
_Static_assert(offsetof(struct jobq_lock_rec, name) ==
		   offsetof(struct named_head, name),
	       "a lock record starts like struct named_head");

/* The index of the record in use called @name among the first @n records
 * of @table (records of @stride bytes). Returns 0, -ENOENT, or what
 * jobq__seq_begin() returns. */
static int find_named(jobq_t *q, const void *table, size_t stride, uint32_t n,
		      const char *name, uint32_t *id)
{
	struct named_head c;
	int err;

	for (uint32_t i = 0; i < n; i++) {
		err = seq_copy(q, &c, (const char *)table + (size_t)i * stride,
			       sizeof(c));
		if (err)
			return err;
		c.name[JOBQ_NAME_MAX] = '\0';
		if (c.in_use && !strcmp(c.name, name)) {
			*id = i;
			return 0;
		}
	}
	return -ENOENT;
}

/* A record's id: its index, with its generation (the uint32_t at @gen_off
 * of the record) in the high bits (proto.h). The record is read whole
 * once found: it may have been freed or renamed since the lookup. */
static int find_id(jobq_t *q, const void *table, size_t stride, uint32_t n,
		   size_t gen_off, const char *name, uint32_t *id)
{
	union {
		struct jobq_queue_rec q;
		struct jobq_lock_rec l;
	} c;
	const struct named_head *h = (const void *)&c;
	uint32_t i, gen;
	int err;

	err = find_named(q, table, stride, n, name, &i);
	if (err)
		return err;
	err = seq_copy(q, &c, (const char *)table + (size_t)i * stride, stride);
	if (err)
		return err;
	if (!h->in_use || strncmp(h->name, name, sizeof(h->name)))
		return -ENOENT;
	memcpy(&gen, (const char *)&c + gen_off, sizeof(gen));
	*id = (gen & JOBQ_QGEN_MASK) << JOBQ_QID_BITS | i;
	return 0;
}

/* Whether record @id of @table (as find_id() made it) is still in use
 * with the same generation. */
static bool id_live(jobq_t *q, const void *table, size_t stride, uint32_t n,
		    size_t gen_off, uint32_t id)
{
	uint32_t i = id & JOBQ_QID_MASK, s, in_use, gen;
	const char *r = (const char *)table + (size_t)i * stride;
	const struct named_head *h = (const void *)r;

	if (i >= n)
		return false;
	do {
		if (jobq__seq_begin(q, &h->seq, &s))
			return false;
		in_use = h->in_use;
		memcpy(&gen, r + gen_off, sizeof(gen));
	} while (seq_read_retry(&h->seq, s));
	return in_use && gen == id >> JOBQ_QID_BITS;
}

int jobq__store_find_queue(jobq_t *q, const char *name, uint32_t *id)
{
	return find_id(q, q->queues, sizeof(*q->queues),
		       used_records(&q->sh->nqueues, q->max_queues),
		       offsetof(struct jobq_queue_rec, gen), name, id);
}

bool jobq__store_queue_live(jobq_t *q, uint32_t id)
{
	return id_live(q, q->queues, sizeof(*q->queues),
		       used_records(&q->sh->nqueues, q->max_queues),
		       offsetof(struct jobq_queue_rec, gen), id);
}

int jobq__store_find_lock(jobq_t *q, const char *name, uint32_t *id)
{
	return find_id(q, q->locks, sizeof(*q->locks),
		       used_records(&q->sh->nlocks, q->max_locks),
		       offsetof(struct jobq_lock_rec, gen), name, id);
}

bool jobq__store_lock_live(jobq_t *q, uint32_t id)
{
	return id_live(q, q->locks, sizeof(*q->locks),
		       used_records(&q->sh->nlocks, q->max_locks),
		       offsetof(struct jobq_lock_rec, gen), id);
}

static void queue_info(const struct jobq_queue_rec *c,
		       struct jobq_queue_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->name, c->name, sizeof(out->name));
	out->name[sizeof(out->name) - 1] = '\0';
	/* With jobqd --backend, what waits in PostgreSQL as well. */
	out->depth = c->depth + c->shared_depth;
	out->bytes = c->bytes + c->shared_bytes;
	out->max_depth = c->max_depth;
	out->max_bytes = c->max_bytes;
	out->getters = c->getters;
	out->putters = c->putters;
	out->total_put = c->total_put;
	out->total_get = c->total_get;
	out->unfinished = c->unfinished;
	out->jobs_ready = c->ready;
	out->jobs_running = c->running;
	out->parallel = c->parallel;
	out->paused = c->paused != 0;
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
		int err = read_queue(q, &q->queues[i], &c);

		if (err) {
			free(v);
			return err;
		}
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
	if (jobq__name_find(q, &q->qnames, jobq__store_find_queue, name, &id))
		return -ENOENT;
	err = read_queue(q, &q->queues[id & JOBQ_QID_MASK], &c);
	if (err)
		return err;
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
		int err = read_lock(q, &q->locks[i], &c);

		if (err) {
			free(v);
			return err;
		}
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
		_Static_assert(sizeof(li->host) == sizeof(c.holder_host),
			       "the host fits");
		memcpy(li->host, c.holder_host, sizeof(li->host));
		li->host[sizeof(li->host) - 1] = '\0';
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
	out->queues = load_relaxed(&h->queues_live);
	out->max_queues = q->max_queues;
	out->max_locks = q->max_locks;
	out->max_types = q->jobs_ok ? q->sh->max_types : 0;
	out->types = q->clients_ok ? load_relaxed(&h->types_live) : 0;
	out->locks = q->clients_ok ? load_relaxed(&h->locks_live)
				   : load_relaxed(&h->nlocks);
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
	/* The wire states are the public ones. */
	_Static_assert((int)JOBQ_JS_WAITING == (int)JOBQ_JOB_WAITING &&
			   (int)JOBQ_JS_DELAYED == (int)JOBQ_JOB_DELAYED &&
			   (int)JOBQ_JS_READY == (int)JOBQ_JOB_READY &&
			   (int)JOBQ_JS_RUNNING == (int)JOBQ_JOB_RUNNING &&
			   (int)JOBQ_JS_SUCCEEDED == (int)JOBQ_JOB_SUCCEEDED &&
			   (int)JOBQ_JS_FAILED == (int)JOBQ_JOB_FAILED &&
			   (int)JOBQ_JS_DEAD == (int)JOBQ_JOB_DEAD &&
			   (int)JOBQ_JS_CANCELLED == (int)JOBQ_JOB_CANCELLED,
		       "wire job states are the public ones");
	for (int s = 0; s < 16; s++)
		out->jobs_by_state[s] = load_relaxed(&h->jobs_by_state[s]);
	out->journal_mode = (int)load_relaxed(&h->journal_mode);
	out->journal_error = load_relaxed(&h->journal_error);
	out->journal_last_error = load_relaxed(&h->journal_last_error);
	out->journal_size = load_relaxed(&h->journal_size);
	out->journal_snapshot_size = load_relaxed(&h->journal_snap_size);
	out->journal_last_sync_ns = load_relaxed(&h->journal_last_sync_ns);
	out->journal_errors = load_relaxed(&h->journal_errors);
	out->journal_snapshots = load_relaxed(&h->journal_snapshots);
	return 0;
}

/* ------------------------------------------------------------------------
 * Jobs. The job, type and worker tables are only as trustworthy as the
 * header that places them: jobq_open() checked the placement once
 * (q->jobs_ok; the header's constant part never changes while mapped), and
 * every lookup here refuses to read them when it failed.
 */
static bool range_ok(jobq_t *q, uint64_t off, uint64_t len)
{
	return off <= q->store_size && len <= q->store_size - off;
}

static const struct jobq_job_rec *job_table(jobq_t *q)
{
	return (const void *)(q->store + q->sh->jobs_off);
}

/*
 * Copies record @rec and, when @which is not NULL, the object its fields
 * name (the args: args_len bytes at args, no item header; or the result
 * item) into @item, all inside one read section, so the bytes belong to
 * the record as copied. The manager frees args or a result only inside a
 * write section of its record, hence a copy that survived seq_read_retry()
 * is whole. Returns 0, -ENOMEM, or -EIO when the object is outside the
 * store.
 */
static int read_job(jobq_t *q, const struct jobq_job_rec *rec,
		    struct jobq_job_rec *copy, int which, jobq_obj_t *item)
{
	char *buf = NULL;
	size_t cap = 0;
	uint32_t s;
	int err;

	for (;;) {
		struct jobq_item it = {0};
		uint64_t off = 0; /* of the payload, 0: no object */

		err = jobq__seq_begin(q, &rec->seq, &s);
		if (err) {
			free(buf);
			return err;
		}
		memcpy((char *)copy + sizeof(copy->seq),
		       (const char *)rec + sizeof(rec->seq),
		       sizeof(*rec) - sizeof(rec->seq));
		if (item)
			item->len = 0;
		if (!item) {
			/* the record only */
		} else if (which == JOBQ__ITEM_ARGS) {
			/* Empty args have no block: the offset stays 0 and
			 * the copy below reads nothing. */
			it.len = copy->args_len;
			it.type = copy->args_type;
			off = copy->args;
			if (!off && it.len)
				err = -EIO;
		} else if (which == JOBQ__ITEM_RESULT && copy->result) {
			off = copy->result;
			if (!range_ok(q, off, sizeof(it)))
				err = -EIO;
			else
				memcpy(&it, q->store + off, sizeof(it));
			off += sizeof(it);
		}
		/* A torn read can show any length: no object exceeds
		 * max-object, so a larger one is refused rather than
		 * allocated. */
		if (!err && off &&
		    (!range_ok(q, off, it.len) || it.len > q->max_object))
			err = -EIO;
		if (!err && off) {
			if ((size_t)it.len + 1 > cap) {
				char *nb = realloc(buf, (size_t)it.len + 1);

				if (!nb) {
					free(buf);
					return -ENOMEM;
				}
				buf = nb;
				cap = (size_t)it.len + 1;
			}
			memcpy(buf, q->store + off, it.len);
			item->len = it.len;
			item->type = it.type;
		} else if (!err && item && which == JOBQ__ITEM_ARGS) {
			/* Empty args: no bytes, but their type. */
			if (!buf) {
				buf = malloc(1);
				if (!buf)
					return -ENOMEM;
				cap = 1;
			}
			item->type = it.type;
		}
		if (!seq_read_retry(&rec->seq, s))
			break;
	}
	if (err) {
		free(buf);
		return err;
	}
	if (item) {
		if (!buf) {
			buf = malloc(1);
			if (!buf)
				return -ENOMEM;
			item->type = JOBQ_T_NONE;
		}
		buf[item->len] = '\0';
		item->data = buf;
		item->flags = 0;
	}
	return 0;
}

int jobq__job_lookup(jobq_t *q, uint64_t id, struct jobq_job_rec *copy,
		     int which, jobq_obj_t *item)
{
	const struct jobq_store_hdr *h = q->sh;
	const _Atomic uint64_t *idx;
	uint32_t mask, i, n;

	if (!id || id >= (1ULL << 40) || !q->jobs_ok)
		return -ENOENT;
	idx = (const void *)(q->store + h->jobidx_off);
	mask = h->jobidx_slots - 1;
	i = jobq__job_hash(id) & mask;
	for (n = 0; n <= mask; n++, i = (i + 1) & mask) {
		uint64_t v = load_acquire(&idx[i]);
		uint64_t r;
		int err;

		if (!v)
			break;
		if (v == UINT64_MAX || v >> 24 != id)
			continue;
		r = (v & 0xffffff) - 1;
		if (r >= h->max_jobs)
			return -ENOENT;
		err = read_job(q, &job_table(q)[r], copy, which, item);
		if (err)
			return err;
		if (copy->id == id && copy->state != JOBQ_JS_FREE)
			return 0;
		/* Freed and reused since the slot was read. */
		if (item)
			jobq_obj_free(item);
		return -ENOENT;
	}
	return -ENOENT;
}

int jobq__job_scan(jobq_t *q, uint32_t rec, struct jobq_job_rec *copy)
{
	if (!q->jobs_ok || rec >= q->sh->max_jobs)
		return -ENOENT;
	if (read_job(q, &job_table(q)[rec], copy, 0, NULL))
		return -ENOENT;
	return copy->id && copy->state != JOBQ_JS_FREE ? 0 : -ENOENT;
}

uint32_t jobq__job_records(jobq_t *q)
{
	return q->jobs_ok ? q->sh->max_jobs : 0;
}

int jobq__type_read(jobq_t *q, uint32_t type_id, char name[JOBQ_TYPE_MAX + 1],
		    uint32_t *workers)
{
	const struct jobq_type_rec *t;
	struct jobq_type_rec c;

	if (!q->jobs_ok || type_id >= q->sh->max_types ||
	    type_id >= load_acquire(&q->sh->ntypes))
		return -ENOENT;
	t = (const void *)(q->store + q->sh->types_off);
	if (seq_copy(q, &c, t + type_id, sizeof(c)))
		return -ENOENT;
	if (!c.in_use)
		return -ENOENT;
	c.name[JOBQ_TYPE_MAX] = '\0';
	memcpy(name, c.name, JOBQ_TYPE_MAX + 1);
	if (workers)
		*workers = c.workers;
	return 0;
}

int jobq__queue_name(jobq_t *q, uint32_t queue_id, char name[JOBQ_NAME_MAX + 1])
{
	struct jobq_queue_rec c;

	if (queue_id >= used_records(&q->sh->nqueues, q->max_queues))
		return -ENOENT;
	if (read_queue(q, &q->queues[queue_id], &c) || !c.in_use)
		return -ENOENT;
	memcpy(name, c.name, JOBQ_NAME_MAX + 1);
	return 0;
}

uint32_t jobq__worker_records(jobq_t *q)
{
	return q->jobs_ok ? q->sh->max_clients : 0;
}

int jobq__worker_read(jobq_t *q, uint32_t client, struct jobq_worker_rec *copy)
{
	const struct jobq_worker_rec *w;

	if (!q->jobs_ok || client >= q->sh->max_clients)
		return -ENOENT;
	w = (const void *)(q->store + q->sh->workers_off);
	if (seq_copy(q, copy, w + client, sizeof(*copy)))
		return -ENOENT;
	copy->types[sizeof(copy->types) - 1] = '\0';
	return copy->in_use ? 0 : -ENOENT;
}

static const struct jobq_client_rec *client_table(jobq_t *q)
{
	if (!q->clients_ok)
		return NULL;
	return (const void *)(q->store + q->sh->clients_off);
}

int jobq_clients(jobq_t *q, struct jobq_client_info **out, size_t *n)
{
	const struct jobq_client_rec *t = client_table(q);
	uint32_t max = t ? q->sh->max_clients : 0, k = 0;
	struct jobq_client_info *v = calloc((size_t)max + 1, sizeof(*v));
	struct jobq_client_rec c;

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < max; i++) {
		struct jobq_client_info *ci = &v[k];

		if (seq_copy(q, &c, t + i, sizeof(c)) || !c.in_use)
			continue;
		ci->pid = c.pid;
		ci->uid = c.uid;
		memcpy(ci->name, c.name, sizeof(ci->name) - 1);
		ci->connected_ns = c.connected_ns;
		ci->requests = c.requests;
		ci->bad = c.bad;
		ci->refused = c.refused;
		ci->waits = c.waits;
		ci->queues = c.queues;
		ci->locks = c.locks;
		ci->quota_waits = q->sh->quota_waits;
		ci->quota_queues = q->sh->quota_queues;
		ci->quota_locks = q->sh->quota_locks;
		ci->bytes = c.bytes;
		ci->quota_bytes = q->sh->quota_bytes;
		ci->jobs = c.jobs;
		ci->held = c.held;
		ci->quota_jobs = q->sh->quota_jobs;
		ci->quota_held = q->sh->quota_held;
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

void jobq__quota_msg(jobq_t *q)
{
	static const char *const what[] = {
	    [JOBQ_QUOTA_WAITS] = "requests waiting at once",
	    [JOBQ_QUOTA_QUEUES] = "queues made",
	    [JOBQ_QUOTA_LOCKS] = "locks made",
	    [JOBQ_QUOTA_BYTES] = "bytes of its puts queued",
	    [JOBQ_QUOTA_JOBS] = "jobs submitted and not finished",
	    [JOBQ_QUOTA_HELD] = "locks held at once",
	};
	const struct jobq_client_rec *t = client_table(q);
	uint32_t id = q->rh ? q->rh->client_id : 0;
	struct jobq_client_rec c;

	for (uint32_t i = 0; t && i < q->sh->max_clients; i++) {
		uint64_t limit;

		if (seq_copy(q, &c, t + i, sizeof(c)) || !c.in_use ||
		    c.client_id != id || !c.quota_hit ||
		    c.quota_hit > JOBQ_QUOTA_HELD)
			continue;
		switch (c.quota_hit) {
		case JOBQ_QUOTA_WAITS:
			limit = q->sh->quota_waits;
			break;
		case JOBQ_QUOTA_QUEUES:
			limit = q->sh->quota_queues;
			break;
		case JOBQ_QUOTA_LOCKS:
			limit = q->sh->quota_locks;
			break;
		case JOBQ_QUOTA_BYTES:
			limit = q->sh->quota_bytes;
			break;
		case JOBQ_QUOTA_JOBS:
			limit = q->sh->quota_jobs;
			break;
		default:
			limit = q->sh->quota_held;
			break;
		}
		jobq__set_error_msg("client quota exceeded: %s (%llu)",
				    what[c.quota_hit],
				    (unsigned long long)limit);
		return;
	}
	jobq__set_error_msg("client quota exceeded");
}
