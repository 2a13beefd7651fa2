/* SPDX-License-Identifier: MIT */
/*
 * queues.c - named FIFO queues of objects in the store.
 *
 * A queue's public state (depth, bytes, limits, totals, the item list) is
 * its record in the store, changed only inside the record's seqlock write
 * section. Its waiters live here, in the manager's memory:
 *
 *   getters - gets that found the queue empty; a put hands its new object
 *             straight to the oldest one, so a queue with getters is empty;
 *   putters - puts and Q_PUT_MANY batches that found the queue at a limit
 *             or the heap full; their payload stays in the client's arena
 *             until they are served, oldest first, when a get or a freed
 *             object makes room (a batch then answers with how many of
 *             its objects went in);
 *   joiners - joins waiting for `unfinished` to reach 0.
 *
 * Durability. Every object gets an id (oid) that rises with each put and
 * outlives restarts. The journal holds a queue's creation and limits, each
 * put (JOBQ__JR_Q_PUT, with the object) and each take (JOBQ__JR_Q_DEL, the
 * takes a turn saw in one record), journaled only when the getter
 * acknowledged the object (its cq head passed it): an object handed out and not
 * acknowledged when the manager dies is still in the journal and comes back on
 * restart, as it comes back to its queue when its getter dies. Replay collects
 * the objects in oid order, drops the taken ones and links the rest, so a queue
 * restarts in put order with every unacknowledged object in it.
 *
 * Removal (`jobq queue rm`, Q_REMOVE). A queue that no job names is
 * removed with the objects it holds (they are dropped, and the answer says
 * how many); its blocked getters, putters and joiners fail with -EIDRM. Its
 * record's generation moves on, so the id clients cached for it fails with
 * -ESTALE from then on (libjobq then looks the name up again), and the
 * record goes to the back of the free list, to be reused by a later queue.
 * Objects of the queue that were handed out and not yet acknowledged keep
 * the record from reuse until they are acknowledged (and dropped) or come
 * back (and are dropped then): a queue that took the record must never
 * receive them. The journal says JOBQ__JR_Q_REMOVE; replay drops the
 * objects of the queue it names then.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "jobqd.h"

struct jobq__queue {
	struct jobq__list getters, putters, joiners;
	uint64_t handed; /* objects handed out and not yet acknowledged */
	uint64_t owner;	 /* jobq__client_ref() of its maker, 0: none */
	pid_t owner_pid; /* its maker's pid, 0: none (made by replay) */
	bool zombie;	 /* removed; free once handed is 0 */
};

static struct jobq__queue *queue_priv;
static uint32_t nputwait;     /* putters over all queues */
static uint64_t next_oid = 1; /* the id of the next object put */

/* Free records below nqueues, oldest first: a ring of max_queues. */
static struct {
	uint32_t *v;
	uint32_t head, n, cap;
} freeq;

/* jobq__queues_init - the waiter lists of @max_queues queues; aborts when
 * out of memory (called once at start). */
void jobq__queues_init(uint32_t max_queues)
{
	queue_priv = calloc(max_queues, sizeof(*queue_priv));
	freeq.v = calloc(max_queues, sizeof(*freeq.v));
	if (!queue_priv || !freeq.v)
		abort();
	freeq.cap = max_queues;
	for (uint32_t i = 0; i < max_queues; i++) {
		jobq__list_init(&queue_priv[i].getters);
		jobq__list_init(&queue_priv[i].putters);
		jobq__list_init(&queue_priv[i].joiners);
	}
}

/* jobq__queues_fini - gives back what jobq__queues_init() took. */
void jobq__queues_fini(void)
{
	free(queue_priv);
	free(freeq.v);
	queue_priv = NULL;
	memset(&freeq, 0, sizeof(freeq));
}

static struct jobq_queue_rec *rec(uint32_t qid)
{
	return &jobq__m.st.queues[qid];
}

/* Whether record @qid holds a queue (the journal names records so). */
static bool valid_qid(uint32_t qid)
{
	return qid < load_relaxed(&jobq__hdr()->nqueues) && rec(qid)->in_use;
}

/* The id clients know the queue in record @qid by. */
static uint32_t wire_id(uint32_t qid)
{
	return rec(qid)->gen << JOBQ_QID_BITS | qid;
}

/*
 * jobq__queue_index - the record of the queue a client calls @id: 0 and
 * *qid, -EINVAL for an id no queue ever had, -ESTALE for a queue that
 * was removed (its record may hold another queue now).
 */
int jobq__queue_index(uint32_t id, uint32_t *qid)
{
	uint32_t i = id & JOBQ_QID_MASK;

	*qid = 0; /* set on every path: callers test only the result */
	if (i >= load_relaxed(&jobq__hdr()->nqueues))
		return -EINVAL;
	if (!rec(i)->in_use || rec(i)->gen != id >> JOBQ_QID_BITS)
		return -ESTALE;
	*qid = i;
	return 0;
}

/* jobq__queue_index() for an op of this file: an id out of every range is
 * a bad entry; a stale one is what a client may have cached. */
static int op_qid(uint32_t id, uint32_t *qid)
{
	int err = jobq__queue_index(id, qid);

	return err == -EINVAL ? jobq__bad(err) : err;
}

/* jobq__queues_made_by - how many queues that exist process @pid made:
 * what a new connection of that process starts its quota count at, so
 * that reconnecting does not reset it. */
uint32_t jobq__queues_made_by(pid_t pid)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nqueues), k = 0;

	for (uint32_t i = 0; i < n; i++)
		if (rec(i)->in_use && queue_priv[i].owner_pid == pid)
			k++;
	return k;
}

/* Record @qid is free: to the back of the free ring. */
static void free_push(uint32_t qid)
{
	freeq.v[(freeq.head + freeq.n++) % freeq.cap] = qid;
}

/* Hands @item of queue @qid to @c, counting it as the queue's until it
 * is acknowledged or comes back. */
static void hand(struct jobq__client *c, uint64_t user_data, uint32_t qid,
		 uint64_t item, bool more)
{
	queue_priv[qid].handed++;
	jobq__hand(c, user_data, qid, item, more);
}

/* An object of queue @qid handed out was acknowledged or came back. */
static void unhand(uint32_t qid)
{
	struct jobq__queue *q = &queue_priv[qid];

	if (q->handed)
		q->handed--;
	if (q->zombie && !q->handed) {
		q->zombie = false;
		free_push(qid);
	}
}

/*
 * Whether one more object of @len bytes would pass the limits of queue @r
 * once it holds @depth objects of @bytes. An empty queue takes any object,
 * so a too-big one cannot block forever.
 */
static bool over_limit_at(const struct jobq_queue_rec *r, uint64_t depth,
			  uint64_t bytes, uint64_t len)
{
	if (r->max_depth && depth >= r->max_depth)
		return true;
	if (r->max_bytes && depth > 0 && bytes + len > r->max_bytes)
		return true;
	return false;
}

/* How many objects a get of @c asks for with @arg0: at least one, and no
 * more than its completion ring holds. */
static uint64_t get_want(const struct jobq__client *c, uint64_t arg0)
{
	if (arg0 == 0)
		return 1;
	return arg0 > c->cq_entries ? c->cq_entries : arg0;
}

static uint64_t getter_want(const struct jobq__waiter *w)
{
	return get_want(w->c, w->sqe.arg0);
}

/* The oldest getter whose client can still take an object, or NULL. */
static struct jobq__waiter *first_getter(struct jobq__queue *q)
{
	for (struct jobq__list *p = q->getters.next; p != &q->getters;
	     p = p->next) {
		struct jobq__waiter *w =
		    jobq__entry(p, struct jobq__waiter, onode);

		if (jobq__client_alive(w->c))
			return w;
	}
	return NULL;
}

/*
 * Links the chain @first..@last (@k objects, @bytes of payload, already
 * linked among themselves, @last's next 0) behind the tail of queue @r.
 * Called inside the record's write section.
 */
static void append_locked(struct jobq_queue_rec *r, uint64_t first,
			  uint64_t last, uint64_t k, uint64_t bytes)
{
	if (r->tail)
		((struct jobq_item *)jobq__ptr(r->tail))->next = first;
	else
		r->head = first;
	r->tail = last;
	r->depth += k;
	r->bytes += bytes;
}

static void journal_put(uint32_t qid, uint64_t item);
static void owner_bytes(uint64_t item, uint32_t len, int sign);

/* A new object enters queue @qid: to the oldest getter, else the tail. */
static void commit(uint32_t qid, uint64_t item)
{
	struct jobq_queue_rec *r = rec(qid);
	struct jobq_item *it = jobq__ptr(item);
	struct jobq__waiter *w = first_getter(&queue_priv[qid]);

	journal_put(qid, item);
	seq_write_begin(&r->seq);
	r->total_put++;
	r->unfinished++;
	if (w) {
		r->total_get++;
	} else {
		it->next = 0;
		append_locked(r, item, item, 1, it->len);
	}
	seq_write_end(&r->seq);
	if (!w)
		owner_bytes(item, it->len, 1);
	jobq__count(puts);
	if (w) {
		jobq__count(gets);
		hand(w->c, w->sqe.user_data, qid, item, false);
		jobq__wait_free(w);
	}
}

/* Unlinks the head object of @r (not empty), inside its write section. */
static struct jobq_item *unlink_head(struct jobq_queue_rec *r)
{
	struct jobq_item *it = jobq__ptr(r->head);

	r->head = it->next;
	if (!r->head)
		r->tail = 0;
	r->depth--;
	r->bytes -= it->len;
	return it;
}

/* Takes the head object off queue @qid (which must not be empty). */
static uint64_t pop(uint32_t qid)
{
	struct jobq_queue_rec *r = rec(qid);
	uint64_t item = r->head;
	struct jobq_item *it;

	seq_write_begin(&r->seq);
	it = unlink_head(r);
	r->total_get++;
	seq_write_end(&r->seq);
	jobq__count(gets);
	owner_bytes(item, it->len, -1);
	return item;
}

/* Why a put stopped: PUT_BAD and PUT_TOOBIG only come from a Q_PUT_MANY
 * record that is out of its arena range or over the object limit;
 * PUT_QUOTA when the putter has its quota of bytes queued. */
enum { PUT_OK = 0, PUT_LIMIT, PUT_FULL, PUT_BAD, PUT_TOOBIG, PUT_QUOTA };

/*
 * Object blocks. The objects that one put brings share one heap block, so
 * that a batch costs one allocation and one free rather than one per object:
 *
 *   [struct qblock][obj 0][obj 1]...
 *   obj: [uint64_t oid][uint64_t block offset][struct jobq_item][payload]
 *
 * each obj 8-byte aligned. The item offset is what queues link and clients
 * are handed (its payload follows it, as for any struct jobq_item); the word
 * before it names the block. The block counts its objects not yet freed and
 * goes back to the heap with the last one, so an object's memory is held at
 * most until the other objects of its put are consumed. Only jobqd writes
 * the store, so these words cannot be tampered with.
 */
struct qblock {
	uint64_t live;	/* objects of this block not yet freed */
	uint64_t owner; /* jobq__client_ref() of the putter, 0: replay */
};

#define BLOCK_BYTES (64u << 10) /* a block of several objects at most */
#define RUN_MAX	    256u	/* objects staged at once by a batch */

static uint64_t obj_size(uint32_t len)
{
	return 2 * sizeof(uint64_t) + sizeof(struct jobq_item) +
	       (((uint64_t)len + 7) & ~(uint64_t)7);
}

/*
 * Allocates one block for @k objects of @lens/@types, writes their headers
 * (next 0) and their item offsets into @items. Returns false when the heap
 * has no room for it.
 */
static bool block_alloc(const uint32_t *lens, const uint32_t *types, uint32_t k,
			uint64_t *items, uint64_t owner)
{
	uint64_t size = sizeof(struct qblock), b, at;

	for (uint32_t i = 0; i < k; i++)
		size += obj_size(lens[i]);
	b = jobq__alloc(size);
	if (!b)
		return false;
	((struct qblock *)jobq__ptr(b))->live = k;
	((struct qblock *)jobq__ptr(b))->owner = owner;
	at = b + sizeof(struct qblock);
	for (uint32_t i = 0; i < k; i++) {
		struct jobq_item *it = jobq__ptr(at + 2 * sizeof(uint64_t));

		*(uint64_t *)jobq__ptr(at) = next_oid++;
		*(uint64_t *)jobq__ptr(at + sizeof(uint64_t)) = b;
		it->next = 0;
		it->len = lens[i];
		it->type = types[i];
		items[i] = at + 2 * sizeof(uint64_t);
		at += obj_size(lens[i]);
	}
	return true;
}

static uint64_t item_oid(uint64_t item)
{
	return *(uint64_t *)jobq__ptr(item - 2 * sizeof(uint64_t));
}

/* Object @item (@len bytes) entered (@sign 1) or left (-1) its queue:
 * its putter's queued bytes follow, while the putter is connected. */
static void owner_bytes(uint64_t item, uint32_t len, int sign)
{
	uint64_t b = *(uint64_t *)jobq__ptr(item - sizeof(uint64_t));

	jobq__quota_bytes_add(((struct qblock *)jobq__ptr(b))->owner,
			      sign * (int64_t)len);
}

/* What a JOBQ__JR_Q_PUT record holds before the payload. */
struct jput {
	uint32_t qid;
	uint32_t type;
	uint64_t oid;
};

/* Journals object @item (payload written) entering queue @qid; the put's
 * answer waits for it. */
static void journal_put(uint32_t qid, uint64_t item)
{
	const struct jobq_item *it = jobq__ptr(item);
	struct jput h = {.qid = qid, .type = it->type, .oid = item_oid(item)};
	struct iovec v[2] = {
	    {.iov_base = &h, .iov_len = sizeof(h)},
	    {.iov_base = (void *)(it + 1), .iov_len = it->len},
	};

	jobq__jlog(JOBQ__JR_Q_PUT, v, 2, true);
}

/* A run bigger than this is journaled an object a record: the copy then
 * costs more than the records' headers, and a record stays far below
 * JOBQ__JREC_MAX. */
#define PUTS_MAX_BYTES (1u << 20)

/*
 * Journals the @k objects of @items (payloads written) entering queue
 * @qid in one JOBQ__JR_Q_PUTS record: one header, one checksum and one
 * call for the run instead of one per object, which is most of what a
 * batched put costs the manager beyond the copy of its bytes. The put's
 * answer waits for it.
 */
static void journal_puts(uint32_t qid, const uint64_t *items, uint32_t k,
			 uint64_t bytes)
{
	uint32_t count = k, len;
	struct jput h = {.qid = qid};
	uint8_t *p;

	if (k == 1 || bytes > PUTS_MAX_BYTES) {
		for (uint32_t i = 0; i < k; i++)
			journal_put(qid, items[i]);
		return;
	}
	/* Built in place: each object's bytes are copied once, here. */
	p = jobq__jlog_reserve(JOBQ__JR_Q_PUTS,
			       sizeof(count) + k * (sizeof(len) + sizeof(h)) +
				   bytes);
	if (!p)
		return;
	memcpy(p, &count, sizeof(count));
	p += sizeof(count);
	for (uint32_t i = 0; i < k; i++) {
		const struct jobq_item *it = jobq__ptr(items[i]);

		h.type = it->type;
		h.oid = item_oid(items[i]);
		len = (uint32_t)sizeof(h) + it->len;
		memcpy(p, &len, sizeof(len));
		memcpy(p + sizeof(len), &h, sizeof(h));
		memcpy(p + sizeof(len) + sizeof(h), it + 1, it->len);
		p += sizeof(len) + len;
	}
	jobq__jlog_seal(true);
}

/* Gives back @item's share of its block: the block goes with its last. */
static void item_release(uint64_t item)
{
	uint64_t b = *(uint64_t *)jobq__ptr(item - sizeof(uint64_t));
	struct qblock *qb = jobq__ptr(b);

	if (--qb->live == 0)
		jobq__free(b);
}

/*
 * The takes not yet journaled: one Q_DEL record holds them all, so that a
 * getter's batch costs one record header, one checksum and one call, not
 * one per object. Oids are never reused, so a take journaled later in the
 * turn than it happened cannot meet a newer object of the same oid; a
 * snapshot taken meanwhile holds the state without those objects, and a
 * take of an object replay does not have changes nothing.
 */
static struct {
	uint64_t oid[256];
	uint32_t n;
} takes;

void jobq__queue_takes_flush(void)
{
	struct iovec v = {.iov_base = takes.oid,
			  .iov_len = takes.n * sizeof(takes.oid[0])};

	/* Taken for good: no answer waits for this record, which goes with
	 * the next commit (journal_mgr.c, lazy records). */
	if (takes.n)
		jobq__jlog_lazy(JOBQ__JR_Q_DEL, &v, 1);
	takes.n = 0;
}

/* jobq__queue_item_free - object @item of queue @qid handed out was
 * consumed: its block goes back to the heap with the last of its objects. */
void jobq__queue_item_free(uint32_t qid, uint64_t item)
{
	uint64_t oid = item_oid(item);

#ifdef JOBQ_HAVE_PG
	/* With --backend the object is PostgreSQL's, not the journal's: its
	 * row of jobq_queue_taken goes (queues_pg.c). */
	if (jobq__m.o.backend)
		jobq__queues_pg_acked(oid);
	else
#endif
	{
		if (takes.n == sizeof(takes.oid) / sizeof(takes.oid[0]))
			jobq__queue_takes_flush();
		takes.oid[takes.n++] = oid;
	}
	item_release(item);
	unhand(qid);
}

/* Stores a copy of @data as a new object of queue @qid if it fits. */
static int try_put(struct jobq__client *c, uint32_t qid, const uint8_t *data,
		   uint32_t len, uint32_t type)
{
	uint64_t item;

	if (jobq__list_empty(&queue_priv[qid].getters)) {
		if (over_limit_at(rec(qid), rec(qid)->depth, rec(qid)->bytes,
				  len))
			return PUT_LIMIT;
		if (jobq__quota_bytes_room(c, len))
			return PUT_QUOTA;
	}
	if (!block_alloc(&len, &type, 1, &item, jobq__client_ref(c)))
		return PUT_FULL;
	memcpy((struct jobq_item *)jobq__ptr(item) + 1, data, len);
	commit(qid, item);
	return PUT_OK;
}

/* Hands objects of queue @qid to its getters, oldest first, while both
 * last. */
static void serve_getters(uint32_t qid)
{
	struct jobq__queue *q = &queue_priv[qid];
	struct jobq__waiter *w;

	while (rec(qid)->depth && (w = first_getter(q))) {
		uint64_t k = getter_want(w);

		/* A getter takes what it asked for, as far as there is. */
		if (k > rec(qid)->depth)
			k = rec(qid)->depth;
		for (uint64_t i = 0; i < k; i++)
			hand(w->c, w->sqe.user_data, qid, pop(qid), i + 1 < k);
		jobq__wait_free(w);
	}
}

/*
 * Allocates blocks for the @k staged objects of @lens/@types, several
 * objects a block (up to BLOCK_BYTES), fewer when the heap has no room for
 * a bigger one. Returns how many objects got memory: a leading run.
 */
static uint32_t run_alloc(const uint32_t *lens, const uint32_t *types,
			  uint32_t k, uint64_t *items, uint64_t owner)
{
	uint32_t i = 0;

	while (i < k) {
		uint64_t size = sizeof(struct qblock) + obj_size(lens[i]);
		uint32_t j = 1;

		while (i + j < k && size + obj_size(lens[i + j]) <= BLOCK_BYTES)
			size += obj_size(lens[i + j++]);
		while (!block_alloc(lens + i, types + i, j, items + i, owner)) {
			if (j == 1)
				return i;
			j /= 2;
		}
		i += j;
	}
	return k;
}

/*
 * Puts the records of Q_PUT_MANY request @s (validated range in @c's arena)
 * on queue @qid, in order, while they fit. Returns how many went in; *why
 * says what stopped the run (PUT_OK: every record went in). Each record
 * header is read from the shared arena once and checked before use.
 *
 * Objects go in runs: a run for the oldest getter is as long as that
 * getter asked for (a queue with getters is empty, so no limit applies and
 * the getter gets them in one answer); a run for the tail is as long as the
 * limits allow. Each run is one write section of the queue's seqlock.
 */
static uint32_t put_run(struct jobq__client *c, uint32_t qid,
			const struct jobq_sqe *s, int *why)
{
	struct jobq_queue_rec *r = rec(qid);
	const uint8_t *base = jobq__arena(c, s->arena_off);
	uint64_t pos = 0, end = s->arena_len, max = jobq__hdr()->max_object;
	uint32_t lens[RUN_MAX], types[RUN_MAX];
	uint64_t srcs[RUN_MAX], items[RUN_MAX];
	uint32_t n = 0;

	*why = PUT_OK;
	while (n < s->arg0 && *why == PUT_OK) {
		struct jobq__waiter *w = first_getter(&queue_priv[qid]);
		uint64_t want = w ? getter_want(w) : UINT64_MAX;
		uint64_t bytes = 0;
		uint32_t k = 0, got;
		bool requeued = false;

		/* Stage: read and check the headers of the run. */
		while (n + k < s->arg0 && k < want && k < RUN_MAX) {
			struct jobq_put_rec h;

			if (pos > end || end - pos < sizeof(h)) {
				*why = PUT_BAD;
				break;
			}
			memcpy(&h, base + pos, sizeof(h));
			/* Use the copy only: the client may rewrite its
			 * arena meanwhile. */
			atomic_signal_fence(memory_order_seq_cst);
			if (h.len > max) {
				*why = PUT_TOOBIG;
				break;
			}
			if (h.len > end - pos - sizeof(h)) {
				*why = PUT_BAD;
				break;
			}
			if (!w && over_limit_at(r, r->depth + k,
						r->bytes + bytes, h.len)) {
				*why = PUT_LIMIT;
				break;
			}
			if (!w && jobq__quota_bytes_room(c, bytes + h.len)) {
				*why = PUT_QUOTA;
				break;
			}
			lens[k] = h.len;
			types[k] = h.type;
			srcs[k] = pos;
			bytes += h.len;
			k++;
			pos = (pos + sizeof(h) + h.len + 7) & ~(uint64_t)7;
		}
		if (!k)
			break;
		got = run_alloc(lens, types, k, items, jobq__client_ref(c));
		if (got < k) {
			/* The heap is full: the rest is not put now. */
			*why = PUT_FULL;
			if (!got)
				break;
			k = got;
			bytes = 0;
			for (uint32_t i = 0; i < k; i++)
				bytes += lens[i];
		}
		for (uint32_t i = 0; i < k; i++) {
			struct jobq_item *it = jobq__ptr(items[i]);

			memcpy(it + 1,
			       base + srcs[i] + sizeof(struct jobq_put_rec),
			       lens[i]);
			if (i + 1 < k)
				it->next = items[i + 1];
		}
		journal_puts(qid, items, k, bytes);
		seq_write_begin(&r->seq);
		r->total_put += k;
		r->unfinished += k;
		if (w)
			r->total_get += k;
		else
			append_locked(r, items[0], items[k - 1], k, bytes);
		seq_write_end(&r->seq);
		if (!w)
			jobq__quota_bytes_add(jobq__client_ref(c),
					      (int64_t)bytes);
		store_relaxed(&jobq__hdr()->counters.puts,
			      load_relaxed(&jobq__hdr()->counters.puts) + k);
		if (w) {
			store_relaxed(
			    &jobq__hdr()->counters.gets,
			    load_relaxed(&jobq__hdr()->counters.gets) + k);
			for (uint32_t i = 0; i < k; i++) {
				if (!jobq__client_alive(w->c)) {
					/* A hand that failed dropped the
					 * client: the rest goes back to the
					 * head, last first, keeping order. */
					for (uint32_t j = k; j-- > i;)
						jobq__queue_requeue(qid,
								    items[j]);
					requeued = true;
					break;
				}
				hand(w->c, w->sqe.user_data, qid, items[i],
				     i + 1 < k);
			}
			jobq__wait_free(w);
			/* Other getters take those before anything newer,
			 * so that a queue with getters stays empty. */
			if (requeued)
				serve_getters(qid);
		}
		n += k;
	}
	return n;
}

/*
 * What a Q_PUT_MANY answers after put_run() put @n of its objects and
 * stopped for @why: the count once any went in (a batch waits only for its
 * first object; the rest is the client's to send again), an error for a
 * first record that can never go in, or 0 when it waits for room.
 */
static int batch_answer(uint32_t n, int why)
{
	if (n)
		return (int)n;
	if (why == PUT_BAD)
		return jobq__bad(-EINVAL);
	if (why == PUT_TOOBIG)
		return -E2BIG;
	if (why == PUT_QUOTA)
		return JOBQ_EQUOTA;
	return 0;
}

static void set_waiting(uint32_t qid, int kind, int delta)
{
	struct jobq_queue_rec *r = rec(qid);

	seq_write_begin(&r->seq);
	if (kind == JOBQ__W_GET)
		r->getters += (uint32_t)delta;
	else
		r->putters += (uint32_t)delta;
	seq_write_end(&r->seq);
}

/* Serves the putters of queue @qid in order while their objects fit. */
static void serve_putters(uint32_t qid)
{
	struct jobq__queue *q = &queue_priv[qid];

#ifdef JOBQ_HAVE_PG
	/* With --backend they wait for room in PostgreSQL: the oldest is
	 * sent again (queues_pg.c). */
	if (jobq__m.o.backend) {
		if (!jobq__list_empty(&q->putters))
			jobq__queues_pg_room(qid);
		return;
	}
#endif
	while (!jobq__list_empty(&q->putters)) {
		struct jobq__waiter *w =
		    jobq__entry(q->putters.next, struct jobq__waiter, onode);
		int put;

		if (!jobq__client_alive(w->c)) {
			/* Dropped at the end of this turn; skip it now. */
			jobq__wait_free(w);
			continue;
		}
		if (w->sqe.op == JOBQ_OP_Q_PUT_MANY) {
			int why, res;
			/* put_run sets why: call it before why is read. */
			uint32_t n = put_run(w->c, qid, &w->sqe, &why);

			res = batch_answer(n, why);
			if (res)
				jobq__wait_done(w, res, 0);
			if (why == PUT_LIMIT || why == PUT_FULL)
				break;
			continue;
		}
		put = try_put(w->c, qid, jobq__arena(w->c, w->sqe.arena_off),
			      w->sqe.arena_len, w->sqe.type);
		if (put == PUT_QUOTA) {
			/* Its own quota, not the queue, holds it back. */
			jobq__wait_done(w, JOBQ_EQUOTA, 0);
			continue;
		}
		if (put != PUT_OK)
			break;
		/* A --durable put parked in an earlier turn: sync this one
		 * (it was checked possible when it came). */
		if (w->sqe.flags & JOBQ_SQE_DURABLE)
			jobq__durable_want_sync();
		jobq__wait_done(w, 0, 0);
	}
}

/* jobq__queue_serve - after objects came back to queue @qid: hand them to
 * its getters, then let in the putters that now fit. */
void jobq__queue_serve(uint32_t qid)
{
	serve_getters(qid);
	serve_putters(qid);
#ifdef JOBQ_HAVE_PG
	/* What no getter here took goes back to PostgreSQL, for any host. */
	if (jobq__m.o.backend)
		jobq__queues_pg_settle(qid);
#endif
}

/* jobq__queue_requeue - put @item (an object of queue @qid that was handed
 * out but not acknowledged) back at the head; getters are not served here. */
void jobq__queue_requeue(uint32_t qid, uint64_t item)
{
	struct jobq_queue_rec *r = rec(qid);
	struct jobq_item *it = jobq__ptr(item);

	if (queue_priv[qid].zombie) {
		/* Its queue was removed meanwhile: it goes with it. */
		jobq__queue_item_free(qid, item);
		jobq__queue_takes_flush();
		return;
	}
	unhand(qid);
	owner_bytes(item, it->len, 1);
	seq_write_begin(&r->seq);
	it->next = r->head;
	r->head = item;
	if (!r->tail)
		r->tail = item;
	r->depth++;
	r->bytes += it->len;
	seq_write_end(&r->seq);
}

/* jobq__queues_kick - heap space came back: serve the putters of every
 * queue that has some. */
void jobq__queues_kick(void)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nqueues);

	for (uint32_t i = 0; i < n && nputwait; i++)
		if (!jobq__list_empty(&queue_priv[i].putters))
			serve_putters(i);
}

/* jobq__queues_blocked - whether a putter waits anywhere, so that freed
 * heap space should be offered at once. */
bool jobq__queues_blocked(void)
{
	return nputwait > 0;
}

/* jobq__queue_wait_detach - unlink getter, putter or joiner @w from its
 * queue and fix the record's waiter counts; a no-op when not linked. A
 * queue waiter's sqe.id holds the record index (set when it was parked). */
void jobq__queue_wait_detach(struct jobq__waiter *w)
{
	uint32_t qid = w->sqe.id;

	if (jobq__list_empty(&w->onode))
		return;
	jobq__list_del(&w->onode);
	if (w->kind == JOBQ__W_GET) {
		set_waiting(qid, JOBQ__W_GET, -1);
	} else if (w->kind == JOBQ__W_PUT) {
		set_waiting(qid, JOBQ__W_PUT, -1);
		nputwait--;
	}
}

/* What a JOBQ__JR_Q_LIMITS record holds. */
struct jlimits {
	uint32_t qid;
	uint32_t zero;
	uint64_t max_depth;
	uint64_t max_bytes;
};

static void journal_limits(uint32_t qid, uint64_t depth, uint64_t bytes)
{
	struct jlimits l = {.qid = qid, .max_depth = depth, .max_bytes = bytes};
	struct iovec v = {.iov_base = &l, .iov_len = sizeof(l)};

	jobq__jlog(JOBQ__JR_Q_LIMITS, &v, 1, true);
}

/* Applies limits from arg0/arg1 (UINT64_MAX: leave) to queue @qid. */
static void set_limits(uint32_t qid, const struct jobq_sqe *s)
{
	struct jobq_queue_rec *r = rec(qid);
	uint64_t depth = s->arg0 != UINT64_MAX ? s->arg0 : r->max_depth;
	uint64_t bytes = s->arg1 != UINT64_MAX ? s->arg1 : r->max_bytes;

	if (depth != r->max_depth || bytes != r->max_bytes)
		journal_limits(qid, depth, bytes);
	seq_write_begin(&r->seq);
	r->max_depth = depth;
	r->max_bytes = bytes;
	seq_write_end(&r->seq);
	/* Raised limits may let putters in. */
	serve_putters(qid);
}

/*
 * The record a new queue takes: one never used while there are, else the
 * free one removed longest ago. Returns 0 and *qid, or JOBQ_ELIMIT when
 * every record holds a queue (or one handed out objects not yet back).
 */
static int queue_slot(uint32_t *qid)
{
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t n = load_relaxed(&h->nqueues);

	if (n < h->max_queues) {
		*qid = n;
		return 0;
	}
	if (!freeq.n) {
		jobq__log(JOBQ__LOG_WARN,
			  "the queue table is full: %u queues (jobq queue rm "
			  "frees one; jobqd --max-queues raises it)",
			  h->max_queues);
		return JOBQ_ELIMIT;
	}
	*qid = freeq.v[freeq.head];
	freeq.head = (freeq.head + 1) % freeq.cap;
	freeq.n--;
	return 0;
}

/* Makes record @qid (free) queue @name (JOBQ_NAME_MAX + 1 bytes,
 * zero-padded) of generation @gen. */
static void queue_create(uint32_t qid, uint32_t gen, const char *name)
{
	struct jobq_store_hdr *h = jobq__hdr();
	struct jobq_queue_rec *r = rec(qid);

	seq_write_begin(&r->seq);
	/* Everything but the seqlock goes: nothing of the queue that had
	 * the record before may show. */
	memset((char *)r + sizeof(r->seq), 0, sizeof(*r) - sizeof(r->seq));
	r->in_use = 1;
	r->gen = gen;
	memcpy(r->name, name, sizeof(r->name));
	seq_write_end(&r->seq);
	/* The record is complete before readers count it. */
	if (qid >= load_relaxed(&h->nqueues))
		store_release(&h->nqueues, qid + 1);
	store_relaxed(&h->queues_live, load_relaxed(&h->queues_live) + 1);
	jobq__log(1, "queue %u \"%s\" created", qid, name);
}

static void journal_create(uint32_t qid, const char *name)
{
	uint32_t id = wire_id(qid);
	struct iovec v[2] = {
	    {.iov_base = &id, .iov_len = sizeof(id)},
	    {.iov_base = (void *)name, .iov_len = strlen(name)},
	};

	jobq__jlog(JOBQ__JR_Q_CREATE, v, 2, true);
}

/* The record of the queue called @name, or UINT32_MAX. */
static uint32_t queue_find(const char *name)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nqueues);

	for (uint32_t i = 0; i < n; i++)
		if (rec(i)->in_use && !strcmp(rec(i)->name, name))
			return i;
	return UINT32_MAX;
}

/* Drops every object queued in @qid; returns how many there were. */
static uint64_t drop_objects(uint32_t qid)
{
	struct jobq_queue_rec *r = rec(qid);
	uint64_t n = 0, it = r->head;

	while (it) {
		uint64_t next = ((struct jobq_item *)jobq__ptr(it))->next;

		owner_bytes(it, ((struct jobq_item *)jobq__ptr(it))->len, -1);
		item_release(it);
		it = next;
		n++;
	}
	return n;
}

/* Frees record @qid, its objects dropped (in the heap and the journal
 * already), and moves its generation on. */
static void queue_clear(uint32_t qid)
{
	struct jobq_store_hdr *h = jobq__hdr();
	struct jobq_queue_rec *r = rec(qid);
	uint32_t gen = (r->gen + 1) & JOBQ_QGEN_MASK;

	seq_write_begin(&r->seq);
	memset((char *)r + sizeof(r->seq), 0, sizeof(*r) - sizeof(r->seq));
	r->gen = gen;
	seq_write_end(&r->seq);
	store_relaxed(&h->queues_live, load_relaxed(&h->queues_live) - 1);
}

/* Fails every waiter on @l with -EIDRM. */
static void fail_all(struct jobq__list *l)
{
	while (!jobq__list_empty(l))
		jobq__wait_done(
		    jobq__entry(l->next, struct jobq__waiter, onode), -EIDRM,
		    0);
}

/*
 * The op handlers below take a request @s of @c that dispatch() has
 * bounds-checked (arena range only; ids and arguments are checked here)
 * and return the res to post, or JOBQ__NOREPLY when they answered (objects)
 * or parked the request.
 */
int jobq__op_q_open(struct jobq__client *c, const struct jobq_sqe *s)
{
	char name[JOBQ_NAME_MAX + 1];
	uint32_t i;
	int err;

	if (jobq__arena_name(c, s, name))
		return jobq__bad(-EINVAL);
	i = queue_find(name);
	if (i == UINT32_MAX) {
		if (!(s->flags & JOBQ_SQE_CREATE))
			return -ENOENT;
		err = jobq__quota_take(c, JOBQ_QUOTA_QUEUES);
		if (err)
			return err;
		err = queue_slot(&i);
		if (err) {
			jobq__quota_give(c, JOBQ_QUOTA_QUEUES);
			return err;
		}
		queue_create(i, rec(i)->gen, name);
		queue_priv[i].owner = jobq__client_ref(c);
		queue_priv[i].owner_pid = c->pid;
		journal_create(i, name);
	}
	set_limits(i, s);
#ifdef JOBQ_HAVE_PG
	/* Limits given are every host's: answered once PostgreSQL has them. */
	if (jobq__m.o.backend &&
	    (s->arg0 != UINT64_MAX || s->arg1 != UINT64_MAX))
		return jobq__queues_pg_limits(c, s, i, (int)wire_id(i));
#endif
	return (int)wire_id(i);
}

int jobq__op_q_set(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t qid;
	int err = op_qid(s->id, &qid);

	if (err)
		return err;
	set_limits(qid, s);
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__queues_pg_limits(c, s, qid, 0);
#endif
	return 0;
}

static void journal_remove(uint32_t qid)
{
	uint32_t id = wire_id(qid);
	struct iovec v = {.iov_base = &id, .iov_len = sizeof(id)};

	jobq__jlog(JOBQ__JR_Q_REMOVE, &v, 1, true);
}

/* Jobs name their queue by its record: it stays while any does (finished
 * ones until --keep lets them go). */
static bool queue_busy(uint32_t qid)
{
	return rec(qid)->ready || rec(qid)->running ||
	       jobq__jobs_use_queue(qid);
}

/* Removes queue @qid (not busy), asked by process @pid (0: another host);
 * returns how many objects it held. */
static uint64_t queue_remove(uint32_t qid, pid_t pid)
{
	struct jobq__queue *q = &queue_priv[qid];
	struct jobq__client *maker;
	char name[JOBQ_NAME_MAX + 1];
	uint64_t dropped;

	memcpy(name, rec(qid)->name, sizeof(name));
	journal_remove(qid);
	fail_all(&q->getters);
	fail_all(&q->putters);
	fail_all(&q->joiners);
	dropped = drop_objects(qid);
	queue_clear(qid);
	/* Its maker, still connected, may make another. */
	maker = jobq__client_of(q->owner);
	if (maker)
		jobq__quota_give(maker, JOBQ_QUOTA_QUEUES);
	q->owner = 0;
	q->owner_pid = 0;
	if (q->handed)
		q->zombie = true;
	else
		free_push(qid);
	jobq__log(1, "queue %u \"%s\" removed by pid %d, %llu objects dropped",
		  qid, name, (int)pid, (unsigned long long)dropped);
	/* The heap space that came back may let putters in elsewhere. */
	if (dropped)
		jobq__queues_kick();
	return dropped;
}

int jobq__op_q_remove(struct jobq__client *c, const struct jobq_sqe *s)
{
	char name[JOBQ_NAME_MAX + 1];
	uint64_t dropped;
	uint32_t qid;

	if (jobq__arena_name(c, s, name))
		return jobq__bad(-EINVAL);
	qid = queue_find(name);
	if (qid == UINT32_MAX)
		return -ENOENT;
	if (queue_busy(qid))
		return -EBUSY;
	dropped = queue_remove(qid, c->pid);
#ifdef JOBQ_HAVE_PG
	/* Its rows go too, on every host's behalf (queues_pg.c). */
	if (jobq__m.o.backend)
		return jobq__queues_pg_remove(c, s, name, dropped);
#endif
	return dropped > INT32_MAX ? INT32_MAX : (int)dropped;
}

/*
 * A put or batch @s of @c that did not go in (@why: PUT_LIMIT or PUT_FULL)
 * waits at the back of its queue's putters, unless its timeout is 0.
 * Returns what the request answers now.
 */
static int park_putter(struct jobq__client *c, const struct jobq_sqe *s,
		       uint32_t qid, int why)
{
	struct jobq__waiter *w;
	int err;

	if (s->timeout_ns == 0)
		return why == PUT_FULL ? JOBQ_EFULL : -EAGAIN;
	w = jobq__wait_new(c, s, JOBQ__W_PUT, &err);
	if (!w)
		return err;
	w->sqe.id = qid;
	jobq__list_add_tail(&w->onode, &queue_priv[qid].putters);
	set_waiting(qid, JOBQ__W_PUT, 1);
	nputwait++;
	return JOBQ__NOREPLY;
}

int jobq__op_q_put(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t qid;
	int why = PUT_LIMIT, err = op_qid(s->id, &qid);

	if (err)
		return err;
	if (s->arena_len > jobq__hdr()->max_object)
		return -E2BIG;
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__queues_pg_put(c, s, qid);
#endif
	if (s->flags & JOBQ_SQE_DURABLE) {
		err = jobq__durable_want_sync();
		if (err)
			return err;
	}
	/* FIFO: a put waits behind the putters already waiting. */
	if (jobq__list_empty(&queue_priv[qid].putters)) {
		why = try_put(c, qid, jobq__arena(c, s->arena_off),
			      s->arena_len, s->type);
		if (why == PUT_OK)
			return 0;
		if (why == PUT_QUOTA)
			return JOBQ_EQUOTA;
	}
	return park_putter(c, s, qid, why);
}

int jobq__op_q_put_many(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t qid;
	int why = PUT_LIMIT, res = op_qid(s->id, &qid);

	if (res)
		return res;
	if (s->arg0 == 0 || s->arg0 > INT32_MAX)
		return jobq__bad(-EINVAL);
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__queues_pg_put(c, s, qid);
#endif
	/* FIFO: a batch waits behind the putters already waiting. */
	if (jobq__list_empty(&queue_priv[qid].putters)) {
		/* put_run sets why: call it before why is read. */
		uint32_t n = put_run(c, qid, s, &why);

		res = batch_answer(n, why);
		if (res)
			return res;
	}
	return park_putter(c, s, qid, why);
}

int jobq__op_q_get(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint64_t want = get_want(c, s->arg0);
	struct jobq__waiter *w;
	uint32_t qid;
	int err = op_qid(s->id, &qid);

	if (err)
		return err;
	if (rec(qid)->depth) {
		uint64_t k = rec(qid)->depth < want ? rec(qid)->depth : want;

		for (uint64_t i = 0; i < k; i++)
			hand(c, s->user_data, qid, pop(qid), i + 1 < k);
		serve_putters(qid);
		return JOBQ__NOREPLY;
	}
#ifdef JOBQ_HAVE_PG
	/* With --backend an empty queue here asks PostgreSQL: the getter
	 * waits (even with timeout 0) for that answer (queues_pg.c). */
	if (s->timeout_ns == 0 && !jobq__m.o.backend)
		return -EAGAIN;
#else
	if (s->timeout_ns == 0)
		return -EAGAIN;
#endif
	w = jobq__wait_new(c, s, JOBQ__W_GET, &err);
	if (!w)
		return err;
	w->sqe.id = qid;
	jobq__list_add_tail(&w->onode, &queue_priv[qid].getters);
	set_waiting(qid, JOBQ__W_GET, 1);
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		jobq__queues_pg_fetch(qid);
#endif
	return JOBQ__NOREPLY;
}

#ifdef JOBQ_HAVE_PG
/* ------------------------------------------------------------------------
 * For queues_pg.c (--backend): this host's queue records hold only the
 * objects fetched from PostgreSQL for its getters (and those that came
 * back from a getter that died), each object's oid being its row's id.
 */
uint32_t jobq__queue_by_name(const char *name)
{
	return queue_find(name);
}

uint64_t jobq__queue_getters_want(uint32_t qid)
{
	struct jobq__queue *q = &queue_priv[qid];
	uint64_t want = 0;

	for (struct jobq__list *p = q->getters.next; p != &q->getters;
	     p = p->next) {
		struct jobq__waiter *w =
		    jobq__entry(p, struct jobq__waiter, onode);

		if (jobq__client_alive(w->c))
			want += getter_want(w);
	}
	return want;
}

void jobq__queue_getters_once(uint32_t qid)
{
	struct jobq__queue *q = &queue_priv[qid];
	struct jobq__list *p = q->getters.next;

	while (p != &q->getters) {
		struct jobq__waiter *w =
		    jobq__entry(p, struct jobq__waiter, onode);

		p = p->next;
		if (w->sqe.timeout_ns == 0)
			jobq__wait_done(w, -EAGAIN, 0);
	}
}

uint32_t jobq__queue_inject(uint32_t qid, uint32_t k, const uint32_t *lens,
			    const uint32_t *types, const uint8_t *const *datas,
			    const int64_t *ids)
{
	struct jobq_queue_rec *r = rec(qid);
	uint64_t items[RUN_MAX], bytes = 0;
	uint32_t got;

	if (k > RUN_MAX)
		k = RUN_MAX;
	got = run_alloc(lens, types, k, items, 0);
	if (!got)
		return 0;
	for (uint32_t i = 0; i < got; i++) {
		struct jobq_item *it = jobq__ptr(items[i]);

		/* The oid is the row's id: what an acknowledgement or a
		 * give-back names to PostgreSQL. */
		*(uint64_t *)jobq__ptr(items[i] - 2 * sizeof(uint64_t)) =
		    (uint64_t)ids[i];
		memcpy(it + 1, datas[i], lens[i]);
		it->next = i + 1 < got ? items[i + 1] : 0;
		bytes += lens[i];
	}
	/* unfinished is the count kept in PostgreSQL (queues_pg.c). */
	seq_write_begin(&r->seq);
	r->total_put += got;
	append_locked(r, items[0], items[got - 1], got, bytes);
	seq_write_end(&r->seq);
	return got;
}

int jobq__queue_park(struct jobq__client *c, const struct jobq_sqe *s,
		     uint32_t qid, int kind, int64_t timeout_ns, bool front)
{
	struct jobq__queue *q = &queue_priv[qid];
	struct jobq_sqe t = *s;
	struct jobq__list *l = kind == JOBQ__W_PUT ? &q->putters : &q->joiners;
	struct jobq__waiter *w;
	int err;

	t.timeout_ns = timeout_ns;
	w = jobq__wait_new(c, &t, kind, &err);
	if (!w)
		return err;
	w->sqe.id = qid;
	/* Before the first, or after the last. */
	jobq__list_add_tail(&w->onode, front ? l->next : l);
	if (kind == JOBQ__W_PUT) {
		set_waiting(qid, JOBQ__W_PUT, 1);
		nputwait++;
	}
	return 0;
}

struct jobq__waiter *jobq__queue_first_putter(uint32_t qid)
{
	struct jobq__queue *q = &queue_priv[qid];

	while (!jobq__list_empty(&q->putters)) {
		struct jobq__waiter *w =
		    jobq__entry(q->putters.next, struct jobq__waiter, onode);

		if (jobq__client_alive(w->c))
			return w;
		jobq__wait_free(w);
	}
	return NULL;
}

bool jobq__queue_has_joiners(uint32_t qid)
{
	return !jobq__list_empty(&queue_priv[qid].joiners);
}

void jobq__queue_joined(uint32_t qid, int32_t res)
{
	struct jobq__queue *q = &queue_priv[qid];

	while (!jobq__list_empty(&q->joiners))
		jobq__wait_done(
		    jobq__entry(q->joiners.next, struct jobq__waiter, onode),
		    res, 0);
}

uint32_t jobq__queue_adopt(const char *name)
{
	struct jobq_store_hdr *h = jobq__hdr();
	char n[JOBQ_NAME_MAX + 1];
	size_t len = strlen(name);
	uint32_t qid = queue_find(name);

	if (qid != UINT32_MAX)
		return qid;
	/* Half the table stays for the queues clients here name: queues
	 * of other hosts only show here, and must not crowd those out. */
	if (!len || len > JOBQ_NAME_MAX ||
	    load_relaxed(&h->queues_live) >= h->max_queues / 2 ||
	    queue_slot(&qid))
		return UINT32_MAX;
	memset(n, 0, sizeof(n));
	memcpy(n, name, len);
	queue_create(qid, rec(qid)->gen, n);
	journal_create(qid, n);
	return qid;
}

int jobq__queue_drop(const char *name)
{
	uint32_t qid = queue_find(name);

	if (qid == UINT32_MAX)
		return -ENOENT;
	if (queue_busy(qid))
		return -EBUSY;
	queue_remove(qid, 0);
	return 0;
}

uint32_t jobq__queue_take_back(uint32_t qid, int64_t *ids, uint32_t max)
{
	struct jobq_queue_rec *r = rec(qid);
	uint32_t n = 0;

	while (n < max && r->head) {
		uint64_t item = r->head;

		seq_write_begin(&r->seq);
		unlink_head(r);
		r->total_put--;
		seq_write_end(&r->seq);
		ids[n++] = (int64_t)item_oid(item);
		item_release(item);
	}
	return n;
}
#endif

int jobq__op_q_task_done(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq_queue_rec *r;
	struct jobq__queue *q;
	uint32_t qid;
	int err = op_qid(s->id, &qid);

	if (err)
		return err;
	if (s->arg0 == 0)
		return jobq__bad(-EINVAL);
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__queues_pg_task_done(c, s, qid);
#endif
	r = rec(qid);
	q = &queue_priv[qid];
	if (s->arg0 > r->unfinished)
		return -EINVAL;
	seq_write_begin(&r->seq);
	r->unfinished -= s->arg0;
	seq_write_end(&r->seq);
	if (r->unfinished == 0)
		while (!jobq__list_empty(&q->joiners))
			jobq__wait_done(jobq__entry(q->joiners.next,
						    struct jobq__waiter, onode),
					0, 0);
	return 0;
}

int jobq__op_q_join(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq__waiter *w;
	uint32_t qid;
	int err = op_qid(s->id, &qid);

	if (err)
		return err;
#ifdef JOBQ_HAVE_PG
	if (jobq__m.o.backend)
		return jobq__queues_pg_join(c, s, qid);
#endif
	if (rec(qid)->unfinished == 0)
		return 0;
	if (s->timeout_ns == 0)
		return -EAGAIN;
	w = jobq__wait_new(c, s, JOBQ__W_JOIN, &err);
	if (!w)
		return err;
	w->sqe.id = qid;
	jobq__list_add_tail(&w->onode, &queue_priv[qid].joiners);
	return JOBQ__NOREPLY;
}

/* ------------------------------------------------------------------------
 * Replay and snapshot.
 *
 * Replay stages every object it reads in oid order (the journal writes
 * puts in that order, and a snapshot writes its objects sorted, before
 * the journal that follows it), marks the taken ones, and links the rest
 * into their queues at the end: a take can name any object of a queue,
 * not only its head (two getters acknowledge in any order).
 */
struct staged {
	uint64_t oid;
	uint64_t item; /* 0: taken */
	uint32_t qid;
};

static struct {
	struct staged *v;
	size_t n, cap;
} stg;

static int replay_create(const uint8_t *p, uint32_t len)
{
	char name[JOBQ_NAME_MAX + 1];
	uint32_t id, qid;

	memset(name, 0, sizeof(name));
	if (len < sizeof(id) + 1 || len > sizeof(id) + JOBQ_NAME_MAX)
		return -EBADMSG;
	memcpy(&id, p, sizeof(id));
	memcpy(name, p + sizeof(id), len - sizeof(id));
	qid = id & JOBQ_QID_MASK;
	if (qid >= jobq__hdr()->max_queues)
		return JOBQ_ELIMIT;
	/* The record must be free and the name new: a journal says each
	 * removal before the record or the name is used again. */
	if (rec(qid)->in_use || id >> JOBQ_QID_BITS > JOBQ_QGEN_MASK ||
	    queue_find(name) != UINT32_MAX)
		return -EBADMSG;
	queue_create(qid, id >> JOBQ_QID_BITS, name);
	return 0;
}

static int replay_remove(const uint8_t *p, uint32_t len)
{
	uint32_t id, qid;

	if (len != sizeof(id))
		return -EBADMSG;
	memcpy(&id, p, sizeof(id));
	if (jobq__queue_index(id, &qid))
		return -EBADMSG;
	/* Its objects read so far go with it (the pending ones are staged:
	 * every record but a put flushes them first). */
	for (size_t i = 0; i < stg.n; i++) {
		if (stg.v[i].item && stg.v[i].qid == qid) {
			item_release(stg.v[i].item);
			stg.v[i].item = 0;
		}
	}
	queue_clear(qid);
	return 0;
}

/*
 * Puts read but not yet stored: replay gathers a run of them and stores
 * it in blocks of several objects, as put_run() does, so that the state
 * takes no more heap after a restart than before it (one block an object
 * would need more). Their payloads point into the file being replayed,
 * valid until its end (JOBQ__JR_EOF).
 */
static struct {
	uint32_t n;
	uint64_t bytes;
	uint32_t lens[RUN_MAX], types[RUN_MAX], qids[RUN_MAX];
	uint64_t oids[RUN_MAX];
	const uint8_t *data[RUN_MAX];
} pend;

static int stage_grow(size_t more)
{
	return jobq__grow((void **)&stg.v, &stg.cap, stg.n + more,
			  sizeof(*stg.v), 4096);
}

/* Stores the pending puts in as few blocks as fit, and stages them. */
static int pend_flush(void)
{
	uint64_t items[RUN_MAX];

	if (!pend.n)
		return 0;
	if (stage_grow(pend.n))
		return -ENOMEM;
	if (run_alloc(pend.lens, pend.types, pend.n, items, 0) < pend.n)
		return JOBQ_EFULL;
	for (uint32_t i = 0; i < pend.n; i++) {
		/* block_alloc numbered them afresh: they keep their own. */
		*(uint64_t *)jobq__ptr(items[i] - 2 * sizeof(uint64_t)) =
		    pend.oids[i];
		memcpy((struct jobq_item *)jobq__ptr(items[i]) + 1,
		       pend.data[i], pend.lens[i]);
		stg.v[stg.n++] = (struct staged){
		    .oid = pend.oids[i], .item = items[i], .qid = pend.qids[i]};
	}
	next_oid = pend.oids[pend.n - 1] + 1;
	pend.n = 0;
	pend.bytes = 0;
	return 0;
}

static int replay_put(const uint8_t *p, uint32_t len)
{
	uint64_t last;
	struct jput h;

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, p, sizeof(h));
	len -= (uint32_t)sizeof(h);
	last = pend.n  ? pend.oids[pend.n - 1]
	       : stg.n ? stg.v[stg.n - 1].oid
		       : 0;
	if (!valid_qid(h.qid) || h.oid <= last)
		return -EBADMSG;
	if (pend.n == RUN_MAX || pend.bytes + len > BLOCK_BYTES) {
		int ret = pend_flush();

		if (ret)
			return ret;
	}
	pend.lens[pend.n] = len;
	pend.types[pend.n] = h.type;
	pend.qids[pend.n] = h.qid;
	pend.oids[pend.n] = h.oid;
	pend.data[pend.n] = p + sizeof(h);
	pend.bytes += len;
	pend.n++;
	return 0;
}

/* A JOBQ__JR_Q_PUTS record: each of its objects as a Q_PUT of its own. */
static int replay_puts(const uint8_t *p, uint32_t len)
{
	uint32_t count, olen;
	int ret;

	if (len < sizeof(count))
		return -EBADMSG;
	memcpy(&count, p, sizeof(count));
	p += sizeof(count);
	len -= (uint32_t)sizeof(count);
	for (uint32_t i = 0; i < count; i++) {
		if (len < sizeof(olen))
			return -EBADMSG;
		memcpy(&olen, p, sizeof(olen));
		p += sizeof(olen);
		len -= (uint32_t)sizeof(olen);
		if (olen > len)
			return -EBADMSG;
		ret = replay_put(p, olen);
		if (ret)
			return ret;
		p += olen;
		len -= olen;
	}
	return len ? -EBADMSG : 0;
}

static void replay_del(uint64_t oid)
{
	size_t lo = 0, hi = stg.n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (stg.v[mid].oid < oid)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* A take of an object already gone changes nothing. */
	if (lo == stg.n || stg.v[lo].oid != oid || !stg.v[lo].item)
		return;
	item_release(stg.v[lo].item);
	stg.v[lo].item = 0;
}

/* A JOBQ__JR_Q_DEL record: the oids of objects taken. */
static int replay_dels(const uint8_t *p, uint32_t len)
{
	uint64_t oid;

	if (!len || len % sizeof(oid))
		return -EBADMSG;
	for (; len; p += sizeof(oid), len -= (uint32_t)sizeof(oid)) {
		memcpy(&oid, p, sizeof(oid));
		replay_del(oid);
	}
	return 0;
}

int jobq__queues_replay(uint16_t type, const uint8_t *p, uint32_t len)
{
	struct jlimits l;
	int ret;

	if (type == JOBQ__JR_Q_PUT)
		return replay_put(p, len);
	if (type == JOBQ__JR_Q_PUTS)
		return replay_puts(p, len);
	/* Anything else may concern the pending puts: store them first. */
	ret = pend_flush();
	if (ret)
		return ret;
	switch (type) {
	case JOBQ__JR_EOF:
		return 0;
	case JOBQ__JR_Q_CREATE:
		return replay_create(p, len);
	case JOBQ__JR_Q_LIMITS:
		if (len != sizeof(l))
			return -EBADMSG;
		memcpy(&l, p, sizeof(l));
		if (!valid_qid(l.qid))
			return -EBADMSG;
		rec(l.qid)->max_depth = l.max_depth;
		rec(l.qid)->max_bytes = l.max_bytes;
		return 0;
	case JOBQ__JR_Q_DEL:
		return replay_dels(p, len);
	case JOBQ__JR_Q_REMOVE:
		return replay_remove(p, len);
	}
	return -EBADMSG;
}

int jobq__queues_replay_done(void)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nqueues);
	int ret = pend_flush();

	if (ret)
		return ret;
	/* The records freed by removals, lowest first. */
	freeq.head = freeq.n = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!rec(i)->in_use)
			free_push(i);
	for (size_t i = 0; i < stg.n; i++) {
		struct staged *o = &stg.v[i];
		struct jobq_queue_rec *r;
		struct jobq_item *it;

		if (!o->item)
			continue;
		r = rec(o->qid);
		it = jobq__ptr(o->item);
		seq_write_begin(&r->seq);
		append_locked(r, o->item, o->item, 1, it->len);
		r->total_put++;
		r->unfinished++;
		seq_write_end(&r->seq);
	}
	free(stg.v);
	memset(&stg, 0, sizeof(stg));
	return 0;
}

/* The live objects a snapshot writes: queued and handed out. */
static struct {
	struct staged *v;
	size_t n, cap;
	int err;
} live;

static void live_add(void *arg, uint32_t qid, uint64_t item)
{
	/* An object of a removed queue, handed out: it went with it. */
	if (!rec(qid)->in_use)
		return;
	if (live.n == live.cap) {
		size_t ncap = live.cap ? 2 * live.cap : 4096;
		struct staged *nv = realloc(live.v, ncap * sizeof(*nv));

		if (!nv) {
			live.err = -ENOMEM;
			return;
		}
		live.v = nv;
		live.cap = ncap;
	}
	live.v[live.n++] =
	    (struct staged){.oid = item_oid(item), .item = item, .qid = qid};
}

static int by_oid(const void *a, const void *b)
{
	const struct staged *x = a, *y = b;

	return x->oid < y->oid ? -1 : x->oid > y->oid;
}

static bool sorted(void)
{
	for (size_t i = 1; i < live.n; i++)
		if (live.v[i - 1].oid > live.v[i].oid)
			return false;
	return true;
}

/*
 * jobq__queues_snapshot - one record per queue (and its limits), then one
 * per live object in oid order: the queued ones and the ones handed out
 * but not acknowledged, which come back on a restart.
 */
int jobq__queues_snapshot(struct jobq__journal *j)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nqueues);
	int ret = 0;

	for (uint32_t q = 0; q < n && !ret; q++) {
		struct jobq_queue_rec *r = rec(q);
		uint32_t id = wire_id(q);
		struct iovec v[2] = {
		    {.iov_base = &id, .iov_len = sizeof(id)},
		    {.iov_base = r->name, .iov_len = strlen(r->name)},
		};

		if (!r->in_use)
			continue;
		ret = jobq__journal_add(j, JOBQ__JR_Q_CREATE, v, 2);
		if (!ret && (r->max_depth || r->max_bytes)) {
			struct jlimits l = {.qid = q,
					    .max_depth = r->max_depth,
					    .max_bytes = r->max_bytes};

			v[0].iov_base = &l;
			v[0].iov_len = sizeof(l);
			ret = jobq__journal_add(j, JOBQ__JR_Q_LIMITS, v, 1);
		}
		for (uint64_t it = r->head; it && !ret;
		     it = ((struct jobq_item *)jobq__ptr(it))->next)
			live_add(NULL, q, it);
	}
	if (!ret)
		jobq__handed_each(live_add, NULL);
	ret = ret ? ret : live.err;
	/* Queues hold their objects in put order; only objects handed out
	 * (listed last) or requeued break it, and only then is a sort due. */
	if (!ret && live.n && !sorted())
		qsort(live.v, live.n, sizeof(*live.v), by_oid);
	for (size_t i = 0; i < live.n && !ret; i++) {
		const struct jobq_item *it = jobq__ptr(live.v[i].item);
		struct jput h = {.qid = live.v[i].qid,
				 .type = it->type,
				 .oid = live.v[i].oid};
		struct iovec v[2] = {
		    {.iov_base = &h, .iov_len = sizeof(h)},
		    {.iov_base = (void *)(it + 1), .iov_len = it->len},
		};

		ret = jobq__journal_add(j, JOBQ__JR_Q_PUT, v, 2);
	}
	free(live.v);
	memset(&live, 0, sizeof(live));
	return ret;
}
