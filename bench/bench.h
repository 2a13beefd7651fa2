/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what the jobq benchmark programs share: a clock, fatal errors,
 * a start barrier for forked processes, percentiles and RESULT lines.
 *
 * Every program prints its measurements on stdout as
 *
 *	RESULT metric=<name> value=<number> [key=value ...]
 *
 * which bench/run collects; anything else (diagnostics) goes to stderr.
 * The programs use only the public API (jobq.h), as an application would.
 */
#ifndef JOBQ_BENCH_H
#define JOBQ_BENCH_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* bench_die - print "jobq-bench: <what>[: <jobq error>]" and exit 2. @err
 * is a return value of libjobq (0 when there is none to show). _exit()
 * because a forked child must not run the parent's atexit handlers. */
__attribute__((format(printf, 2, 3), noreturn)) static inline void
bench_die(int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "jobq-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s (%d)", jobq_strerror(err), err);
	fputc('\n', stderr);
	fflush(stdout);
	_exit(2);
}

/*
 * bench_open - connect to the manager of @dir (NULL: the default
 * directory), or die saying which directory did not answer.
 */
static inline jobq_t *bench_open(const char *dir)
{
	jobq_t *q;
	int r = jobq_open(&q, dir);

	if (r < 0)
		bench_die(r, "cannot connect to jobqd in %s",
			  dir ? dir : "the default directory");
	return q;
}

/*
 * A start barrier for forked processes: every child writes one byte to
 * ready[1] once it is set up, then blocks reading go[0]; the parent reads one
 * byte per child and then closes go[1], and the end-of-file releases all of
 * them at the same moment. Children that die early show up as a short read.
 */
struct bench_barrier {
	int ready[2];
	int go[2];
};

static inline void bench_barrier_init(struct bench_barrier *b)
{
	if (pipe(b->ready) || pipe(b->go))
		bench_die(-errno, "pipe");
}

/* In the child, after fork(): drop the parent's ends. */
static inline void bench_barrier_child(struct bench_barrier *b)
{
	close(b->ready[0]);
	close(b->go[1]);
}

/* In the child: say "ready" and wait for the release. */
static inline void bench_barrier_wait(struct bench_barrier *b)
{
	char c = 'r';
	ssize_t r;

	while ((r = write(b->ready[1], &c, 1)) < 0 && errno == EINTR)
		;
	while ((r = read(b->go[0], &c, 1)) < 0 && errno == EINTR)
		;
	(void)r;
}

/* In the parent: wait until @n children are ready, then release them.
 * Returns the release time, or 0 when a child died before it was ready. */
static inline uint64_t bench_barrier_release(struct bench_barrier *b, int n)
{
	char c;
	uint64_t t;

	close(b->ready[1]);
	close(b->go[0]);
	for (int i = 0; i < n; i++) {
		ssize_t r;

		while ((r = read(b->ready[0], &c, 1)) < 0 && errno == EINTR)
			;
		if (r != 1)
			return 0;
	}
	t = bench_now_ns();
	close(b->go[1]);
	return t;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile @p (0..100] of @n sorted samples. */
static inline uint64_t bench_pct(const uint64_t *v, size_t n, double p)
{
	size_t rank;

	if (!n)
		return 0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/*
 * bench_report_latency - sort @n samples (ns) and print p50_us, p99_us,
 * p999_us, max_us and mean_us, each with @extra appended. p999 needs about
 * 10,000 samples or more to mean anything; n= is printed beside it.
 */
static inline void bench_report_latency(uint64_t *v, size_t n,
					const char *extra)
{
	double sum = 0;

	qsort(v, n, sizeof(*v), bench_cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)v[i];
	printf("RESULT metric=p50_us value=%.2f n=%zu %s\n",
	       (double)bench_pct(v, n, 50) / 1e3, n, extra);
	printf("RESULT metric=p99_us value=%.2f n=%zu %s\n",
	       (double)bench_pct(v, n, 99) / 1e3, n, extra);
	printf("RESULT metric=p999_us value=%.2f n=%zu %s\n",
	       (double)bench_pct(v, n, 99.9) / 1e3, n, extra);
	printf("RESULT metric=max_us value=%.2f n=%zu %s\n",
	       n ? (double)v[n - 1] / 1e3 : 0.0, n, extra);
	printf("RESULT metric=mean_us value=%.2f n=%zu %s\n",
	       n ? sum / (double)n / 1e3 : 0.0, n, extra);
	fflush(stdout);
}

/*
 * A hard limit on a whole run: after @secs the alarm kills the children
 * listed in bench_kids and exits 3, so a wedged manager or client can never
 * hang the runner (which also kills the process group after 20 s).
 */
#define BENCH_MAX_KIDS 64
static pid_t bench_kids[BENCH_MAX_KIDS];
static int bench_nkids;

static void bench_on_alarm(int sig)
{
	static const char msg[] = "jobq-bench: run exceeded its time limit\n";
	ssize_t r;

	(void)sig;
	for (int i = 0; i < bench_nkids; i++)
		if (bench_kids[i] > 0)
			kill(bench_kids[i], SIGKILL);
	r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	_exit(3);
}

static inline void bench_time_limit(unsigned secs)
{
	signal(SIGALRM, bench_on_alarm);
	alarm(secs);
}

/* Parses a positive count, or dies naming the option. */
static inline long bench_arg_long(const char *s, char opt)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1)
		bench_die(0, "-%c: expected a positive number, got \"%s\"", opt,
			  s);
	return v;
}

#endif
