/* SPDX-License-Identifier: MIT */
/*
 * timerq.c - the jobs' timer queue: at most one deadline per job record,
 * earliest first.
 *
 * A record is here while it waits for a time: DELAYED until its run_at,
 * FAILED until its retry backoff ends, RUNNING until its lease (or the
 * cancel's grace period) runs out. jobs.c gives the loop only the earliest
 * deadline of the queue, as its one module timer, and handles what is due
 * when that fires. Deadlines are CLOCK_MONOTONIC ns.
 *
 * The queue is a min-heap (pqueue.h) of (deadline, record) pairs. Each record
 * knows its index through priv[].pos, so moving or removing its deadline
 * costs O(log n). A READY job's pos is its place in a lane instead (a job
 * is never in both), so membership is checked against the entry itself.
 */
#include <errno.h>
#include <stdlib.h>

#include "jobs.h"
#include "pqueue.h"

struct tent {
	uint64_t at; /* CLOCK_MONOTONIC ns */
	uint32_t rec;
	uint32_t pad;
};

static struct {
	struct tent *tq;
	uint32_t tqn, tqcap;
} timers;

static inline bool tent_before(const struct tent *a, const struct tent *b)
{
	return a->at < b->at;
}

static inline void tent_moved(struct tent *e, uint32_t i)
{
	jobq__job_priv[e->rec].pos = i;
}

JOBQ__PQUEUE_DEFINE(tq, struct tent, tent_before, tent_moved)

/* Whether record @r has a deadline: its pos may be a lane's instead. */
static bool tq_has(uint32_t r)
{
	uint32_t i = jobq__job_priv[r].pos;

	return i < timers.tqn && timers.tq[i].rec == r;
}

void jobq__timerq_del(uint32_t r)
{
	if (tq_has(r))
		tq_remove(timers.tq, &timers.tqn, jobq__job_priv[r].pos);
}

int jobq__timerq_set(uint32_t r, uint64_t at)
{
	if (tq_has(r)) {
		uint32_t i = jobq__job_priv[r].pos;

		timers.tq[i].at = at;
		tq_update(timers.tq, timers.tqn, i);
		return 0;
	}
	if (timers.tqn == timers.tqcap &&
	    tq_resize(&timers.tq, &timers.tqcap,
		      timers.tqcap ? 2 * timers.tqcap : 256))
		return -ENOMEM;
	tq_push(timers.tq, &timers.tqn, (struct tent){.at = at, .rec = r});
	return 0;
}

bool jobq__timerq_first(uint64_t *at, uint32_t *r)
{
	if (!timers.tqn)
		return false;
	if (at)
		*at = timers.tq[0].at;
	if (r)
		*r = timers.tq[0].rec;
	return true;
}

void jobq__timerq_fini(void)
{
	free(timers.tq);
	timers.tq = NULL;
	timers.tqn = timers.tqcap = 0;
}
