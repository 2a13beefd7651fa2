/* SPDX-License-Identifier: MIT */
/*
 * lanes.c - the READY jobs, and which one a reserving worker gets next.
 *
 * A lane holds the READY jobs of one (type, queue) pair, best first:
 * priority descending, then id ascending (ids grow, so among equal
 * priorities the oldest goes first). A lane is open when its queue is not
 * paused and runs fewer jobs than its parallel limit (0: no limit). A
 * worker that reserves gets the best head among the open lanes of the
 * types it registered (jobq__lane_best()), then the next best, up to what
 * it asked for and has room for.
 *
 * Each type keeps a list of its lanes, made when a job of that queue first
 * becomes READY and kept while the type is (jobs.c frees a type, and its
 * lanes, empty by then, once no job or worker names it). Lanes are in the
 * manager's memory only; what clients see are the ready and running counts
 * that jobs.c keeps in the queue and type records.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "pqueue.h"

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
	uint32_t *h;	       /* the heap (pqueue.h) of record numbers */
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

static struct lane **lanes; /* [max_types]: each type's lanes */

/* Whether READY job @a goes before READY job @b. */
static bool better(uint32_t a, uint32_t b)
{
	const struct jobq_job_rec *x = job_rec(a), *y = job_rec(b);

	return x->priority > y->priority ||
	       (x->priority == y->priority && x->id < y->id);
}

static inline bool lheap_before(const uint32_t *a, const uint32_t *b)
{
	return better(*a, *b);
}

static inline void lheap_moved(uint32_t *e, uint32_t i)
{
	jobq__job_priv[*e].pos = i;
}

JOBQ__PQUEUE_DEFINE(lheap, uint32_t, lheap_before, lheap_moved)

static struct lane *lane_of(uint32_t type, uint32_t queue, bool create)
{
	struct lane *l;

	for (l = lanes[type]; l; l = l->next)
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
	l->next = lanes[type];
	lanes[type] = l;
	return l;
}

static void run_push(struct lane *l, uint32_t r)
{
	list_add_tail(&l->rhead, &l->rtail, r);
	jobq__job_priv[r].pos = LANE_RUN;
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
	if (l->hn == l->cap &&
	    lheap_resize(&l->h, &l->cap, l->cap ? 2 * l->cap : 16))
		return -ENOMEM;
	lheap_push(l->h, &l->hn, r);
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

/* Whether READY job @r is in lane @l where priv[r].pos says. */
static bool lane_has(const struct lane *l, uint32_t r)
{
	uint32_t pos = jobq__job_priv[r].pos;

	if (pos == LANE_RUN) {
		uint32_t p = jobq__job_priv[r].prev;

		return p == NONE ? l->rhead == r
				 : jobq__job_priv[p].next == r &&
				       jobq__job_priv[p].pos == LANE_RUN;
	}
	return pos < l->hn && l->h[pos] == r;
}

/* Takes job @r (in lane @l, see lane_has()) out of the lane. */
void jobq__lane_take(struct lane *l, uint32_t r)
{
	uint32_t pos = jobq__job_priv[r].pos;

	if (pos == LANE_RUN) {
		list_del(&l->rhead, &l->rtail, r);
	} else {
		lheap_remove(l->h, &l->hn, pos);
		/* Give memory back once a big heap has drained. */
		if (l->cap > 1024 && l->hn < l->cap / 4)
			(void)lheap_resize(&l->h, &l->cap, l->cap / 2);
	}
	l->n--;
	jobq__job_priv[r].pos = NONE;
}

/* Whether a worker may take the head of lane @l now. */
static bool lane_open(const struct lane *l)
{
	const struct jobq_queue_rec *q = &jobq__m.st.queues[l->queue];

	return l->n && !q->paused && (!q->parallel || q->running < q->parallel);
}

struct lane *jobq__lane_best(const uint16_t *types, uint32_t ntypes,
			     uint32_t *r)
{
	struct lane *best = NULL;
	uint32_t top = NONE;

	for (uint32_t i = 0; i < ntypes; i++) {
		for (struct lane *l = lanes[types[i]]; l; l = l->next) {
			uint32_t t;

			if (!lane_open(l))
				continue;
			t = lane_top(l);
			if (!best || better(t, top)) {
				best = l;
				top = t;
			}
		}
	}
	*r = top;
	return best;
}

int jobq__lane_push(uint32_t r)
{
	const struct jobq_job_rec *j = job_rec(r);
	struct lane *l = lane_of(j->type_id, j->queue_id, true);

	return l ? lane_push(l, r) : -ENOMEM;
}

void jobq__lane_remove(uint32_t r)
{
	const struct jobq_job_rec *j = job_rec(r);
	struct lane *l = lane_of(j->type_id, j->queue_id, false);

	if (l && lane_has(l, r))
		jobq__lane_take(l, r);
}

int jobq__lanes_init(uint32_t max_types)
{
	lanes = calloc(max_types, sizeof(*lanes));
	return lanes ? 0 : -ENOMEM;
}

void jobq__lanes_type_free(uint32_t type)
{
	while (lanes[type]) {
		struct lane *l = lanes[type];

		lanes[type] = l->next;
		free(l->h);
		free(l);
	}
}

void jobq__lanes_fini(uint32_t max_types)
{
	for (uint32_t t = 0; lanes && t < max_types; t++)
		jobq__lanes_type_free(t);
	free(lanes);
	lanes = NULL;
}
