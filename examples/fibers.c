/* SPDX-License-Identifier: MIT */
/*
 * fibers.c - greenlets and gevent.joinall in C, on io_uring.
 *
 * The idea: a fiber is a function with a stack of its own. When it does
 * IO through jobq_io_*(), the call submits one io_uring request and the
 * fiber is suspended until the completion comes; meanwhile the loop runs
 * the other fibers. The code of each reads straight through.
 *
 * First, two fibers pass a counter back and forth through two pipes: each
 * read suspends one fiber until the other's write resumes it. Then ten
 * fibers each sleep 100 ms, spawned and joined (jobq_fiber_join_all): they
 * sleep at the same time, so it takes about 100 ms, not a second. Each
 * sleeper records when it started and ended its sleep, and the example
 * checks the order of those events: the last one to start started before
 * the first one ended.
 *
 *   fibers
 *
 * Exits 0 when the fibers took turns and the sleeps overlapped, 1
 * otherwise.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------
 * Ping-pong.
 */
struct player {
	const char *name;
	int in, out; /* read the ball here, pass it there */
	int serves;  /* this one starts */
	int turns;   /* turns taken */
};

static void play(void *arg)
{
	struct player *p = arg;
	int ball = 0;

	if (p->serves &&
	    jobq_io_write(p->out, &ball, sizeof(ball), -1, 1) != sizeof(ball))
		return;
	while (ball < 6) {
		if (jobq_io_read(p->in, &ball, sizeof(ball), -1, 1) !=
		    sizeof(ball))
			return;
		printf("  %s got the ball at %d\n", p->name, ball);
		p->turns++;
		ball++;
		if (jobq_io_write(p->out, &ball, sizeof(ball), -1, 1) !=
		    sizeof(ball))
			return;
	}
}

static int ping_pong(jobq_loop_t *l)
{
	int ab[2], ba[2];
	struct player a = {"ping", 0, 0, 1, 0}, b = {"pong", 0, 0, 0, 0};

	if (pipe2(ab, O_CLOEXEC) || pipe2(ba, O_CLOEXEC))
		return 1;
	a.in = ba[0];
	a.out = ab[1];
	b.in = ab[0];
	b.out = ba[1];
	printf("two fibers, one ball, two pipes:\n");
	if (jobq_spawn(l, play, &a, NULL) || jobq_spawn(l, play, &b, NULL))
		return 1;
	if (jobq_loop_run(l) != 0)
		return 1;
	close(ab[0]);
	close(ab[1]);
	close(ba[0]);
	close(ba[1]);
	/* They took turns: the ball went 0..6 and back, three each (and the
	 * one that stopped last did so on a full pipe). */
	return a.turns >= 3 && b.turns >= 3 ? 0 : 1;
}

/* ------------------------------------------------------------------------
 * Ten sleepers.
 */
struct sleeper {
	double start, end;
	int res;
};

static void nap(void *arg)
{
	struct sleeper *s = arg;

	s->start = now();
	s->res = jobq_io_sleep(0.1);
	s->end = now();
}

static int sleepers(jobq_loop_t *l)
{
	struct sleeper s[10];
	jobq_fiber_t *f[10];
	double t0 = now(), last_start = 0, first_end = 1e300, took;

	memset(s, 0, sizeof(s));
	for (int i = 0; i < 10; i++)
		if (jobq_spawn(l, nap, &s[i], &f[i]))
			return 1;
	/* From plain code, join runs the loop until they are all back. */
	if (jobq_fiber_join_all(f, 10, 10) != 0)
		return 1;
	took = now() - t0;
	for (int i = 0; i < 10; i++) {
		if (s[i].res != 0)
			return 1;
		if (s[i].start > last_start)
			last_start = s[i].start;
		if (s[i].end < first_end)
			first_end = s[i].end;
	}
	printf("ten fibers slept 100 ms each: %.0f ms in all\n", took * 1e3);
	printf("last one started %.2f ms after the first, first one woke "
	       "after %.0f ms\n",
	       (last_start - s[0].start) * 1e3, (first_end - s[0].start) * 1e3);
	if (!(last_start < first_end)) {
		printf("the sleeps did not overlap\n");
		return 1;
	}
	return 0;
}

int main(void)
{
	jobq_loop_t *l;
	int rc;

	rc = jobq_loop_new(&l, NULL);
	if (rc) {
		fprintf(stderr, "fibers: %s\n", jobq_loop_why());
		return 1;
	}
	rc = ping_pong(l) || sleepers(l);
	jobq_loop_free(l);
	printf(rc ? "FAILED\n" : "ok\n");
	return rc;
}
