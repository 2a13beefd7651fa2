/* SPDX-License-Identifier: MIT */
/*
 * spin.c - the polling window (spin.h) and the start-up measurement of
 * what a wake-up costs on this machine.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "spin.h"

static uint32_t clamp_ns(uint64_t v)
{
	if (v < JOBQ__WAKE_MIN_NS / 2)
		return JOBQ__WAKE_MIN_NS / 2;
	if (v > 4ull * JOBQ__WAKE_MAX_NS)
		return 4 * JOBQ__WAKE_MAX_NS;
	return (uint32_t)v;
}

void jobq__spin_init(struct jobq__spin *s, uint64_t wake_ns, uint32_t lo_mul,
		     uint32_t start_mul, uint32_t hi_mul)
{
	if (!wake_ns)
		wake_ns = JOBQ__WAKE_DEFAULT_NS;
	s->min = clamp_ns(wake_ns * lo_mul / 4);
	s->ns = clamp_ns(wake_ns * start_mul / 4);
	s->max = clamp_ns(wake_ns * hi_mul / 4);
}

/* The two threads' shared word: odd when the helper's turn, even when
 * the measuring thread's; the helper stops at UINT32_MAX. */
struct pingpong {
	_Atomic uint32_t word;
};

static void fwait(_Atomic uint32_t *w, uint32_t v)
{
	while (atomic_load(w) == v)
		syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, v, NULL,
			NULL, 0);
}

static void fwake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *helper(void *arg)
{
	struct pingpong *p = arg;
	uint32_t seen = 0;

	for (;;) {
		uint32_t v;

		fwait(&p->word, seen);
		v = atomic_load(&p->word);
		if (v == UINT32_MAX)
			return NULL;
		/* Odd: answer with the next even value. */
		atomic_store(&p->word, v + 1);
		fwake(&p->word);
		seen = v + 1;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Two CPUs of those we may run on, in @a and @b: the two sides of a
 * request run apart when they can, and a wake-up on the same CPU would
 * measure a context switch only. False when there is one CPU.
 */
static bool two_cpus(cpu_set_t *all, cpu_set_t *a, cpu_set_t *b)
{
	int n = 0;

	if (sched_getaffinity(0, sizeof(*all), all))
		return false;
	CPU_ZERO(a);
	CPU_ZERO(b);
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++) {
		if (!CPU_ISSET(c, all))
			continue;
		CPU_SET(c, n ? b : a);
		n++;
	}
	return n == 2;
}

uint64_t jobq__wake_cost_ns(int rounds)
{
	struct pingpong p = {0};
	cpu_set_t all, a, b;
	pthread_attr_t attr;
	pthread_t t;
	uint64_t *rtt, med;
	uint32_t v = 0;
	int err;

	/* One CPU: a poller keeps the other side off it, so polling never
	 * pays. The smallest window. */
	if (!two_cpus(&all, &a, &b))
		return JOBQ__WAKE_MIN_NS;
	if (rounds < 4)
		rounds = 4;
	rtt = calloc((size_t)rounds, sizeof(*rtt));
	if (!rtt || pthread_attr_init(&attr)) {
		free(rtt);
		return JOBQ__WAKE_DEFAULT_NS;
	}
	pthread_attr_setaffinity_np(&attr, sizeof(b), &b);
	err = pthread_create(&t, &attr, helper, &p);
	pthread_attr_destroy(&attr);
	if (err) {
		free(rtt);
		return JOBQ__WAKE_DEFAULT_NS;
	}
	sched_setaffinity(0, sizeof(a), &a);
	/* The first rounds start the helper and warm the paths up. */
	for (int i = -4; i < rounds; i++) {
		uint64_t t0 = jobq__now_ns();

		atomic_store(&p.word, ++v); /* odd: the helper's turn */
		fwake(&p.word);
		fwait(&p.word, v);
		v = atomic_load(&p.word);
		if (i >= 0)
			rtt[i] = jobq__now_ns() - t0;
	}
	atomic_store(&p.word, UINT32_MAX);
	fwake(&p.word);
	pthread_join(t, NULL);
	sched_setaffinity(0, sizeof(all), &all);
	qsort(rtt, (size_t)rounds, sizeof(*rtt), cmp_u64);
	med = rtt[rounds / 2] / 2;
	free(rtt);
	if (med < JOBQ__WAKE_MIN_NS)
		med = JOBQ__WAKE_MIN_NS;
	if (med > JOBQ__WAKE_MAX_NS)
		med = JOBQ__WAKE_MAX_NS;
	return med;
}
