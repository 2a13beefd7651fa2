/* SPDX-License-Identifier: MIT */
/*
 * locks.c - named Lock, RLock, Semaphore and Event.
 *
 * The record in the store is the public view (kind, held, waiters, a
 * holder's pid); who holds what and who waits lives here. An owner is a
 * (client, owner id) pair: the library passes its thread id, so two
 * threads of one process are different owners.
 *
 * Waiters of every lock are on one FIFO list, each naming the locks it
 * needs (one for acquire, up to 64 for lock_many); a waiter is granted all
 * of its locks at once or none, so nobody ever holds part of a set. When
 * locks are released the list is walked in order and every waiter whose
 * locks are now all free for it is granted.
 *
 * Leases: a unit can be taken with a lease (arg1), which the manager
 * ends if the holder has not released it by then, so that a holder that
 * is stopped (SIGSTOP, a debugger) or stuck does not stop everyone else
 * for ever. One module timer is armed for the earliest lease, and only
 * while some lease is held: an idle manager keeps none.
 *
 * Deadlock detection: before a request waits, follow the wait-for graph
 * from the locks it would wait for to their holders, to the locks those
 * holders wait for, and so on. Reaching the requesting owner means that
 * waiting would close a cycle, so the request fails with -EDEADLK instead.
 *
 * Reuse. Every client that opens or uses a lock is counted as its user
 * (a bit per lock and client slot) until it goes. A lock whose last user
 * went, that nobody holds or waits for and that is not a set Event, has
 * no state anyone could see: its record is freed (its generation moves
 * on, so a cached id fails with -ESTALE) and serves a later lock, oldest
 * freed first. libjobq checks a cached id in the store before it uses it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobqd.h"

struct jobq__holder {
	struct jobq__client *c;
	uint64_t owner;
	uint32_t count;	      /* units (RLock: depth) */
	uint64_t lease_until; /* CLOCK_MONOTONIC ns; 0: no lease */
};

struct jobq__lock {
	struct jobq__holder *h; /* in the order they took it */
	uint32_t nh, caph;
	uint32_t nwait;		  /* waiters that name this lock */
	uint32_t visit;		  /* deadlock walk mark */
	uint32_t users;		  /* clients that opened or used it */
	pid_t maker;		  /* the pid that made it, 0: none */
	uint64_t maker_ref;	  /* jobq__client_ref() of its maker */
	struct jobq__list evwait; /* Event: waiters */
};

static struct jobq__lock *lock_priv;
static struct jobq__list lock_waiters;
static uint32_t epoch;
/* Which locks each client slot uses: a bitmap of max_locks bits each,
 * made at its first use. */
static uint8_t **used_by;
/* Free records below nlocks, oldest first: a ring of max_locks. */
static struct {
	uint32_t *v;
	uint32_t head, n, cap;
} freel;

int jobq__locks_init(uint32_t max_locks)
{
	lock_priv = calloc(max_locks, sizeof(*lock_priv));
	used_by = calloc(jobq__m.o.max_clients, sizeof(*used_by));
	freel.v = calloc(max_locks, sizeof(*freel.v));
	if (!lock_priv || !used_by || !freel.v)
		return -ENOMEM;
	freel.cap = max_locks;
	for (uint32_t i = 0; i < max_locks; i++)
		jobq__list_init(&lock_priv[i].evwait);
	jobq__list_init(&lock_waiters);
	return 0;
}

static struct jobq_lock_rec *rec(uint32_t id)
{
	return &jobq__m.st.locks[id];
}

/* jobq__locks_made_by - how many locks process @pid made (the quota
 * count a new connection of that process starts at). */
uint32_t jobq__locks_made_by(pid_t pid)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks), k = 0;

	for (uint32_t i = 0; i < n; i++)
		if (lock_priv[i].maker == pid)
			k++;
	return k;
}

/*
 * The record of the lock a client calls @wire: 0 and *id, -EINVAL (counted
 * as a bad entry) for an id no lock ever had, -ESTALE for a lock whose
 * record was freed.
 */
static int lock_index(uint32_t wire, uint32_t *id)
{
	uint32_t i = wire & JOBQ_QID_MASK;

	*id = 0; /* set on every path: callers test only the result */
	if (i >= load_relaxed(&jobq__hdr()->nlocks))
		return jobq__bad(-EINVAL);
	if (!rec(i)->in_use || rec(i)->gen != wire >> JOBQ_QID_BITS)
		return -ESTALE;
	*id = i;
	return 0;
}

static uint32_t wire_id(uint32_t id)
{
	return rec(id)->gen << JOBQ_QID_BITS | id;
}

/* @c uses lock @id: it counts among the lock's users until it goes. */
static void mark_used(struct jobq__client *c, uint32_t id)
{
	uint8_t **b = &used_by[c->slot];

	if (!*b) {
		*b = calloc((jobq__hdr()->max_locks + 7) / 8, 1);
		if (!*b)
			return; /* not counted: the lock is then never freed */
	}
	if ((*b)[id / 8] & (1u << (id % 8)))
		return;
	(*b)[id / 8] |= (uint8_t)(1u << (id % 8));
	lock_priv[id].users++;
}

/* Frees lock @id if nobody can see its state any more. */
static void try_free(uint32_t id)
{
	struct jobq_lock_rec *r = rec(id);
	struct jobq__lock *l = &lock_priv[id];
	struct jobq__client *maker;
	uint32_t gen;

	if (!r->in_use || l->users || l->nh || l->nwait ||
	    !jobq__list_empty(&l->evwait) ||
	    (r->kind == JOBQ_WIRE_EVENT && r->is_set))
		return;
	gen = (r->gen + 1) & JOBQ_QGEN_MASK;
	seq_write_begin(&r->seq);
	memset((char *)r + sizeof(r->seq), 0, sizeof(*r) - sizeof(r->seq));
	r->gen = gen;
	seq_write_end(&r->seq);
	maker = jobq__client_of(l->maker_ref);
	if (maker)
		jobq__quota_give(maker, JOBQ_QUOTA_LOCKS);
	l->maker = 0;
	l->maker_ref = 0;
	freel.v[(freel.head + freel.n++) % freel.cap] = id;
	store_relaxed(&jobq__hdr()->locks_live,
		      load_relaxed(&jobq__hdr()->locks_live) - 1);
}

/* Client @c is gone: it uses no lock any more. */
static void drop_uses(struct jobq__client *c)
{
	uint8_t *b = used_by[c->slot];
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);

	if (!b)
		return;
	used_by[c->slot] = NULL;
	for (uint32_t id = 0; id < n; id++) {
		if (!(b[id / 8] & (1u << (id % 8))))
			continue;
		if (lock_priv[id].users)
			lock_priv[id].users--;
		try_free(id);
	}
	free(b);
}

/* jobq__locks_fini - gives back what jobq__locks_init() and the locks
 * took (a clean stop). */
void jobq__locks_fini(void)
{
	uint32_t max = jobq__hdr()->max_locks;

	for (uint32_t i = 0; lock_priv && i < max; i++)
		free(lock_priv[i].h);
	for (uint32_t i = 0; used_by && i < jobq__m.o.max_clients; i++)
		free(used_by[i]);
	free(lock_priv);
	free(used_by);
	free(freel.v);
	lock_priv = NULL;
	used_by = NULL;
	memset(&freel, 0, sizeof(freel));
}

/* Units of lock @l held, over all its holders (RLock: the depth). */
static uint32_t units_held(const struct jobq__lock *l)
{
	uint32_t held = 0;

	for (uint32_t i = 0; i < l->nh; i++)
		held += l->h[i].count;
	return held;
}

/* Publishes the holders and waiters of lock @id in its record. */
static void sync_rec(uint32_t id, bool acquired)
{
	struct jobq_lock_rec *r = rec(id);
	struct jobq__lock *l = &lock_priv[id];
	uint32_t held = units_held(l);

	seq_write_begin(&r->seq);
	if (held && !r->held)
		r->held_since_ns = jobq__realtime_ns();
	else if (!held)
		r->held_since_ns = 0;
	r->held = held;
	r->waiters = l->nwait;
	r->holder_pid = l->nh ? l->h[0].c->pid : 0;
	if (acquired)
		r->acquires++;
	seq_write_end(&r->seq);
}

static int64_t find_holder(struct jobq__lock *l, struct jobq__client *c,
			   uint64_t owner)
{
	for (uint32_t i = 0; i < l->nh; i++)
		if (l->h[i].c == c && l->h[i].owner == owner)
			return i;
	return -1;
}

/* 0: @owner of @c can take a unit of lock @id now; 1: it must wait;
 * -EDEADLK: it already holds this plain lock. */
static int can_take(uint32_t id, struct jobq__client *c, uint64_t owner)
{
	struct jobq_lock_rec *r = rec(id);
	struct jobq__lock *l = &lock_priv[id];

	switch (r->kind) {
	case JOBQ_WIRE_LOCK:
		if (!l->nh)
			return 0;
		return find_holder(l, c, owner) >= 0 ? -EDEADLK : 1;
	case JOBQ_WIRE_RLOCK:
		if (!l->nh)
			return 0;
		return find_holder(l, c, owner) >= 0 ? 0 : 1;
	case JOBQ_WIRE_SEMAPHORE:
		return units_held(l) < r->limit ? 0 : 1;
	}
	return 1;
}

static int reserve(struct jobq__lock *l)
{
	if (l->nh == l->caph) {
		uint32_t ncap = l->caph ? 2 * l->caph : 4;
		struct jobq__holder *n = realloc(l->h, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		l->h = n;
		l->caph = ncap;
	}
	return 0;
}

/* The earliest lease held, 0: none. */
static uint64_t next_lease(void)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);
	uint64_t at = 0;

	for (uint32_t id = 0; id < n; id++)
		for (uint32_t i = 0; i < lock_priv[id].nh; i++) {
			uint64_t u = lock_priv[id].h[i].lease_until;

			if (u && (!at || u < at))
				at = u;
		}
	return at;
}

/* @c holds @delta more locks (a holder entry, one per lock and owner,
 * came or went): its quota of locks held follows. */
static void held_add(struct jobq__client *c, int delta)
{
	jobq__quota_ref_add(jobq__client_ref(c), JOBQ_QUOTA_HELD, delta);
}

/* Takes a unit of lock @id for @owner of @c (can_take() said 0 and
 * reserve() succeeded), with a lease of @lease_ns (0: none). The latest
 * take sets the holder's lease. */
static void take(uint32_t id, struct jobq__client *c, uint64_t owner,
		 uint64_t lease_ns)
{
	struct jobq__lock *l = &lock_priv[id];
	int64_t i = find_holder(l, c, owner);

	if (i < 0) {
		i = l->nh++;
		l->h[i].c = c;
		l->h[i].owner = owner;
		l->h[i].count = 0;
		held_add(c, 1);
	}
	l->h[i].count++;
	l->h[i].lease_until = lease_ns ? jobq__now_ns() + lease_ns : 0;
	if (lease_ns)
		jobq__timer_arm(JOBQ__TIMER_LOCKS, next_lease());
	sync_rec(id, true);
	jobq__count(lock_acquires);
}

/* Checks and takes every lock in @ids (sorted) for @owner at once.
 * Returns 0 (all taken), 1 (must wait; nothing taken) or -errno, and
 * JOBQ_EQUOTA when taking them would put @c past its quota of locks held:
 * checked before it would wait too, so that a client at its quota is
 * told at once rather than when the locks come free. */
static int take_all(const uint32_t *ids, uint32_t n, struct jobq__client *c,
		    uint64_t owner, uint64_t lease_ns)
{
	uint32_t more = 0;
	int wait = 0;

	for (uint32_t i = 0; i < n; i++) {
		int r = can_take(ids[i], c, owner);

		if (r < 0)
			return r;
		if (find_holder(&lock_priv[ids[i]], c, owner) < 0)
			more++;
		if (r)
			wait = 1;
		else if (reserve(&lock_priv[ids[i]]))
			return -ENOMEM;
	}
	if (more && jobq__quota_room(c, JOBQ_QUOTA_HELD, more))
		return JOBQ_EQUOTA;
	if (wait)
		return 1;
	for (uint32_t i = 0; i < n; i++)
		take(ids[i], c, owner, lease_ns);
	return 0;
}

/* Whether following holders of lock @id (and what they wait for) reaches
 * @owner of @c. */
static bool reaches(uint32_t id, struct jobq__client *c, uint64_t owner,
		    bool top)
{
	struct jobq__lock *l = &lock_priv[id];

	if (l->visit == epoch)
		return false;
	l->visit = epoch;
	for (uint32_t i = 0; i < l->nh; i++) {
		struct jobq__holder *hd = &l->h[i];

		if (hd->c == c && hd->owner == owner) {
			/*
			 * Waiting for more units of a semaphore we hold part
			 * of is fine while someone else holds the rest.
			 */
			if (top && rec(id)->kind == JOBQ_WIRE_SEMAPHORE &&
			    l->nh > 1)
				continue;
			return true;
		}
		for (struct jobq__list *p = lock_waiters.next;
		     p != &lock_waiters; p = p->next) {
			struct jobq__waiter *w =
			    jobq__entry(p, struct jobq__waiter, onode);

			if (w->c != hd->c || w->sqe.owner != hd->owner)
				continue;
			for (uint32_t k = 0; k < w->nids; k++)
				if (reaches(w->ids[k], c, owner, false))
					return true;
		}
	}
	return false;
}

static bool would_deadlock(const uint32_t *ids, uint32_t n,
			   struct jobq__client *c, uint64_t owner)
{
	epoch++;
	for (uint32_t i = 0; i < n; i++) {
		if (can_take(ids[i], c, owner) == 0)
			continue;
		if (reaches(ids[i], c, owner, true))
			return true;
	}
	return false;
}

static void set_nwait(const uint32_t *ids, uint32_t n, int delta)
{
	for (uint32_t i = 0; i < n; i++) {
		lock_priv[ids[i]].nwait += (uint32_t)delta;
		sync_rec(ids[i], false);
	}
}

/* Grants waiters, oldest first, whose locks are now all free for them. */
static void grant(void)
{
	struct jobq__list *p, *nx;

	for (p = lock_waiters.next; p != &lock_waiters; p = nx) {
		struct jobq__waiter *w =
		    jobq__entry(p, struct jobq__waiter, onode);
		int r;

		nx = p->next;
		if (!jobq__client_alive(w->c))
			continue;
		r = take_all(w->ids, w->nids, w->c, w->sqe.owner, w->sqe.arg1);
		if (r == 1)
			continue;
		jobq__wait_done(w, r, 0);
	}
}

/* Parks a lock request that could not be granted: -EAGAIN for timeout 0,
 * -EDEADLK when waiting would close a cycle. */
static int lock_wait(struct jobq__client *c, const struct jobq_sqe *s,
		     const uint32_t *ids, uint32_t n)
{
	struct jobq__waiter *w;
	int err;

	if (s->timeout_ns == 0)
		return -EAGAIN;
	if (would_deadlock(ids, n, c, s->owner)) {
		jobq__count(deadlocks);
		jobq__log(1, "deadlock refused: pid %d owner %llu", (int)c->pid,
			  (unsigned long long)s->owner);
		return -EDEADLK;
	}
	w = jobq__wait_new(c, s, JOBQ__W_LOCK, &err);
	if (!w)
		return err;
	memcpy(w->ids, ids, n * sizeof(*ids));
	w->nids = n;
	jobq__list_add_tail(&w->onode, &lock_waiters);
	set_nwait(ids, n, 1);
	return JOBQ__NOREPLY;
}

void jobq__lock_wait_detach(struct jobq__waiter *w)
{
	if (jobq__list_empty(&w->onode))
		return;
	jobq__list_del(&w->onode);
	if (w->kind == JOBQ__W_EVENT)
		set_nwait(&w->sqe.id, 1, -1);
	else
		set_nwait(w->ids, w->nids, -1);
}

/* Removes one unit held by @owner of @c from lock @id. */
static int release_one(uint32_t id, struct jobq__client *c, uint64_t owner)
{
	struct jobq__lock *l = &lock_priv[id];
	int64_t i = find_holder(l, c, owner);

	if (i < 0)
		return -EPERM;
	if (--l->h[i].count == 0) {
		memmove(&l->h[i], &l->h[i + 1],
			(l->nh - (uint32_t)i - 1) * sizeof(*l->h));
		l->nh--;
		held_add(c, -1);
	}
	sync_rec(id, false);
	return 0;
}

bool jobq__locks_held_by(const struct jobq__client *c)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);

	for (uint32_t id = 0; id < n; id++)
		for (uint32_t i = 0; i < lock_priv[id].nh; i++)
			if (lock_priv[id].h[i].c == c)
				return true;
	return false;
}

void jobq__locks_timer(void)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);
	uint64_t now = jobq__now_ns();
	bool any = false;

	for (uint32_t id = 0; id < n; id++) {
		struct jobq__lock *l = &lock_priv[id];
		uint32_t k = 0;

		for (uint32_t i = 0; i < l->nh; i++) {
			struct jobq__holder *hd = &l->h[i];

			if (hd->lease_until && hd->lease_until <= now) {
				jobq__log(JOBQ__LOG_WARN,
					  "lock \"%.64s\": the lease of pid %d "
					  "ran out; released",
					  rec(id)->name, (int)hd->c->pid);
				held_add(hd->c, -1);
				continue;
			}
			l->h[k++] = *hd;
		}
		if (k != l->nh) {
			l->nh = k;
			sync_rec(id, false);
			any = true;
		}
	}
	jobq__timer_arm(JOBQ__TIMER_LOCKS, next_lease());
	if (any)
		grant();
}

void jobq__locks_drop_client(struct jobq__client *c)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);
	bool any = false;

	for (uint32_t id = 0; id < n; id++) {
		struct jobq__lock *l = &lock_priv[id];
		uint32_t k = 0;

		for (uint32_t i = 0; i < l->nh; i++)
			if (l->h[i].c != c)
				l->h[k++] = l->h[i];
		if (k != l->nh) {
			l->nh = k;
			sync_rec(id, false);
			any = true;
		}
	}
	if (any)
		grant();
	drop_uses(c);
}

int jobq__op_l_open(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t n = load_relaxed(&h->nlocks), i;
	char name[JOBQ_NAME_MAX + 1];
	struct jobq_lock_rec *r;

	if (jobq__arena_name(c, s, name) || s->arg0 < JOBQ_WIRE_LOCK ||
	    s->arg0 > JOBQ_WIRE_EVENT)
		return jobq__bad(-EINVAL);
	if (s->arg0 == JOBQ_WIRE_SEMAPHORE &&
	    (s->arg1 < 1 || s->arg1 > UINT32_MAX))
		return jobq__bad(-EINVAL);
	for (i = 0; i < n; i++) {
		if (!rec(i)->in_use || strcmp(rec(i)->name, name))
			continue;
		if (rec(i)->kind != s->arg0)
			return JOBQ_EKIND;
		mark_used(c, i);
		return (int)wire_id(i);
	}
	if (!(s->flags & JOBQ_SQE_CREATE))
		return -ENOENT;
	if (n >= h->max_locks && !freel.n) {
		jobq__log(JOBQ__LOG_WARN,
			  "the lock table is full: %u locks (jobqd --max-locks "
			  "raises it)",
			  h->max_locks);
		return JOBQ_ELIMIT;
	}
	/* A lock counts against its maker's quota until it is freed. */
	if (jobq__quota_take(c, JOBQ_QUOTA_LOCKS))
		return JOBQ_EQUOTA;
	if (n < h->max_locks) {
		i = n;
	} else {
		i = freel.v[freel.head];
		freel.head = (freel.head + 1) % freel.cap;
		freel.n--;
	}
	lock_priv[i].maker = c->pid;
	lock_priv[i].maker_ref = jobq__client_ref(c);
	r = rec(i);
	seq_write_begin(&r->seq);
	r->in_use = 1;
	memcpy(r->name, name, sizeof(r->name));
	r->kind = (uint32_t)s->arg0;
	r->limit = s->arg0 == JOBQ_WIRE_SEMAPHORE ? (uint32_t)s->arg1 : 1;
	seq_write_end(&r->seq);
	if (i == n)
		store_release(&h->nlocks, n + 1);
	store_relaxed(&h->locks_live, load_relaxed(&h->locks_live) + 1);
	mark_used(c, i);
	jobq__log(1, "lock %u \"%s\" created (kind %u)", i, name, r->kind);
	return (int)wire_id(i);
}

int jobq__op_l_acquire(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t id;
	int r = lock_index(s->id, &id);

	if (r)
		return r;
	mark_used(c, id);
	if (rec(id)->kind == JOBQ_WIRE_EVENT)
		return JOBQ_EKIND;
	r = take_all(&id, 1, c, s->owner, s->arg1);
	if (r <= 0)
		return r;
	return lock_wait(c, s, &id, 1);
}

int jobq__op_l_release(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t id;
	int r = lock_index(s->id, &id);

	if (r)
		return r;
	if (rec(id)->kind == JOBQ_WIRE_EVENT)
		return JOBQ_EKIND;
	r = release_one(id, c, s->owner);
	if (r == 0)
		grant();
	return r;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int jobq__op_l_many(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t ids[JOBQ__MANY_MAX], n = s->arena_len / 4;
	int r;

	if (s->arena_len % 4 || n < 1 || n > JOBQ__MANY_MAX)
		return jobq__bad(-EINVAL);
	memcpy(ids, jobq__arena(c, s->arena_off), n * 4);
	/* From the copy: each id to its record, then one global order,
	 * sorted by record. */
	for (uint32_t i = 0; i < n; i++) {
		r = lock_index(ids[i], &ids[i]);
		if (r)
			return r;
	}
	qsort(ids, n, sizeof(*ids), cmp_u32);
	for (uint32_t i = 0; i < n; i++) {
		if (i && ids[i] == ids[i - 1])
			return jobq__bad(-EINVAL);
		if (rec(ids[i])->kind == JOBQ_WIRE_EVENT)
			return JOBQ_EKIND;
	}
	for (uint32_t i = 0; i < n; i++)
		mark_used(c, ids[i]);
	r = take_all(ids, n, c, s->owner, s->arg1);
	if (r <= 0)
		return r;
	return lock_wait(c, s, ids, n);
}

/* The record of Event @wire, used by @c: 0 and *id, or an error. */
static int event_check(struct jobq__client *c, uint32_t wire, uint32_t *id)
{
	int r = lock_index(wire, id);

	if (r)
		return r;
	mark_used(c, *id);
	return rec(*id)->kind == JOBQ_WIRE_EVENT ? 0 : JOBQ_EKIND;
}

static void event_store(uint32_t id, uint32_t set)
{
	struct jobq_lock_rec *r = rec(id);

	seq_write_begin(&r->seq);
	r->is_set = set;
	seq_write_end(&r->seq);
}

int jobq__op_ev_set(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq__lock *l;
	uint32_t id;
	int r = event_check(c, s->id, &id);

	if (r)
		return r;
	l = &lock_priv[id];
	event_store(id, 1);
	while (!jobq__list_empty(&l->evwait))
		jobq__wait_done(
		    jobq__entry(l->evwait.next, struct jobq__waiter, onode), 0,
		    0);
	return 0;
}

int jobq__op_ev_clear(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t id;
	int r = event_check(c, s->id, &id);

	if (r)
		return r;
	event_store(id, 0);
	return 0;
}

int jobq__op_ev_wait(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq__waiter *w;
	uint32_t id;
	int r = event_check(c, s->id, &id), err;

	if (r)
		return r;
	if (rec(id)->is_set)
		return 0;
	if (s->timeout_ns == 0)
		return -EAGAIN;
	w = jobq__wait_new(c, s, JOBQ__W_EVENT, &err);
	if (!w)
		return err;
	/* The waiter's copy names the record (jobq__lock_wait_detach). */
	w->sqe.id = id;
	jobq__list_add_tail(&w->onode, &lock_priv[id].evwait);
	set_nwait(&id, 1, 1);
	return JOBQ__NOREPLY;
}
