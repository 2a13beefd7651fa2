/* SPDX-License-Identifier: MIT */
/*
 * jobs.c - jobs, job types and workers.
 *
 * The public state of a job is its record in the store's job table (found
 * by id through the job index), written here only, inside the record's
 * seqlock. What only the manager needs lives in this file's memory and is
 * kept small, since a queued job must cost little beyond its args:
 *
 *   priv[rec]  16 bytes per record: its position in a ready heap or in
 *              the timer heap (a job is in at most one of them), two list
 *              links (free list, a worker's running list, the finished list
 *              or its lane's in-order run, at most one), the count of
 *              unfinished dependencies and the hash of its unique key;
 *   lanes    the ready jobs per (type, queue) pair, best first: priority
 *            descending, then id ascending; an in-order run (a list) plus a
 *            binary heap for the jobs that arrive out of order. A lane is
 *            open when its queue is not paused and below its parallel
 *            limit; a reserving worker takes the best head of the open
 *            lanes of the types it registered;
 *   timers   one min-heap of (deadline, record) for delayed jobs, retry
 *            backoff, leases and the cancel grace period, registered in the
 *            loop as a single timer (its earliest deadline). Finished jobs
 *            sit on one list in the order they finished, which with one
 *            --keep period is also the order they expire in, and the list
 *            the store evicts from when it is full.
 *
 * Every entry point ends with settle(): dependents of jobs that became
 * final are released or failed, parked W_RESERVE requests are served when
 * something became ready or a limit was lifted, and the timer is re-armed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "jobqd.h"

#define NONE		       UINT32_MAX
#define NSEC		       JOBQ__NSEC_PER_SEC
#define JOBQ__CANCEL_GRACE_NS  (5 * NSEC)
#define JOBQ__BACKOFF_MAX_NS   (300 * NSEC)
#define JOBQ__WORKER_TYPES_MAX 64
#define JOBQ__WORKER_CAP_MAX   4096
#define JOBQ__NOTE_MAX	       1024
#define JOBQ__WAIT_BUCKETS     1024u /* JOB_WAIT waiters, hashed by job id */
#define IDX_TOMB	       UINT64_MAX
#define AUX_WAITED	       (1u << 31) /* a JOB_WAIT waiter may be parked on it */
#define AUX_DEPS	       0x7fu /* unfinished dependencies (WAITING), <= 64 */
/* The low 24 bits of the unique key's hash (JOBQ_JF_UNIQUE): all that its
 * bucket needs, as the key table has at most 2^24 buckets (ch_grow). */
#define AUX_UKH_SHIFT 7
#define AUX_UKH	      (0xffffffu << AUX_UKH_SHIFT)

/* Manager-private data of one job record: 16 bytes, paid by every record
 * in use, so fields share a word where their ranges allow. */
struct jpriv {
	uint32_t pos;	     /* index in its lane or in the timer heap */
	uint32_t prev, next; /* free, running or finished list, or the
			      * run of its lane while READY */
	uint32_t aux;	     /* AUX_* */
};

_Static_assert(64 <= AUX_DEPS, "a job waits for at most 64 others");
_Static_assert((AUX_UKH & (AUX_WAITED | AUX_DEPS)) == 0, "aux fields overlap");

/*
 * A lane holds the READY jobs of one type and queue in two parts: a run
 * (in order: each entry worse than the one before) and a binary heap. A
 * job goes to the run when it is worse than the run's last entry (the
 * usual case: equal priorities and growing ids), else to the heap; the
 * best job is the better of the run's first entry and the heap's top.
 * The run is a list through priv[].prev/next, which a READY job uses for
 * nothing else, so it costs no memory beyond priv: taking the first entry or
 * cancelling any costs O(1), and only jobs that come out of order (higher
 * priorities, retries) pay for the heap.
 */
struct lane {
	uint32_t *h;	       /* the heap of record numbers, h[0..cap) */
	uint32_t hn, cap;      /* heap entries, heap capacity */
	uint32_t n;	       /* ready jobs: heap + run entries */
	uint32_t rhead, rtail; /* the run's first and last, NONE: empty */
	/* The key of the entry pushed last to the run (it may have left
	 * since; every entry still in the run is at least as good). */
	int32_t fback_prio;
	uint64_t fback_id;
	uint32_t type, queue;
	struct lane *next; /* the type's next lane */
};

/* priv[].pos of a run entry (a heap entry's pos is its index, far below). */
#define LANE_RUN 0x80000000u

struct tent {
	uint64_t at; /* CLOCK_MONOTONIC ns */
	uint32_t rec;
	uint32_t pad;
};

struct jworker {
	bool reg, stopping;
	uint32_t flags, capacity, running, ntypes;
	uint16_t types[JOBQ__WORKER_TYPES_MAX];
	uint32_t run_head; /* running jobs, linked through priv[].prev/next */
	struct jobq__waiter *reserve; /* its parked W_RESERVE */
};

/* A live unique key. */
struct uq {
	struct uq *next;
	uint32_t rec, hash, len;
	char key[];
};

/* Job @waiter waits for job @dep. */
struct dep {
	struct dep *next;
	uint64_t dep, waiter;
	uint32_t wrec;
};

/* A chained hash table of either of the two above, by a 32-bit hash. */
struct chash {
	void **b;
	uint32_t mask, n;
};

static struct {
	struct jpriv *priv;
	uint32_t max_jobs, hwm, free_head;
	uint32_t fin_head, fin_tail; /* finished, oldest first */
	struct lane **lanes;	     /* [max_types]: each type's lanes */
	uint16_t *type_hash;	     /* type id + 1, open addressing */
	uint32_t type_hash_mask;
	struct tent *tq;
	uint32_t tqn, tqcap;
	uint64_t armed;		     /* deadline given to the loop */
	struct jworker *W;	     /* [max_clients] by client slot */
	struct jobq__list reservers; /* parked W_RESERVE, oldest first */
	struct jobq__list waits[JOBQ__WAIT_BUCKETS];
	struct chash uq, deps;
	uint64_t *finq; /* ids that became final, for deps */
	uint8_t *finq_state;
	uint32_t finq_n, finq_cap;
	bool need_serve;
	uint64_t rng;
	uint32_t tombs;		   /* tombstones in the job index */
	uint32_t tombs_kept;	   /* tombstones the last sweep kept */
	uint64_t keep_id, keep_at; /* oldest finished job, its expiry */
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

static struct jobq_job_rec *job_rec(uint32_t r)
{
	return &jobq__m.st.jobs[r];
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
 * The job index: (id << 24) | (rec + 1) per slot, linear probing.
 */
static uint32_t idx_mask(void)
{
	return jobq__hdr()->jobidx_slots - 1;
}

static void idx_insert(uint64_t id, uint32_t r)
{
	_Atomic uint64_t *x = jobq__m.st.jobidx;
	uint32_t m = idx_mask(), i = jobq__job_hash(id) & m;

	for (;;) {
		uint64_t v = load_relaxed(&x[i]);

		if (v == 0)
			break;
		if (v == IDX_TOMB) {
			jobs.tombs--;
			break;
		}
		i = (i + 1) & m;
	}
	store_release(&x[i], id << 24 | (uint64_t)(r + 1));
}

/* The slot of @id, or NONE. */
static uint32_t idx_slot(uint64_t id)
{
	_Atomic uint64_t *x = jobq__m.st.jobidx;
	uint32_t m = idx_mask(), i = jobq__job_hash(id) & m;

	for (uint32_t k = 0; k <= m; k++) {
		uint64_t v = load_relaxed(&x[i]);

		if (v == 0)
			return NONE;
		if (v != IDX_TOMB && v >> 24 == (id & ((1ull << 40) - 1)))
			return i;
		i = (i + 1) & m;
	}
	return NONE;
}

/* The record of a live job @id, or NONE. */
static uint32_t lookup(uint64_t id)
{
	uint32_t i;
	uint32_t r;

	if (id == 0)
		return NONE;
	i = idx_slot(id);
	if (i == NONE)
		return NONE;
	r = (uint32_t)(load_relaxed(&jobq__m.st.jobidx[i]) & 0xffffff) - 1;
	if (r >= jobs.max_jobs || job_rec(r)->id != id)
		return NONE;
	return r;
}

/*
 * idx_sweep - turn every tombstone that no probe needs back into an empty
 * slot. A live entry at q, d = q - home(q) slots from its home, is found
 * by probes that cross q-d..q, so a tombstone is needed only when such a
 * span covers it. Walking backwards from an empty slot, c is how far the
 * spans of the entries seen since the last empty slot still reach; a
 * tombstone where c < 0 is crossed by no live entry's probe, and emptying
 * it cannot hide an entry from a reader probing at the same time. O(slots),
 * run when tombstones pass an eighth of the slots (there is always an
 * empty slot then: live entries are at most half of them).
 */
static void idx_sweep(void)
{
	_Atomic uint64_t *x = jobq__m.st.jobidx;
	uint32_t m = idx_mask(), e0 = 0;
	int64_t c = -1;

	while (load_relaxed(&x[e0]) != 0)
		if (++e0 > m)
			return;
	for (uint32_t k = 1; k <= m; k++) {
		uint32_t p = (e0 - k) & m;
		uint64_t v = load_relaxed(&x[p]);

		if (v == 0) {
			c = -1;
		} else if (v == IDX_TOMB) {
			if (c < 0) {
				store_release(&x[p], 0);
				jobs.tombs--;
			}
		} else {
			int64_t d = (p - jobq__job_hash(v >> 24)) & m;

			if (d > c)
				c = d;
		}
		if (c >= 0)
			c--;
	}
	jobs.tombs_kept = jobs.tombs;
}

/*
 * Whether the index wants a sweep: an eighth of the slots in tombstones
 * more than the last sweep had to keep. A full table (live entries at half
 * the slots) keeps about a quarter of the slots in tombstones that probes
 * cross, so a fixed limit of an eighth would sweep all slots at every
 * delete; counting from what was kept makes a sweep cost at most eight
 * slot visits per delete. Tombstones stay under 3/8 of the slots, so with
 * live entries at most half, an eighth or more stays empty and probes end.
 */
static bool idx_wants_sweep(uint32_t m)
{
	uint32_t eighth = (m + 1) / 8, limit = jobs.tombs_kept + eighth;

	if (limit > 3 * eighth)
		limit = 3 * eighth;
	return jobs.tombs > limit;
}

/*
 * idx_delete - remove @id. The slot becomes a tombstone, unless the next
 * slot is empty: then no probe can need it (nothing lies behind it in its
 * cluster), and it and the tombstones right before it become empty again,
 * which keeps probe lengths short without moving live entries under
 * readers.
 */
static void idx_delete(uint64_t id)
{
	_Atomic uint64_t *x = jobq__m.st.jobidx;
	uint32_t m = idx_mask(), i = idx_slot(id);

	if (i == NONE)
		return;
	if (load_relaxed(&x[(i + 1) & m]) != 0) {
		store_release(&x[i], IDX_TOMB);
		jobs.tombs++;
		if (idx_wants_sweep(m))
			idx_sweep();
		return;
	}
	store_release(&x[i], 0);
	for (uint32_t k = 0; k < m; k++) {
		i = (i - 1) & m;
		if (load_relaxed(&x[i]) != IDX_TOMB)
			break;
		store_release(&x[i], 0);
		jobs.tombs--;
	}
}

/* ------------------------------------------------------------------------
 * Chained hash tables (unique keys, dependencies).
 */
static int ch_init(struct chash *h, uint32_t n)
{
	h->b = calloc(n, sizeof(*h->b));
	h->mask = n - 1;
	h->n = 0;
	return h->b ? 0 : -ENOMEM;
}

/* Every node starts with its next pointer; @hash_of gives a node's hash.
 * A table never passes 2^24 buckets: uq_drop() keeps 24 bits of a hash. */
static void ch_grow(struct chash *h, uint32_t (*hash_of)(void *))
{
	uint32_t nb = 2 * (h->mask + 1);
	void **b;

	if (h->n < h->mask + 1 || nb > (1u << 24))
		return;
	b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (uint32_t i = 0; i <= h->mask; i++) {
		void *p = h->b[i];

		while (p) {
			void *nx = *(void **)p;
			uint32_t k = hash_of(p) & (nb - 1);

			*(void **)p = b[k];
			b[k] = p;
			p = nx;
		}
	}
	free(h->b);
	h->b = b;
	h->mask = nb - 1;
}

static uint32_t uq_hash_of(void *p)
{
	return ((struct uq *)p)->hash;
}

static uint32_t dep_hash(uint64_t id)
{
	return jobq__job_hash(id);
}

static uint32_t dep_hash_of(void *p)
{
	return dep_hash(((struct dep *)p)->dep);
}

static struct uq *uq_find(const char *key, uint32_t len, uint32_t hash)
{
	for (struct uq *u = jobs.uq.b[hash & jobs.uq.mask]; u; u = u->next)
		if (u->hash == hash && u->len == len &&
		    !memcmp(u->key, key, len))
			return u;
	return NULL;
}

static void uq_drop(uint32_t r)
{
	uint32_t ukh = (jobs.priv[r].aux & AUX_UKH) >> AUX_UKH_SHIFT;
	struct uq **pp = (struct uq **)&jobs.uq.b[ukh & jobs.uq.mask];

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->rec == r) {
			struct uq *u = *pp;

			*pp = u->next;
			free(u);
			jobs.uq.n--;
			return;
		}
	}
}

/* ------------------------------------------------------------------------
 * Items in the store. When the heap is full the oldest finished jobs go.
 */
static void free_record(uint32_t r);

static bool evict_one(void)
{
	if (jobs.fin_head == NONE)
		return false;
	free_record(jobs.fin_head);
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

/* ------------------------------------------------------------------------
 * Lists through priv[].prev/next.
 */
static void list_add_tail(uint32_t *head, uint32_t *tail, uint32_t r)
{
	jobs.priv[r].next = NONE;
	jobs.priv[r].prev = *tail;
	if (*tail != NONE)
		jobs.priv[*tail].next = r;
	else
		*head = r;
	*tail = r;
}

static void list_del(uint32_t *head, uint32_t *tail, uint32_t r)
{
	struct jpriv *p = &jobs.priv[r];

	if (p->prev != NONE)
		jobs.priv[p->prev].next = p->next;
	else
		*head = p->next;
	if (p->next != NONE)
		jobs.priv[p->next].prev = p->prev;
	else if (tail)
		*tail = p->prev;
	p->prev = p->next = NONE;
}

/* A worker's running list has a head only (order does not matter). */
static void run_add(struct jworker *wk, uint32_t r)
{
	jobs.priv[r].prev = NONE;
	jobs.priv[r].next = wk->run_head;
	if (wk->run_head != NONE)
		jobs.priv[wk->run_head].prev = r;
	wk->run_head = r;
}

/* ------------------------------------------------------------------------
 * The timer heap.
 */
static void tq_set(uint32_t i, struct tent e)
{
	jobs.tq[i] = e;
	jobs.priv[e.rec].pos = i;
}

static void tq_up(uint32_t i)
{
	struct tent e = jobs.tq[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (jobs.tq[p].at <= e.at)
			break;
		tq_set(i, jobs.tq[p]);
		i = p;
	}
	tq_set(i, e);
}

static void tq_down(uint32_t i)
{
	struct tent e = jobs.tq[i];

	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		uint64_t best = e.at;

		if (l < jobs.tqn && jobs.tq[l].at < best) {
			m = l;
			best = jobs.tq[l].at;
		}
		if (l + 1 < jobs.tqn && jobs.tq[l + 1].at < best)
			m = l + 1;
		if (m == i)
			break;
		tq_set(i, jobs.tq[m]);
		i = m;
	}
	tq_set(i, e);
}

static void timer_del(uint32_t r)
{
	uint32_t i = jobs.priv[r].pos;

	if (i >= jobs.tqn || jobs.tq[i].rec != r)
		return;
	jobs.tqn--;
	if (i == jobs.tqn)
		return;
	tq_set(i, jobs.tq[jobs.tqn]);
	tq_up(i);
	tq_down(jobs.priv[jobs.tq[i].rec].pos);
}

/* Sets (or moves) the timer of record @r. Returns 0 or -ENOMEM. */
static int timer_set(uint32_t r, uint64_t at)
{
	uint32_t i = jobs.priv[r].pos;

	if (i < jobs.tqn && jobs.tq[i].rec == r) {
		jobs.tq[i].at = at;
		tq_up(i);
		tq_down(jobs.priv[r].pos);
		return 0;
	}
	if (jobs.tqn == jobs.tqcap) {
		uint32_t ncap = jobs.tqcap ? 2 * jobs.tqcap : 256;
		struct tent *n = realloc(jobs.tq, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		jobs.tq = n;
		jobs.tqcap = ncap;
	}
	jobs.tq[jobs.tqn] = (struct tent){.at = at, .rec = r};
	jobs.priv[r].pos = jobs.tqn++;
	tq_up(jobs.tqn - 1);
	return 0;
}

/* ------------------------------------------------------------------------
 * Lanes: the ready heaps.
 */
static bool better(uint32_t a, uint32_t b)
{
	const struct jobq_job_rec *x = job_rec(a), *y = job_rec(b);

	return x->priority > y->priority ||
	       (x->priority == y->priority && x->id < y->id);
}

static void lane_set(struct lane *l, uint32_t i, uint32_t r)
{
	l->h[i] = r;
	jobs.priv[r].pos = i;
}

static void lane_up(struct lane *l, uint32_t i)
{
	uint32_t r = l->h[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (!better(r, l->h[p]))
			break;
		lane_set(l, i, l->h[p]);
		i = p;
	}
	lane_set(l, i, r);
}

static struct lane *lane_of(uint32_t type, uint32_t queue, bool create)
{
	struct lane *l;

	for (l = jobs.lanes[type]; l; l = l->next)
		if (l->queue == queue)
			return l;
	if (!create)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->type = type;
	l->queue = queue;
	l->rhead = l->rtail = NONE;
	l->next = jobs.lanes[type];
	jobs.lanes[type] = l;
	return l;
}

/* Moves the heap of lane @l to a block of @cap (at least hn) slots; every
 * entry keeps its index. 0 or -ENOMEM. */
static int lane_resize(struct lane *l, uint32_t cap)
{
	uint32_t *n = malloc((size_t)cap * sizeof(*n));

	if (!n)
		return -ENOMEM;
	if (l->hn)
		memcpy(n, l->h, l->hn * sizeof(*n));
	free(l->h);
	l->h = n;
	l->cap = cap;
	return 0;
}

static void run_push(struct lane *l, uint32_t r)
{
	list_add_tail(&l->rhead, &l->rtail, r);
	jobs.priv[r].pos = LANE_RUN;
	l->fback_prio = job_rec(r)->priority;
	l->fback_id = job_rec(r)->id;
}

static int lane_push(struct lane *l, uint32_t r)
{
	const struct jobq_job_rec *j = job_rec(r);

	/* Worse than the run's last key: the run stays in order. */
	if (l->rhead == NONE || j->priority < l->fback_prio ||
	    (j->priority == l->fback_prio && j->id > l->fback_id)) {
		run_push(l, r);
		l->n++;
		return 0;
	}
	if (l->hn == l->cap && lane_resize(l, l->cap ? 2 * l->cap : 16))
		return -ENOMEM;
	l->h[l->hn++] = r;
	lane_up(l, l->hn - 1);
	l->n++;
	return 0;
}

/* The best ready job of non-empty lane @l. */
static uint32_t lane_top(const struct lane *l)
{
	uint32_t f = l->rhead;

	if (!l->hn)
		return f;
	if (f == NONE || better(l->h[0], f))
		return l->h[0];
	return f;
}

/*
 * heap_remove - take out the heap entry at @i. The hole sinks to a leaf
 * along the better children (one comparison per level, each a record read
 * that likely misses the cache), then the last entry fills it and rises.
 * With ids growing, the last entry is usually among the worst, so it rises
 * little: about half the comparisons of a plain sift-down from the top.
 */
static void heap_remove(struct lane *l, uint32_t i)
{
	uint32_t last = l->h[--l->hn];

	if (i != l->hn) {
		for (;;) {
			uint32_t c = 2 * i + 1;

			if (c >= l->hn)
				break;
			if (c + 1 < l->hn && better(l->h[c + 1], l->h[c]))
				c++;
			lane_set(l, i, l->h[c]);
			i = c;
		}
		lane_set(l, i, last);
		lane_up(l, i);
	}
	/* Give memory back once a big heap has drained. */
	if (l->cap > 1024 && l->hn < l->cap / 4)
		(void)lane_resize(l, l->cap / 2);
}

/* Whether READY job @r is in lane @l where priv[r].pos says. */
static bool lane_has(const struct lane *l, uint32_t r)
{
	uint32_t pos = jobs.priv[r].pos;

	if (pos == LANE_RUN) {
		uint32_t p = jobs.priv[r].prev;

		return p == NONE ? l->rhead == r
				 : jobs.priv[p].next == r &&
				       jobs.priv[p].pos == LANE_RUN;
	}
	return pos < l->hn && l->h[pos] == r;
}

/* Takes job @r (in lane @l, see lane_has()) out of the lane. */
static void lane_remove(struct lane *l, uint32_t r)
{
	uint32_t pos = jobs.priv[r].pos;

	if (pos == LANE_RUN) {
		list_del(&l->rhead, &l->rtail, r);
	} else {
		heap_remove(l, pos);
	}
	l->n--;
	jobs.priv[r].pos = NONE;
}

static bool lane_open(const struct lane *l)
{
	const struct jobq_queue_rec *q = &jobq__m.st.queues[l->queue];

	return l->n && !q->paused && (!q->parallel || q->running < q->parallel);
}

/* ------------------------------------------------------------------------
 * State changes.
 */

/* Job @r (in no heap or list) becomes READY. */
static void to_ready(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);
	struct lane *l = lane_of(j->type_id, j->queue_id, true);

	seq_write_begin(&j->seq);
	set_state(j, JOBQ_JS_READY);
	j->run_at_ns = 0;
	seq_write_end(&j->seq);
	if (!l || lane_push(l, r)) {
		/* Out of manager memory: try again in a second. */
		jobq__log(0, "job %llu: out of memory for the ready heap",
			  (unsigned long long)j->id);
		seq_write_begin(&j->seq);
		set_state(j, JOBQ_JS_DELAYED);
		j->run_at_ns = clk_real() + NSEC;
		seq_write_end(&j->seq);
		timer_set(r, clk_mono() + NSEC);
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
	timer_set(r, clk_mono() + (run_at > real ? run_at - real : 0));
}

/* Removes a READY job from its lane. */
static void unready(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);
	struct lane *l = lane_of(j->type_id, j->queue_id, false);

	if (l && lane_has(l, r))
		lane_remove(l, r);
	t_adj(j->type_id, -1, 0);
	q_adj(j->queue_id, -1, 0);
}

/* Job @r reached a final state (set by the caller): keep it on the
 * finished list, drop its unique key, answer its waiters and note it for
 * its dependents. */
static void finalize(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);
	uint64_t id = j->id;

	if (j->flags & JOBQ_JF_UNIQUE) {
		uq_drop(r);
		seq_write_begin(&j->seq);
		j->flags &= (uint8_t)~JOBQ_JF_UNIQUE;
		seq_write_end(&j->seq);
	}
	list_add_tail(&jobs.fin_head, &jobs.fin_tail, r);
	if (jobs.priv[r].aux & AUX_WAITED) {
		struct jobq__list *b =
		    &jobs.waits[jobq__job_hash(id) % JOBQ__WAIT_BUCKETS];

		jobs.priv[r].aux &= ~AUX_WAITED;
		for (struct jobq__list *p = b->next, *nx; p != b; p = nx) {
			struct jobq__waiter *w =
			    jobq__entry(p, struct jobq__waiter, onode);

			nx = p->next;
			if (w->sqe.arg0 == id)
				jobq__wait_done(w, j->state, id);
		}
	}
	if (jobs.deps.n) {
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

	timer_del(r);
	if (slot < jobq__m.o.max_clients && jobs.W[slot].reg) {
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
	idx_delete(j->id);
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
	jobs.priv[r] =
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
		jobs.free_head = jobs.priv[r].next;
	} else {
		r = jobs.hwm++;
	}
	jobs.priv[r] = (struct jpriv){.pos = NONE, .prev = NONE, .next = NONE};
	return r;
}

/* Hands READY job @r (the head of lane @l) to worker @c at @real
 * (CLOCK_REALTIME) / @mono (CLOCK_MONOTONIC). */
static void hand_out(struct jobq__client *c, struct lane *l, uint32_t r,
		     uint64_t real, uint64_t mono)
{
	struct jobq_job_rec *j = job_rec(r);
	struct jworker *wk = &jobs.W[c->slot];
	struct jobq_worker_rec *wr = &jobq__m.st.workers[c->slot];

	lane_remove(l, r);
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
	run_add(wk, r);
	wk->running++;
	seq_write_begin(&wr->seq);
	wr->running = wk->running;
	seq_write_end(&wr->seq);
	if (timer_set(r, mono + j->lease_ns))
		jobq__log(0, "job %llu: out of memory for its lease timer",
			  (unsigned long long)j->id);
}

/* The best open head over the lanes of @wk's types, or NULL. */
static struct lane *best_lane(const struct jworker *wk)
{
	struct lane *best = NULL;

	for (uint32_t i = 0; i < wk->ntypes; i++)
		for (struct lane *l = jobs.lanes[wk->types[i]]; l; l = l->next)
			if (lane_open(l) &&
			    (!best || better(lane_top(l), lane_top(best))))
				best = l;
	return best;
}

/*
 * give - hand worker @c up to @max ready jobs (never more than its
 * capacity minus what it runs), one completion each for request @ud, all
 * but the last flagged JOBQ_CQE_MORE. Returns how many.
 */
static uint32_t give(struct jobq__client *c, uint64_t ud, uint64_t max)
{
	struct jworker *wk = &jobs.W[c->slot];
	uint32_t n = 0, prev = NONE;
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
	while (n < max && (l = best_lane(wk))) {
		uint32_t r = lane_top(l);

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
		struct dep **pp =
		    (struct dep **)&jobs.deps.b[dep_hash(id) & jobs.deps.mask];

		while (*pp) {
			struct dep *d = *pp;
			uint32_t w = d->wrec;
			char msg[64];

			if (d->dep != id) {
				pp = &d->next;
				continue;
			}
			*pp = d->next;
			jobs.deps.n--;
			if (job_rec(w)->id != d->waiter ||
			    job_rec(w)->state != JOBQ_JS_WAITING) {
				free(d);
				continue;
			}
			free(d);
			if (st == JOBQ_JS_SUCCEEDED) {
				if ((jobs.priv[w].aux & AUX_DEPS) &&
				    !(--jobs.priv[w].aux & AUX_DEPS))
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
	uint64_t at = jobs.tqn ? jobs.tq[0].at : 0;

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

void jobq__jobs_timer(void)
{
	uint64_t now, real;

	/* The loop fired us for a deadline it saw pass: read afresh. */
	clk_read();
	now = clk_mono_ns;
	real = clk_real_ns;

	jobs.armed = 0;
	jobs.keep_id = 0;
	while (jobs.tqn && jobs.tq[0].at <= now) {
		uint32_t r = jobs.tq[0].rec;
		struct jobq_job_rec *j = job_rec(r);

		timer_del(r);
		switch (j->state) {
		case JOBQ_JS_DELAYED:
		case JOBQ_JS_FAILED:
			to_ready(r);
			break;
		case JOBQ_JS_RUNNING:
			if (j->flags & JOBQ_JF_CANCELLING) {
				/* The worker ignored the cancel. */
				jobq__log(0,
					  "job %llu: worker pid %d did not "
					  "stop within 5 s of the cancel; "
					  "killing it",
					  (unsigned long long)j->id,
					  (int)j->worker_pid);
				if (j->worker_pid > 0)
					kill(j->worker_pid, SIGKILL);
				stop_running(r);
				to_cancelled(r);
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
	if (len < 1 || len > JOBQ_TYPE_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		/* Commas separate names in a worker record. */
		if (ch < 0x20 || ch == 0x7f || ch == ',')
			return -EINVAL;
	}
	return 0;
}

/* The id of type @name (checked), created when missing. Returns the id or
 * JOBQ_ELIMIT when the type table is full. */
static int type_get(const char *name, uint32_t len)
{
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t m = jobs.type_hash_mask, i = jobq__hash(name, len) & m;
	struct jobq_type_rec *t;
	uint32_t id;

	for (; jobs.type_hash[i]; i = (i + 1) & m) {
		t = &jobq__m.st.types[jobs.type_hash[i] - 1];
		/* len < sizeof(t->name) (check_type_name): a plain memcmp,
		 * the name's end checked apart. */
		if (t->name[len] == '\0' && !memcmp(t->name, name, len))
			return jobs.type_hash[i] - 1;
	}
	id = load_relaxed(&h->ntypes);
	if (id >= h->max_types)
		return JOBQ_ELIMIT;
	t = &jobq__m.st.types[id];
	seq_write_begin(&t->seq);
	memset(t->name, 0, sizeof(t->name));
	memcpy(t->name, name, len);
	t->in_use = 1;
	seq_write_end(&t->seq);
	store_release(&h->ntypes, id + 1);
	jobs.type_hash[i] = (uint16_t)(id + 1);
	return (int)id;
}

/* ------------------------------------------------------------------------
 * Ops.
 */
int jobq__op_job_submit(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *a = jobq__arena(c, s->arena_off);
	struct jobq_submit_wire wv;
	char type[JOBQ_TYPE_MAX + 1], key[JOBQ_KEY_MAX + 1];
	uint64_t after[64], aoff, need, args = 0, id;
	uint64_t real = clk_real(), failed_dep = 0;
	uint32_t pending = 0, r;
	struct jobq_job_rec *j;
	int tid;

	if (s->arena_len < sizeof(wv))
		return jobq__bad(-EINVAL);
	memcpy(&wv, a, sizeof(wv));
	if (wv.type_len < 1 || wv.type_len > JOBQ_TYPE_MAX ||
	    wv.unique_len > JOBQ_KEY_MAX || wv.nafter > 64 || wv.delay_ns < 0 ||
	    wv.lease_ns <= 0 || wv.max_attempts < 1 ||
	    wv.max_attempts > UINT16_MAX || wv.flags)
		return jobq__bad(-EINVAL);
	/* The ids are 8-byte aligned; without ids there is no padding. */
	aoff = sizeof(wv) + (uint64_t)wv.type_len + wv.unique_len;
	if (wv.nafter)
		aoff = (aoff + 7) & ~7ull;
	need = aoff + 8ull * wv.nafter + wv.args_len;
	if (need > s->arena_len)
		return jobq__bad(-EINVAL);
	if (wv.args_len > jobq__m.o.max_object)
		return -E2BIG;
	if (wv.queue_id >= load_relaxed(&jobq__hdr()->nqueues))
		return -ENOENT;
	memcpy(type, a + sizeof(wv), wv.type_len);
	type[wv.type_len] = '\0';
	if (check_type_name(type, wv.type_len))
		return -EINVAL;
	memcpy(key, a + sizeof(wv) + wv.type_len, wv.unique_len);
	key[wv.unique_len] = '\0';
	if (wv.unique_len) {
		struct uq *u =
		    uq_find(key, wv.unique_len, jobq__hash(key, wv.unique_len));

		if (u) {
			jobq__post(c, s->user_data, 1, 0, job_rec(u->rec)->id,
				   0, 0);
			return JOBQ__NOREPLY;
		}
	}
	memcpy(after, a + aoff, 8ull * wv.nafter);
	for (uint32_t i = 0; i < wv.nafter; i++) {
		uint32_t d = lookup(after[i]);

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
	tid = type_get(type, wv.type_len);
	if (tid < 0)
		return tid;

	/* Allocations may evict finished jobs, dependencies among them:
	 * from here on only the ids gathered above are used. */
	r = record_new();
	if (r == NONE)
		return JOBQ_ELIMIT;
	/* The ids it waits for live in jobs.deps while they are unfinished;
	 * the record keeps none of them. */
	if (wv.args_len)
		args = args_new(a + aoff + 8ull * wv.nafter, wv.args_len);
	if (wv.args_len && !args) {
		jobs.priv[r].next = jobs.free_head;
		jobs.free_head = r;
		return JOBQ_EFULL;
	}
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
	idx_insert(id, r);
	store_relaxed(&jobq__hdr()->njobs,
		      load_relaxed(&jobq__hdr()->njobs) + 1);
	jobq__count(submitted);

	if (wv.unique_len) {
		struct uq *u = malloc(sizeof(*u) + wv.unique_len);

		if (u) {
			u->rec = r;
			u->len = wv.unique_len;
			u->hash = jobq__hash(key, wv.unique_len);
			memcpy(u->key, key, wv.unique_len);
			u->next = jobs.uq.b[u->hash & jobs.uq.mask];
			jobs.uq.b[u->hash & jobs.uq.mask] = u;
			jobs.uq.n++;
			jobs.priv[r].aux |=
			    (u->hash << AUX_UKH_SHIFT) & AUX_UKH;
			ch_grow(&jobs.uq, uq_hash_of);
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
			uint32_t d = lookup(after[i]);
			struct dep *dp;

			if (d == NONE || is_final(job_rec(d)->state))
				continue;
			dp = malloc(sizeof(*dp));
			if (!dp) {
				pending--;
				continue;
			}
			dp->dep = after[i];
			dp->waiter = id;
			dp->wrec = r;
			dp->next =
			    jobs.deps.b[dep_hash(after[i]) & jobs.deps.mask];
			jobs.deps.b[dep_hash(after[i]) & jobs.deps.mask] = dp;
			jobs.deps.n++;
			jobs.priv[r].aux++;
		}
		ch_grow(&jobs.deps, dep_hash_of);
		if (!(jobs.priv[r].aux & AUX_DEPS))
			release_waiting(r);
	} else if (wv.delay_ns) {
		to_later(r, JOBQ_JS_DELAYED, j->run_at_ns);
	} else {
		to_ready(r);
	}
	settle();
	jobq__post(c, s->user_data, 0, 0, id, 0, 0);
	return JOBQ__NOREPLY;
}

int jobq__op_job_wait(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r = lookup(s->arg0);
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
	jobs.priv[r].aux |= AUX_WAITED;
	return JOBQ__NOREPLY;
}

int jobq__op_job_cancel(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r = lookup(s->arg0);
	struct jobq_job_rec *j;

	if (r == NONE)
		return -ENOENT;
	j = job_rec(r);
	switch (j->state) {
	case JOBQ_JS_RUNNING: {
		uint32_t slot = j->worker_client;

		if (j->flags & JOBQ_JF_CANCELLING)
			return 0;
		seq_write_begin(&j->seq);
		j->flags |= JOBQ_JF_CANCELLING;
		seq_write_end(&j->seq);
		if (slot < jobq__m.o.max_clients)
			jobq__post(&jobq__m.clients[slot], JOBQ_UD_NOTICE,
				   JOBQ_NOTICE_CANCEL, JOBQ_CQE_NOTICE, j->id,
				   0, 0);
		timer_set(r, clk_mono() + JOBQ__CANCEL_GRACE_NS);
		settle();
		return 0;
	}
	case JOBQ_JS_READY:
		unready(r);
		break;
	case JOBQ_JS_DELAYED:
	case JOBQ_JS_FAILED:
		timer_del(r);
		break;
	case JOBQ_JS_WAITING:
		/* Its dependency entries go when their jobs finish. */
		jobs.priv[r].aux &= ~AUX_DEPS;
		break;
	default:
		return -EALREADY;
	}
	to_cancelled(r);
	settle();
	return 0;
}

/* Job @r (FAILED, DEAD or CANCELLED) runs again from its first attempt. */
static void rerun(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	if (j->state == JOBQ_JS_FAILED)
		timer_del(r);
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
}

int jobq__op_job_retry(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r = lookup(s->arg0);
	unsigned st;

	if (r == NONE)
		return -ENOENT;
	st = job_rec(r)->state;
	if (st != JOBQ_JS_FAILED && st != JOBQ_JS_DEAD &&
	    st != JOBQ_JS_CANCELLED)
		return -EALREADY;
	rerun(r);
	settle();
	return 0;
}

int jobq__op_job_kick(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r, n = 0;

	if (s->arg0) {
		r = lookup(s->arg0);
		if (r == NONE)
			return -ENOENT;
		if (job_rec(r)->state != JOBQ_JS_DEAD)
			return -EALREADY;
		rerun(r);
		settle();
		return 1;
	}
	for (r = jobs.fin_head; r != NONE;) {
		uint32_t nx = jobs.priv[r].next;

		if (job_rec(r)->state == JOBQ_JS_DEAD) {
			rerun(r);
			n++;
		}
		r = nx;
	}
	settle();
	return (int)(n > INT32_MAX ? INT32_MAX : n);
}

int jobq__op_q_pause(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq_queue_rec *q;

	if (s->id >= load_relaxed(&jobq__hdr()->nqueues))
		return -ENOENT;
	q = &jobq__m.st.queues[s->id];
	seq_write_begin(&q->seq);
	q->paused = s->arg0 ? 1 : 0;
	seq_write_end(&q->seq);
	jobs.need_serve = true;
	settle();
	return 0;
}

int jobq__op_q_parallel(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq_queue_rec *q;

	if (s->id >= load_relaxed(&jobq__hdr()->nqueues))
		return -ENOENT;
	if (s->arg0 > UINT32_MAX)
		return -EINVAL;
	q = &jobq__m.st.queues[s->id];
	seq_write_begin(&q->seq);
	q->parallel = (uint32_t)s->arg0;
	seq_write_end(&q->seq);
	jobs.need_serve = true;
	settle();
	return 0;
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
		    n == JOBQ__WORKER_TYPES_MAX)
			return -EINVAL;
		tid = type_get(names + off, l);
		if (tid < 0)
			return tid;
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
}

int jobq__op_w_reserve(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jworker *wk = &jobs.W[c->slot];
	struct jobq__waiter *w;
	int err = -ENOMEM;

	if (!wk->reg)
		return jobq__bad(-EINVAL);
	if (wk->reserve)
		return -EBUSY;
	if (wk->stopping || jobq__m.stopping)
		return JOBQ_ECLOSED;
	if (give(c, s->user_data, s->arg0 ? s->arg0 : 1)) {
		settle();
		return JOBQ__NOREPLY;
	}
	if (s->timeout_ns == 0)
		return -EAGAIN;
	w = jobq__wait_new(c, s, JOBQ__W_RESERVE, &err);
	if (!w)
		return err;
	jobq__list_add_tail(&w->onode, &jobs.reservers);
	wk->reserve = w;
	return JOBQ__NOREPLY;
}

/* The RUNNING job @s names (arg0 id, arg1 attempt) if @c holds it. */
static int held(struct jobq__client *c, const struct jobq_sqe *s, uint32_t *rp)
{
	uint32_t r = lookup(s->arg0);
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
	j = job_rec(r);
	if (j->flags & JOBQ_JF_CANCELLING) {
		stop_running(r);
		to_cancelled(r);
		settle();
		return 0;
	}
	if (s->arena_len > jobq__m.o.max_object)
		return -E2BIG;
	if (s->flags & JOBQ_SQE_FAIL) {
		/* Without room for the text it still fails, wordless. */
		item = item_new(a, s->arena_len, JOBQ_T_TEXT);
		stop_running(r);
		attempt_failed(r, item, s->flags & JOBQ_SQE_FINAL);
		settle();
		return 0;
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
	return 0;
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
	/* A cancel's grace period is not the worker's to extend. */
	if (!(job_rec(r)->flags & JOBQ_JF_CANCELLING))
		timer_set(r, jobq__now_ns() + (uint64_t)s->timeout_ns);
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
		/*
		 * A daemon worker's running jobs stop now, not when they
		 * are done. One whose handler blocks cannot read the notice
		 * until it returns; the end of our side of its socket
		 * reaches it anyway (as SIGIO: see src/worker.c).
		 */
		if ((jobs.W[i].flags & JOBQ_WF_DAEMON) && jobs.W[i].running)
			shutdown(jobq__m.clients[i].sock, SHUT_WR);
	}
}

uint32_t jobq__jobs_running_nondaemon(void)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < jobq__m.o.max_clients; i++)
		if (jobs.W[i].reg && !(jobs.W[i].flags & JOBQ_WF_DAEMON))
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
	jobs.priv = calloc(jobs.max_jobs, sizeof(*jobs.priv));
	jobs.lanes = calloc(h->max_types, sizeof(*jobs.lanes));
	jobs.type_hash_mask = 2 * h->max_types - 1;
	jobs.type_hash = calloc(2 * h->max_types, sizeof(*jobs.type_hash));
	jobs.W = calloc(jobq__m.o.max_clients, sizeof(*jobs.W));
	if (!jobs.priv || !jobs.lanes || !jobs.type_hash || !jobs.W ||
	    ch_init(&jobs.uq, 1024) || ch_init(&jobs.deps, 1024))
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
