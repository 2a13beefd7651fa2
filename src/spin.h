/* SPDX-License-Identifier: MIT */
/*
 * spin.h - when a side that waits for the other polls, and for how long.
 *
 * A sleep costs a wake-up: a system call on the waking side and, for the
 * sleeper, the time its CPU takes to leave idle and switch to it. On a
 * virtual machine that halts idle vCPUs this is tens of microseconds; on
 * bare metal a few. Polling for about that long before sleeping never costs
 * more than twice the best choice, so the window is the wake-up cost that
 * jobqd measures at start (jobq__wake_cost_ns(), published in the store
 * header), adapted while running: an answer that came while polling widens
 * it, a poll that ran out narrows it.
 *
 * Polling pays only while the side we wait for is on a CPU. Nobody here
 * calls sched_yield(): on a machine with more busy processes than CPUs a
 * polling loop that yields hands the CPU round in a circle, one context
 * switch per request. Instead a poller that sees it was kept off its CPU
 * (a gap between two clock reads far longer than one turn of the loop)
 * knows that someone else needs the CPU, narrows its window and sleeps.
 * A client also stops polling when jobqd's turn count (struct
 * jobq_store_hdr.beat) stands still while jobqd is awake: jobqd is then
 * off its CPU, and the answer will come through a wake-up anyway.
 */
#ifndef JOBQ_SPIN_H
#define JOBQ_SPIN_H

#include <stdbool.h>
#include <stdint.h>

struct jobq__spin {
	uint32_t ns;  /* the current window */
	uint32_t min; /* bounds of the window */
	uint32_t max;
};

/* The bounds of the measured wake-up cost, and the value used when none
 * was measured (a manager of an older build). */
#define JOBQ__WAKE_MIN_NS     1000u
#define JOBQ__WAKE_MAX_NS     100000u
#define JOBQ__WAKE_DEFAULT_NS 20000u

/* Two clock reads of one polling loop further apart than this: the poller
 * was off its CPU in between. */
#define JOBQ__SPIN_GAP_NS 20000u

/*
 * jobq__spin_init - a window of @lo_mul/@hi_mul times @wake_ns at the
 * ends, starting at @start_mul times it (the multipliers are in quarters:
 * 4 is once the wake-up cost). A @wake_ns of 0 takes the default.
 */
void jobq__spin_init(struct jobq__spin *s, uint64_t wake_ns, uint32_t lo_mul,
		     uint32_t start_mul, uint32_t hi_mul);

/* The answer came while polling: widen the window a little. */
static inline void jobq__spin_paid(struct jobq__spin *s)
{
	if (s->ns < s->max) {
		uint32_t n = s->ns + s->ns / 4 + 250;

		s->ns = n < s->max ? n : s->max;
	}
}

/* The window ran out, or the poller was kept off its CPU: narrow it. */
static inline void jobq__spin_missed(struct jobq__spin *s, bool preempted)
{
	uint32_t n = preempted ? s->ns / 2 : s->ns - s->ns / 4;

	s->ns = n > s->min ? n : s->min;
}

/*
 * jobq__wake_cost_ns - measures, with two threads of this process that
 * hand a futex word back and forth and sleep at once, how long one
 * wake-up takes here: the median over @rounds round trips, halved, within
 * the bounds above. Takes a few milliseconds; jobqd calls it at start.
 */
uint64_t jobq__wake_cost_ns(int rounds);

#endif
