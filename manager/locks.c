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
 * With --backend, a wait that this host's graph lets park is checked
 * again against every host's (pg_locks.c, once the wait is published),
 * and fails with -EDEADLK when that answer finds a cycle: later, and
 * missing what other hosts had not committed yet (pg_locks.c says what).
 *
 * Reuse. Every client that opens or uses a lock is counted as its user
 * (a bit per lock and client slot) until it goes. A lock whose last user
 * went, that nobody holds or waits for and that is not a set Event, has
 * no state anyone could see: its record is freed (its generation moves
 * on, so a cached id fails with -ESTALE) and serves a later lock, oldest
 * freed first. libjobq checks a cached id in the store before it uses it.
 *
 * With --backend, locks are shared by every host on the database: a unit
 * held by a client here is also held by this manager as a PostgreSQL
 * session advisory lock on its connection (pg_locks.c has the key). The
 * table here still arbitrates between this host's clients; the advisory
 * lock says "this host holds it". A unit is granted only once PostgreSQL
 * said its advisory lock is this manager's: can_take() asks for one per
 * unit held (one for a Lock or RLock, whatever the depth), and
 * pg_sync() tries for the units that waiters lack and lets go of those
 * nobody here holds or waits for. The section at the end of this file
 * has the rest: retries, losing the connection, and try-once requests.
 *
 * The listing with --backend: each lock's holders and waiters here are
 * published to PostgreSQL once per turn in which they changed, and those
 * of the other hosts are mirrored into struct remote (pg_locks.c has the
 * table and how dead hosts' rows go). The record then shows both: held
 * and waiters summed, the holder this host's first one when it has one,
 * else the other hosts' earliest, with its host in holder_host. A lock
 * only other hosts use gets a record here (no maker, no quota), freed
 * with the last remote row as any unused lock is. The mirror never
 * decides a grant: the advisory locks do.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobqd.h"
#ifdef JOBQ_HAVE_PG
#include "pg.h"
#endif

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
	/* --backend: the units whose advisory lock this manager holds (at
	 * least one per unit held here), the tries and unlocks in flight,
	 * and whether the last try found every other unit held by other
	 * hosts. A record with units, tries or unlocks is not freed: the
	 * answers name it. */
	uint32_t *pgu;
	uint32_t npgu, cappgu;
	uint32_t pg_trying, pg_unlocking;
	bool pg_blocked;
	uint32_t pg_want; /* pg_sync()'s scratch */
	/* The listing: when this host's first holder took it
	 * (CLOCK_REALTIME; 0 when none holds it here), whether its rows
	 * must be published again, and the other hosts' (held, waiters,
	 * earliest holder) as last read. A record with rows to publish or
	 * remote ones is not freed. */
	uint64_t since_ns;
	bool pub;
	struct remote {
		uint32_t held, waiters;
		int32_t pid;
		uint64_t since_ns;
		char host[JOBQ_HOST_MAX + 1];
	} rem;
};

static struct jobq__lock *lock_priv;
static struct jobq__list lock_waiters;
static uint32_t epoch;

/* --backend: a unit held by (client, owner) that went with the connection
 * to PostgreSQL; its release says JOBQ_ELOST, as after a manager restart. */
struct lost {
	uint32_t id;
	uint64_t ref; /* jobq__client_ref() */
	uint64_t owner;
};

static struct {
	bool dirty;	  /* something pg_sync() looks at changed */
	uint64_t poll_at; /* when blocked units are tried again, 0: never */
	struct lost *lost;
	uint32_t nlost, caplost;
	/* The listing: a read of the other hosts' rows is due, or in flight;
	 * records holding remote rows now. */
	bool list_due, listing;
	uint32_t mirrored;
	/* Waits parked here that the walk across hosts is still to check
	 * (sent by pg_sync() after the publish of the wait). */
	struct cycle_check {
		uint64_t ref, ud, owner;
	} * checks;
	uint32_t nchecks, capchecks;
} pgl;

/* This manager's name in the listing: "hostname:pid" (several managers
 * may share a machine); "" without --backend. */
static char host_id[JOBQ_HOST_MAX + 1];

static bool backend(void)
{
#ifdef JOBQ_HAVE_PG
	return jobq__m.o.backend != NULL;
#else
	return false;
#endif
}
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
	if (backend()) {
		char h[JOBQ_HOST_MAX + 1] = "";

		if (gethostname(h, sizeof(h) - 1))
			snprintf(h, sizeof(h), "host");
		h[40] = '\0'; /* room for ":pid" */
		snprintf(host_id, sizeof(host_id), "%s:%d", h, (int)getpid());
		/* What the other hosts held before this one started. */
		pgl.list_due = true;
		pgl.dirty = true;
	}
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

	if (!r->in_use || l->users || l->nh || l->nwait || l->npgu ||
	    l->pg_trying || l->pg_unlocking || l->pub || l->rem.held ||
	    l->rem.waiters || !jobq__list_empty(&l->evwait) ||
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
	l->pg_blocked = false;
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

	for (uint32_t i = 0; lock_priv && i < max; i++) {
		free(lock_priv[i].h);
		free(lock_priv[i].pgu);
	}
	free(pgl.lost);
	free(pgl.checks);
	memset(&pgl, 0, sizeof(pgl));
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

/* Writes the view of lock @id to its record: this host's holders and
 * waiters and, with --backend, the other hosts' as last read. */
static void write_rec(uint32_t id, bool acquired)
{
	struct jobq_lock_rec *r = rec(id);
	struct jobq__lock *l = &lock_priv[id];
	const struct remote *m = &l->rem;
	uint64_t since = l->since_ns;

	if (m->held && m->since_ns && (!since || m->since_ns < since))
		since = m->since_ns;
	seq_write_begin(&r->seq);
	r->held = units_held(l) + m->held;
	r->waiters = l->nwait + m->waiters;
	r->held_since_ns = r->held ? since : 0;
	r->holder_pid = l->nh ? l->h[0].c->pid : m->held ? m->pid : 0;
	snprintf(r->holder_host, sizeof(r->holder_host), "%s",
		 l->nh	   ? host_id
		 : m->held ? m->host
			   : "");
	if (acquired)
		r->acquires++;
	seq_write_end(&r->seq);
}

/* Lock @id's holders or waiters here changed: its record shows it, and
 * with --backend the other hosts learn it (pg_sync()). */
static void sync_rec(uint32_t id, bool acquired)
{
	struct jobq__lock *l = &lock_priv[id];

	if (l->nh && !l->since_ns)
		l->since_ns = jobq__realtime_ns();
	else if (!l->nh)
		l->since_ns = 0;
	if (backend() && rec(id)->kind != JOBQ_WIRE_EVENT) {
		l->pub = true;
		pgl.dirty = true;
	}
	write_rec(id, acquired);
}

static int64_t find_holder(struct jobq__lock *l, struct jobq__client *c,
			   uint64_t owner)
{
	for (uint32_t i = 0; i < l->nh; i++)
		if (l->h[i].c == c && l->h[i].owner == owner)
			return i;
	return -1;
}

/* 0: @owner of @c can take a unit of lock @id as far as this host's
 * holders go; 1: it must wait; -EDEADLK: it already holds this plain
 * lock. */
static int can_take_local(uint32_t id, struct jobq__client *c, uint64_t owner)
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

/* --backend: the advisory units lock @id needs for its holders here, and
 * with one more unit taken (a Lock or RLock needs one, whatever holds
 * it; a Semaphore one per unit). */
static uint32_t pg_need(uint32_t id)
{
	const struct jobq__lock *l = &lock_priv[id];

	if (rec(id)->kind == JOBQ_WIRE_SEMAPHORE)
		return units_held(l);
	return l->nh ? 1 : 0;
}

static uint32_t pg_need_more(uint32_t id)
{
	return rec(id)->kind == JOBQ_WIRE_SEMAPHORE ? pg_need(id) + 1 : 1;
}

/* can_take_local(), and with --backend only once this host holds the
 * advisory units that taking it needs. */
static int can_take(uint32_t id, struct jobq__client *c, uint64_t owner)
{
	int r = can_take_local(id, c, owner);

	if (r == 0 && backend() && lock_priv[id].npgu < pg_need_more(id))
		return 1;
	return r;
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

/* The lock timer: the earliest lease, or the backend's poll before it. */
static void arm_timer(void)
{
	uint64_t at = next_lease();

	if (pgl.poll_at && (!at || pgl.poll_at < at))
		at = pgl.poll_at;
	jobq__timer_arm(JOBQ__TIMER_LOCKS, at);
}

/* lost_forget()'s "every lock". */
#define ANY_ID UINT32_MAX
static void lost_forget(uint32_t id, struct jobq__client *c, uint64_t owner);

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
		arm_timer();
	if (pgl.nlost)
		lost_forget(id, c, owner);
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

/* Whether every lock @w waits for is free for it here: what it lacks is
 * only the advisory units. */
static bool locally_free(const struct jobq__waiter *w)
{
	for (uint32_t k = 0; k < w->nids; k++)
		if (can_take_local(w->ids[k], w->c, w->sqe.owner))
			return false;
	return true;
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
		/* A try-once request (only with --backend: lock_wait())
		 * that a client here got ahead of fails as it would have. */
		if (r == 1 && (w->sqe.timeout_ns || locally_free(w)))
			continue;
		jobq__wait_done(w, r == 1 ? -EAGAIN : r, 0);
	}
	pgl.dirty = true;
}

/*
 * Whether a try-once request (timeout 0) that cannot be granted now is
 * parked all the same: with --backend, when it lacks only the advisory
 * units, it waits for PostgreSQL's answer (no deadline; the answer ends
 * it: pg_try_done()).
 */
static bool try_once_waits(struct jobq__client *c, uint64_t owner,
			   const uint32_t *ids, uint32_t n)
{
#ifdef JOBQ_HAVE_PG
	struct jobq__waiter t;

	if (!backend() || !jobq__pg_up(jobq__backend_pg()))
		return false;
	t.c = c;
	t.sqe.owner = owner;
	t.nids = n;
	memcpy(t.ids, ids, n * sizeof(*ids));
	return locally_free(&t);
#else
	return false;
#endif
}

/* --backend: @w, parked, is checked for a cycle across hosts (a check
 * that cannot be recorded is skipped: the wait then relies on its
 * timeout, as a cycle no host sees does). */
static void check_later(const struct jobq__waiter *w)
{
	if (pgl.nchecks == pgl.capchecks) {
		uint32_t ncap = pgl.capchecks ? 2 * pgl.capchecks : 8;
		struct cycle_check *n = realloc(pgl.checks, ncap * sizeof(*n));

		if (!n)
			return;
		pgl.checks = n;
		pgl.capchecks = ncap;
	}
	pgl.checks[pgl.nchecks++] = (struct cycle_check){
	    jobq__client_ref(w->c), w->sqe.user_data, w->sqe.owner};
	pgl.dirty = true;
}

/* Parks a lock request that could not be granted: -EAGAIN for timeout 0,
 * -EDEADLK when waiting would close a cycle. */
static int lock_wait(struct jobq__client *c, const struct jobq_sqe *s,
		     const uint32_t *ids, uint32_t n)
{
	struct jobq__waiter *w;
	int err;

	if (s->timeout_ns == 0 && !try_once_waits(c, s->owner, ids, n))
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
	if (backend())
		check_later(w);
	/* A new request tries PostgreSQL at once, whatever an older one
	 * was told. */
	for (uint32_t i = 0; i < n; i++)
		lock_priv[ids[i]].pg_blocked = false;
	pgl.dirty = true;
	return JOBQ__NOREPLY;
}

void jobq__lock_wait_detach(struct jobq__waiter *w)
{
	if (jobq__list_empty(&w->onode))
		return;
	jobq__list_del(&w->onode);
	if (w->kind == JOBQ__W_EVENT) {
		set_nwait(&w->sqe.id, 1, -1);
	} else {
		set_nwait(w->ids, w->nids, -1);
		pgl.dirty = true; /* units tried for it may not be wanted */
	}
}

static bool lost_take(uint32_t id, struct jobq__client *c, uint64_t owner);

/* Removes one unit held by @owner of @c from lock @id. */
static int release_one(uint32_t id, struct jobq__client *c, uint64_t owner)
{
	struct jobq__lock *l = &lock_priv[id];
	int64_t i = find_holder(l, c, owner);

	if (i < 0)
		return pgl.nlost && lost_take(id, c, owner) ? JOBQ_ELOST
							    : -EPERM;
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

	if (pgl.poll_at && pgl.poll_at <= now) {
		/* The backend's poll: units held elsewhere are tried again. */
		pgl.poll_at = 0;
		for (uint32_t id = 0; id < n; id++)
			lock_priv[id].pg_blocked = false;
		pgl.dirty = true;
	}

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
	arm_timer();
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
	if (pgl.nlost)
		lost_forget(ANY_ID, c, 0);
	drop_uses(c);
}

/* Makes lock @name (JOBQ_NAME_MAX + 1 bytes) of @kind and @limit in a
 * free record, which there is (the caller checked): its index. */
static uint32_t alloc_rec(const char *name, uint32_t kind, uint32_t limit)
{
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t n = load_relaxed(&h->nlocks), i;
	struct jobq_lock_rec *r;

	if (n < h->max_locks) {
		i = n;
	} else {
		i = freel.v[freel.head];
		freel.head = (freel.head + 1) % freel.cap;
		freel.n--;
	}
	r = rec(i);
	seq_write_begin(&r->seq);
	r->in_use = 1;
	memcpy(r->name, name, sizeof(r->name));
	r->kind = kind;
	r->limit = limit;
	seq_write_end(&r->seq);
	if (i == n)
		store_release(&h->nlocks, n + 1);
	store_relaxed(&h->locks_live, load_relaxed(&h->locks_live) + 1);
	return i;
}

/* Whether a record is free for alloc_rec(). */
static bool rec_room(void)
{
	return load_relaxed(&jobq__hdr()->nlocks) < jobq__hdr()->max_locks ||
	       freel.n;
}

int jobq__op_l_open(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t n = load_relaxed(&h->nlocks), i;
	char name[JOBQ_NAME_MAX + 1];

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
	if (!rec_room()) {
		jobq__log(JOBQ__LOG_WARN,
			  "the lock table is full: %u locks (jobqd --max-locks "
			  "raises it)",
			  h->max_locks);
		return JOBQ_ELIMIT;
	}
	/* A lock counts against its maker's quota until it is freed. */
	if (jobq__quota_take(c, JOBQ_QUOTA_LOCKS))
		return JOBQ_EQUOTA;
	i = alloc_rec(name, (uint32_t)s->arg0,
		      s->arg0 == JOBQ_WIRE_SEMAPHORE ? (uint32_t)s->arg1 : 1);
	lock_priv[i].maker = c->pid;
	lock_priv[i].maker_ref = jobq__client_ref(c);
	mark_used(c, i);
	jobq__log(1, "lock %u \"%s\" created (kind %u)", i, name, rec(i)->kind);
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

/* ------------------------------------------------------------------------
 * --backend: the advisory locks behind the table.
 *
 * pg_sync() runs at the end of a loop turn in which anything it looks at
 * changed (pgl.dirty), and after each answer. It works out, per lock,
 * the units this host wants: one per unit its clients hold, plus one per
 * waiter that lacks only advisory units (a Lock or RLock wants one in
 * all). It lets go of units beyond that (an unlock and a NOTIFY each) and
 * sends one try at a time for a lock that wants more. Units a waiter's
 * try brings are granted by grant(), this host's waiters first: a host
 * keeps a lock its own clients queue for.
 *
 * A try that finds the unit held elsewhere marks the lock blocked: its
 * waiters wait (their timeouts run as ever) and no try is sent for it
 * until the other host's release NOTIFYs JOBQ__PG_LOCK_CHANNEL with its
 * name (one notification, no poll interval), or a new request for it
 * comes. A host that dies, or whose connection is cut, releases its
 * advisory locks without any NOTIFY, so while some waiter is blocked
 * the lock timer also tries again every PG_POLL_NS. lock_many() across
 * hosts takes the units of its set as they come and lets them go while
 * one of them is blocked (such a waiter wants none), so two hosts taking
 * overlapping sets back off rather than hold parts of them against each
 * other.
 *
 * The connection lost: PostgreSQL ended the session and with it every
 * advisory lock, so every unit held here is lost. Its holders are
 * dropped, and each learns it when it releases: JOBQ_ELOST, as after a
 * manager restart (struct lost). Waiters stay and try again when the
 * connection is back; try-once requests fail with -EAGAIN.
 */
#define PG_POLL_NS (300 * 1000 * 1000ull)

static void lost_forget(uint32_t id, struct jobq__client *c, uint64_t owner)
{
	uint64_t ref = jobq__client_ref(c);
	uint32_t k = 0;

	for (uint32_t i = 0; i < pgl.nlost; i++) {
		struct lost *x = &pgl.lost[i];

		if (x->ref == ref &&
		    (id == ANY_ID || (x->id == id && x->owner == owner)))
			continue;
		pgl.lost[k++] = *x;
	}
	pgl.nlost = k;
}

/* Whether @owner of @c lost a unit of lock @id with the connection (the
 * entry is taken: JOBQ_ELOST is said once). */
static bool lost_take(uint32_t id, struct jobq__client *c, uint64_t owner)
{
	uint64_t ref = jobq__client_ref(c);

	for (uint32_t i = 0; i < pgl.nlost; i++) {
		struct lost *x = &pgl.lost[i];

		if (x->ref == ref && x->id == id && x->owner == owner) {
			*x = pgl.lost[--pgl.nlost];
			return true;
		}
	}
	return false;
}

#ifdef JOBQ_HAVE_PG
static void lost_add(uint32_t id, struct jobq__client *c, uint64_t owner)
{
	if (pgl.nlost == pgl.caplost) {
		uint32_t ncap = pgl.caplost ? 2 * pgl.caplost : 16;
		struct lost *n = realloc(pgl.lost, ncap * sizeof(*n));

		if (!n)
			return; /* its release then says -EPERM */
		pgl.lost = n;
		pgl.caplost = ncap;
	}
	pgl.lost[pgl.nlost++] = (struct lost){id, jobq__client_ref(c), owner};
}

static void pg_sync(void);

static void pg_unlock_done(void *arg, int err, const PGresult *res)
{
	uint32_t id = (uint32_t)(uintptr_t)arg;

	lock_priv[id].pg_unlocking--;
	if (err == -ECANCELED)
		return; /* as in pg_try_done() */
	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: lock \"%.64s\": %s",
			  rec(id)->name, PQresultErrorMessage(res));
	/* A try this unlock held back may go now. */
	pgl.dirty = true;
	pg_sync();
	try_free(id);
}

/* Lets go of unit @u of lock @id: 0, or -errno when it cannot be queued
 * (the unit is then still held). */
static int pg_unlock(uint32_t id, uint32_t u)
{
	int ret = jobq__pg_lock_unlock(jobq__backend_pg(), rec(id)->name, u,
				       pg_unlock_done, (void *)(uintptr_t)id);

	if (!ret)
		lock_priv[id].pg_unlocking++;
	return ret;
}

/* Fails the try-once waiters for lock @id (ANY_ID: all) with -EAGAIN. */
static void fail_try_once(uint32_t id)
{
	struct jobq__list *p, *nx;

	for (p = lock_waiters.next; p != &lock_waiters; p = nx) {
		struct jobq__waiter *w =
		    jobq__entry(p, struct jobq__waiter, onode);
		bool names = id == ANY_ID;

		nx = p->next;
		for (uint32_t k = 0; k < w->nids && !names; k++)
			names = w->ids[k] == id;
		if (names && w->sqe.timeout_ns == 0)
			jobq__wait_done(w, -EAGAIN, 0);
	}
}

/*
 * A try's answer. A unit in the answer is this session's whatever the
 * connection went through since the try was sent (an answer comes only
 * over the connection that is up), so it is kept; pg_sync() lets it go
 * if nobody wants it any more.
 */
static void pg_try_done(void *arg, int err, const PGresult *res)
{
	uint32_t id = (uint32_t)(uintptr_t)arg;
	struct jobq__lock *l = &lock_priv[id];

	l->pg_trying--;
	/* The connection is being closed (the manager stops): nothing may
	 * be sent any more. */
	if (err == -ECANCELED)
		return;
	if (!err && PQntuples(res) == 1) {
		uint32_t u = (uint32_t)jobq__pg_int(res, 0, 0);
		bool known = false;

		for (uint32_t i = 0; i < l->npgu; i++)
			known |= l->pgu[i] == u;
		if (!known && l->npgu == l->cappgu) {
			uint32_t ncap = l->cappgu ? 2 * l->cappgu : 1;
			uint32_t *n = realloc(l->pgu, ncap * sizeof(*n));

			if (!n) {
				pg_unlock(id, u);
				goto out;
			}
			l->pgu = n;
			l->cappgu = ncap;
		}
		if (!known)
			l->pgu[l->npgu++] = u;
		grant();
	} else if (!err) {
		l->pg_blocked = true;
		fail_try_once(id);
	} else if (err == -EPROTO) {
		jobq__log(JOBQ__LOG_WARN, "backend: lock \"%.64s\": %s",
			  rec(id)->name, PQresultErrorMessage(res));
	}
out:
	pgl.dirty = true;
	pg_sync();
	try_free(id);
}

static void pg_list_done(void *arg, int err, const PGresult *res);

/* A walk's answer: the wait it checked, if still parked, fails when it
 * closes a cycle. */
static void pg_cycle_done(void *arg, int err, const PGresult *res)
{
	struct cycle_check *x = arg;
	struct jobq__list *p;

	if (!err && PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t"))
		for (p = lock_waiters.next; p != &lock_waiters; p = p->next) {
			struct jobq__waiter *w =
			    jobq__entry(p, struct jobq__waiter, onode);

			if (w->sqe.user_data != x->ud ||
			    jobq__client_ref(w->c) != x->ref)
				continue;
			jobq__count(deadlocks);
			jobq__log(1,
				  "deadlock across hosts refused: pid %d "
				  "owner %llu",
				  (int)w->c->pid,
				  (unsigned long long)w->sqe.owner);
			jobq__wait_done(w, -EDEADLK, 0);
			break;
		}
	else if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: deadlock check: %s",
			  PQresultErrorMessage(res));
	free(x);
}

/* A publish's answer: nothing to do but say why one failed (the next
 * change, or the next connection, publishes the lock again). */
static void pg_publish_done(void *arg, int err, const PGresult *res)
{
	uint32_t id = (uint32_t)(uintptr_t)arg;

	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: listing lock %u: %s", id,
			  PQresultErrorMessage(res));
}

static void pg_forget_done(void *arg, int err, const PGresult *res)
{
	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN,
			  "backend: the listing of locks could not be reset: "
			  "%s",
			  PQresultErrorMessage(res));
}

/* Sends this host's holders and waiters of lock @id: 0 or -errno. */
static int pg_publish(struct jobq__pg *pg, uint32_t id)
{
	struct jobq__lock *l = &lock_priv[id];
	struct jobq__pg_lock_row *rows;
	uint64_t now = jobq__realtime_ns();
	uint32_t n = 0;
	struct jobq__list *p;
	int ret;

	rows = calloc((size_t)l->nh + l->nwait + 1, sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	for (uint32_t i = 0; i < l->nh; i++)
		rows[n++] = (struct jobq__pg_lock_row){
		    .client = jobq__client_ref(l->h[i].c),
		    .owner = l->h[i].owner,
		    .pid = l->h[i].c->pid,
		    .units = l->h[i].count,
		    .since_ns = l->since_ns,
		};
	for (p = lock_waiters.next; p != &lock_waiters && n < l->nh + l->nwait;
	     p = p->next) {
		struct jobq__waiter *w =
		    jobq__entry(p, struct jobq__waiter, onode);

		for (uint32_t k = 0; k < w->nids; k++)
			if (w->ids[k] == id)
				rows[n++] = (struct jobq__pg_lock_row){
				    .client = jobq__client_ref(w->c),
				    .owner = w->sqe.owner,
				    .pid = w->c->pid,
				    .waiting = true,
				    .since_ns = now,
				};
	}
	ret = jobq__pg_lock_publish(pg, host_id, rec(id)->name, rec(id)->kind,
				    rec(id)->limit, rows, n, pg_publish_done,
				    (void *)(uintptr_t)id);
	free(rows);
	return ret;
}

static void pg_sync(void)
{
	struct jobq__pg *pg = jobq__backend_pg();
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);
	bool blocked = false;
	struct jobq__list *p;

	if (!pgl.dirty || !pg || !jobq__pg_up(pg))
		return;
	pgl.dirty = false;
	for (uint32_t id = 0; id < n; id++)
		lock_priv[id].pg_want = rec(id)->in_use ? pg_need(id) : 0;
	for (p = lock_waiters.next; p != &lock_waiters; p = p->next) {
		struct jobq__waiter *w =
		    jobq__entry(p, struct jobq__waiter, onode);
		bool wants = jobq__client_alive(w->c) && locally_free(w);

		for (uint32_t k = 0; k < w->nids && wants; k++) {
			struct jobq__lock *l = &lock_priv[w->ids[k]];

			if (l->pg_blocked && l->npgu < pg_need_more(w->ids[k]))
				wants = false;
		}
		if (!wants) {
			blocked |= jobq__client_alive(w->c) && locally_free(w);
			continue;
		}
		for (uint32_t k = 0; k < w->nids; k++) {
			uint32_t id = w->ids[k];
			struct jobq__lock *l = &lock_priv[id];

			if (rec(id)->kind != JOBQ_WIRE_SEMAPHORE)
				l->pg_want = 1;
			else if (l->pg_want < rec(id)->limit)
				l->pg_want++;
		}
	}
	for (uint32_t id = 0; id < n; id++) {
		struct jobq__lock *l = &lock_priv[id];

		if (!l->npgu && l->pg_want <= l->pg_trying && !l->pub)
			continue;
		while (l->npgu > l->pg_want) {
			/* One that cannot be queued is kept, and let go by
			 * the poll's pg_sync(). */
			if (pg_unlock(id, l->pgu[l->npgu - 1])) {
				blocked = true;
				break;
			}
			l->npgu--;
		}
		/*
		 * No try while an unlock of the lock is unanswered. pg.c may
		 * run an unlock twice (a batch that failed for another
		 * statement is sent again), and a try that ran between the
		 * two would have its unit taken away by the second.
		 */
		if (!l->pg_trying && !l->pg_unlocking && !l->pg_blocked &&
		    l->npgu < l->pg_want) {
			/* A try that cannot be queued (out of memory, too
			 * many queries waiting) is made again by the poll. */
			if (jobq__pg_lock_try(pg, rec(id)->name, rec(id)->limit,
					      l->pgu, l->npgu, pg_try_done,
					      (void *)(uintptr_t)id)) {
				l->pg_blocked = true;
				blocked = true;
			} else {
				l->pg_trying++;
			}
		}
		/* After the try and unlocks: the listing follows what the
		 * table here says, not the advisory units. */
		if (l->pub) {
			if (pg_publish(pg, id))
				blocked = true; /* the poll sends it again */
			else
				l->pub = false;
		}
		try_free(id);
	}
	/* After the publishes: each walk sees its own wait. */
	for (uint32_t i = 0; i < pgl.nchecks; i++) {
		struct cycle_check *x = malloc(sizeof(*x));

		/* One not sent is not checked: see check_later(). */
		if (!x)
			continue;
		*x = pgl.checks[i];
		if (jobq__pg_lock_cycle(pg, host_id, x->ref, x->owner,
					pg_cycle_done, x))
			free(x);
	}
	pgl.nchecks = 0;
	if (pgl.list_due && !pgl.listing) {
		if (jobq__pg_lock_list(pg, host_id, pg_list_done, NULL)) {
			blocked = true;
		} else {
			pgl.list_due = false;
			pgl.listing = true;
		}
	}
	if (blocked && !pgl.poll_at) {
		pgl.poll_at = jobq__now_ns() + PG_POLL_NS;
		arm_timer();
	} else if (!blocked && pgl.poll_at) {
		pgl.poll_at = 0;
		arm_timer();
	}
}

/* The record of lock @name for the other hosts' rows: this host's, or
 * one made for them (UINT32_MAX when the table is full or the name
 * unusable: that lock is then not listed here). */
static uint32_t remote_rec(const char *name, int64_t kind, int64_t limit)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);
	char nm[JOBQ_NAME_MAX + 1] = {0};

	for (uint32_t id = 0; id < n; id++)
		if (rec(id)->in_use && !strcmp(rec(id)->name, name))
			return id;
	if (!*name || strlen(name) > JOBQ_NAME_MAX || kind < JOBQ_WIRE_LOCK ||
	    kind > JOBQ_WIRE_SEMAPHORE || limit < 1 || limit > UINT32_MAX ||
	    !rec_room())
		return UINT32_MAX;
	memcpy(nm, name, strlen(name));
	return alloc_rec(nm, (uint32_t)kind, (uint32_t)limit);
}

/* Sets lock @id's mirror of the other hosts to @m, and its record. */
static void remote_set(uint32_t id, const struct remote *m)
{
	struct jobq__lock *l = &lock_priv[id];
	bool had = l->rem.held || l->rem.waiters;
	bool has = m->held || m->waiters;

	if (!memcmp(&l->rem, m, sizeof(*m)))
		return;
	l->rem = *m;
	pgl.mirrored += (uint32_t)has - (uint32_t)had;
	write_rec(id, false);
	try_free(id);
}

/* Drops the whole mirror (the connection went down: it is read again
 * when it is back). */
static void remote_clear(void)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);
	struct remote none = {0};

	for (uint32_t id = 0; id < n; id++)
		if (rec(id)->in_use)
			remote_set(id, &none);
}

/* The other hosts' rows: each lock's mirror becomes what they say, and
 * a lock they no longer name has none. */
static void pg_list_done(void *arg, int err, const PGresult *res)
{
	uint32_t n, rows;
	bool *seen;

	pgl.listing = false;
	if (err == -ECANCELED)
		return;
	if (err) {
		if (err == -EPROTO)
			jobq__log(JOBQ__LOG_WARN, "backend: reading locks: %s",
				  PQresultErrorMessage(res));
		pgl.list_due = true; /* the next turn with a connection */
		return;
	}
	seen = calloc(jobq__hdr()->max_locks, sizeof(*seen));
	if (!seen) {
		pgl.list_due = true;
		return;
	}
	rows = (uint32_t)PQntuples(res);
	for (uint32_t i = 0; i < rows; i++) {
		struct remote m = {0};
		uint32_t id = remote_rec(PQgetvalue(res, (int)i, 0),
					 jobq__pg_int(res, (int)i, 1),
					 jobq__pg_int(res, (int)i, 2));

		if (id == UINT32_MAX)
			continue;
		m.held = (uint32_t)jobq__pg_int(res, (int)i, 3);
		m.waiters = (uint32_t)jobq__pg_int(res, (int)i, 4);
		if (m.held) {
			m.pid = (int32_t)jobq__pg_int(res, (int)i, 5);
			snprintf(m.host, sizeof(m.host), "%s",
				 PQgetvalue(res, (int)i, 6));
			m.since_ns =
			    (uint64_t)jobq__pg_int(res, (int)i, 7) * 1000;
		}
		seen[id] = true;
		remote_set(id, &m);
	}
	n = load_relaxed(&jobq__hdr()->nlocks);
	for (uint32_t id = 0; id < n && pgl.mirrored; id++) {
		struct remote none = {0};

		if (!seen[id] && rec(id)->in_use)
			remote_set(id, &none);
	}
	free(seen);
	pgl.dirty = true;
	pg_sync();
}

void jobq__locks_pg_listed(const char *host)
{
	if (!strcmp(host, host_id))
		return; /* our own publish */
	pgl.list_due = true;
	pgl.dirty = true;
}

void jobq__locks_pg_tick(void)
{
	if (pgl.mirrored) {
		pgl.list_due = true;
		pgl.dirty = true;
	}
}

void jobq__locks_pg_turn(void)
{
	pg_sync();
}

void jobq__locks_pg_notify(const char *name)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks);

	for (uint32_t id = 0; id < n; id++) {
		if (!rec(id)->in_use || strcmp(rec(id)->name, name))
			continue;
		if (lock_priv[id].pg_blocked) {
			lock_priv[id].pg_blocked = false;
			pgl.dirty = true;
			pg_sync();
		}
		return;
	}
}

void jobq__locks_pg_state(bool up)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nlocks), lost = 0;

	if (up) {
		/* The rows of an older session go before this one's: they
		 * are sent in this order on one connection. */
		if (jobq__pg_lock_forget(jobq__backend_pg(), host_id,
					 pg_forget_done, NULL))
			jobq__log(JOBQ__LOG_WARN,
				  "backend: the listing of locks could not be "
				  "reset");
		for (uint32_t id = 0; id < n; id++) {
			lock_priv[id].pg_blocked = false;
			lock_priv[id].pub =
			    rec(id)->in_use &&
			    rec(id)->kind != JOBQ_WIRE_EVENT &&
			    (lock_priv[id].nh || lock_priv[id].nwait);
		}
		pgl.list_due = true;
		pgl.dirty = true;
		pg_sync();
		return;
	}
	remote_clear();
	for (uint32_t id = 0; id < n; id++) {
		struct jobq__lock *l = &lock_priv[id];

		l->npgu = 0;
		l->pg_blocked = false;
		if (!l->nh)
			continue;
		for (uint32_t i = 0; i < l->nh; i++) {
			lost_add(id, l->h[i].c, l->h[i].owner);
			held_add(l->h[i].c, -1);
		}
		lost += l->nh;
		l->nh = 0;
		sync_rec(id, false);
	}
	if (lost)
		jobq__log(JOBQ__LOG_WARN,
			  "backend: %u lock holders lost their locks with the "
			  "connection to PostgreSQL",
			  lost);
	fail_try_once(ANY_ID);
	arm_timer();
}
#endif
