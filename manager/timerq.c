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
 * The queue is a binary min-heap of (deadline, record) pairs. Each record
 * knows its index through priv[].pos, so moving or removing its deadline
 * costs O(log n). A READY job's pos is its place in a lane instead (a job
 * is never in both), so membership is checked against the entry itself.
 */
#include <errno.h>
#include <stdlib.h>

#include "jobs.h"

struct tent {
	uint64_t at; /* CLOCK_MONOTONIC ns */
	uint32_t rec;
	uint32_t pad;
};

static struct {
	struct tent *tq;
	uint32_t tqn, tqcap;
} timers;

static void tq_set(uint32_t i, struct tent e)
{
	timers.tq[i] = e;
	jobq__job_priv[e.rec].pos = i;
}

static void tq_up(uint32_t i)
{
	struct tent e = timers.tq[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (timers.tq[p].at <= e.at)
			break;
		tq_set(i, timers.tq[p]);
		i = p;
	}
	tq_set(i, e);
}

static void tq_down(uint32_t i)
{
	struct tent e = timers.tq[i];

	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		uint64_t best = e.at;

		if (l < timers.tqn && timers.tq[l].at < best) {
			m = l;
			best = timers.tq[l].at;
		}
		if (l + 1 < timers.tqn && timers.tq[l + 1].at < best)
			m = l + 1;
		if (m == i)
			break;
		tq_set(i, timers.tq[m]);
		i = m;
	}
	tq_set(i, e);
}

void jobq__timerq_del(uint32_t r)
{
	uint32_t i = jobq__job_priv[r].pos;

	if (i >= timers.tqn || timers.tq[i].rec != r)
		return;
	timers.tqn--;
	if (i == timers.tqn)
		return;
	tq_set(i, timers.tq[timers.tqn]);
	tq_up(i);
	tq_down(jobq__job_priv[timers.tq[i].rec].pos);
}

int jobq__timerq_set(uint32_t r, uint64_t at)
{
	uint32_t i = jobq__job_priv[r].pos;

	if (i < timers.tqn && timers.tq[i].rec == r) {
		timers.tq[i].at = at;
		tq_up(i);
		tq_down(jobq__job_priv[r].pos);
		return 0;
	}
	if (timers.tqn == timers.tqcap) {
		uint32_t ncap = timers.tqcap ? 2 * timers.tqcap : 256;
		struct tent *n = realloc(timers.tq, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		timers.tq = n;
		timers.tqcap = ncap;
	}
	timers.tq[timers.tqn] = (struct tent){.at = at, .rec = r};
	jobq__job_priv[r].pos = timers.tqn++;
	tq_up(timers.tqn - 1);
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
